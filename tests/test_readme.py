"""Every code block of README.md runs as written: the README is the product's front page.

Python blocks are notebook cells run in order in one interpreter, shell blocks are commands a
person types, YAML blocks are checked as the agent or process they declare. A block the test
must not run is exempted in the README itself, by a marker with its reason right before it:

    <!-- readme-test: skip, REASON -->
"""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from baton.agents import AgentRegistry, load_agent_file
from baton.process import load_process
from baton.settings import BatonSettings
from tests.conftest import baton_worker
from tests.test_cli import baton_env, run_in_repo

REPO = Path(__file__).parents[1]
README = REPO / "README.md"
FENCE = re.compile(r"^\s*```(?P<language>\S*)\s*$")  # indented too: in a list item
MARKER = re.compile(r"<!--\s*readme-test\b(?P<rest>.*?)-->", re.DOTALL)
SKIP = re.compile(r"^: skip, (?P<reason>\S.*\S)\s*$")
RUN_LIMIT_S = 180

# A command that waits for a person gets its answers on standard input.
ANSWERS = {
    "baton process run": 'ApprovalReceived\n{"approved": true}\n',
    "baton orchestrate group-chat": "Keep it to one sprint\n" * 20,
}

# Runs README cells the way Jupyter does with autoawait: each cell compiled with top-level await
# allowed and run in one namespace whose __name__ is __main__, so its classes are __main__'s.
NOTEBOOK_DRIVER = """
import ast, asyncio, inspect, json, sys


async def main(cells):
    namespace = {"__name__": "__main__"}
    for number, (line, cell) in enumerate(cells, 1):
        print(f"--- cell {number} (README.md line {line})", flush=True)
        code = compile(cell, f"README.md cell {number}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)
        if inspect.iscoroutine(result):
            await result


asyncio.run(main(json.loads(open(sys.argv[1]).read())))
"""


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # of the opening fence, 1-based
    section: str
    skip_reason: str | None


def readme_blocks() -> list[Block]:
    """The fenced blocks of README.md, each with the skip marker right before it, if any."""
    lines = README.read_text().splitlines()
    blocks: list[Block] = []
    section = ""
    i = 0
    while i < len(lines):
        if lines[i].startswith("## "):
            section = lines[i][3:].strip()
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("```")), None)
        assert end is not None, f"README.md line {i + 1}: the block is never closed"
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.fullmatch(previous.strip())
        reason = None
        if marker:
            skip = SKIP.match(marker["rest"])
            assert skip, f"README.md line {i}: a readme-test marker is ': skip, REASON', not {previous!r}"
            reason = skip["reason"]
        code = textwrap.dedent("\n".join(lines[i + 1 : end])) + "\n"
        blocks.append(Block(fence["language"], code, i + 1, section, reason))
        i = end + 1
    return blocks


def to_run(language: str) -> list[Block]:
    return [b for b in readme_blocks() if b.language == language and b.skip_reason is None]


def test_every_block_is_run_or_skipped_with_a_reason() -> None:
    """A new block must be Python, YAML or shell (which the tests below run), or be exempted by
    a marker that says why; and every marker sits right before a block."""
    blocks = readme_blocks()
    not_run = [
        f"README.md line {b.line}: a ```{b.language} block is neither run by this test nor skipped"
        for b in blocks
        if b.skip_reason is None and b.language not in ("python", "yaml", "sh")
    ]
    assert not not_run, "\n".join(not_run)
    markers = len(MARKER.findall(README.read_text()))
    skipped = [b for b in blocks if b.skip_reason is not None]
    assert markers == len(skipped), "a readme-test marker that is not right before a block"
    assert all(b.language == "sh" for b in skipped), "only commands that cannot run here are skipped"
    assert to_run("python") and to_run("yaml") and to_run("sh")


def test_yaml_blocks_are_the_agents_and_processes_they_declare(tmp_path: Path) -> None:
    """Checked with this checkout's configuration (baton.yaml): its step modules and agents."""
    config = yaml.safe_load((REPO / "baton.yaml").read_text())
    agents = AgentRegistry.from_dirs([REPO / d for d in config["agent_dirs"]])
    for block in to_run("yaml"):
        data = yaml.safe_load(block.code)
        if "routes" in data:
            process = load_process(block.code, config["step_modules"], agents)
            assert process.name == data["name"]
        elif "instructions" in data:
            path = tmp_path / f"line-{block.line}.yaml"
            path.write_text(block.code)
            assert load_agent_file(path).name == data["name"]
        else:
            pytest.fail(f"README.md line {block.line}: a YAML block that is neither an agent nor a process")


