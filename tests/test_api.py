"""The HTTP API, served by uvicorn against the session's dev server, with tokens of the dev
issuer: policies per route, agents' own roles, templates, runs, problem+json, and the audit of
every call."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import jwt
import pytest
import schemathesis
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from redis.asyncio import Redis
from schemathesis.checks import content_type_conformance, response_schema_conformance, status_code_conformance
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from baton.agents import AgentRegistry, AgentSpec
from baton.agents.runtime import AGENT_WORKFLOW, AgentRunInput
from baton.compliance import AuditLog
from baton.errors import AccessDenied, AgentAccessDenied, Conflict, InvalidRequest, NotFound, Unauthenticated
from baton.persistence.db import create_engine
from baton.persistence.schema import Schema
from baton.process import ProcessBuilder
from baton.process.runtime import ProcessInput
from baton.security.dev_issuer import DevIssuer
from baton.security.grants import GRANT_MEMO, RunGrant
from baton.security.policies import POLICIES, Policy
from baton.settings import BatonSettings
from baton.starter import BatonClient, BatonHttpClient, ProcessFinished, UnknownEvent
from baton.starter.api_models import SequentialStart
from baton.starter.devserver import api_server
from baton.testing import ProcessEnvironment, free_port
from baton.workers.worker import build_workers
from baton.workflows.process import PROCESS_WORKFLOW
from tests.browser import chromium
from tests.oidc_issuer import OidcIssuer
from tests.steps import Upper, approval_process, upper_only

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
VAULT_AGENT = """
name: Vault
description: Only for treasury; its tool is no one else's.
instructions: Size markets.
tools: [market_size]
roles: [Treasury]
"""
REVIEWER_AGENT = """
name: Reviewer
description: Reviews.
instructions: Review.
"""
ROLES = ["Admin", "Agent", "TemplateManager", "DataProtectionOfficer", "Auditor", "Viewer"]


@pytest.fixture
def api_settings(settings: BatonSettings, tmp_path: Path) -> BatonSettings:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "helper.yaml").write_text(OPEN_AGENT)
    (agents / "ledger.yaml").write_text(FINANCE_AGENT)
    (agents / "vault.yaml").write_text(VAULT_AGENT)
    (agents / "reviewer.yaml").write_text(REVIEWER_AGENT)
    return settings.model_copy(update={"agent_dirs": [agents]})


@pytest.fixture
async def api(temporal: WorkflowEnvironment, api_settings: BatonSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with ProcessEnvironment(settings=api_settings, client=temporal.client) as env:
        async with api_server(api_settings, port=free_port(), client=env.client) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                yield http


def as_(settings: BatonSettings, *roles: str, sub: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {DevIssuer.load(settings).issue(sub, list(roles), 600)}"}


async def test_health_needs_no_token_and_readiness_checks_temporal_and_the_database(
    api: httpx.AsyncClient,
) -> None:
    assert (await api.get("/healthz")).json() == {"status": "alive"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"temporal": True, "database": True}


async def test_every_route_answers_every_role_as_its_policy_says(
    api: httpx.AsyncClient, api_settings: BatonSettings
) -> None:
    """The RBAC matrix, generated from the policies the OpenAPI document publishes per route:
    every route x every role and no token gives 401, 403, or (allowed) anything else."""
    document = (await api.get("/openapi.json")).json()
    routes = [
        (method.upper(), path, operation["x-baton-policy"], set(operation["x-baton-roles"]))
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if path.startswith("/v1/")
    ]
    assert len(routes) >= 26
    assert {policy for _, _, policy, _ in routes} == {p.value for p in Policy}
    for method, template, policy, roles in routes:
        assert roles == set(POLICIES[Policy(policy)])  # what the table says, not a copy of it
        path = template.format(
            name="Nobody", run_id="process-None-1", version=1, request_id=f"dsr-access-{'0' * 32}"
        )
        body = {} if method == "POST" else None
        anonymous = await api.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["content-type"] == "application/problem+json"
        for role in ROLES:
            answer = await api.request(method, path, json=body, headers=as_(api_settings, role))
            if role in roles:
                assert answer.status_code not in (401, 403), (method, path, role, answer.text)
            else:
                assert answer.status_code == 403 and policy in answer.json()["detail"], (method, path, role)


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
    listed = {a["name"] for a in (await api.get("/v1/agents", headers=agent)).json()}
    assert listed == {"Helper", "Reviewer"}
    listed = {a["name"] for a in (await api.get("/v1/agents", headers=finance)).json()}
    assert listed == {"Helper", "Ledger", "Reviewer"}

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


async def test_workers_refuse_an_agent_to_a_run_whose_principal_may_not_use_it(
    temporal: WorkflowEnvironment, api_settings: BatonSettings
) -> None:
    """A Temporal client that bypasses the API (with Baton's data converter, even) cannot use an
    agent its principal may not: the worker checks the run's signed grant against the roles of
    its own agent files, whatever the request says."""
    async with ProcessEnvironment(settings=api_settings, client=temporal.client) as env:
        ledger, helper = env.client.agents["Ledger"], env.client.agents["Helper"]
        keys = env.client.keys
        assert keys is not None

        def signed(run_id: str, held: list[str], agents: list[AgentSpec], **changes: Any) -> RunGrant:
            grant = RunGrant.sign(keys, run_id, "mallory", held, None, {a.name: a.roles for a in agents})
            return grant.model_copy(update=changes)

        def run_id() -> str:
            return f"agent-x-{uuid.uuid4().hex}"

        borrowing = AgentSpec(name="Bookish", instructions="Count.", tools=["market_size"])
        attempts: list[tuple[str, AgentSpec, Any, str]] = [
            ("no grant at all", ledger, lambda _: None, "Ledger"),
            (
                "the request lowers the roles",
                ledger.model_copy(update={"roles": []}),
                lambda _: None,
                "Ledger",
            ),
            (
                "a grant of another run",
                ledger,
                lambda _: signed("agent-other", ["Finance"], [ledger]),
                "Ledger",
            ),
            (
                "a role added after signing",
                ledger,
                lambda r: signed(r, ["Agent"], [ledger], roles=["Finance"]),
                "Ledger",
            ),
            ("a grant for other agents", ledger, lambda r: signed(r, ["Finance"], [helper]), "Ledger"),
            (
                "a grant signed long before",
                ledger,
                lambda r: signed(
                    r, ["Finance"], [ledger], issued_at=datetime.now(UTC) - timedelta(minutes=30)
                ),
                "Ledger",
            ),
            (
                "another name, a gated agent's tool",
                borrowing,
                lambda r: signed(r, ["Agent"], [borrowing]),
                "Bookish",
            ),
            (
                "an open agent's name, a gated agent's tool",
                helper.model_copy(update={"tools": ["market_size"]}),
                lambda r: signed(r, ["Agent"], [helper]),
                "Helper",
            ),
        ]
        for case, spec, grant_for, refused in attempts:
            workflow_id = run_id()
            grant = grant_for(workflow_id)
            with pytest.raises(WorkflowFailureError) as failed:
                await env.temporal.execute_workflow(
                    AGENT_WORKFLOW,
                    AgentRunInput(agent=spec, input="the books", llm_queue=api_settings.llm_queue),
                    id=workflow_id,
                    task_queue=api_settings.workflows_queue,
                    memo={GRANT_MEMO: grant} if grant is not None else None,
                )
            cause = failed.value.cause
            assert isinstance(cause, ApplicationError) and cause.type == "AgentAccessDenied", case
            assert f"may not use the agents: {refused}" in cause.message, case

        plain = env.client  # acts for this OS user, without roles
        with pytest.raises(WorkflowFailureError) as failed:
            await plain.run_agent("Ledger", "the books")
        assert "may not use the agents: Ledger" in str(failed.value.cause)
        builder = ProcessBuilder("Bookkeeping")
        books = builder.add_agent(ledger)
        builder.on_input_event("Start").send_event_to(books)
        books.on_function_result().stop_process()
        process = builder.build()
        with pytest.raises(WorkflowFailureError) as failed:
            await (await plain.start_process(process, "Start", "the books")).result()
        assert "may not use the agents: Ledger" in str(failed.value.cause)
        finance = env.client.acting_for("bob", ["Finance"])
        assert (await finance.run_agent("Ledger", "the books")).answer
        assert (await (await finance.start_process(process, "Start", "the books")).result()).supersteps == 1
        assert (await env.client.acting_for("root", ["Admin"]).run_agent("Ledger", "x")).answer
        assert (await plain.run_agent("Helper", "anyone may")).answer
        operator = BatonClient(env.temporal, api_settings.model_copy(update={"client_roles": ["Finance"]}))
        assert (await operator.run_agent("Ledger", "the books")).answer  # BATON_CLIENT_ROLES


async def test_who_steers_a_run_must_be_allowed_its_agents(
    api: httpx.AsyncClient, api_settings: BatonSettings
) -> None:
    """Sending a run an event, answering it or cancelling it steers its agents: a caller without
    a role of one of them gets 403 naming it, as the run's starter would have."""
    finance = as_(api_settings, "Agent", "TemplateManager", "Finance", sub="carol")
    agent = as_(api_settings, "Agent", sub="dave")
    builder = ProcessBuilder(f"Books{uuid.uuid4().hex[:6]}")
    upper, books = builder.add_step(Upper), builder.add_agent("Ledger")
    builder.on_input_event("Start").send_event_to(upper)
    builder.on_input_event("Close").send_event_to(books)
    books.on_function_result().stop_process()
    yaml_text = builder.build(["tests"], agents=AgentRegistry.from_dirs(api_settings.agent_dirs)).to_yaml()
    created = await api.post(
        "/v1/templates", content=yaml_text, headers={**finance, "Content-Type": "application/yaml"}
    )
    assert created.status_code == 201, created.text
    started = await api.post(
        "/v1/runs", json={"template": builder.name, "event": "Start", "data": "q3"}, headers=finance
    )
    run_id = started.json()["run_id"]
    for path, body in [
        (f"/v1/runs/{run_id}/events", {"name": "Close", "data": "q3"}),
        (f"/v1/runs/{run_id}/cancel", None),
    ]:
        refused = await api.post(path, json=body, headers=agent)
        assert refused.status_code == 403, (path, refused.text)
        assert (
            refused.json()["agents"] == ["Ledger"]
            and refused.json()["type"] == "urn:baton:error:AgentAccessDenied"
        )
    assert (await api.get(f"/v1/runs/{run_id}", headers=agent)).status_code == 200  # reading is not steering
    sent = await api.post(f"/v1/runs/{run_id}/events", json={"name": "Close", "data": "q3"}, headers=finance)
    assert sent.status_code == 200, sent.text

    orchestration = await api.post(
        "/v1/orchestrations",
        json={"pattern": "sequential", "task": "t", "agents": ["Helper", "Ledger"]},
        headers=finance,
    )
    cancel = await api.post(f"/v1/orchestrations/{orchestration.json()['run_id']}/cancel", headers=agent)
    assert cancel.status_code == 403 and cancel.json()["agents"] == ["Ledger"]


async def test_a_run_whose_grant_was_forged_is_steered_by_an_admin_only(
    temporal: WorkflowEnvironment, api_settings: BatonSettings
) -> None:
    """A run started around the API with a grant Baton's keys did not sign: the API cannot know
    whose agents it steers, so only an Admin may send it events or cancel it."""
    async with ProcessEnvironment(settings=api_settings, client=temporal.client) as env:
        async with api_server(api_settings, port=free_port(), client=env.client) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as api:
                process = approval_process(f"Forged{uuid.uuid4().hex[:6]}").build(["tests"])
                run = await env.client.start_process(process, "Start", "x")
                forged = RunGrant(
                    principal="mallory", workflow_id="x", issued_at=datetime.now(UTC), signature="0" * 64
                )
                other = await env.temporal.start_workflow(
                    PROCESS_WORKFLOW,
                    ProcessInput(
                        process=process.compiled,
                        event="Start",
                        data="y",
                        steps_queue=api_settings.steps_queue,
                    ),
                    id=f"process-{process.name}-forged",
                    task_queue=api_settings.workflows_queue,
                    memo={GRANT_MEMO: forged},
                )
                event = {"name": "ApprovalReceived", "data": {"approved": True}}
                refused = await api.post(
                    f"/v1/runs/{other.id}/events", json=event, headers=as_(api_settings, "Agent")
                )
                assert refused.status_code == 403 and "cannot be verified" in refused.json()["detail"]
                allowed = await api.post(
                    f"/v1/runs/{other.id}/events", json=event, headers=as_(api_settings, "Admin")
                )
                assert allowed.status_code == 200, allowed.text
                mine = await api.post(
                    f"/v1/runs/{run.id}/events", json=event, headers=as_(api_settings, "Agent")
                )
                assert mine.status_code == 200, mine.text  # a run Baton's client signed: no agents, anyone


async def test_a_run_key_taken_by_another_kind_of_run_is_a_conflict_not_its_answer(
    temporal: WorkflowEnvironment, api_settings: BatonSettings
) -> None:
    """`process-a-b-c` is process `a-b` with key `c` and process `a` with key `b-c`: the second
    start with `if_exists="return"` must not hand over the first one's run."""
    suffix = uuid.uuid4().hex[:6]
    first, second = upper_only(f"K{suffix}-b").build(["tests"]), upper_only(f"K{suffix}").build(["tests"])
    async with ProcessEnvironment(settings=api_settings, client=temporal.client) as env:
        run = await env.client.start_process(first, "Start", "x", key="c", if_exists="return")
        assert run.id == f"process-K{suffix}-b-c"
        with pytest.raises(Conflict, match="another kind of run"):
            await env.client.start_process(second, "Start", "x", key="b-c", if_exists="return")
        again = await env.client.start_process(first, "Start", "x", key="c", if_exists="return")
        assert again.id == run.id  # the same kind: the same run


async def test_a_tenant_sees_and_starts_only_its_own_runs(
    temporal: WorkflowEnvironment, api_settings: BatonSettings
) -> None:
    """With a tenant claim configured, runs carry their tenant; another tenant's run is 404 (not
    403: its existence is not told), lists hold only the caller's, keys never meet, and a token
    without the claim is refused."""
    settings = api_settings.model_copy(update={"api_tenant_claim": "tid"})
    issuer = DevIssuer.load(settings)

    def tenant(tid: str | None, sub: str = "alice") -> dict[str, str]:
        claims = {"tid": tid} if tid is not None else {}
        roles = ["Agent", "TemplateManager"]
        return {"Authorization": f"Bearer {issuer.issue(sub, roles, 600, claims)}"}

    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        async with api_server(settings, port=free_port(), client=env.client) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as api:
                process = approval_process(f"Tenancy{uuid.uuid4().hex[:6]}").build(["tests"])
                created = await api.post(
                    "/v1/templates",
                    content=process.to_yaml(),
                    headers={**tenant("acme"), "Content-Type": "application/yaml"},
                )
                assert created.status_code == 201, created.text
                start = {"template": process.name, "event": "Start", "data": "x", "key": "k1"}
                mine = await api.post("/v1/runs", json=start, headers=tenant("acme"))
                assert mine.status_code == 201, mine.text
                run_id = mine.json()["run_id"]
                assert run_id.endswith("-acme.k1")
                theirs = await api.post("/v1/runs", json=start, headers=tenant("globex"))
                assert theirs.status_code == 201 and theirs.json()["run_id"] != run_id

                assert (await api.get(f"/v1/runs/{run_id}", headers=tenant("acme", "bob"))).status_code == 200
                for method, path in [
                    ("GET", f"/v1/runs/{run_id}"),
                    ("POST", f"/v1/runs/{run_id}/events"),
                    ("POST", f"/v1/runs/{run_id}/cancel"),
                ]:
                    body = {"name": "Approve", "data": True} if path.endswith("events") else None
                    other = await api.request(method, path, json=body, headers=tenant("globex"))
                    assert other.status_code == 404, (method, path, other.text)
                    assert other.json()["detail"] == f"no run {run_id}"

                async def listed(tid: str) -> set[str]:
                    page = await api.get("/v1/runs", params={"process": process.name}, headers=tenant(tid))
                    return {run["run_id"] for run in page.json()["runs"]}

                assert await listed("acme") == {run_id}
                assert await listed("globex") == {theirs.json()["run_id"]}
                assert await listed("initech") == set()

                no_claim = await api.get("/v1/runs", headers=tenant(None))
                assert no_claim.status_code == 403 and "'tid'" in no_claim.json()["detail"]
                for bad_tenant in ["acme' OR 'a'='a", "acme\n", "eu-acme", "x" * 65]:
                    bad = await api.get("/v1/runs", headers=tenant(bad_tenant))
                    assert bad.status_code == 403, bad_tenant


async def test_a_template_nested_too_deeply_is_refused_as_invalid(
    api: httpx.AsyncClient, api_settings: BatonSettings
) -> None:
    manager = as_(api_settings, "TemplateManager")
    for kind in ("application/json", "application/yaml"):
        refused = await api.post(
            "/v1/templates", content="[" * 100_000 + "]" * 100_000, headers={**manager, "Content-Type": kind}
        )
        assert refused.status_code == 422, refused.text
        assert "nested too deeply" in refused.json()["problems"][0]


async def test_templates_are_created_shown_and_refused_with_every_problem(
    api: httpx.AsyncClient, api_settings: BatonSettings
) -> None:
    manager = as_(api_settings, "TemplateManager")
    definition = approval_process("Approve").build(["tests"]).to_yaml()
    created = await api.post(
        "/v1/templates", content=definition, headers={**manager, "Content-Type": "application/yaml"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Approve" and created.json()["version"] == 1
    again = await api.post(
        "/v1/templates", content=definition, headers={**manager, "Content-Type": "application/yaml"}
    )
    assert again.json()["version"] == 2

    shown = await api.get("/v1/templates/Approve", headers=as_(api_settings, "Viewer"))
    assert shown.status_code == 200 and shown.json()["version"] == 2
    assert shown.json()["mermaid"].startswith("flowchart")
    listed = await api.get("/v1/templates", headers=manager)
    assert [(t["name"], t["version"]) for t in listed.json()] == [("Approve", 2)]

    retired = await api.post("/v1/templates/Approve/versions/2/retire", headers=manager)
    assert retired.status_code == 200 and retired.json()["retired_at"]
    versions = await api.get("/v1/templates/Approve/versions", headers=manager)
    assert [(v["version"], v["retired_at"] is not None) for v in versions.json()] == [(1, False), (2, True)]
    assert (await api.get("/v1/templates/Approve", headers=manager)).json()[
        "version"
    ] == 1  # what new runs take
    refused = await api.post(
        "/v1/runs",
        json={"template": "Approve", "version": 2, "event": "Start", "data": "x"},
        headers=as_(api_settings, "Agent"),
    )
    assert refused.status_code == 409 and "retired" in refused.json()["detail"]

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
    repeated = await api.post(
        "/v1/runs",
        json={"template": "Approve", "event": "Start", "data": "contract", "key": "c-1"},
        headers=agent,
    )
    assert repeated.status_code == 201 and repeated.json()["run_id"] == run_id  # the same run, not a second

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
    after = await api.post(
        "/v1/runs",
        json={"template": "Approve", "event": "Start", "data": "contract", "key": "c-1"},
        headers=agent,
    )
    assert after.json()["run_id"] == run_id  # finished: still that run, not a new one under its key
    assert (await wait_for(api, run_id, agent, "completed"))["output"] == "CONTRACT:approved"

    second = await api.post(
        "/v1/runs",
        json={"template": "Approve", "event": "Start", "data": "memo", "key": "c-2"},
        headers=agent,
    )
    assert second.status_code == 201
    listed: list[str] = []
    for _ in range(100):  # visibility catches up within moments
        first = (await api.get("/v1/runs?process=Approve&page_size=1", headers=agent)).json()
        if first["next_page_token"]:
            break
        await asyncio.sleep(0.05)
    rest = (
        await api.get(
            f"/v1/runs?process=Approve&page_size=1&page_token={first['next_page_token']}", headers=agent
        )
    ).json()
    listed = [r["run_id"] for r in first["runs"] + rest["runs"]]
    assert sorted(listed) == ["process-Approve-c-1", "process-Approve-c-2"]
    completed = (await api.get("/v1/runs?process=Approve&status=completed", headers=agent)).json()
    assert [r["run_id"] for r in completed["runs"]] == ["process-Approve-c-1"]
    assert completed["runs"][0]["process"] == "Approve"
    bogus = await api.get("/v1/runs?page_token=bm90LWEtdG9rZW4", headers=agent)
    assert bogus.status_code == 422
    injected = await api.get("/v1/runs?process=x' OR WorkflowType = 'y", headers=agent)
    assert injected.status_code == 422

    trail = await audit_of(api_settings)
    assert ("svc-billing", "run.start", run_id) in trail and ("svc-billing", "run.event", run_id) in trail
    assert ("svc-billing", "api.call", "/v1/runs") in trail
    assert ("anonymous", "api.denied", "/v1/runs") not in trail
    await api.post("/v1/runs", json={})
    await audited(api_settings, ("anonymous", "api.denied", "/v1/runs"))


async def wait_for(
    api: httpx.AsyncClient, run_id: str, headers: dict[str, str], status: str
) -> dict[str, Any]:
    for _ in range(200):
        state: dict[str, Any] = (await api.get(f"/v1/runs/{run_id}", headers=headers)).json()
        if state.get("status") == status:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} never reached {status}: {state}")


async def audited(settings: BatonSettings, entry: tuple[str, str, str | None]) -> None:
    """Wait for `entry` in the audit trail: a call's own entry is written as its answer goes out."""
    for _ in range(100):
        if entry in await audit_of(settings):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never audited: {entry}")


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
    # Swagger UI's Authorize button takes a bearer token (with the dev issuer: `baton token`).
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert document["paths"]["/v1/agents"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in document["paths"]["/healthz"]["get"]


async def test_an_orchestration_runs_named_agents_the_caller_may_use_and_streams_its_transcript(
    api: httpx.AsyncClient, api_settings: BatonSettings
) -> None:
    agent = as_(api_settings, "Agent")
    refused = await api.post(
        "/v1/orchestrations",
        json={
            "pattern": "concurrent",
            "task": "close the quarter",
            "agents": ["Helper"],
            "aggregator": "Ledger",
        },
        headers=agent,
    )
    assert refused.status_code == 403 and "Ledger" in refused.json()["detail"]  # the aggregator counts too
    unknown = await api.post(
        "/v1/orchestrations", json={"pattern": "sequential", "task": "t", "agents": ["Nobody"]}, headers=agent
    )
    assert unknown.status_code == 404
    bad = await api.post(
        "/v1/orchestrations", json={"pattern": "chaos", "task": "t", "agents": []}, headers=agent
    )
    assert bad.status_code == 422
    repeated = await api.post(
        "/v1/orchestrations",
        json={"pattern": "sequential", "task": "t", "agents": ["Helper", "Helper"]},
        headers=agent,
    )
    assert repeated.status_code == 422 and "repeated: Helper" in repeated.json()["errors"][0]["message"]

    started = await api.post(
        "/v1/orchestrations",
        json={"pattern": "sequential", "task": "write a haiku", "agents": ["Helper", "Reviewer"]},
        headers=agent,
    )
    assert started.status_code == 201, started.text
    run_id = started.json()["run_id"]
    events: list[tuple[str, str]] = []
    async with api.stream("GET", f"/v1/orchestrations/{run_id}/stream", headers=agent) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = ""
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, line.removeprefix("data: ")))
    assert [name for name, _ in events].count("turn") >= 2 and events[-1] == (
        "end",
        '{"status": "completed"}',
    )
    final = (await api.get(f"/v1/orchestrations/{run_id}", headers=as_(api_settings, "Viewer"))).json()
    assert final["progress"]["status"] == "completed" and final["result"]["answer"]
    not_waiting = await api.post(f"/v1/orchestrations/{run_id}/reply", json={"text": "hi"}, headers=agent)
    assert not_waiting.status_code in (404, 409)
    process_run = await api.get("/v1/orchestrations/process-None-1", headers=agent)
    assert process_run.status_code == 404


async def test_a_data_protection_officer_keeps_records_holds_and_answers_requests(
    temporal: WorkflowEnvironment, api_settings: BatonSettings, tmp_path: Path
) -> None:
    settings = api_settings.model_copy(
        update={
            "compliance_queue": f"test-compliance-{uuid.uuid4().hex[:8]}",
            "exports_dir": tmp_path / "exports",
        }
    )
    dpo = as_(settings, "DataProtectionOfficer", sub="dpo-1")
    subject = {"data_subject": "alice@example.com"}
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        [worker] = build_workers(env.temporal, settings, [settings.compliance_queue])
        async with worker, api_server(settings, port=free_port(), client=env.client) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as api:
                purpose = {"purpose": "newsletter", "legal_basis": "consent", "retention_days": 30}
                recorded = await api.post(
                    "/v1/compliance/records", json={**subject, "processing": purpose}, headers=dpo
                )
                assert recorded.status_code == 201, recorded.text
                bad_basis = {**purpose, "legal_basis": "because"}
                refused = await api.post(
                    "/v1/compliance/records", json={**subject, "processing": bad_basis}, headers=dpo
                )
                assert (
                    refused.status_code == 422
                    and refused.json()["errors"][0]["location"][-1] == "legal_basis"
                )

                held = await api.post(
                    "/v1/compliance/holds", json={**subject, "reason": "case 12"}, headers=dpo
                )
                assert held.status_code == 200 and held.json()["held"], held.text
                found = (await api.post("/v1/compliance/records/search", json=subject, headers=dpo)).json()
                assert [r["purpose"] for r in found["records"]] == ["newsletter"]
                assert found["hold"]["reason"] == "case 12" and found["hold"]["placed_by"] == "dpo-1"
                released = await api.post("/v1/compliance/holds/release", json=subject, headers=dpo)
                assert released.status_code == 200 and not released.json()["held"]
                nobody = await api.post(
                    "/v1/compliance/holds/release", json={"data_subject": "bob@x.org"}, headers=dpo
                )
                assert nobody.status_code == 404

                filed = await api.post(
                    "/v1/compliance/requests", json={**subject, "kind": "access"}, headers=dpo
                )
                assert filed.status_code == 202, filed.text
                request_id = filed.json()["request_id"]
                for _ in range(200):
                    status = (await api.get(f"/v1/compliance/requests/{request_id}", headers=dpo)).json()
                    if status["status"] != "running":
                        break
                    await asyncio.sleep(0.05)
                assert status["status"] == "completed" and status["result"]["export_sha256"]
                bundle = (await api.get(f"/v1/compliance/requests/{request_id}/export", headers=dpo)).json()
                assert [r["purpose"] for r in bundle["processing_records"]] == ["newsletter"]
                assert (
                    await api.get("/v1/compliance/requests/not-a-request", headers=dpo)
                ).status_code == 422

                auditor = as_(settings, "Auditor", sub="auditor-1")
                await api.get("/v1/compliance/requests/x", headers=auditor)  # refused: audited
                await audited(settings, ("auditor-1", "api.denied", "/v1/compliance/requests/x"))
                entries = (await api.get("/v1/audit/entries?limit=200", headers=auditor)).json()
                actions = [(e["actor"], e["action"]) for e in entries]
                assert ("dpo-1", "retention.hold") in actions and (
                    "dpo-1",
                    "subject_request.download",
                ) in actions
                assert ("auditor-1", "api.denied") in actions
                assert "alice" not in json.dumps(entries)
                unanchored = await api.post("/v1/audit/verify", headers=auditor)
                assert unanchored.status_code == 503  # no witness runs here: no verdict without anchors


@pytest.fixture
def oidc() -> Iterator[OidcIssuer]:
    issuer = OidcIssuer()
    issuer.clients["svc-billing"] = ("billing-secret", ["Agent"])
    yield issuer
    issuer.close()


@pytest.fixture
async def oidc_api(
    temporal: WorkflowEnvironment, api_settings: BatonSettings, oidc: OidcIssuer
) -> AsyncIterator[httpx.AsyncClient]:
    settings = api_settings.model_copy(update={"oidc_issuer": oidc.url})
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        async with api_server(settings, port=free_port(), client=env.client) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                yield http


async def test_a_service_calls_with_a_token_from_a_real_identity_provider(
    oidc_api: httpx.AsyncClient, oidc: OidcIssuer
) -> None:
    async with httpx.AsyncClient() as http:
        refused = await http.post(
            f"{oidc.url}/token",
            data={"grant_type": "client_credentials", "client_id": "svc-billing", "client_secret": "guess"},
        )
        granted = await http.post(
            f"{oidc.url}/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "svc-billing",
                "client_secret": "billing-secret",
            },
        )
    assert refused.status_code == 401 and granted.status_code == 200
    token = granted.json()["access_token"]
    agents = await oidc_api.get("/v1/agents", headers={"Authorization": f"Bearer {token}"})
    assert agents.status_code == 200 and {a["name"] for a in agents.json()} == {"Helper", "Reviewer"}
    templates = await oidc_api.post("/v1/templates", json={}, headers={"Authorization": f"Bearer {token}"})
    assert templates.status_code == 403  # the client's roles: Agent only


