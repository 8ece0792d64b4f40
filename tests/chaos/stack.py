"""The parts of a Baton deployment the chaos suite runs, each a real process it can fault: a
Temporal dev server on a SQLite file, a PostgreSQL server and a Redis server of its own, the LLM
server, and `baton worker` processes per queue (one of them, optionally, in a memory cgroup)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from baton.temporal import dev_server_args, dev_server_path
from baton.testing import free_port
from tests.llm_server import FakeLlmServer, Reply

REPO = Path(__file__).resolve().parents[2]


def _wait_for(ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} was not ready after {timeout:.0f} s")
        time.sleep(0.1)


def _dies_with_the_suite(cage: MemoryCage | None = None) -> Callable[[], None]:
    """For `preexec_fn`: the child gets SIGKILL when the suite dies, however it dies (Linux), so a
    killed suite leaves no server or worker behind; and it enters `cage` if given."""

    def prepare() -> None:
        if sys.platform == "linux":
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if cage is not None:
            cage.enter()

    return prepare


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop(process: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Postgres:
    """A PostgreSQL server of the suite's own, so that restarting or freezing it leaves the
    machine's alone. Runs as the `postgres` user when the suite runs as root (initdb refuses root)."""

    @staticmethod
    def programs() -> Path | None:
        """The folder of PostgreSQL's server programs (initdb, pg_ctl), if installed."""
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")) or [shutil.which("pg_ctl") or ""]
        return Path(found[-1]).parent if found[-1] else None

    def __init__(self) -> None:
        programs = self.programs()
        if programs is None:
            raise RuntimeError("the chaos suite needs PostgreSQL's server programs (initdb, pg_ctl)")
        self.bin = programs
        _stop_left_behind(self.bin)
        # Its own folder in /tmp, which the `postgres` user can reach (a test's folder is private).
        self.root = Path(tempfile.mkdtemp(prefix=_POSTGRES_PREFIX))
        (self.root / "suite.pid").write_text(str(os.getpid()))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def _log(self) -> list[str]:
        # The server's output goes to a file: left on pg_ctl's pipes, it would hold them open.
        return ["-l", str(self.root / "server.log")]

    def _run(self, *command: str) -> None:
        user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*user, *command], check=True, capture_output=True, cwd="/")

    def start(self) -> None:
        if not self.data.exists():
            if os.geteuid() == 0:
                postgres = pwd.getpwnam("postgres")
                os.chown(self.root, postgres.pw_uid, postgres.pw_gid)
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust")
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), *self._log, "-w",
            "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1", "start",
        )  # fmt: skip

    def restart(self) -> None:
        """A fast shutdown (every connection is cut) and a start."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), *self._log, "-m", "fast", "-w", "restart")

    def _processes(self) -> list[int]:
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = [
            int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == postmaster
        ]
        return [postmaster, *children]

    def freeze(self) -> None:
        """Unreachable: every server process stopped, so connections hang as in a partition."""
        for pid in self._processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.thaw()
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


_POSTGRES_PREFIX = "baton-chaos-postgres-"


def _stop_left_behind(programs: Path) -> None:
    """Stop the servers of suites that died without stopping theirs (pg_ctl detaches them)."""
    for root in Path(tempfile.gettempdir()).glob(f"{_POSTGRES_PREFIX}*"):
        with contextlib.suppress(OSError, ValueError):
            owner = int((root / "suite.pid").read_text())
            if Path(f"/proc/{owner}").exists():
                continue
            user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
            subprocess.run(
                [*user, str(programs / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
                capture_output=True,
                cwd="/",
            )
            shutil.rmtree(root, ignore_errors=True)


def _parent(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


class Redis:
    """A Redis of the suite's own, keeping nothing on disk: restarted, it starts empty."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            preexec_fn=_dies_with_the_suite(),
        )  # fmt: skip
        _wait_for(lambda: _listening(self.port), "Redis")

    def kill(self) -> None:
        _stop(self.process, signal.SIGKILL)


class Temporal:
    """The embedded dev server on a SQLite file, stopped and started again on the same file."""

    def __init__(self, root: Path) -> None:
        self.db = root / "temporal.db"
        self.log = root / "temporal.log"
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            dev_server_path(), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.port),
            "--headless", "--db-filename", str(self.db), "--log-level", "error",
            "--search-attribute", "BatonProcess=Keyword", "--search-attribute", "BatonTenant=Keyword",
            "--search-attribute", "BatonRetentionDue=Datetime", *dev_server_args(),
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, start_new_session=True, preexec_fn=_dies_with_the_suite()
            )
        _wait_for(lambda: _listening(self.port), "the Temporal dev server")

    def stop(self) -> None:
        _stop(self.process)


