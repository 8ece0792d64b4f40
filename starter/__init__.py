"""What other services import to start and steer Baton runs."""

from .client import BatonClient, ProcessRun, process_workflow_id

__all__ = ["BatonClient", "ProcessRun", "process_workflow_id"]
