"""What payload encryption costs a process run: the time spent in Baton's codec, measured inside
the runs, against the run's wall-clock time and the process's CPU time.

A Baton process of 3 default steps (`three_steps`), client and workers in this process, on
Baton's embedded dev server (SQLite file), with the shipped converter. Every call of
`EncryptionCodec.encode` and `.decode` (the client's and the workers') is timed, awaits included,
over `BENCH_RUNS` (30) sequential runs after 5 of warm-up. `bench/process_contenders.py` compares
the same process with the plain converter side by side (`baton_unencrypted`); on this machine that
difference is within the noise of two contenders, so this bench times the codec itself.

Run: .venv/bin/python bench/encryption_share.py
The last line: encryption_share of_wall=<codec ms / run ms> of_cpu=<codec ms / process CPU ms>
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))  # workers import the steps by module name

from three_steps import three_steps

from baton.persistence.db import engine_from_settings
from baton.security.codec import EncryptionCodec
from baton.settings import BatonSettings
from baton.starter.client import BatonClient
from baton.temporal import settings_converter
from baton.testing import start_dev_server
from baton.workers.worker import running_workers

RUNS = int(os.environ.get("BENCH_RUNS", 30))
WARMUP = 5


class CodecClock:
    """Times every call of the codec's `encode` and `decode` while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.payloads = 0

    def install(self) -> None:
        for name in ("encode", "decode"):
            setattr(EncryptionCodec, name, self._timed(getattr(EncryptionCodec, name)))

    def _timed(self, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def timed(codec: EncryptionCodec, payloads: Any, *args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return await call(codec, payloads, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - began
                self.payloads += len(payloads)

        return timed


async def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="baton-bench-encryption-"))
    settings = BatonSettings(data_dir=data_dir, step_modules=["three_steps"])
    converter = settings_converter(settings, engine_from_settings(settings))
    env = await start_dev_server(converter, db_file=data_dir / "temporal.db")
    clock = CodecClock()
    clock.install()
    async with contextlib.AsyncExitStack() as stack:
        queues = [q for q in settings.all_queues if q != settings.compliance_queue]
        await stack.enter_async_context(running_workers(env.client, settings, queues))
        baton = BatonClient(env.client, settings)
        process = three_steps("BenchEncryption", local=False).build(settings.step_modules)
        for n in range(WARMUP + RUNS):
            if n == WARMUP:
                clock.seconds, clock.payloads = 0.0, 0
                wall, cpu = time.perf_counter(), time.process_time()
            await (await baton.start_process(process, "Start", "x")).result()
        wall_ms = (time.perf_counter() - wall) / RUNS * 1000
        cpu_ms = (time.process_time() - cpu) / RUNS * 1000
    await env.shutdown()
    codec_ms = clock.seconds / RUNS * 1000
    print(f"{RUNS} runs: {wall_ms:.1f} ms each, {cpu_ms:.1f} ms of this process's CPU (client and workers)")
    print(f"codec: {clock.payloads / RUNS:.0f} payloads a run, {codec_ms:.2f} ms a run")
    print(f"encryption_share of_wall={codec_ms / wall_ms:.3f} of_cpu={codec_ms / cpu_ms:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
    os._exit(0)  # skip interpreter teardown, which the SDK's threads can crash (sdk-python issue 300)
