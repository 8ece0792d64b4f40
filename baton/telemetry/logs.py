"""Logging that masks PII: whatever a message, its arguments or a traceback hold, the line written
says "[EMAIL]", not the address.

    configure_logging("DEBUG")
    logging.getLogger(__name__).info("signed in: %s", user.email)  # ... signed in: [EMAIL]
"""

from __future__ import annotations

import logging

from baton.security.pii import default_masker

# The name marks the handler `configure_logging` installs, so a second call finds it.
_HANDLER_NAME = "baton-masked-stderr"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class MaskingFormatter(logging.Formatter):
    """A `logging.Formatter` that masks PII in the finished line: the message with its arguments
    filled in, the exception text and the stack, all at once."""

    def format(self, record: logging.LogRecord) -> str:
        return default_masker().mask(super().format(record))


def configure_logging(level: str = "INFO") -> None:
    """Log records of `level` and above to stderr through a `MaskingFormatter`, on the root logger.

    Calling it again changes the level and adds no second handler.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    if any(handler.get_name() == _HANDLER_NAME for handler in root.handlers):
        return
    handler = logging.StreamHandler()  # stderr
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(MaskingFormatter(_FORMAT))
    root.addHandler(handler)
