"""Retry options as data, shared by process steps and agents."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator
from temporalio.common import RetryPolicy


class RetryOptions(BaseModel):
    """How often a failing step function is retried. Defaults follow the seed: 3 attempts, 2^n s."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(3, ge=1, description="Attempts in all, the first included.")
    initial_interval_seconds: float = Field(2.0, gt=0, description="Delay before the first retry.")
    backoff_coefficient: float = Field(2.0, ge=1, description="Each delay is the previous times this.")
    maximum_interval_seconds: float = Field(60.0, gt=0, description="Cap on one delay.")
    non_retryable_errors: list[str] = Field(
        default_factory=list, description="Exception class names that fail at once."
    )

    @model_validator(mode="after")
    def _cap_not_below_first_delay(self) -> RetryOptions:
        if self.maximum_interval_seconds < self.initial_interval_seconds:
            raise ValueError(
                f"maximum_interval_seconds ({self.maximum_interval_seconds}) is below "
                f"initial_interval_seconds ({self.initial_interval_seconds})"
            )
        return self

    def policy(self) -> RetryPolicy:
        """The Temporal retry policy these options describe."""
        return RetryPolicy(
            maximum_attempts=self.max_attempts,
            initial_interval=timedelta(seconds=self.initial_interval_seconds),
            backoff_coefficient=self.backoff_coefficient,
            maximum_interval=timedelta(seconds=self.maximum_interval_seconds),
            non_retryable_error_types=self.non_retryable_errors or None,
        )
