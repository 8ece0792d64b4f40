"""One exception tree for the whole of Baton.

Every error Baton raises on purpose is a `BatonError`, and belongs to one of a few families that
say what the caller can do about it: fix the request (`InvalidRequest`), look elsewhere
(`NotFound`), wait for the state of things to change (`Conflict`), get permission
(`AccessDenied`, `Unauthenticated`) or try again later (`Unavailable`). The family carries the
HTTP status the API answers with and the exit status of the CLI, so `BatonClient`, the CLI, the
HTTP API and `BatonHttpClient` all speak of the same error the same way:

    try:
        await baton.send_event(run_id, "Approve", data)
    except NotFound:
        ...  # no such run
    except InvalidRequest as e:
        ...  # e.g. UnknownEvent: e.accepted lists the events the process takes
"""

from __future__ import annotations

from typing import Any, ClassVar


class BatonError(Exception):
    """An error Baton raised on purpose; its message is for a person and never holds a secret."""

    status: ClassVar[int] = 500
    """The HTTP status the API answers with."""
    exit_code: ClassVar[int] = 1
    """The CLI's exit status."""

    @property
    def kind(self) -> str:
        """The error's name, as the API's problem `type` carries it (`urn:baton:error:<kind>`)."""
        return type(self).__name__

    @property
    def detail(self) -> str:
        """What went wrong, in a sentence."""
        return str(self)

    def extensions(self) -> dict[str, Any]:
        """Fields the API's problem+json adds to the detail (every problem, the accepted values)."""
        return {}


class InvalidRequest(BatonError, ValueError):
    """The request itself is wrong: fixing it, not retrying it, helps."""

    status = 422
    exit_code = 2


class NotFound(BatonError, LookupError):
    """What the request names does not exist (or is not the caller's to see)."""

    status = 404


class Conflict(BatonError):
    """The request is sound but the state of things refuses it now (a run already exists, a hold)."""

    status = 409


class Unauthenticated(BatonError):
    """The caller did not prove who it is."""

    status = 401


class AccessDenied(BatonError, PermissionError):
    """The caller is known but may not do this."""

    status = 403


class Unavailable(BatonError):
    """A part Baton depends on did not answer; the same request may succeed later."""

    status = 503


class ConfigurationError(BatonError, ValueError):
    """Baton cannot start as configured; the message says what to set."""

    exit_code = 2


class AgentAccessDenied(AccessDenied):
    """The run's principal may not use some of the agents it names; `agents` lists them."""

    def __init__(self, agents: list[str], principal: str | None = None) -> None:
        self.agents = agents
        who = f"{principal!r}" if principal else "a caller without a verified principal"
        super().__init__(f"{who} may not use the agents: {', '.join(agents)}")

    def extensions(self) -> dict[str, Any]:
        return {"agents": self.agents}
