"""What the HTTP API adds over `BatonClient`, measured side by side in one process.

On one embedded dev server (Baton's configuration) with one worker and the SQLite app database:
  - start-and-wait of a deployed 3-step process: `BatonClient.start_process(name)` and its
    result, against `POST /v1/runs?wait=true` with a bearer token (JWT check, rate limit,
    per-call audit entry, JSON both ways), interleaved, after a warm-up;
  - a bearer token checked by `JwtVerifier.verify` with its keys in hand (the dev issuer's ES256
    key, the JWKS cached): a token not seen before, and one seen (remembered for a minute);
  - reads of a run's state: `ProcessRun.state()` against `GET /v1/runs/{id}`, 16 in flight each;
  - the floor: an HTTP round trip that does nothing (`GET /healthz`), client and server here.
The API server runs on this process's event loop, as `baton dev` runs it: its CPU is in the numbers.

Run: .venv/bin/python bench/api_overhead.py
The last line: api_overhead start_wait_p50_added_ms=<> http_round_trip_ms=<> jwt_verify_ms=<> jwt_remembered_ms=<>
state_reads_per_s_api=<> state_reads_per_s_client=<>
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))  # workers import the steps by module name

from three_steps import three_steps

from baton.security.dev_issuer import DevIssuer
from baton.settings import BatonSettings
from baton.starter.devserver import api_server
from baton.testing import ProcessEnvironment

QUEUE = "bench-api"
SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", 100))
WARMUP = int(os.environ.get("BENCH_WARMUP", 10))
VERIFIES = 2000
READ_SECONDS = 3.0
IN_FLIGHT = 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def reads_per_second(read: Callable[[], Awaitable[object]]) -> float:
    done = 0
    deadline = time.perf_counter() + READ_SECONDS

    async def reader() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await read()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(reader() for _ in range(IN_FLIGHT)))
    return done / (time.perf_counter() - start)


async def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="baton-bench-api-"))
    settings = BatonSettings(
        data_dir=data_dir,
        workflows_queue=QUEUE,
        steps_queue=QUEUE,
        step_modules=["three_steps"],
        api_rate_limit=10**9,
    )
    process = three_steps("BenchApi", local=False).build(settings.step_modules)
    async with ProcessEnvironment(settings=settings) as env:
        await env.client.definitions.deploy(process.to_definition())
        token = DevIssuer.load(settings).issue("bench", ["Agent"], 3600)
        headers = {"Authorization": f"Bearer {token}"}
        body = {"template": "BenchApi", "event": "Start", "data": "x"}
        async with (
            api_server(settings, port=free_port(), client=env.client) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as http,
        ):

            async def client_run() -> float:
                start = time.perf_counter()
                run = await env.client.start_process("BenchApi", "Start", "x")
                assert (await run.result()).output == "x-1-2-3"
                return time.perf_counter() - start

            async def api_run() -> float:
                start = time.perf_counter()
                answer = await http.post("/v1/runs?wait=true", json=body, headers=headers)
                assert answer.status_code == 200 and answer.json()["result"]["output"] == "x-1-2-3", (
                    answer.text
                )
                return time.perf_counter() - start

            async def floor_call() -> float:  # the HTTP round trip alone: uvicorn, Starlette, httpx
                start = time.perf_counter()
                assert (await http.get("/healthz")).status_code == 200
                return time.perf_counter() - start

            for _ in range(WARMUP):
                await client_run()
                await api_run()
                await floor_call()
            client_times, api_times, floor_times = [], [], []
            for _ in range(SEQUENTIAL):
                client_times.append(await client_run())
                api_times.append(await api_run())
                floor_times.append(await floor_call())

            issuer = DevIssuer.load(settings)
            verifier = issuer.verifier()
            tokens = [issuer.issue(f"bench-{n}", ["Agent"], 3600) for n in range(VERIFIES)]
            start = time.perf_counter()
            for each in tokens:  # each one new: its signature checked
                await verifier.verify(each)
            verify_ms = (time.perf_counter() - start) / VERIFIES * 1000
            start = time.perf_counter()
            for _ in range(VERIFIES):  # the same one again: remembered
                await verifier.verify(token)
            remembered_ms = (time.perf_counter() - start) / VERIFIES * 1000

            run = await env.client.start_process("BenchApi", "Start", "x")
            await run.result()
            client_reads = await reads_per_second(run.state)
            api_reads = await reads_per_second(lambda: http.get(f"/v1/runs/{run.id}", headers=headers))

    client_p50, api_p50 = statistics.median(client_times) * 1000, statistics.median(api_times) * 1000
    floor_p50 = statistics.median(floor_times) * 1000
    print(
        f"start-and-wait p50: BatonClient {client_p50:.1f} ms, HTTP API {api_p50:.1f} ms ({SEQUENTIAL} each); "
        f"an HTTP round trip alone (GET /healthz) {floor_p50:.1f} ms"
    )
    print(f"JWT verification (ES256, keys cached): {verify_ms:.3f} ms new token, {remembered_ms:.4f} ms seen")
    print(
        f"run state reads, {IN_FLIGHT} in flight: BatonClient {client_reads:.0f}/s, HTTP API {api_reads:.0f}/s"
    )
    print(
        f"api_overhead start_wait_p50_added_ms={api_p50 - client_p50:.1f} http_round_trip_ms={floor_p50:.1f} "
        f"jwt_verify_ms={verify_ms:.3f} "
        f"jwt_remembered_ms={remembered_ms:.4f} "
        f"state_reads_per_s_api={api_reads:.0f} state_reads_per_s_client={client_reads:.0f}"
    )
    os._exit(0)  # sdk-python issue 300: no crash at interpreter exit


if __name__ == "__main__":
    asyncio.run(main())
