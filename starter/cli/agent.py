"""`baton agent run`: one agent, by name or ad hoc, on the running Temporal or an embedded one."""

from __future__ import annotations

import argparse
import contextlib

from pydantic import ValidationError
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from baton.agents import AgentNotFound, AgentRegistry, AgentRunResult, AgentSpec
from baton.security.pii import PiiPolicy
from baton.settings import BatonSettings, get_settings
from baton.starter.cli.usage import UsageError

console = Console()


def add_agent_commands(sub: argparse._SubParsersAction) -> None:
    agent = sub.add_parser("agent", help="run agents").add_subparsers(required=True, metavar="ACTION")
    p = agent.add_parser(
        "run",
        help="run one agent on an input and print its answer",
        description="Run a registered agent by NAME, or an ad-hoc one from --model and --instructions. "
        "Uses the configured Temporal (BATON_TEMPORAL_ADDRESS, TEMPORAL_ADDRESS or a temporal.toml "
        "profile), or 127.0.0.1:7233 when something listens there; "
        "otherwise starts an embedded dev server for the run.",
    )
    p.add_argument("name", nargs="?", help="a registered agent (see BATON_AGENT_DIRS)")
    p.add_argument("--input", required=True, help="what to ask the agent")
    p.add_argument("--model", help="provider:model for an ad-hoc agent, e.g. openai:gpt-4o-mini")
    p.add_argument("--instructions", help="system prompt of an ad-hoc agent")
    p.add_argument("--pii", choices=[p.value for p in PiiPolicy], help="PII policy (overrides the agent's)")
    p.add_argument("--temperature", type=float, help="sampling temperature (overrides the agent's)")
    p.set_defaults(handler=_agent_run)


def agent_from_args(args: argparse.Namespace, settings: BatonSettings) -> AgentSpec:
    """The agent the command line describes; a `ValueError` names what is wrong."""
    overrides = {k: v for k, v in {"pii": args.pii, "temperature": args.temperature}.items() if v is not None}
    if args.name:
        if args.instructions:
            raise UsageError("give an agent NAME or --instructions for an ad-hoc agent, not both")
        try:
            spec = AgentRegistry.from_dirs(settings.agent_dirs)[args.name]
        except AgentNotFound as e:
            raise UsageError(str(e)) from None
        fields = spec.model_dump() | overrides | ({"model": args.model} if args.model else {})
    else:
        if not args.instructions:
            raise UsageError(
                "name a registered agent, or give --instructions (and --model) for an ad-hoc one"
            )
        fields = {
            "name": "adhoc",
            "instructions": args.instructions,
            "model": args.model or "local:baton",
            **overrides,
        }
    try:
        return AgentSpec.model_validate(fields)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise UsageError(f"invalid agent: {problems}") from None


async def _agent_run(args: argparse.Namespace) -> int:
    from baton.starter.cli.connection import connect_or_embed
    from baton.starter.client import BatonClient

    settings = get_settings()
    spec = agent_from_args(args, settings)
    async with contextlib.AsyncExitStack() as stack:
        client = await connect_or_embed(settings, stack, console)
        baton = BatonClient(client, settings)
        stack.push_async_callback(baton.close)
        handle = await baton.start_agent(spec, args.input)
        with console.status(f"{spec.name} ({spec.model}) is working…"):
            result = await handle.result()
        print_answer(result, settings.workflow_url(handle.id, client.namespace))
    return 0


def print_answer(result: AgentRunResult, ui_url: str) -> None:
    # Text, not markup: answers hold brackets ("[EMAIL]", "[simulated …]") that are not styles.
    console.print(Panel(Text(result.answer), title=result.agent, title_align="left"))
    console.print(
        f"[dim]{result.llm_calls} LLM call(s), {result.tool_calls} tool call(s), "
        f"{result.usage.input_tokens} input / {result.usage.output_tokens} output tokens"
        + (" · simulated by the local model" if result.simulated else "")
        + "[/]"
    )
    console.print(f"[bold]Temporal UI[/] {ui_url}")