def tamper(token: str, **claims: Any) -> str:
    """The token with its payload changed and its signature kept."""
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    changed = base64.urlsafe_b64encode(json.dumps(decoded | claims).encode()).rstrip(b"=").decode()
    return f"{header}.{changed}.{signature}"


def attacks(oidc: OidcIssuer) -> dict[str, str]:
    now = int(time.time())
    public_pem = (
        oidc.keys["rsa-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    claims = {"iss": oidc.url, "aud": "baton", "sub": "mallory", "roles": ["Admin"], "exp": now + 600}
    return {
        "alg none": jwt.encode(claims, None, algorithm="none", headers={"typ": "at+jwt"}),
        # The classic confusion: the RSA public key used as an HMAC secret.
        "HS256 with the public key": hmac_token(claims, public_pem),
        "expired": oidc.token(exp=now - 3600),
        "not yet valid": oidc.token(nbf=now + 3600),
        "wrong issuer": oidc.token(iss="https://evil.example"),
        "wrong audience": oidc.token(aud="someone-else"),
        "unknown kid": jwt.encode(
            claims,
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            algorithm="RS256",
            headers={"kid": "rsa-9", "typ": "at+jwt"},
        ),
        "tampered payload": tamper(oidc.token(roles=["Viewer"]), roles=["Admin"]),
        "roles not a list": oidc.token(roles="Admin"),
        "oversized": oidc.token(padding="x" * 9_000),
    }


def hmac_token(claims: dict[str, Any], secret: bytes) -> str:
    """HS256 by hand: PyJWT refuses to use a PEM key as an HMAC secret, an attacker does not."""
    segments = [
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
        for part in ({"alg": "HS256", "typ": "at+jwt", "kid": "rsa-1"}, claims)
    ]
    signing_input = b".".join(segments)
    signature = base64.urlsafe_b64encode(hmac.new(secret, signing_input, hashlib.sha256).digest()).rstrip(
        b"="
    )
    return (signing_input + b"." + signature).decode()


async def test_forged_tokens_are_all_401_against_a_real_identity_provider(
    oidc_api: httpx.AsyncClient, oidc: OidcIssuer
) -> None:
    for case, token in attacks(oidc).items():
        answer = await oidc_api.get("/v1/agents", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, (case, answer.text)
        assert answer.headers["content-type"] == "application/problem+json", case
    huge = await oidc_api.get(
        "/v1/agents", headers={"Authorization": f"Bearer {oidc.token(padding='x' * 100_000)}"}
    )
    assert huge.status_code == 400  # the HTTP server refuses a header that big before Baton sees it
    valid = await oidc_api.get("/v1/agents", headers={"Authorization": f"Bearer {oidc.token()}"})
    assert valid.status_code == 200


def test_an_issuer_must_be_https_unless_it_is_this_machine() -> None:
    with pytest.raises(ValueError, match="must be an https:// URL"):
        BatonSettings(oidc_issuer="http://login.example.com/realms/baton")
    assert BatonSettings(oidc_issuer="https://login.example.com/realms/baton").oidc_issuer
    assert BatonSettings(oidc_issuer="http://127.0.0.1:8080/realms/baton").oidc_issuer


async def test_the_readme_roles_table_is_the_policy_table(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    published = {
        f"`{method.upper()} {path}` | {operation['x-baton-policy']} | {', '.join(operation['x-baton-roles'])}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "x-baton-policy" in operation
    }
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    rows = {line.strip("| ") for line in readme.splitlines() if line.startswith("| `") and " /v1/" in line}
    assert rows == published


async def test_an_idempotency_key_gives_a_caller_the_same_run_and_no_one_else(
    api: httpx.AsyncClient, api_settings: BatonSettings
) -> None:
    alice, bob = as_(api_settings, "Agent", sub="alice"), as_(api_settings, "Agent", sub="bob")
    once = {"Idempotency-Key": "invoice-2026-117"}
    body = {"input": "summarise invoice 117"}
    first = await api.post("/v1/agents/Helper/runs", json=body, headers={**alice, **once})
    again = await api.post("/v1/agents/Helper/runs", json=body, headers={**alice, **once})
    other = await api.post("/v1/agents/Helper/runs", json=body, headers={**bob, **once})
    fresh = await api.post("/v1/agents/Helper/runs", json=body, headers=alice)
    assert first.status_code == again.status_code == 202, first.text
    assert first.json()["run_id"] == again.json()["run_id"]
    assert len({first.json()["run_id"], other.json()["run_id"], fresh.json()["run_id"]}) == 3
    assert "invoice" not in first.json()["run_id"]  # the header's text is never an ID
    chat = {"pattern": "sequential", "task": "t", "agents": ["Helper"]}
    runs = [
        (await api.post("/v1/orchestrations", json=chat, headers={**alice, **once})).json()["run_id"]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "in-process"])
async def test_a_principal_past_its_rate_limit_gets_429_with_retry_after(
    temporal: WorkflowEnvironment, api_settings: BatonSettings, shared: bool
) -> None:
    settings = api_settings.model_copy(
        update={"api_rate_limit": 5, "redis_url": SecretStr("redis://127.0.0.1:6379/0") if shared else None}
    )
    busy, calm = (as_(settings, "Agent", sub=f"{who}-{uuid.uuid4().hex[:8]}") for who in ("busy", "calm"))
    if time.time() % 60 > 50:  # the counts start again each minute: not in the middle of the test
        await asyncio.sleep(61 - time.time() % 60)
    if shared:  # this address's count from an earlier run, within the minute
        async with Redis.from_url("redis://127.0.0.1:6379/0") as redis:
            await redis.delete(
                *(await redis.keys(f"baton:api:rate:{hashlib.sha256(b'ip:127.0.0.1').hexdigest()[:32]}:*"))
                or ["none"]
            )
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        servers = [
            api_server(settings, port=free_port(), client=env.client) for _ in range(2 if shared else 1)
        ]
        async with contextlib.AsyncExitStack() as stack:
            urls = [await stack.enter_async_context(server) for server in servers]
            async with httpx.AsyncClient(timeout=30) as http:
                answers = [
                    (await http.get(f"{urls[n % len(urls)]}/v1/agents", headers=busy)) for n in range(6)
                ]
                other = await http.get(f"{urls[-1]}/v1/agents", headers=calm)
                forged = {"Authorization": "Bearer not-a-token"}
                anonymous = [
                    (await http.get(f"{urls[n % len(urls)]}/v1/agents", headers=forged if n % 2 else {}))
                    for n in range(6)
                ]
    assert [a.status_code for a in answers] == [200] * 5 + [429]  # counted across both processes
    assert [a.status_code for a in anonymous] == [401] * 5 + [429]  # per address, without a principal
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60
    assert answers[-1].headers["content-type"] == "application/problem+json"
    assert other.status_code == 200


async def test_a_run_started_with_wait_answers_with_its_result(
    api: httpx.AsyncClient, api_settings: BatonSettings
) -> None:
    definition = upper_only("Shout").build(["tests"]).to_yaml()
    manager = as_(api_settings, "TemplateManager")
    await api.post(
        "/v1/templates", content=definition, headers={**manager, "Content-Type": "application/yaml"}
    )
    answered = await api.post(
        "/v1/runs?wait=true",
        json={"template": "Shout", "event": "Start", "data": "hi"},
        headers=as_(api_settings, "Agent"),
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["result"]["output"] == "HI"


FUZZ_EXAMPLES = 10


async def test_fuzzing_every_operation_gives_no_5xx_and_only_documented_answers(
    temporal: WorkflowEnvironment, api_settings: BatonSettings
) -> None:
    """Schemathesis generates requests from the OpenAPI document for every operation, as an
    Admin, and checks each answer: never a 500, a documented status, content type and schema."""
    settings = api_settings.model_copy(
        update={"api_rate_limit": 10**6, "compliance_queue": f"test-compliance-{uuid.uuid4().hex[:8]}"}
    )
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        [compliance] = build_workers(env.temporal, settings, [settings.compliance_queue])
        async with compliance, api_server(settings, port=free_port(), client=env.client) as url:
            async with httpx.AsyncClient(base_url=url) as http:
                document = (await http.get("/openapi.json")).json()
            failures = await asyncio.to_thread(fuzz, url, document, as_(settings, "Admin", sub="fuzzer"))
    assert failures == []


def fuzz(url: str, document: dict[str, Any], headers: dict[str, str]) -> list[str]:
    """Run bounded fuzzing of every operation (in a thread: the server is on the test's loop)."""
    failures: list[str] = []
    for result in schemathesis.openapi.from_dict(document).get_all_operations():
        operation = result.ok()
        if operation.path.endswith("/stream"):  # an open-ended stream: tested on its own above
            continue

        @hypothesis.settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @hypothesis.given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=url, headers=headers, timeout=60)
            # A 503 is documented where a dependency may be away (the audit witness); 500 never is.
            assert response.status_code != 500, f"{case.method} {case.formatted_path}: {response.text}"
            case.validate_response(
                response,
                checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
            )

        try:
            check()
        except Exception as e:
            failures.append(f"{operation.method.upper()} {operation.path}: {str(e)[:2000]}")
    return failures


async def test_run_routes_touch_process_runs_only(
    api: httpx.AsyncClient, api_settings: BatonSettings
) -> None:
    """An Agent may steer process runs, not any workflow whose ID it can guess (an agent run, the
    audit witness, a subject's retention): those answer 404 and are left alone."""
    agent = as_(api_settings, "Agent")
    other = (await api.post("/v1/agents/Helper/runs", json={"input": "hi"}, headers=agent)).json()["run_id"]
    for method, path, body in [
        ("GET", f"/v1/runs/{other}", None),
        ("POST", f"/v1/runs/{other}/cancel", None),
        ("POST", f"/v1/runs/{other}/events", {"name": "Start"}),
    ]:
        answer = await api.request(method, path, json=body, headers=agent)
        assert answer.status_code == 404 and "not a process run" in answer.json()["detail"], (
            path,
            answer.text,
        )
    bad_key = await api.post(
        "/v1/runs", json={"template": "T", "event": "Start", "key": "a b"}, headers=agent
    )
    assert bad_key.status_code == 422


async def test_a_service_drives_baton_through_the_typed_http_client(
    api: httpx.AsyncClient, api_settings: BatonSettings
) -> None:
    """`BatonHttpClient` against the real API: typed answers, and errors of the same
    `baton.errors` families `BatonClient` raises, the problem+json kept on them."""
    issuer = DevIssuer.load(api_settings)
    url = str(api.base_url)

    async def fresh_token() -> str:  # a token source, called for every request
        return issuer.issue("svc", ["Agent", "TemplateManager"], 600)

    async with BatonHttpClient(url, fresh_token) as baton:
        definition = approval_process(f"Http{uuid.uuid4().hex[:6]}").build(["tests"])
        deployed = await baton.deploy(definition.to_yaml())
        assert (deployed.name, deployed.version) == (definition.name, 1)
        with pytest.raises(InvalidRequest) as invalid:
            await baton.deploy(
                {"name": "Broken", "steps": [{"name": "A", "step": "os:system"}], "routes": []}
            )
        assert invalid.value.problem["problems"]  # type: ignore[attr-defined]

        started = await baton.start_process(definition.name, "Start", "hello", key="order-17")
        again = await baton.start_process(definition.name, "Start", "hello", key="order-17")
        assert again.run_id == started.run_id
        with pytest.raises(UnknownEvent) as unknown:  # the very error BatonClient raises
            await baton.send_event(started.run_id, "Nonsense")
        assert isinstance(unknown.value, InvalidRequest) and "ApprovalReceived" in unknown.value.accepted
        assert unknown.value.problem["type"] == "urn:baton:error:UnknownEvent"  # type: ignore[attr-defined]
        accepted = await baton.send_event(started.run_id, "ApprovalReceived", {"approved": True})
        assert (accepted.name, accepted.deliveries) == ("ApprovalReceived", 1)
        for _ in range(100):
            state = await baton.state(started.run_id)
            if state.status == "completed":
                break
            await asyncio.sleep(0.1)
        assert state.status == "completed"
        with pytest.raises(ProcessFinished) as finished:
            await baton.send_event(started.run_id, "ApprovalReceived", {"approved": True})
        assert isinstance(finished.value, Conflict)
        listed = await baton.list_runs(definition.name)
        assert [run.run_id for run in listed.runs] == [started.run_id]
        with pytest.raises(NotFound):
            await baton.state("process-Nobody-1")

        assert {a.name for a in await baton.agents()} == {"Helper", "Reviewer"}
        assert (await baton.run_agent("Helper", "hello")).answer
        with pytest.raises(AgentAccessDenied) as denied:
            await baton.run_agent("Ledger", "the books")
        assert isinstance(denied.value, AccessDenied) and denied.value.agents == ["Ledger"]
        run = await baton.orchestrate(
            SequentialStart(pattern="sequential", task="plan", agents=["Helper", "Reviewer"])
        )
        turns = [turn async for turn in baton.follow(run.run_id)]
        assert [t.speaker for t in turns if not isinstance(t, str)] == ["user", "Helper", "Reviewer"]
        assert (await baton.orchestration(run.run_id)).progress.status == "completed"

    async with BatonHttpClient(url, "not-a-token") as anonymous:
        with pytest.raises(Unauthenticated):
            await anonymous.agents()


async def test_swagger_ui_renders_from_the_api_itself_and_calls_an_endpoint(
    api: httpx.AsyncClient, api_settings: BatonSettings, tmp_path: Path
) -> None:
    """/docs in headless Chromium: Swagger UI loads from the API's own assets (no CDN), takes a
    bearer token, and its Try it out / Execute calls GET /v1/agents and shows the answer."""
    html = (await api.get("/docs")).text
    assert "cdn" not in html and "/docs-assets/swagger-ui-bundle.js" in html
    token = DevIssuer.load(api_settings).issue("browser", ["Agent"], 600)
    async with chromium(tmp_path / "profile") as page:
        await page.goto(f"{api.base_url}/docs")
        await page.wait_for("document.querySelector('.swagger-ui .info .title') !== null")
        assert "Baton API" in await page.evaluate("document.querySelector('.info .title').innerText")
        await page.evaluate(
            "ui.authActions.authorize({HTTPBearer: {name: 'HTTPBearer', "
            f"schema: {{type: 'http', scheme: 'bearer'}}, value: '{token}'}}}})"
        )
        opblock = "[...document.querySelectorAll('.opblock-get')].find(b => b.querySelector('[data-path=\"/v1/agents\"]'))"
        await page.evaluate(f"{opblock}.querySelector('.opblock-summary-control').click()")
        await page.wait_for(f"{opblock}.querySelector('.try-out__btn') !== null")
        await page.evaluate(f"{opblock}.querySelector('.try-out__btn').click()")
        await page.wait_for(f"{opblock}.querySelector('.execute') !== null")
        await page.evaluate(f"{opblock}.querySelector('.execute').click()")
        await page.wait_for(
            f"{opblock}.querySelector('.live-responses-table tbody .response-col_status') !== null"
        )
        status = await page.evaluate(
            f"{opblock}.querySelector('.live-responses-table tbody .response-col_status').innerText"
        )
        body = await page.evaluate(f"{opblock}.querySelector('.live-responses-table .microlight').innerText")
        await page.screenshot(tmp_path / "docs.png")
    assert status.strip() == "200", body
    assert '"Helper"' in body and '"Ledger"' not in body


async def test_a_call_that_fails_on_the_server_is_a_bare_500_and_still_audited(
    api: httpx.AsyncClient, api_settings: BatonSettings
) -> None:
    """A real fault (the templates table gone from the app database): 500 problem+json that says
    only that, no stack trace, and the call is in the audit trail with its status."""
    manager = as_(api_settings, "TemplateManager", sub="ops-500")
    assert (await api.get("/v1/templates", headers=manager)).status_code == 200
    engine = create_engine(api_settings.resolved_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("DROP TABLE process_definitions"))
    finally:
        await engine.dispose()
    failed = await api.get("/v1/templates", headers=manager)
    assert failed.status_code == 500 and failed.headers["content-type"] == "application/problem+json"
    assert failed.json()["detail"] == "the request failed on the server; its log has the details"
    assert "Traceback" not in failed.text and "process_definitions" not in failed.text
    await audited(api_settings, ("ops-500", "api.call", "/v1/templates"))
    engine = create_engine(api_settings.resolved_database_url)
    try:
        statuses = [
            entry.detail["status"]
            for entry in await AuditLog(Schema(engine)).tail(1000)
            if entry.actor == "ops-500" and entry.action == "api.call"
        ]
    finally:
        await engine.dispose()
    assert sorted(statuses) == [200, 500]
