"""The `baton` command as a person runs it: exit statuses and what it prints."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from baton.persistence.db import engine_from_settings
from baton.settings import BatonSettings
from baton.starter.client import BatonClient
from baton.starter.devserver import API_PORT, GRPC_PORT, port_open
from baton.temporal import connect_embedded, dev_server_path, settings_converter
from baton.testing import ProcessEnvironment
from tests.steps import queued_fan_in

REPO = Path(__file__).parents[1]
EXAMPLE_YAML = REPO / "examples" / "document_generation" / "process.yaml"


def baton_env(settings: BatonSettings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    env.update(
        BATON_DATA_DIR=str(settings.data_dir),
        BATON_WORKFLOWS_QUEUE=settings.workflows_queue,
        BATON_LLM_QUEUE=settings.llm_queue,
        BATON_STEP_MODULES=json.dumps(settings.step_modules),
        COLUMNS="200",
        **extra,
    )
    if settings.steps_queue:
        env["BATON_STEPS_QUEUE"] = settings.steps_queue
    return env


async def run_in_repo(
    command: list[str], environment: dict[str, str], stdin: str = "", timeout: float = 120, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """Run `command` in the repository (so that its baton.yaml applies), or in `cwd`, without
    blocking the event loop the workers run on."""
    return await asyncio.to_thread(
        subprocess.run,
        command,
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=timeout,
    )


async def baton(
    settings: BatonSettings, *args: str, stdin: str = "", **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run the `baton` console script as a person would, configured like `settings`."""
    command = [str(Path(sys.executable).with_name("baton")), *args]
    return await run_in_repo(command, baton_env(settings, **extra), stdin)


async def test_show_validates_and_prints_mermaid(settings) -> None:
    result = await baton(settings, "process", "show", "baton.examples.document_generation.process:process")
    assert result.returncode == 0, result.stderr
    assert "DocumentGeneration is valid (7 steps)" in result.stdout
    assert "flowchart LR" in result.stdout and "step_HumanApproval" in result.stdout


async def test_show_reports_every_problem_of_a_bad_file(settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: Bad\nsteps:\n- {name: a, step: 'os:path'}\nroutes:\n- {from: a, when: result, to: [{step: b}]}\n"
    )
    result = await baton(settings, "process", "show", str(bad))
    assert result.returncode == 2
    assert "process 'Bad' has 4 problems" in result.stderr
    assert "module 'os', which is not in the allowed step modules" in result.stderr
    assert "unknown target step 'b'" in result.stderr


async def test_deploy_adds_versions_that_show_and_run_by_name(settings) -> None:
    first = await baton(settings, "process", "deploy", str(EXAMPLE_YAML))
    second = await baton(settings, "process", "deploy", str(EXAMPLE_YAML))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "deployed DocumentGeneration version 1" in first.stdout
    assert "deployed DocumentGeneration version 2" in second.stdout
    shown = await baton(settings, "process", "show", "DocumentGeneration")
    assert shown.returncode == 0 and "flowchart LR" in shown.stdout
    missing = await baton(settings, "process", "show", "NotDeployed")
    assert missing.returncode == 1 and "no deployed process 'NotDeployed'" in missing.stderr


async def test_run_follows_steps_and_lets_a_person_answer(env: ProcessEnvironment, temporal) -> None:
    address = temporal.client.service_client.config.target_host
    result = await baton(
        env.settings,
        "process",
        "run",
        "tests.steps:cli_approval",
        "--event",
        "Start",
        "--data",
        '"contract"',
        "--id",
        "cli-1",
        stdin='ApprovalReceived\n{"approved": true}\n',
        BATON_TEMPORAL_ADDRESS=address,
    )
    assert result.returncode == 0, result.stderr
    assert "Run process-CliApproval-cli-1" in result.stdout
    assert "✓ Upper (run 1)" in result.stdout
    assert "The process waits for an event: Start, ApprovalReceived" in result.stdout
    assert "sent ApprovalReceived" in result.stdout
    assert '"CONTRACT:approved"' in result.stdout
    assert "/namespaces/default/workflows/process-CliApproval-cli-1" in result.stdout


