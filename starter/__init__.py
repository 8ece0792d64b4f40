"""What other services import to start and steer Baton runs."""

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
