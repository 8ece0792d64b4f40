"""`python -m baton.starter.cli`: the `baton` command, for where its script is not on PATH."""

from baton.starter.cli import main

main()
