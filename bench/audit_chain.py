"""How fast the hash-chained audit trail takes entries and verifies them.

Appends: WRITERS processes (default 4) append to one PostgreSQL database at once, each with
IN_FLIGHT appends outstanding (a service answering concurrent requests; entries waiting in one
process go in one transaction), and again one at a time (the worst case: a transaction each).
Throughput is all entries over the time from the first writer's start to the last one's end.
Verification: `AuditLog.verify` over the whole table, from a fresh connection. The same on the
SQLite default (one file, writers queue on its lock).

Run: .venv/bin/python bench/audit_chain.py   (PostgreSQL on 127.0.0.1:5432, database `test`)
The last line:
  audit_chain pg_appends_per_s=.. pg_serial_appends_per_s=.. pg_verify_per_s=..
  sqlite_appends_per_s=.. sqlite_verify_per_s=..
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

import asyncpg

from baton.compliance import AuditLog
from baton.persistence.db import create_engine
from baton.persistence.migrate import upgrade
from baton.persistence.schema import Schema

WRITERS = int(os.environ.get("BENCH_AUDIT_WRITERS", 4))
ENTRIES = int(os.environ.get("BENCH_AUDIT_ENTRIES", 5000))
IN_FLIGHT = int(os.environ.get("BENCH_AUDIT_IN_FLIGHT", 16))
POSTGRES = os.environ.get("BATON_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

WRITER = """
import asyncio, json, sys, time
from baton.compliance import AuditEntry, AuditLog
from baton.persistence.db import create_engine
from baton.persistence.schema import Schema

async def main(url: str, who: str, entries: int, in_flight: int) -> None:
    engine = create_engine(url)
    log = AuditLog(Schema(engine))
    await log.head()  # connected before the clock starts
    started = time.time()
    for i in range(0, entries, in_flight):
        await asyncio.gather(*(
            log.append(AuditEntry(actor=who, action="bench.write", resource=f"process-Bench-{i + j}",
                                  detail={"payloads": 1}))
            for j in range(min(in_flight, entries - i))
        ))
    print(json.dumps({"started": started, "ended": time.time()}))
    await engine.dispose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


async def appends_per_second(url: str, in_flight: int, entries: int) -> float:
    writers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, url, f"writer-{n}", str(entries), str(in_flight),
            stdout=asyncio.subprocess.PIPE,
        )
        for n in range(WRITERS)
    ]  # fmt: skip
    spans = [json.loads((await w.communicate())[0]) for w in writers]
    if any(w.returncode for w in writers):
        raise SystemExit("a writer failed")
    return WRITERS * entries / (max(s["ended"] for s in spans) - min(s["started"] for s in spans))


async def verify_per_second(url: str, expected: int) -> float:
    engine = create_engine(url)
    try:
        started = time.perf_counter()
        result = await AuditLog(Schema(engine)).verify()
        elapsed = time.perf_counter() - started
    finally:
        await engine.dispose()
    if not result.ok or result.entries != expected:
        raise SystemExit(f"the chain did not verify: {result}")
    return result.entries / elapsed


async def fresh(url: str) -> str:
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    return url


async def main() -> None:
    name = f"baton_bench_audit_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(POSTGRES)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        pg = await fresh(
            POSTGRES.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
        )
        pg_rate = await appends_per_second(pg, IN_FLIGHT, ENTRIES)
        pg_serial = await appends_per_second(pg, 1, ENTRIES // 5)
        pg_verify = await verify_per_second(pg, WRITERS * (ENTRIES + ENTRIES // 5))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    with tempfile.TemporaryDirectory() as folder:
        sqlite = await fresh(f"sqlite+aiosqlite:///{folder}/baton.db")
        sqlite_rate = await appends_per_second(sqlite, IN_FLIGHT, ENTRIES // 5)
        sqlite_verify = await verify_per_second(sqlite, WRITERS * (ENTRIES // 5))
    print(f"{WRITERS} writer processes, {IN_FLIGHT} appends in flight each (serial: one at a time)")
    print(
        f"audit_chain pg_appends_per_s={pg_rate:.0f} pg_serial_appends_per_s={pg_serial:.0f} "
        f"pg_verify_per_s={pg_verify:.0f} sqlite_appends_per_s={sqlite_rate:.0f} "
        f"sqlite_verify_per_s={sqlite_verify:.0f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
