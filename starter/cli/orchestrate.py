"""`baton orchestrate PATTERN`: a multi-agent run with its transcript shown as it grows."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import TYPE_CHECKING, Literal

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from baton.orchestration import ChatTurn, ManagerSpec, OrchestrationResult
from baton.settings import get_settings
from baton.starter.cli.terminal import in_daemon_thread
from baton.starter.cli.usage import UsageError

if TYPE_CHECKING:  # the client imports the workflows: loaded when a run starts, not for --help
    from baton.starter.client import BatonClient, OrchestrationRun

console = Console()
PATTERNS = ["sequential", "concurrent", "group-chat", "handoff", "magentic"]
POLL_INTERVAL_S = 0.3


def add_orchestrate_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "orchestrate",
        help="run agents together: sequential, concurrent, group-chat, handoff, magentic",
        description="Run registered agents as one durable orchestration, printing the transcript as it grows "
        "and asking you when the run waits for a person. Same Temporal as `baton agent run`.",
    )
    p.add_argument("pattern", choices=PATTERNS)
    p.add_argument(
        "--agents", required=True, help="comma-separated agent names, e.g. Developer,QA,BusinessAnalyst"
    )
    p.add_argument("--task", required=True, help="what the agents work on")
    p.add_argument(
        "--manager",
        default="round-robin",
        help="group-chat: round-robin, llm (the ProjectManager agent) or a registered custom manager; "
        "magentic: the planning agent (default ProjectManager)",
    )
    p.add_argument("--max-rounds", type=int, help="group-chat and magentic: the most rounds")
    p.add_argument("--aggregator", help="concurrent: an agent that combines the answers")
    p.add_argument("--continue-on-failure", action="store_true", help="concurrent: keep what succeeded")
    p.add_argument("--pass-transcript", action="store_true", help="sequential: every agent sees all answers")
    p.add_argument("--ask-every", type=int, help="group-chat: ask you for input every N rounds")
    p.add_argument("--routes", help="handoff: 'A:B,C;B:A' (default: anyone to anyone)")
    p.set_defaults(handler=_orchestrate)


async def _orchestrate(args: argparse.Namespace) -> int:
    from baton.starter.cli.connection import connect_or_embed
    from baton.starter.client import BatonClient

    settings = get_settings()
    names = [n.strip() for n in args.agents.split(",") if n.strip()]
    if not names:
        raise UsageError("--agents names no agent")
    async with contextlib.AsyncExitStack() as stack:
        client = await connect_or_embed(settings, stack, console)
        baton = BatonClient(client, settings)
        stack.push_async_callback(baton.close)
        try:
            run = await _start(baton, args, names)
        except KeyError as e:  # an unknown agent name: the registry's message lists the known ones
            raise UsageError(str(e)) from None
        console.print(f"[bold]Run[/] {run.id}\n[bold]Temporal UI[/] {run.ui_url}")
        result = await _follow(run)
    console.print(Panel(Text(result.answer), title="answer", title_align="left"))
    console.print(
        f"[dim]{result.rounds} round(s) · {result.termination} · "
        f"{result.usage.input_tokens} input / {result.usage.output_tokens} output tokens[/]"
    )
    return 0


async def _start(baton: BatonClient, args: argparse.Namespace, names: list[str]) -> OrchestrationRun:
    rounds = {"max_rounds": args.max_rounds} if args.max_rounds else {}
    if args.pattern == "sequential":
        return await baton.run_sequential(args.task, names, pass_transcript=args.pass_transcript).start()
    if args.pattern == "concurrent":
        on_failure: Literal["fail", "continue"] = "continue" if args.continue_on_failure else "fail"
        return await baton.run_concurrent(
            args.task, names, aggregator=args.aggregator, on_failure=on_failure
        ).start()
    if args.pattern == "group-chat":
        if args.manager == "round-robin":
            manager = ManagerSpec(ask_human_every=args.ask_every)
        elif args.manager == "llm":
            manager = ManagerSpec(
                kind="llm", agent=baton.agents["ProjectManager"], ask_human_every=args.ask_every
            )
        else:
            manager = ManagerSpec(kind="custom", name=args.manager, ask_human_every=args.ask_every)
        return await baton.run_group_chat(args.task, names, manager=manager, **rounds).start()
    if args.pattern == "handoff":
        return await baton.run_handoff(args.task, names, routes=_routes(args.routes)).start()
    planner = "ProjectManager" if args.manager == "round-robin" else args.manager
    return await baton.run_magentic(args.task, names, manager=planner, **rounds).start()


def _routes(text: str | None) -> dict[str, list[str]] | None:
    if not text:
        return None
    routes: dict[str, list[str]] = {}
    for part in text.split(";"):
        source, sep, targets = part.partition(":")
        if not sep or not source.strip():
            raise UsageError(f"--routes part {part!r} is not SOURCE:TARGET,TARGET")
        routes[source.strip()] = [t.strip() for t in targets.split(",") if t.strip()]
    return routes


async def _follow(run: OrchestrationRun) -> OrchestrationResult:
    """Print turns as they join the transcript, ask the person when the run waits, return the result."""
    result_task = asyncio.ensure_future(run.result())
    shown = 1  # the task itself
    asked: str | None = None
    with console.status("working…") as status:
        while True:
            finished = result_task.done()  # read before the progress, so the last turns get printed
            progress = await run.progress()
            for turn in progress.transcript[shown:]:
                _print_turn(turn)
            shown = len(progress.transcript)
            if finished:
                break
            status.update(f"round {progress.round}")
            if progress.waiting_for and progress.waiting_for != asked:
                asked = progress.waiting_for
                status.stop()
                reply = await in_daemon_thread(_read_line, f"{progress.waiting_for}\n> ")
                status.start()
                if reply:
                    await run.reply(reply)
            await asyncio.wait({result_task}, timeout=POLL_INTERVAL_S)
    return await result_task


def _read_line(prompt: str) -> str | None:
    console.print(f"[bold cyan]?[/] {escape(prompt)}", end="")
    try:
        return input().strip() or None
    except EOFError:  # nobody at the terminal: the run's own timeout decides
        return None


def _print_turn(turn: ChatTurn) -> None:
    first_line = turn.content.strip().splitlines()[0] if turn.content.strip() else ""
    preview = first_line if len(first_line) <= 160 else first_line[:157] + "…"
    colour = "magenta" if turn.speaker == "manager" else "cyan" if turn.speaker == "user" else "green"
    console.print(f"  [dim]round {turn.round}[/] [{colour}]{escape(turn.speaker)}[/]: {escape(preview)}")
