"""A real Prometheus server (Debian's `prometheus`, which `make test` installs when missing)
scrapes a running worker and the API: PromQL over its HTTP API finds the agent that ran and the
Temporal SDK's metrics, loads the alert rules, and evaluates every query of the dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from baton.agents import AgentSpec
from baton.settings import BatonSettings
from baton.starter.client import BatonClient
from baton.starter.devserver import api_server, serving
from baton.telemetry.metrics import metrics_app
from baton.temporal import connect
from baton.testing import free_port
from baton.workers.worker import running_workers

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "helm" / "baton" / "files" / "baton-alerts.yml"
DASHBOARD = REPO / "helm" / "baton" / "files" / "baton-dashboard.json"
DASHBOARD_SCHEMA = {
    "type": "object",
    "required": ["title", "uid", "schemaVersion", "panels", "templating"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[a-z0-9-]{1,40}$"},
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "gridPos", "targets", "datasource"],
                "properties": {
                    "type": {"enum": ["timeseries", "stat"]},
                    "gridPos": {"type": "object", "required": ["h", "w", "x", "y"]},
                    "targets": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "object", "required": ["refId", "expr", "legendFormat"]},
                    },
                },
            },
        },
    },
}


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: `make test` installs Debian's prometheus package"
    return found


def dashboard_queries() -> list[str]:
    return [
        target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]
    ]


def test_the_alert_rules_and_the_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    checked = subprocess.run([tool("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0 and "SUCCESS: 7 rules found" in checked.stdout, (
        checked.stdout + checked.stderr
    )
    dashboard = json.loads(DASHBOARD.read_text())
    jsonschema.validate(dashboard, DASHBOARD_SCHEMA)
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    # Every panel's query, as a recording rule, through promtool's PromQL parser.
    recorded = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:q{n}", "expr": q} for n, q in enumerate(dashboard_queries())
                ],
            }
        ]
    }
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(recorded))
    checked = subprocess.run(
        [tool("promtool"), "check", "rules", str(tmp_path / "dashboard.yml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@contextlib.asynccontextmanager
async def prometheus_scraping(targets: list[str], tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "baton", "static_configs": [{"targets": targets}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    server = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(30)


async def query(http: httpx.AsyncClient, url: str, promql: str) -> list[dict[str, Any]]:
    answer = (await http.get(f"{url}/api/v1/query", params={"query": promql})).json()
    assert answer["status"] == "success", (promql, answer)
    return list(answer["data"]["result"])


async def eventually(http: httpx.AsyncClient, url: str, promql: str) -> list[dict[str, Any]]:
    for _ in range(120):
        try:
            if result := await query(http, url, promql):
                return result
        except httpx.TransportError:  # Prometheus still starting
            pass
        await asyncio.sleep(0.25)
    raise AssertionError(f"Prometheus never had: {promql}")


async def test_prometheus_scrapes_a_worker_and_the_api_and_finds_the_agent_that_ran(
    temporal: WorkflowEnvironment, settings: BatonSettings, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={"temporal_address": temporal.client.service_client.config.target_host}
    )
    agent = AgentSpec(name=f"Scraped{uuid.uuid4().hex[:6]}", instructions="Answer briefly.")
    client = await connect(settings)
    baton = BatonClient(client, settings)
    worker_port, api_port = free_port(), free_port()
    try:
        async with (
            running_workers(client, settings),
            serving(metrics_app(settings, client), "127.0.0.1", worker_port, "metrics endpoint"),
            api_server(settings, port=api_port, client=baton),
            httpx.AsyncClient(timeout=10) as http,
        ):
            await (await baton.start_agent(agent, "hello")).result()
            targets = [f"127.0.0.1:{worker_port}", f"127.0.0.1:{api_port}"]
            async with prometheus_scraping(targets, tmp_path) as url:
                ran = await eventually(
                    http, url, f'baton_agent_execution_success_total{{agent="{agent.name}"}}'
                )
                assert ran[0]["value"][1] == "1"
                assert await eventually(http, url, "temporal_workflow_completed_total")  # the SDK's own
                assert await eventually(http, url, 'count(up{job="baton"} == 1) == 2')  # both targets
                rules = (await http.get(f"{url}/api/v1/rules")).json()["data"]["groups"]
                loaded = [rule for group in rules for rule in group["rules"]]
                assert len(loaded) == 7 and all(rule["health"] in ("ok", "unknown") for rule in loaded)
                for promql in dashboard_queries():
                    await query(http, url, promql)  # each evaluates on real data without an error
    finally:
        await baton.close()


pytestmark = pytest.mark.timeout(240)
