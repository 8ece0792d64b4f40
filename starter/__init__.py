"""What other services import to start and steer Baton runs."""

from .client import BatonClient, ProcessRun, RunAlreadyExists, process_workflow_id

__all__ = ["BatonClient", "ProcessRun", "RunAlreadyExists", "process_workflow_id"]
