"""The one error type for mistakes on the command line."""

from baton.errors import InvalidRequest


class UsageError(InvalidRequest):
    """A mistake on the command line: reported in one line, exit status 2."""
