"""Why a run processes a data subject's data: purpose, legal basis, category, retention.

Every run started with a `data_subject` needs a `Processing` (from the start call, or from its
process or agent definition); Baton keeps one processing record per subject and purpose (see
`baton.compliance.records`) and deletes the data when its retention period has passed.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_RETENTION_DAYS = 730
"""Two years, the seed's default."""


class LegalBasis(StrEnum):
    """The six lawful bases of GDPR article 6(1)."""

    CONSENT = "consent"  # (a)
    CONTRACT = "contract"  # (b)
    LEGAL_OBLIGATION = "legal_obligation"  # (c)
    VITAL_INTERESTS = "vital_interests"  # (d)
    PUBLIC_TASK = "public_task"  # (e)
    LEGITIMATE_INTERESTS = "legitimate_interests"  # (f)


class Processing(BaseModel):
    """The purpose of processing a data subject's data, as a processing record states it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    purpose: str = Field(min_length=1, max_length=200, description="Why, e.g. 'order fulfilment'.")
    legal_basis: LegalBasis = Field(description="Which of GDPR art. 6(1)'s lawful bases allows it.")
    data_category: str = Field(
        "personal data", min_length=1, max_length=100, description="What kind of data."
    )
    retention_days: int = Field(
        DEFAULT_RETENTION_DAYS, ge=1, le=36500, description="Days after the last processing until deletion."
    )
