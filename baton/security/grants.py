"""Who a run acts for, authenticated: a signed grant that travels with the run.

The HTTP API, or any `BatonClient` holding Baton's keys, signs a `RunGrant` for each run it
starts: the principal's name, roles and tenant, the agents the run uses, bound to the run's
workflow ID and the moment it starts. It travels in the run's memo (encrypted like every
payload). When a run that uses agents starts, the worker checks the grant with its own keys
(`activities.access`): a Temporal client that bypasses the API cannot make one without Baton's
keys, nor change a role or an agent in one, nor use one made for another run or long ago.
Sub-processes and continued runs are started by the already-checked run's own code, which no
client can do, so they are not checked again.

The signing key is derived from the keyring's derivation secret, so every process that reads
payloads can verify grants and nothing new needs distributing; holding Baton's keys is already
the trust of the API itself (such a process can read every payload).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

from ..errors import AccessDenied
from .keys import LiveKeyring

GRANT_MEMO = "baton-grant"
"""The memo field that holds a run's grant."""
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_]{0,63}$"
"""A tenant's name: it becomes a search attribute and scopes run keys (`<tenant>.<key>`), so a
short identifier without dots or dashes (two tenants' run IDs cannot meet), never personal data."""
START_WITHIN = timedelta(minutes=5)
"""How soon after a grant is signed the run it is for must start."""
CLOCK_SKEW = timedelta(minutes=1)
"""How far the clocks of the starting client and Temporal may disagree."""


class InvalidGrant(AccessDenied):
    """A grant that does not prove anything: forged, changed, or made for another run."""


class RunGrant(BaseModel):
    """The principal a run acts for, signed by whoever started it with Baton's keys."""

    principal: str = Field(max_length=200, description="Who started the run (a token's subject).")
    roles: list[str] = Field(default_factory=list)
    tenant: str | None = Field(None, pattern=TENANT_PATTERN)
    workflow_id: str = Field(description="The run this grant starts.")
    issued_at: datetime = Field(description="When it was signed: it starts a run only soon after.")
    agents: dict[str, list[str]] = Field(
        default_factory=dict,
        description="The agents the run uses and the roles each named when it started: the run "
        "may use no other, and who steers it (sends it events, answers it, cancels it) must be "
        "allowed them too.",
    )
    signature: str = ""

    @classmethod
    def sign(
        cls,
        keys: LiveKeyring,
        workflow_id: str,
        principal: str,
        roles: list[str],
        tenant: str | None,
        agents: dict[str, list[str]] | None = None,
    ) -> RunGrant:
        grant = cls(
            principal=principal,
            roles=sorted(roles),
            tenant=tenant,
            workflow_id=workflow_id,
            issued_at=datetime.now(UTC),
            agents=agents or {},
        )
        return grant.model_copy(update={"signature": grant._mac(keys)})

    def verify(self, keys: LiveKeyring) -> None:
        """Check that Baton's keys signed this grant, as it is."""
        if not hmac.compare_digest(self.signature, self._mac(keys)):
            raise InvalidGrant("the run's grant is not signed with Baton's keys")

    def check_start(
        self, keys: LiveKeyring, workflow_id: str, started_at: datetime, agents: Iterable[str]
    ) -> None:
        """Check that this grant starts the run `workflow_id`, which started at `started_at` and
        uses `agents`: signed, made for that run and for those agents, and signed no longer than
        `START_WITHIN` before the run started (a grant read from one run cannot start another
        under the same ID long after)."""
        self.verify(keys)
        if self.workflow_id != workflow_id:
            raise InvalidGrant(f"the run's grant was made for another run ({self.workflow_id})")
        if not (self.issued_at - CLOCK_SKEW <= started_at <= self.issued_at + START_WITHIN):
            raise InvalidGrant(
                f"the run's grant was signed at {self.issued_at:%Y-%m-%d %H:%M:%S}, not just before "
                f"the run started ({started_at:%Y-%m-%d %H:%M:%S})"
            )
        if others := sorted(set(agents) - set(self.agents)):
            raise InvalidGrant(f"the run's grant was not made for the agents: {', '.join(others)}")

    def _mac(self, keys: LiveKeyring) -> str:
        signed = self.model_dump_json(exclude={"signature"}).encode()
        return hmac.new(keys.derive("run-grants"), signed, hashlib.sha256).hexdigest()
