"""What other services import to start and steer Baton runs.

The names load on first use: `baton pii mask`, a command of this package, then starts without
importing the client and the Temporal SDK behind it (0.1 s instead of 1.7).
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


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(".http" if name in _HTTP_NAMES else ".client", __name__)
    value = getattr(module, name)
    globals()[name] = value  # the next lookup finds it without this function
    return value
