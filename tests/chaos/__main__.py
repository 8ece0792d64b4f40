"""`python -m tests.chaos [--short]`: the chaos suite; prints the report docs/RELIABILITY.md keeps."""

from __future__ import annotations

import argparse
import asyncio
import os

from tests.chaos.suite import FULL, SHORT, run_chaos


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the shortened version make test runs")
    args = parser.parse_args()
    dsn = os.environ.get("BATON_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    report = asyncio.run(run_chaos(SHORT if args.short else FULL, dsn))
    print(report.markdown(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    # Exit without the interpreter's teardown, which can crash after the Temporal SDK ran.
    os._exit(main())
