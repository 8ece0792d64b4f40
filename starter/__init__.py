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

__all__ = [
    "BatonClient",
    "EventRejected",
    "InvalidEventData",
    "ProcessFinished",
    "ProcessRun",
    "ProcessingRequired",
    "RunAlreadyExists",
    "SubjectRetention",
    "UnknownEvent",
    "process_workflow_id",
]
