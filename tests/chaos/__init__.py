"""The chaos suite: real faults injected into a real Baton stack while real work runs, counted.

`make chaos` runs the full suite (`python -m tests.chaos`); `tests/test_chaos.py` runs a short
version of the same in `make test`. docs/RELIABILITY.md records what the full suite measured.
"""
