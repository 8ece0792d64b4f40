"""How long an erasure and a key rotation take to reach a process that is already running.

Erasure: two `SubjectKeys` registries on one app database, each with its own engine (as two
processes have): a busy "worker" uses a subject's key every 5 ms; the "eraser" erases the
subject at a random moment; the time until the worker is refused the key. Measured on SQLite and PostgreSQL.
Rotation: a `LiveKeyring` over the keyring file, sealing every 5 ms; `FileKeyProvider.rotate`
(what `baton keys rotate` does) at a random moment; the time until it seals with the new key.

Run: .venv/bin/python bench/key_propagation.py   (PostgreSQL on 127.0.0.1:5432, database `test`)
The last line:
  key_propagation erasure_sqlite_p50_ms=.. erasure_sqlite_max_ms=.. erasure_postgresql_p50_ms=..
  erasure_postgresql_max_ms=.. rotation_p50_ms=.. rotation_max_ms=..
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

import asyncpg

from baton.persistence.db import create_engine
from baton.persistence.migrate import upgrade
from baton.persistence.schema import Schema
from baton.persistence.subjects import ERASURE_POLL_SECONDS, SubjectKeys
from baton.security.codec import subject_run_id
from baton.security.keys import RELOAD_SECONDS, FileKeyProvider, LiveKeyring

ROUNDS = int(os.environ.get("BENCH_PROPAGATION_ROUNDS", 40))
POSTGRES = os.environ.get("BATON_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PROBE_S = 0.005


async def erasure_ms(url: str, keys: LiveKeyring) -> list[float]:
    engine = create_engine(url)
    await upgrade(engine)
    worker_engine = create_engine(url)
    eraser = SubjectKeys(Schema(engine), keys)
    worker = SubjectKeys(Schema(worker_engine), keys)
    times = []
    try:
        for _ in range(ROUNDS):
            subject = f"subject-{uuid.uuid4()}"
            binding = await eraser.register(subject_run_id(f"bench-{uuid.uuid4()}"), subject)
            refused = asyncio.get_running_loop().create_future()

            async def busy_worker(key_id: str = binding.key_id, refused: asyncio.Future = refused) -> None:
                # Uses the key every 5 ms, as a worker sealing a run's payloads would.
                while await worker.data_key(key_id) is not None:
                    await asyncio.sleep(PROBE_S)
                refused.set_result(time.perf_counter())

            task = asyncio.create_task(busy_worker())
            await asyncio.sleep(random.uniform(0.05, 2 * ERASURE_POLL_SECONDS))  # a random moment
            await eraser.erase(subject)
            erased_at = time.perf_counter()
            times.append((await refused - erased_at) * 1000)
            await task
    finally:
        await engine.dispose()
        await worker_engine.dispose()
    return times


async def rotation_ms(folder: Path) -> list[float]:
    provider = FileKeyProvider(folder / "keyring.json")
    live = LiveKeyring(provider)
    times = []
    for _ in range(max(5, ROUNDS // 4)):
        live.keyring.seal(b"warm")
        rotated_at = 0.0
        new = ""

        async def rotate_at_random() -> None:
            nonlocal rotated_at, new
            await asyncio.sleep(random.uniform(0.05, 2 * RELOAD_SECONDS))
            new = provider.rotate().current
            rotated_at = time.perf_counter()

        rotation = asyncio.create_task(rotate_at_random())
        while not new or live.keyring.current != new:  # a busy process, sealing every 5 ms
            live.keyring.seal(b"payload")
            await asyncio.sleep(PROBE_S)
        times.append((time.perf_counter() - rotated_at) * 1000)
        await rotation
    return times


async def main() -> None:
    folder = Path(tempfile.mkdtemp())
    keys = LiveKeyring(FileKeyProvider(folder / "keyring.json"))
    database = f"baton_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(POSTGRES)
    await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        base = POSTGRES.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        results = {
            "erasure_sqlite": await erasure_ms(f"sqlite+aiosqlite:///{folder / 'baton.db'}", keys),
            "erasure_postgresql": await erasure_ms(f"{base}/{database}", keys),
            "rotation": await rotation_ms(folder),
        }
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    for name, times in results.items():
        print(
            f"{name:20} p50 {statistics.median(times):7.1f} ms   max {max(times):7.1f} ms   ({len(times)} rounds)"
        )
    print(
        "key_propagation "
        + " ".join(
            f"{name}_p50_ms={statistics.median(t):.0f} {name}_max_ms={max(t):.0f}"
            for name, t in results.items()
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
