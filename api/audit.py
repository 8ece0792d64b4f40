"""Audit entries of HTTP requests, the same for the API and the codec server."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from baton.compliance import AuditEntry

TEXT_CHARS = 400
"""What the audit trail keeps of a path or a user agent."""


def request_entry(
    request: Request,
    actor: str,
    action: str,
    detail: dict[str, Any],
    *,
    resource: str | None,
    workflow_id: str | None = None,
    namespace: str = "default",
) -> AuditEntry:
    """An entry for what `actor` did through `request`, with the caller's address and user agent."""
    user_agent = request.headers.get("user-agent")
    return AuditEntry(
        actor=actor,
        action=action,
        resource=resource,
        namespace=namespace,
        workflow_id=workflow_id,
        detail=detail,
        ip=request.client.host if request.client else None,
        user_agent=user_agent[:TEXT_CHARS] if user_agent else None,
    )