@contextmanager
def running_baton(temporal, settings: BatonSettings) -> Iterator[dict[str, str]]:
    """`baton worker` on the session's dev server for this test's queues (what `baton dev`
    runs), and the environment in which README code finds it."""
    address = temporal.client.service_client.config.target_host
    queues = [settings.workflows_queue, settings.llm_queue]
    worker = baton_worker(address, settings, queues)
    environment = baton_env(settings, BATON_TEMPORAL_ADDRESS=address)
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    try:
        yield environment
    finally:
        worker.terminate()
        worker.wait(30)


async def test_python_blocks_run_in_order_as_notebook_cells(temporal, settings, tmp_path: Path) -> None:
    cells = tmp_path / "cells.json"
    cells.write_text(json.dumps([(b.line, b.code) for b in to_run("python")]))
    driver = tmp_path / "notebook.py"
    driver.write_text(NOTEBOOK_DRIVER)
    with running_baton(temporal, settings) as environment:
        result = await run_in_repo(
            [sys.executable, str(driver), str(cells)], environment, timeout=RUN_LIMIT_S
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# Baton: durable AI-agent processes on Temporal\n\nRevision 1." in result.stdout
    assert "[simulated by Baton's local model]" in result.stdout  # the agents answered


def as_script() -> str:
    """The process example as the README says to run it from a file: its definition, then its
    `async with` block in `async def main()` under the main guard."""
    section = [b.code for b in to_run("python") if b.section == "A process in Python"]
    definition, run_block = section[0], next(c for c in section if "ProcessEnvironment(" in c)
    return (
        f"import asyncio\n\n{definition}\n\nasync def main() -> None:\n{textwrap.indent(run_block, '    ')}\n\n"
        'if __name__ == "__main__":\n    asyncio.run(main())\n'
    )


async def test_the_process_example_runs_as_a_script(settings, tmp_path: Path) -> None:
    """Its steps live in __main__; ProcessEnvironment's worker, in the same process, runs them."""
    script = tmp_path / "docs.py"
    script.write_text(as_script())
    result = await run_in_repo([sys.executable, str(script)], baton_env(settings), timeout=RUN_LIMIT_S)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.endswith("# Baton: durable AI-agent processes on Temporal\n\nRevision 1.\n")


MAIN_STEP_SCRIPT = """
import asyncio

from temporalio.client import WorkflowFailureError

from baton.process import ProcessBuilder, ProcessStep, StepContext, step_function
from baton.starter import BatonClient


class Shout(ProcessStep):
    @step_function
    async def shout(self, ctx: StepContext, text: str) -> str:
        return text.upper()


b = ProcessBuilder("Shout")
shout = b.add_step(Shout)
b.on_input_event("Start").send_event_to(shout)
shout.on_function_result().stop_process()
process = b.build()


async def main() -> None:
    baton = await BatonClient.connect()
    run = await baton.start_process(process, "Start", "hello")
    try:
        await run.result()
    except WorkflowFailureError as e:
        print(e.cause)


if __name__ == "__main__":
    asyncio.run(main())
"""


async def test_a_worker_in_another_process_refuses_steps_of_main_and_says_why(
    env, temporal, tmp_path: Path
) -> None:
    """A script's steps sent to a running Baton: its worker cannot import them, and the run
    fails at once with the reason rather than retrying."""
    script = tmp_path / "shout.py"
    script.write_text(MAIN_STEP_SCRIPT)
    address = temporal.client.service_client.config.target_host
    result = await run_in_repo(
        [sys.executable, str(script)],
        baton_env(env.settings, BATON_TEMPORAL_ADDRESS=address),
        timeout=RUN_LIMIT_S,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "step '__main__:Shout' is defined in __main__, so only a worker in the same process" in result.stdout
    )
    assert "(baton.testing.ProcessEnvironment) can run it" in result.stdout


async def test_shell_commands_run_as_written(temporal, settings) -> None:
    commands = [
        line.strip()
        for block in to_run("sh")
        for line in block.code.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    with running_baton(temporal, settings) as environment:
        for command in commands:
            stdin = next((a for prefix, a in ANSWERS.items() if command.startswith(prefix)), "")
            result = await run_in_repo(["sh", "-c", command], environment, stdin, RUN_LIMIT_S)
            assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
