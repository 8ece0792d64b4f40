"""The deployment files, proven offline since no cluster runs here: the image's Dockerfile, the
Helm chart rendered with its default and production values, the Terraform, and the pipelines.
The tools come from `make deploy-tools` (scripts/install-deploy-tools.sh); a missing one fails
the test rather than skipping it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "helm" / "baton"
PRODUCTION = CHART / "ci" / "production-values.yaml"
INFRA = REPO / "infra"
TOOLS = REPO / ".tools"
KUBERNETES_VERSION = "1.31"
CUSTOM_KINDS = {"ScaledObject", "ServiceMonitor", "PodMonitor", "PrometheusRule"}


def tool(name: str) -> str:
    """The path of a deployment check's tool; fails the test when it was not installed."""
    path = TOOLS / "bin" / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is missing: run `make deploy-tools` (make test does)"
    return found


def run(*command: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)


def render(*values: str) -> list[dict[str, Any]]:
    """The chart's manifests, as `helm template` writes them for the release `baton`."""
    args = [arg for file in values for arg in ("-f", file)]
    result = run(tool("helm"), "template", "baton", str(CHART), "--namespace", "baton", *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def refused(*settings: str) -> str:
    """What `helm template` says about values the schema must refuse."""
    args = [arg for setting in settings for arg in ("--set", setting)]
    result = run(tool("helm"), "template", "baton", str(CHART), *args)
    assert result.returncode != 0, f"accepted: {settings}"
    return result.stderr


@pytest.fixture(scope="module", params=["default", "production"])
def manifests(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render() if request.param == "default" else render(str(PRODUCTION))


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def container_env(deployment: dict[str, Any]) -> dict[str, str | None]:
    """The environment of a Deployment's (only) container."""
    return {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


# -- the chart ----------------------------------------------------------------------------------


def test_the_chart_lints_with_its_default_and_production_values() -> None:
    for args in ([], ["-f", str(PRODUCTION)]):
        result = run(tool("helm"), "lint", "--strict", str(CHART), *args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_manifests_fit_the_kubernetes_schemas(manifests: list[dict[str, Any]]) -> None:
    kinds = {doc["kind"] for doc in manifests}
    assert {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "Job"} <= kinds
    for doc in manifests:
        if doc["kind"] in CUSTOM_KINDS:
            continue  # no schema offline; their fields are checked by the tests below
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert doc["metadata"]["namespace"] == "baton", doc["metadata"]["name"]


def test_every_container_has_limits_probes_and_a_locked_down_security_context(
    manifests: list[dict[str, Any]],
) -> None:
    for name, spec in pod_specs(manifests):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True and context["runAsNonRoot"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
    for name, deployment in of_kind(manifests, "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] in ("/readyz", "/healthz"), name


def test_workers_stop_gracefully_within_their_pods_grace_period() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    shutdown = values["worker"]["shutdownSeconds"]
    for name, deployment in of_kind(render(), "Deployment").items():
        if "-worker-" not in name:
            continue
        assert container_env(deployment)["BATON_WORKER_SHUTDOWN_SECONDS"] == str(shutdown)
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > shutdown


def test_each_worker_role_serves_exactly_its_queues(manifests: list[dict[str, Any]]) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    deployments = of_kind(manifests, "Deployment")
    for role, spec in values["workers"].items():
        container = deployments[f"baton-worker-{role}"]["spec"]["template"]["spec"]["containers"][0]
        assert container["args"][:2] == ["worker", "--queues"]
        assert container["args"][2:] == [values["queues"][key] for key in spec["queues"]], role
    served = [
        q
        for d in deployments.values()
        for q in d["spec"]["template"]["spec"]["containers"][0]["args"][2:]
        if d["metadata"]["name"].startswith("baton-worker-")
    ]
    assert sorted(served) == sorted(q for q in values["queues"].values() if q)  # every queue once


def test_steps_get_a_fleet_of_their_own_only_when_given_a_queue(tmp_path: Path) -> None:
    by_default = of_kind(render(), "Deployment")
    assert "BATON_STEPS_QUEUE" not in container_env(by_default["baton-worker-workflows"])  # steps run there
    own = tmp_path / "steps.yaml"
    own.write_text("queues:\n  steps: baton-steps\nworkers:\n  steps:\n    queues: [steps]\n")
    deployments = of_kind(render(str(own)), "Deployment")
    assert deployments["baton-worker-steps"]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "worker",
        "--queues",
        "baton-steps",
    ]
    assert all(container_env(d)["BATON_STEPS_QUEUE"] == "baton-steps" for d in deployments.values())
    assert 'workers.steps.queues names "steps", which is not a key of queues or is empty' in refused(
        "workers.steps.queues={steps}"
    )


@pytest.mark.parametrize(
    ("settings", "unserved"),
    [
        (["queues.steps=baton-steps"], 'queues.steps ("baton-steps")'),
        (["workers.llm=null"], 'queues.llm ("baton-llm")'),
        (["queues.gpu=gpu-steps"], 'queues.gpu ("gpu-steps")'),
    ],
)
def test_a_queue_no_worker_role_serves_is_refused(settings: list[str], unserved: str) -> None:
    # Work sent to a queue nobody polls waits forever: the chart says so instead of deploying it.
    assert f"{unserved} is served by no worker role" in refused(*settings)


def test_a_queue_of_its_own_gets_a_role_and_the_old_steps_queue_can_drain(tmp_path: Path) -> None:
    # A step's (or sub-process's) own task_queue, and baton-steps of a release from before steps
    # ran on the workflows queue: runs started then still send their steps there until they end.
    own = tmp_path / "queues.yaml"
    own.write_text(
        "queues:\n  gpu: gpu-steps\n  previousSteps: baton-steps\n"
        "workers:\n  gpu:\n    queues: [gpu]\n  previous-steps:\n    queues: [previousSteps]\n"
        "    replicas: 1\n    autoscaling:\n      enabled: false\n"
    )
    deployments = of_kind(render(str(own)), "Deployment")
    args = {name: d["spec"]["template"]["spec"]["containers"][0]["args"] for name, d in deployments.items()}
    assert args["baton-worker-gpu"] == ["worker", "--queues", "gpu-steps"]
    assert args["baton-worker-previous-steps"] == ["worker", "--queues", "baton-steps"]
    # Only queues.steps routes steps: new runs keep running theirs on the workflows queue.
    assert all("BATON_STEPS_QUEUE" not in container_env(d) for d in deployments.values())


def test_the_hpas_carry_the_seeds_numbers() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["autoscaling"]
    hpas = of_kind(render(), "HorizontalPodAutoscaler")
    # The compliance role and the codec server opt out in values.yaml: fixed replicas.
    assert set(hpas) == {"baton-api", "baton-worker-workflows", "baton-worker-llm"}
    for name, hpa in hpas.items():
        spec = hpa["spec"]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 50), name
        targets = {
            m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in spec["metrics"]
        }
        assert targets == {"cpu": 70, "memory": 80}, name
        assert spec["behavior"] == values["behavior"], name
        assert spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 60
        assert spec["behavior"]["scaleDown"]["policies"] == [
            {"type": "Percent", "value": 10, "periodSeconds": 60}
        ]
    deployments = of_kind(render(), "Deployment")
    assert "replicas" not in deployments["baton-worker-llm"]["spec"]  # the HPA owns it
    assert deployments["baton-worker-compliance"]["spec"]["replicas"] == 2


def test_keda_scales_each_autoscaled_role_on_its_task_queues() -> None:
    docs = render(str(PRODUCTION))
    scaled = of_kind(docs, "ScaledObject")
    assert set(scaled) == {"baton-worker-workflows", "baton-worker-llm"}
    assert not of_kind(docs, "HorizontalPodAutoscaler").keys() & scaled.keys()  # KEDA's, not two
    deployments = of_kind(docs, "Deployment")
    for name, scaled_object in scaled.items():
        assert scaled_object["spec"]["scaleTargetRef"]["name"] in deployments
        queues = deployments[name]["spec"]["template"]["spec"]["containers"][0]["args"][2:]
        triggers = scaled_object["spec"]["triggers"]
        assert [t["metadata"]["taskQueue"] for t in triggers] == queues
        assert all(t["type"] == "temporal" and t["metadata"]["namespace"] == "baton-prod" for t in triggers)
        assert (scaled_object["spec"]["minReplicaCount"], scaled_object["spec"]["maxReplicaCount"]) == (3, 50)


def test_no_secret_value_is_inlined(manifests: list[dict[str, Any]]) -> None:
    assert not of_kind(manifests, "Secret")
    text = json.dumps(manifests)
    assert "secretKeyRef" not in text  # secrets are files, not variables
    for name, spec in pod_specs(manifests):
        env = {e["name"] for e in spec["containers"][0]["env"]}
        assert env.isdisjoint({"BATON_DATABASE_URL", "BATON_REDIS_URL", "BATON_TEMPORAL_API_KEY"}), name
        assert any(
            e == {"name": "BATON_SECRETS_DIR", "value": "/etc/baton/secrets"}
            for e in spec["containers"][0]["env"]
        ), name
        secrets = next(v for v in spec["volumes"] if v["name"] == "secrets")["projected"]["sources"]
        files = {item["path"] for source in secrets for item in source["secret"]["items"]}
        assert "baton_database_url" in files, name
    assert "sk-" not in text and "postgresql://" not in text and "password" not in text.lower()


def test_the_monitoring_objects_ship_the_repositorys_rules_and_dashboard() -> None:
    docs = render(str(PRODUCTION))
    rule = next(iter(of_kind(docs, "PrometheusRule").values()))
    rules_file = yaml.safe_load((CHART / "files" / "baton-alerts.yml").read_text())
    assert rule["spec"]["groups"] == rules_file["groups"]  # as promtool checked them, untemplated
    dashboard = of_kind(docs, "ConfigMap")["baton-dashboard"]
    assert json.loads(dashboard["data"]["baton-dashboard.json"]) == json.loads(
        (CHART / "files" / "baton-dashboard.json").read_text()
    )
    monitor = of_kind(docs, "PodMonitor")["baton-workers"]
    assert monitor["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"


def test_the_migration_runs_before_a_rollout_and_the_compliance_install_after() -> None:
    jobs = of_kind(render(), "Job")
    migrate, install = jobs["baton-db-upgrade"], jobs["baton-compliance-install"]
    assert migrate["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert install["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert migrate["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]
    assert install["spec"]["template"]["spec"]["containers"][0]["args"] == ["compliance", "install"]
    # Before the release's objects exist: the default service account, and no keys to mount.
    assert "serviceAccountName" not in migrate["spec"]["template"]["spec"]
    assert "keys" not in {v["name"] for v in migrate["spec"]["template"]["spec"]["volumes"]}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["temporal.address=http://temporal:7233"], "/temporal/address"),
        (["config.BATON_OPENAI_API_KEY=sk-inline"], "invalid propertyName 'BATON_OPENAI_API_KEY'"),
        (["encryptionKeys.existingSecret="], "/encryptionKeys"),
        (["workers.llm.queues={llm,gpu}"], 'workers.llm.queues names "gpu", which is not a key of queues'),
        (["queues.GPU=gpu"], "invalid propertyName 'GPU'"),
        (["autoscaling.targetCPUUtilizationPercentage=170"], "/autoscaling"),
        (["image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (["resources.limits.memory=lots"], "/resources/limits/memory"),
        (["databse.existingSecret=x"], "databse"),
    ],
)
def test_the_values_schema_refuses_a_wrong_value_by_name(settings: list[str], message: str) -> None:
    assert message in refused(*settings)


def test_notes_say_where_everything_is() -> None:
    result = run(
        tool("helm"),
        "install",
        "baton",
        str(CHART),
        "--namespace",
        "baton",
        "--dry-run=client",
        "-f",
        str(PRODUCTION),
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "baton-worker-llm: baton-llm" in notes and "https://baton.example.com/docs" in notes
    assert "Scaled by KEDA" in notes


# -- security scanners --------------------------------------------------------------------------


def checkov(*args: str) -> dict[str, Any]:
    result = run(tool("checkov"), *args, "--output", "json", "--quiet", "--skip-download", "--compact")
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    return {
        "failed": [
            check
            for report in (reports if isinstance(reports, list) else [reports])
            for check in report.get("results", {}).get("failed_checks", [])
        ],
        "passed": sum(
            report.get("summary", {}).get("passed", 0)
            for report in (reports if isinstance(reports, list) else [reports])
        ),
    }


def test_checkov_finds_nothing_in_the_rendered_chart(tmp_path: Path) -> None:
    files = []
    for label, values in (("default", []), ("production", [str(PRODUCTION)])):
        path = tmp_path / f"{label}.yaml"
        path.write_text(yaml.safe_dump_all(render(*values)))
        files += ["-f", str(path)]
    found = checkov(*files, "--framework", "kubernetes")
    assert found["passed"] > 500 and not found["failed"], [c["check_id"] for c in found["failed"]]


@pytest.mark.parametrize(
    ("target", "framework"),
    [
        (["-f", "Dockerfile"], "dockerfile"),
        (["-d", "infra"], "terraform"),
        (["-f", ".github/workflows/ci.yml"], "github_actions"),
        (["-f", "azure-pipelines.yml"], "azure_pipelines"),
    ],
)
def test_checkov_finds_nothing_in(target: list[str], framework: str) -> None:
    found = checkov(*target, "--framework", framework)
    assert found["passed"] > 0 and not found["failed"], [c["check_id"] for c in found["failed"]]


def test_every_checkov_skip_says_why() -> None:
    files = [REPO / "Dockerfile", *INFRA.rglob("*.tf"), *(CHART / "templates").glob("*")]
    skips = [
        line
        for f in files
        for line in f.read_text().splitlines()
        if "checkov:skip" in line or "checkov.io/skip" in line
    ]
    assert skips
    for line in skips:
        assert re.search(r"CKV2?_[A-Z0-9_]+\s*[:=]\s*\S.{20,}", line), f"a skip without its reason: {line}"


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = run(tool("hadolint"), "Dockerfile")
    assert result.returncode == 0, result.stdout


def test_the_image_holds_every_module_of_the_package(tmp_path: Path) -> None:
    """Build the wheel from exactly what the Dockerfile copies, as its build stage does."""
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    context = tmp_path / "context"
    for sources in copied:
        for source in sources.split():
            target = context / source
            if (REPO / source).is_dir():
                shutil.copytree(
                    REPO / source, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / source, target)
    result = run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(context), "-w", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    wheel = zipfile.ZipFile(next(tmp_path.glob("baton-*.whl")))
    packaged = {name for name in wheel.namelist() if name.endswith(".py")}
    source = {
        str(p.relative_to(REPO)) for p in (REPO / "baton").rglob("*.py") if "__pycache__" not in p.parts
    }
    assert source <= packaged, sorted(source - packaged)[:10]
    assert any(name.endswith("entry_points.txt") for name in wheel.namelist())
    assert "baton/persistence/migrations/script.py.mako" in wheel.namelist()  # migrations' data too
    assert "baton/examples/agents/analysis.yaml" in wheel.namelist()


# -- Terraform ----------------------------------------------------------------------------------


def test_terraform_is_formatted() -> None:
    result = run(tool("terraform"), "fmt", "-check", "-recursive", "-diff", str(INFRA))
    assert result.returncode == 0, result.stdout + result.stderr


def _unquoted(text: str) -> str:
    return text.strip('"')


def _module(path: Path) -> dict[str, Any]:
    """A Terraform module folder: its declared variables, the `var.` names it uses, its calls."""
    declared: set[str] = set()
    calls: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for file in sorted(path.glob("*.tf")):
        parsed = hcl2.loads(file.read_text())  # raises on HCL that does not parse
        for block in parsed.get("variable", []):
            declared |= {_unquoted(name) for name in block}
        for block in parsed.get("module", []):
            for name, body in block.items():
                calls[_unquoted(name)] = body
        code = "\n".join(line for line in file.read_text().splitlines() if not line.lstrip().startswith("#"))
        used |= set(re.findall(r"\bvar\.([a-z_0-9]+)", code))
    return {"declared": declared, "used": used, "calls": calls}


def test_every_terraform_variable_is_declared_used_and_passed() -> None:
    root = _module(INFRA)
    assert root["declared"] == root["used"], root["declared"] ^ root["used"]
    modules = {p.name: _module(p) for p in (INFRA / "modules").iterdir() if p.is_dir()}
    assert set(modules) == {Path(_unquoted(c["source"])).name for c in root["calls"].values()}
    for name, module in modules.items():
        assert module["declared"] == module["used"], (name, module["declared"] ^ module["used"])
    for call_name, call in root["calls"].items():
        module = modules[Path(_unquoted(call["source"])).name]
        passed = {key for key in call if key not in ("source", "__is_block__", "depends_on")}
        assert passed == module["declared"], (call_name, passed ^ module["declared"])
    for environment in ("dev", "prod"):
        tfvars = hcl2.loads((INFRA / "environments" / environment / "terraform.tfvars").read_text())
        assert set(tfvars) - {"__comments__"} == root["declared"], environment
        assert _unquoted(str(tfvars["environment"])) == environment
        backend = (INFRA / "environments" / environment / "backend.hcl").read_text()
        assert f'key                  = "baton-{environment}.tfstate"' in backend


def test_the_registry_has_no_admin_user_and_aks_pulls_with_its_identity() -> None:
    acr = (INFRA / "modules" / "acr" / "main.tf").read_text()
    assert re.search(r"admin_enabled\s+= false", acr)
    identity = (INFRA / "modules" / "identity" / "main.tf").read_text()
    assert 'role_definition_name = "AcrPull"' in identity and "var.kubelet_object_id" in identity


# -- pipelines ----------------------------------------------------------------------------------


def test_the_pipelines_and_values_pass_yamllint_and_actionlint() -> None:
    files = [
        ".github/workflows/ci.yml",
        "azure-pipelines.yml",
        ".yamllint.yml",
        *(str(p.relative_to(REPO)) for p in CHART.rglob("*.yaml") if "templates" not in p.parts),
        "helm/baton/files/baton-alerts.yml",
    ]
    result = run(sys.executable, "-m", "yamllint", "--strict", "-c", ".yamllint.yml", *files)
    assert result.returncode == 0, result.stdout
    node = shutil.which("node")
    assert node, "actionlint runs on node: install Node.js"
    linter = TOOLS / "actionlint" / "package" / "node.cjs"
    assert linter.exists(), "actionlint is missing: run `make deploy-tools`"
    result = run(node, str(REPO / "tests" / "actionlint.cjs"), str(linter), ".github/workflows/ci.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_azure_pipeline_tests_with_coverage_then_deploys_with_helm_only_on_success() -> None:
    pipeline = yaml.safe_load((REPO / "azure-pipelines.yml").read_text())
    build, deploy = pipeline["stages"]
    assert build["stage"] == "Build" and deploy["stage"] == "Deploy"
    assert deploy["dependsOn"] == "Build" and deploy["condition"].startswith("and(succeeded()")
    steps = build["jobs"][0]["steps"]
    assert any("make test" in step.get("script", "") for step in steps)
    assert "--cov=baton" in json.dumps(steps)
    assert any(step.get("task", "").startswith("PublishCodeCoverageResults") for step in steps)
    helm = deploy["jobs"][0]["strategy"]["runOnce"]["deploy"]["steps"][-1]
    assert (
        helm["task"] == "HelmDeploy@0"
        and helm["inputs"]["command"] == "upgrade"
        and helm["inputs"]["install"]
    )
