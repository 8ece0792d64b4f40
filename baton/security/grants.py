"""Who a run acts for, authenticated: a signed grant that travels with the run.

The HTTP API, or any `BatonClient` holding Baton's keys, signs a `RunGrant` for each run it
starts: the principal's name, roles and tenant, bound to the run's root workflow ID. It travels in
the run's memo (encrypted like every payload) and is inherited by sub-processes. Before a run uses
an agent that names roles, the worker checks the grant with its own keys (`activities.access`):
a Temporal client that bypasses the API cannot make one without Baton's keys, nor reuse another
run's, nor change a role in one.

The signing key is derived from the keyring's derivation secret, so every process that reads
payloads can verify grants and nothing new needs distributing; holding Baton's keys is already
the trust of the API itself (such a process can read every payload).
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import BaseModel, Field

from ..errors import AccessDenied
from .codec import root_run_id
from .keys import LiveKeyring

GRANT_MEMO = "baton-grant"
"""The memo field that holds a run's grant."""
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
"""A tenant's name: it becomes a search attribute and scopes run keys (`<tenant>.<key>`), so a
short identifier without dots, never personal data."""


class InvalidGrant(AccessDenied):
    """A grant that does not prove anything: forged, changed, or made for another run."""


class RunGrant(BaseModel):
    """The principal a run acts for, signed by whoever started it with Baton's keys."""

    principal: str = Field(max_length=200, description="Who started the run (a token's subject).")
    roles: list[str] = Field(default_factory=list, max_length=100)
    tenant: str | None = Field(None, pattern=TENANT_PATTERN)
    workflow_id: str = Field(description="The root run this grant is for.")
    agents: dict[str, list[str]] = Field(
        default_factory=dict,
        description="The agents the run uses and the roles each named when it started: who steers "
        "the run (sends it events, answers it, cancels it) must be allowed them too.",
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
            workflow_id=root_run_id(workflow_id),
            agents=agents or {},
        )
        return grant.model_copy(update={"signature": grant._mac(keys)})

    def verify(self, keys: LiveKeyring, workflow_id: str) -> None:
        """Check that Baton's keys signed this grant, for the root run of `workflow_id`."""
        if not hmac.compare_digest(self.signature, self._mac(keys)):
            raise InvalidGrant("the run's grant is not signed with Baton's keys")
        if self.workflow_id != root_run_id(workflow_id):
            raise InvalidGrant(f"the run's grant was made for another run ({self.workflow_id})")

    def _mac(self, keys: LiveKeyring) -> str:
        signed = self.model_dump_json(exclude={"signature"}).encode()
        return hmac.new(keys.derive("run-grants"), signed, hashlib.sha256).hexdigest()
