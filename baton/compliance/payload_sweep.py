"""Compliance work that runs on the `baton-compliance` queue: names shared by the workflow, its
activity and the schedule that starts it.

The stored-payload sweep deletes out-of-band payloads (`baton.persistence.payloads`) whose run's
history Temporal no longer holds, once an hour, as a Temporal Schedule: a platform team sees
every sweep, and how many entries it deleted, in the Temporal UI.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio.common import RetryPolicy

SWEEP_STORED_PAYLOADS_ACTIVITY = "baton.sweep_stored_payloads"
STORED_PAYLOAD_SWEEP_WORKFLOW = "StoredPayloadSweep"
SWEEP_EVERY = timedelta(hours=1)
SWEEP_TIMEOUT = timedelta(minutes=30)
SWEEP_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5))
"""A sweep retries until it succeeds (the database or Temporal may be away for a while)."""


def sweep_schedule_id(compliance_queue: str) -> str:
    """One sweep schedule per deployment (per compliance queue)."""
    return f"{compliance_queue}-stored-payload-sweep"


class SweepResult(BaseModel):
    deleted: int = Field(ge=0, description="Stored payloads deleted because their run's history is gone.")
