"""The `baton` command line.

`main` is the console script (and `python -m baton.starter.cli`). `baton pii ...` is a filter for
shell pipelines that reads no settings and connects to nothing: it runs before the rest of the
command line (settings, logging, tracing, the Temporal SDK) is imported, and starts in ~0.15 s
instead of ~1.7. `baton --help` still lists it, from the parser of `main.py`.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `baton` console script."""
    if (sys.argv[1:] if argv is None else argv)[:1] == ["pii"]:
        from baton.starter.cli.pii import main as run
    else:
        from baton.starter.cli.main import main as run
    run(argv)
