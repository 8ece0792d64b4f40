"""The HTTP API, served by uvicorn against the session's dev server, with tokens of the dev
issuer: policies per route, agents' own roles, templates, runs, problem+json, and the audit of
every call."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from baton.compliance import AuditLog
from baton.persistence.db import create_engine
from baton.persistence.schema import Schema
from baton.security.dev_issuer import DevIssuer
from baton.settings import BatonSettings
from baton.starter.devserver import api_server
from baton.testing import ProcessEnvironment
from tests.steps import approval_process

OPEN_AGENT = """
name: Helper
description: Answers anyone with AgentAccess.
instructions: Help.
"""
FINANCE_AGENT = """
name: Ledger
description: Only for finance.
instructions: Keep the books.
roles: [Finance]
"""
ROLES = ["Admin", "Agent", "TemplateManager", "DataProtectionOfficer", "Auditor", "Viewer"]


@pytest.fixture
def api_settings(settings: BatonSettings, tmp_path: Path) -> BatonSettings:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "helper.yaml").write_text(OPEN_AGENT)
    (agents / "ledger.yaml").write_text(FINANCE_AGENT)
    return settings.model_copy(update={"agent_dirs": [agents]})


@pytest.fixture
async def api(temporal: WorkflowEnvironment, api_settings: BatonSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with ProcessEnvironment(settings=api_settings, client=temporal.client) as env:
        async with api_server(api_settings, port=free_port(), client=env.client) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                yield http


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_(settings: BatonSettings, *roles: str, sub: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {DevIssuer.load(settings).issue(sub, list(roles), 600)}"}


async def test_health_needs_no_token_and_readiness_checks_temporal_and_the_database(
    api: httpx.AsyncClient,
) -> None:
    assert (await api.get("/healthz")).json() == {"status": "alive"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"temporal": True, "database": True}


async def test_every_route_answers_per_policy(api: httpx.AsyncClient, api_settings: BatonSettings) -> None:
    """Each route x each role (and no token): allowed, 401 or 403, as the policy table says."""
    reads = [("GET", "/v1/templates"), ("GET", "/v1/agents")]
    expected = {
        ("GET", "/v1/templates"): {"Admin", "Agent", "TemplateManager", "Viewer"},
        ("GET", "/v1/agents"): {"Admin", "Agent"},
    }
    for method, path in reads:
        anonymous = await api.request(method, path)
        assert (
            anonymous.status_code == 401 and anonymous.headers["content-type"] == "application/problem+json"
        )
        for role in ROLES:
            answer = await api.request(method, path, headers=as_(api_settings, role))
            assert answer.status_code == (200 if role in expected[(method, path)] else 403), (path, role)
    refused = await api.post("/v1/templates", json={}, headers=as_(api_settings, "Agent"))
    assert refused.status_code == 403 and "TemplateManagement" in refused.json()["detail"]


@pytest.mark.parametrize(
    "token",
    ["", "not-a-jwt", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0."],
    ids=["empty", "garbage", "alg-none"],
)
async def test_a_bad_token_is_401_problem_json(api: httpx.AsyncClient, token: str) -> None:
    answer = await api.get("/v1/agents", headers={"Authorization": f"Bearer {token}".strip()})
    assert answer.status_code == 401
    assert answer.json()["status"] == 401 and answer.json()["title"] == "Unauthorized"


async def test_an_agent_with_roles_is_listed_and_run_only_for_those_roles(
    api: httpx.AsyncClient, api_settings: BatonSettings
) -> None:
    agent = as_(api_settings, "Agent")
    finance = as_(api_settings, "Agent", "Finance")
    assert [a["name"] for a in (await api.get("/v1/agents", headers=agent)).json()] == ["Helper"]
    assert [a["name"] for a in (await api.get("/v1/agents", headers=finance)).json()] == ["Helper", "Ledger"]

    refused = await api.post("/v1/agents/Ledger/runs", json={"input": "books"}, headers=agent)
    assert refused.status_code == 403 and "Ledger" in refused.json()["detail"]
    unknown = await api.get("/v1/agents/Nobody", headers=agent)
    assert unknown.status_code == 404 and "no agent named 'Nobody'" in unknown.json()["detail"]

    answered = await api.post(
        "/v1/agents/Ledger/runs?wait=true", json={"input": "the books"}, headers=finance
    )
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["run_id"].startswith("agent-Ledger-") and body["result"]["answer"]


async def test_templates_are_created_shown_and_refused_with_every_problem(
    api: httpx.AsyncClient, api_settings: BatonSettings
) -> None:
    manager = as_(api_settings, "TemplateManager")
    definition = approval_process("Approve").build(["tests"]).to_yaml()
    created = await api.post(
        "/v1/templates", content=definition, headers={**manager, "Content-Type": "application/yaml"}
    )
    assert created.status_code == 201, created.text
    assert created.json() == {"name": "Approve", "version": 1}
    again = await api.post(
        "/v1/templates", content=definition, headers={**manager, "Content-Type": "application/yaml"}
    )
    assert again.json()["version"] == 2

    shown = await api.get("/v1/templates/Approve", headers=as_(api_settings, "Viewer"))
    assert shown.status_code == 200 and shown.json()["version"] == 2
    assert shown.json()["mermaid"].startswith("flowchart")
    versions = await api.get("/v1/templates/Approve/versions", headers=manager)
    assert versions.json() == [1, 2]
    listed = await api.get("/v1/templates", headers=manager)
    assert [(t["name"], t["latest_version"]) for t in listed.json()] == [("Approve", 2)]

    bad = {"name": "Broken", "steps": [{"name": "A", "step": "os:system"}], "routes": []}
    refused = await api.post("/v1/templates", json=bad, headers=manager)
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["problems"] and "os" in " ".join(refused.json()["problems"])
    not_yaml = await api.post(
        "/v1/templates", content=b"steps: [", headers={**manager, "Content-Type": "application/yaml"}
    )
    assert not_yaml.status_code == 422 and "not valid application/yaml" in not_yaml.json()["problems"][0]
    missing = await api.get("/v1/templates/Nothing", headers=manager)
    assert missing.status_code == 404


async def test_a_run_is_started_steered_and_read_and_every_call_audited(
    api: httpx.AsyncClient, api_settings: BatonSettings
) -> None:
    manager = as_(api_settings, "TemplateManager")
    definition = approval_process("Approve").build(["tests"]).to_yaml()
    await api.post(
        "/v1/templates", content=definition, headers={**manager, "Content-Type": "application/yaml"}
    )
    agent = as_(api_settings, "Agent", sub="svc-billing")

    invalid = await api.post("/v1/runs", json={"template": "Approve", "data": "x"}, headers=agent)
    assert invalid.status_code == 422
    assert [e["location"] for e in invalid.json()["errors"]] == [["body", "event"]]
    started = await api.post(
        "/v1/runs",
        json={"template": "Approve", "event": "Start", "data": "contract", "key": "c-1"},
        headers=agent,
    )
    assert started.status_code == 201, started.text
    run_id = started.json()["run_id"]
    assert run_id == "process-Approve-c-1"
    duplicate = await api.post(
        "/v1/runs",
        json={"template": "Approve", "event": "Start", "data": "contract", "key": "c-1"},
        headers=agent,
    )
    assert duplicate.status_code == 409

    undeclared = await api.post(f"/v1/runs/{run_id}/events", json={"name": "Bogus"}, headers=agent)
    assert undeclared.status_code == 400
    assert sorted(undeclared.json()["accepted"]) == ["ApprovalReceived", "Start"]
    accepted = await api.post(
        f"/v1/runs/{run_id}/events",
        json={"name": "ApprovalReceived", "data": {"approved": True}},
        headers=agent,
    )
    assert accepted.status_code == 200, accepted.text
    state = await wait_for(api, run_id, as_(api_settings, "Viewer"), "completed")
    assert state["output"] == "CONTRACT:approved"
    assert (await api.get("/v1/runs/process-Approve-none", headers=agent)).status_code == 404

    trail = await audit_of(api_settings)
    assert ("svc-billing", "run.start", run_id) in trail and ("svc-billing", "run.event", run_id) in trail
    assert ("svc-billing", "api.call", "/v1/runs") in trail
    assert ("anonymous", "api.denied", "/v1/runs") not in trail
    await api.post("/v1/runs", json={})
    assert ("anonymous", "api.denied", "/v1/runs") in await audit_of(api_settings)


async def wait_for(
    api: httpx.AsyncClient, run_id: str, headers: dict[str, str], status: str
) -> dict[str, Any]:
    for _ in range(200):
        state: dict[str, Any] = (await api.get(f"/v1/runs/{run_id}", headers=headers)).json()
        if state.get("status") == status:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} never reached {status}: {state}")


async def audit_of(settings: BatonSettings) -> list[tuple[str, str, str | None]]:
    engine = create_engine(settings.resolved_database_url)
    try:
        return [(r.actor, r.action, r.resource) for r in await AuditLog(Schema(engine)).tail(1000)]
    finally:
        await engine.dispose()


async def test_the_openapi_document_lists_every_route_and_the_problem_model(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert {
        "/v1/agents",
        "/v1/templates",
        "/v1/runs",
        "/v1/runs/{run_id}/events",
        "/healthz",
        "/readyz",
    } <= set(document["paths"])
    assert "Problem" in document["components"]["schemas"]