async def test_run_asks_again_for_an_answer_the_process_refuses(env: ProcessEnvironment, temporal) -> None:
    address = temporal.client.service_client.config.target_host
    answers = 'ApprovalReceived\n{"approved": "perhaps"}\nApprovalReceived\n{"approved": true}\n'
    run = ["process", "run", "tests.steps:cli_approval", "--event", "Start", "--data", '"memo"']
    result = await baton(env.settings, *run, "--id", "cli-2", stdin=answers, BATON_TEMPORAL_ADDRESS=address)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "✗ refused: the data of event 'ApprovalReceived' does not fit process 'CliApproval'" in result.stdout
    )
    assert "approved: expected a boolean" in result.stdout and "perhaps" not in result.stdout
    assert '"MEMO:approved"' in result.stdout


async def test_run_left_without_input_says_how_to_answer_later(env: ProcessEnvironment, temporal) -> None:
    address = temporal.client.service_client.config.target_host
    run = ["process", "run", "tests.steps:cli_approval", "--event", "Start", "--data", '"memo"']
    result = await baton(env.settings, *run, "--id", "cli-3", stdin="", BATON_TEMPORAL_ADDRESS=address)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "No more input: run process-CliApproval-cli-3 goes on waiting" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr

    send = ["process", "send", "process-CliApproval-cli-3", "--event", "ApprovalReceived"]
    refused = await baton(env.settings, *send, "--data", "{}", BATON_TEMPORAL_ADDRESS=address)
    assert refused.returncode == 2 and "approved: required field missing" in refused.stderr  # invalid input
    sent = await baton(env.settings, *send, "--data", '{"approved": true}', BATON_TEMPORAL_ADDRESS=address)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "sent ApprovalReceived to process-CliApproval-cli-3" in sent.stdout
    assert (await env.client.get_run("process-CliApproval-cli-3").result()).output == "MEMO:approved"


async def test_run_rejects_data_that_is_not_json(settings) -> None:
    result = await baton(
        settings, "process", "run", "tests.steps:cli_approval", "--event", "Start", "--data", "{nope"
    )
    assert result.returncode == 2
    assert "--data is not JSON" in result.stderr


