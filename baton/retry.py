"""Retry options as data, shared by process steps and agents' LLM calls."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator
from temporalio.common import RetryPolicy


class RetryOptions(BaseModel):
    """How a failing call is retried: one Temporal retry policy.

    Each delay is the one before times `backoff_coefficient`, from `initial_interval_seconds` up
    to `maximum_interval_seconds`. Retries stop after `max_attempts`, or once `window_seconds`
    have passed since the first attempt (Temporal's schedule-to-close timeout), whichever comes
    first. Defaults follow the seed for steps: 3 attempts, 2^n s. A step that calls a service
    which may be down for a while can ride the outage out instead:
    `RetryOptions(max_attempts=None, window_seconds=3600)`.
    """

    model_config = ConfigDict(extra="forbid")

    max_attempts: int | None = Field(
        3, ge=1, description="Attempts in all, the first included; unset: the window bounds retries."
    )
    initial_interval_seconds: float = Field(2.0, gt=0, description="Delay before the first retry.")
    backoff_coefficient: float = Field(2.0, ge=1, description="Each delay is the previous times this.")
    maximum_interval_seconds: float = Field(60.0, gt=0, description="Cap on one delay.")
    window_seconds: float | None = Field(
        None, gt=0, description="How long a call keeps retrying, from its first attempt; unset: no limit."
    )
    non_retryable_errors: list[str] = Field(
        default_factory=list, description="Exception class names that fail at once."
    )

    @model_validator(mode="after")
    def _bounded(self) -> RetryOptions:
        if self.maximum_interval_seconds < self.initial_interval_seconds:
            raise ValueError(
                f"maximum_interval_seconds ({self.maximum_interval_seconds}) is below "
                f"initial_interval_seconds ({self.initial_interval_seconds})"
            )
        if self.max_attempts is None and self.window_seconds is None:
            raise ValueError("set max_attempts or window_seconds: a call must not be retried forever")
        return self

    def policy(self) -> RetryPolicy:
        """The Temporal retry policy these options describe (`window` bounds it, as schedule-to-close)."""
        return RetryPolicy(
            maximum_attempts=self.max_attempts or 0,  # 0: unlimited, the window decides
            initial_interval=timedelta(seconds=self.initial_interval_seconds),
            backoff_coefficient=self.backoff_coefficient,
            maximum_interval=timedelta(seconds=self.maximum_interval_seconds),
            non_retryable_error_types=self.non_retryable_errors or None,
        )

    def check_window(self, timeout_seconds: float) -> None:
        """Refuse a window that cannot hold one attempt of `timeout_seconds`."""
        if self.window_seconds is not None and self.window_seconds < timeout_seconds:
            raise ValueError(
                f"retry.window_seconds ({self.window_seconds}) is shorter than timeout_seconds "
                f"({timeout_seconds}): not even one attempt could run to its limit"
            )

    @property
    def window(self) -> timedelta | None:
        return None if self.window_seconds is None else timedelta(seconds=self.window_seconds)
