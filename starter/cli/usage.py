"""The one error type for mistakes on the command line."""


class UsageError(Exception):
    """A mistake on the command line: reported in one line, exit status 2."""