class ChaosLlm(FakeLlmServer):
    """The suite's LLM server, answering every agent so that each pattern runs to its end: a
    handoff transfers, then completes; an agent with the ledger's tool calls it once; otherwise
    it echoes. `cut_streams_for` cuts every streamed answer before its end marker."""

    def __init__(self) -> None:
        super().__init__()
        self.cutting_until = 0.0

    def cut_streams_for(self, seconds: float) -> None:
        self.cutting_until = time.time() + seconds

    def _default(self, body: dict[str, Any], latency: float) -> Reply:  # type: ignore[override]
        reply = self._answer_for(body)
        reply.cut_stream = time.time() < self.cutting_until
        return reply

    @staticmethod
    def _answer_for(body: dict[str, Any]) -> Reply:
        names = [t.get("function", t)["name"] for t in body.get("tools", [])]
        messages = body.get("messages", [])
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        tool_answered = any(m.get("role") == "tool" for m in messages[last_user + 1 :])
        if transfer := next((n for n in names if n.startswith("transfer_to_")), None):
            return Reply.call(transfer)
        if "complete_task" in names:
            return Reply.call("complete_task", answer="order desk: done")
        if "chaos_lookup" in names and not tool_answered:
            return Reply.call("chaos_lookup", topic="orders")
        content = messages[last_user]["content"] if last_user >= 0 else ""
        return Reply.text(f"noted: {str(content)[-80:]}")


class MemoryCage:
    """A memory cgroup (v2 `memory.max`, or v1 `memory.limit_in_bytes`): a process placed in it
    that uses more is killed by the kernel's OOM killer, as in a container with a memory limit."""

    def __init__(self, name: str, limit_bytes: int) -> None:
        v2 = Path("/sys/fs/cgroup/cgroup.controllers")
        if v2.exists() and "memory" in v2.read_text().split():
            self.path, limit_file = Path("/sys/fs/cgroup") / name, "memory.max"
        else:
            self.path, limit_file = Path("/sys/fs/cgroup/memory") / name, "memory.limit_in_bytes"
        try:
            self.path.mkdir(exist_ok=True)
            (self.path / limit_file).write_text(str(limit_bytes))
        except OSError as e:
            raise RuntimeError(
                f"the memory fault needs a writable memory cgroup ({self.path}): {e.strerror}"
            ) from e

    @staticmethod
    def supported() -> str | None:
        """Why memory cgroups cannot be made here (not root, no controller), or None."""
        try:
            MemoryCage(f"baton-chaos-probe-{os.getpid()}", 1 << 30).remove()
        except RuntimeError as e:
            return str(e)
        return None

    def enter(self) -> None:
        """Move the calling process in (run in the child, before it executes the worker)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


class Workers:
    """`baton worker` processes, `wanted` per queue, as a deployment's controller keeps them: one
    that dies, whatever killed it, is started again `restart_after` seconds later."""

    def __init__(self, root: Path, environment: dict[str, str], restart_after: float = 2.0) -> None:
        self.root = root
        self.environment = environment
        self.restart_after = restart_after
        self.wanted: dict[str, int] = {}
        self.running: dict[str, list[subprocess.Popen[bytes]]] = {}
        self.killed: set[int] = set()
        """Pids that died while serving (killed by the suite, the kernel, or exiting on their own):
        their unreported work may run again."""
        self.exits: list[tuple[str, int]] = []
        """(queue, exit status) of every worker that died, the suite's kills included."""
        self._started = 0

    def keep(self, queue: str, count: int) -> None:
        self.wanted[queue] = count
        for _ in range(count):
            self.start(queue)

    def start(self, queue: str, cage: MemoryCage | None = None) -> subprocess.Popen[bytes]:
        """A worker for `queue`; one in a `cage` is not kept (it is not started again)."""
        self._started += 1
        log = (self.root / f"worker-{self._started}-{queue}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "baton.starter.cli", "worker", "--queues", queue],
            env={**os.environ, **self.environment},
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_dies_with_the_suite(cage),
        )
        log.close()
        if cage is None:
            self.running.setdefault(queue, []).append(process)
        return process

    def kill(self, queue: str) -> list[int]:
        """SIGKILL every worker of `queue`; returns their pids."""
        pids = []
        for process in self.running.get(queue, []):
            self.killed.add(process.pid)
            pids.append(process.pid)
            process.kill()
        return pids

    async def supervise(self) -> None:
        """Keep `wanted` workers per queue, starting one `restart_after` seconds after one
        died, until cancelled."""
        loop = asyncio.get_running_loop()
        coming: dict[str, int] = {}

        def start(queue: str) -> None:
            coming[queue] -= 1
            if len(self.running.get(queue, [])) < self.wanted[queue]:
                self.start(queue)

        while True:
            for queue, processes in self.running.items():
                for process in [p for p in processes if p.poll() is not None]:
                    processes.remove(process)
                    self.killed.add(process.pid)
                    self.exits.append((queue, process.returncode))
                missing = self.wanted[queue] - len(processes) - coming.get(queue, 0)
                for _ in range(missing):
                    coming[queue] = coming.get(queue, 0) + 1
                    loop.call_later(self.restart_after, start, queue)
            await asyncio.sleep(0.2)

    def stop_all(self) -> None:
        for processes in self.running.values():
            for process in processes:
                _stop(process)
        self.running.clear()


def worker_environment(settings_env: dict[str, Any]) -> dict[str, str]:
    """`BATON_*` variables from plain values (lists as JSON, as pydantic-settings reads them)."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in settings_env.items()}