async def test_db_upgrade(settings) -> None:
    result = await baton(settings, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert (settings.data_dir / "baton.db").exists()


async def test_demo_runs_the_main_job_and_cleans_up(settings, tmp_path: Path) -> None:
    """Run where a newcomer with the installed package would: outside the repository, so that
    neither its baton.yaml nor any step-module setting names the examples."""
    started_here = not port_open("127.0.0.1", GRPC_PORT)
    environment = baton_env(settings.model_copy(update={"workflows_queue": "baton-workflows"}))
    del environment["BATON_STEP_MODULES"]
    command = [str(Path(sys.executable).with_name("baton")), "demo"]
    result = await run_in_repo(command, environment, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "deployed DocumentGeneration v1" in out
    for step in [
        "GatherProductInfo",
        "GenerateDocumentation",
        "ReviewDocumentation",
        "HumanApproval",
        "PublishDocumentation",
    ]:
        assert f"✓ {step} (run 1)" in out
    assert "the process waits for a person's approval" in out
    assert "Troubleshooting" in out and '"approval_comment": "Approved by the demo"' in out
    assert (
        "See the run in the Temporal UI: http://127.0.0.1:8233/namespaces/default/workflows/process-" in out
    )
    assert "HTTP API at http://127.0.0.1:8000 (OpenAPI docs at http://127.0.0.1:8000/docs)" in out
    assert "stopped everything the demo started" in out
    assert not port_open("127.0.0.1", API_PORT)
    if started_here:
        assert not port_open("127.0.0.1", GRPC_PORT)


async def test_dev_serves_the_ui_until_interrupted(settings) -> None:
    if port_open("127.0.0.1", GRPC_PORT):
        pytest.fail("port 7233 is taken by another Temporal; 'baton dev' needs it")
    command = [str(Path(sys.executable).with_name("baton")), "dev"]
    dev = subprocess.Popen(command, cwd=REPO, env=baton_env(settings), stdout=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        while not any("Ctrl-C stops" in line for line in lines):
            line = await asyncio.to_thread(dev.stdout.readline)  # type: ignore[union-attr]
            assert line, f"baton dev ended early: {''.join(lines)}"
            lines.append(line)
        async with httpx.AsyncClient() as http:
            ui = await http.get("http://127.0.0.1:8233/")
            endpoint = (await http.get("http://127.0.0.1:8233/api/v1/settings")).json()["Codec"]["Endpoint"]
            anonymous = await http.post("http://127.0.0.1:8234/decode", json={"payloads": []})
            for_the_ui = await http.post(f"{endpoint}/decode", json={"payloads": []})
            ready = await http.get("http://127.0.0.1:8000/readyz")
            docs = await http.get("http://127.0.0.1:8000/docs")
        assert ready.json() == {"temporal": True, "database": True} and docs.status_code == 200
        assert "HTTP API at http://127.0.0.1:8000" in "".join(lines)
        assert ui.status_code == 200
        assert endpoint.startswith("http://127.0.0.1:8234/dev/")  # the UI asks Baton's codec server
        assert anonymous.status_code == 401 and for_the_ui.status_code == 200
        assert (settings.data_dir / "baton.db").exists() and (settings.data_dir / "temporal.db").exists()
        dev.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(dev.wait, 30) == 0
    finally:
        dev.kill()
    assert not port_open("127.0.0.1", GRPC_PORT) and not port_open("127.0.0.1", API_PORT)


@pytest.mark.skipif(sys.platform != "linux", reason="the server left running is recognised in /proc")
async def test_dev_killed_outright_leaves_a_server_the_next_dev_replaces(settings: BatonSettings) -> None:
    # A crashed terminal, the OOM killer: `baton dev` gets SIGKILL, and its Temporal server, in a
    # session of its own, lives on. The next `baton dev` on the same data folder stops that server
    # and starts its own on the same database, and the run begun before the crash finishes.
    if port_open("127.0.0.1", GRPC_PORT):
        pytest.fail("port 7233 is taken by another Temporal; 'baton dev' needs it")
    engine = engine_from_settings(settings)
    converter = settings_converter(settings, engine)
    first = await _baton_dev(settings)
    try:
        baton = BatonClient(await connect_embedded(settings, GRPC_PORT, converter), settings)
        run = await baton.start_process(queued_fan_in().build(settings.step_modules), "Left", "a1")
        async with asyncio.timeout(60):
            while (await run.state()).status != "waiting":
                await asyncio.sleep(0.1)
        await baton.close()
        first.kill()
        first.wait()
        assert port_open("127.0.0.1", GRPC_PORT), "the server died with baton dev: nothing to replace"
        second = await _baton_dev(settings)
        try:
            assert "that a Baton command killed outright left running" in second.stderr_seen
            again = BatonClient(await connect_embedded(settings, GRPC_PORT, converter), settings)
            run = again.get_run(run.id)
            for name, data in [("Right", "b1"), ("Left", "a2"), ("Right", "b2")]:
                await run.send_event(name, data)
            assert (await asyncio.wait_for(run.result(), 60)).output == ["a1+b1", "a2+b2"]
            await again.close()
            second.send_signal(signal.SIGINT)
            assert await asyncio.to_thread(second.wait, 30) == 0
        finally:
            await _stop_dev(second, settings)
    finally:
        await _stop_dev(first, settings)
        await engine.dispose()
    assert not port_open("127.0.0.1", GRPC_PORT)


async def test_dev_leaves_alone_a_temporal_it_did_not_start_on_its_database(settings: BatonSettings) -> None:
    # Someone's own `temporal server start-dev` on the folder's database: no Baton command recorded
    # it, so `baton dev` refuses the taken port instead of stopping a server another process owns.
    if port_open("127.0.0.1", GRPC_PORT):
        pytest.fail("port 7233 is taken by another Temporal; 'baton dev' needs it")
    settings.data_dir.mkdir(parents=True)
    database = (settings.data_dir / "temporal.db").resolve()
    theirs = subprocess.Popen(
        [
            dev_server_path(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--headless",
            "--db-filename",
            str(database),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(60):
            while not port_open("127.0.0.1", GRPC_PORT):
                await asyncio.sleep(0.1)
        refused = await baton(settings, "dev")
        assert refused.returncode != 0
        assert "port 7233 on 127.0.0.1 is taken" in refused.stderr
        assert theirs.poll() is None, "baton dev stopped a server it did not start"
    finally:
        theirs.terminate()
        theirs.wait(30)
    assert not port_open("127.0.0.1", GRPC_PORT)


async def test_a_second_dev_on_the_same_data_folder_is_refused_while_the_first_runs(
    settings: BatonSettings,
) -> None:
    if port_open("127.0.0.1", GRPC_PORT):
        pytest.fail("port 7233 is taken by another Temporal; 'baton dev' needs it")
    first = await _baton_dev(settings)
    try:
        second = await baton(settings, "dev")
        assert second.returncode != 0
        assert (
            f"another Baton command (pid {first.pid}) runs the embedded Temporal on {settings.data_dir}"
            in second.stderr
        )
        assert first.poll() is None and port_open("127.0.0.1", GRPC_PORT)
        first.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(first.wait, 30) == 0
    finally:
        await _stop_dev(first, settings)


class _Dev(subprocess.Popen[str]):
    stderr_seen = ""
    """What it wrote on standard error until it was serving."""


async def _baton_dev(settings: BatonSettings) -> _Dev:
    """`baton dev`, once it serves; what it prints on standard error until then is kept."""
    command = [str(Path(sys.executable).with_name("baton")), "dev"]
    dev = _Dev(
        command, cwd=REPO, env=baton_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert dev.stdout and dev.stderr
    try:
        lines: list[str] = []
        async with asyncio.timeout(120):
            while not any("Ctrl-C stops" in line for line in lines):
                line = await asyncio.to_thread(dev.stdout.readline)
                assert line, f"baton dev ended early: {''.join(lines)}{dev.stderr.read()}"
                lines.append(line)
        os.set_blocking(dev.stderr.fileno(), False)
        seen = []
        with contextlib.suppress(BlockingIOError):  # nothing more for now
            while chunk := os.read(dev.stderr.fileno(), 1 << 16):
                seen.append(chunk)
        dev.stderr_seen = b"".join(seen).decode()
    except BaseException:
        await _stop_dev(dev, settings)
        raise
    return dev


async def _stop_dev(dev: subprocess.Popen[str], settings: BatonSettings) -> None:
    """Stop `baton dev` as Ctrl-C does, and whatever a failed test left of it."""
    if dev.poll() is None:
        dev.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(dev.wait, 30)
    dev.kill()
    dev.wait()
    for pid in _dev_servers_of(settings):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _dev_servers_of(settings: BatonSettings) -> list[int]:
    """The Temporal dev servers on this test's database file, as `baton dev` names it (resolved)."""
    database = os.fsencode((settings.data_dir / "temporal.db").resolve())
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if database in cmdline.read_bytes().split(b"\0"):
                found.append(int(cmdline.parent.name))
    return found


async def test_agent_and_orchestrate_honour_temporals_own_configuration(
    env: ProcessEnvironment, temporal, tmp_path: Path
) -> None:
    """TEMPORAL_ADDRESS and temporal.toml profiles apply where no BATON_TEMPORAL_* is set: the
    runs land on that server (its workers answer), not on an embedded one started instead."""
    address = temporal.client.service_client.config.target_host
    agent = await baton(
        env.settings, "agent", "run", "MarketAnalysis", "--input", "Robotics?", TEMPORAL_ADDRESS=address
    )
    profile = tmp_path / "temporal.toml"
    profile.write_text(f'[profile.default]\naddress = "{address}"\n')
    team = await baton(
        env.settings,
        "orchestrate",
        "sequential",
        "--agents",
        "DataExtraction,Analysis",
        "--task",
        "Q3 revenue 4.2M",
        TEMPORAL_CONFIG_FILE=str(profile),
    )

    for result, prefix in ((agent, "agent-MarketAnalysis-"), (team, "sequential-")):
        assert result.returncode == 0, result.stderr
        assert "embedded dev server" not in result.stdout
        run_id = prefix + result.stdout.split(f"/workflows/{prefix}")[1].split()[0]
        assert (await temporal.client.get_workflow_handle(run_id).describe()).status is not None
