"""Baton's HTTP servers: the codec server for the Temporal UI (and, to come, the API gateway).

They use `baton` and `baton.starter`; nothing imports them but the `baton` command."""
