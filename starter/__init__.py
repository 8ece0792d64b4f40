"""What other services import to start and steer Baton runs.

The names load on first use, so that `baton pii mask`, a command of this package, starts without
importing the client and the Temporal SDK behind it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import (
        BatonClient,
        EventRejected,
        InvalidEventData,
        ProcessFinished,
        ProcessingRequired,
        ProcessRun,
        RunAlreadyExists,
        SubjectRetention,
        UnknownEvent,
        process_workflow_id,
    )
    from .http import BatonHttpClient, RateLimited

__all__ = [
    "BatonClient",
    "BatonHttpClient",
    "EventRejected",
    "InvalidEventData",
    "ProcessFinished",
    "ProcessRun",
    "ProcessingRequired",
    "RateLimited",
    "RunAlreadyExists",
    "SubjectRetention",
    "UnknownEvent",
    "process_workflow_id",
]

_HTTP_NAMES = {"BatonHttpClient", "RateLimited"}

if not TYPE_CHECKING:  # for mypy, the imports above say what each name is, and no other name exists

    def __getattr__(name: str) -> Any:
        if name not in __all__:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        module = importlib.import_module(".http" if name in _HTTP_NAMES else ".client", __name__)
        value = getattr(module, name)
        globals()[name] = value  # the next lookup finds it without this function
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
