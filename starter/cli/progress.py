"""Step-by-step progress of a process run in the terminal, answering the events it waits for."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.panel import Panel
from rich.prompt import Prompt

from baton.process import ProcessResult, ProcessState
from baton.starter.cli.terminal import in_daemon_thread
from baton.starter.client import EventRejected, ProcessRun

POLL_INTERVAL_S = 0.2

Responder = Callable[[ProcessState], Awaitable[tuple[str, Any] | None]]
"""Given a waiting process, the event to send it (name and data), or None to keep waiting."""


class NoMoreAnswers(Exception):
    """The responder has nothing more to say (the terminal's input ended): the run goes on."""


async def follow_run(run: ProcessRun, console: Console, respond: Responder) -> ProcessResult:
    """Print each step as it completes, answer waits with `respond`, return the result.

    An answer the process refuses is shown and asked for again; `NoMoreAnswers` from the
    responder ends the following, not the run.
    """
    console.print(f"[bold]Run[/] {run.id}\n[bold]Temporal UI[/] {run.ui_url}")
    result_task = asyncio.ensure_future(run.result())
    seen_counts: dict[str, int] = {}
    answered_at: tuple[int, int] | None = None
    with console.status("starting…") as status:
        while True:
            finished = result_task.done()  # read before the state, so the last steps get printed
            state = await run.state()
            for step, record in state.steps.items():
                for n in range(seen_counts.get(step, 0) + 1, record.run_count + 1):
                    console.print(f"  [green]✓[/] {step} [dim](run {n})[/]")
                seen_counts[step] = record.run_count
            if finished:
                break
            if state.current:
                status.update(f"running {', '.join(state.current)}")
            waiting_at = (state.superstep, len(state.pending))
            if state.status == "waiting" and waiting_at != answered_at:
                status.update(f"waiting for {', '.join(state.accepted_events)}")
                status.stop()
                answer = await respond(state)
                status.start()
                if answer is not None:
                    name, data = answer
                    try:
                        accepted = await run.send_event(name, data)
                    except EventRejected as e:
                        console.print(f"  [red]✗ refused:[/] {escape(str(e))}")
                        continue  # nothing reached the run: ask again
                    console.print(f"  [cyan]→[/] sent {name} ({accepted.deliveries} delivery)")
                answered_at = waiting_at
            await asyncio.wait({result_task}, timeout=POLL_INTERVAL_S)
    return await result_task


def ask_person(console: Console) -> Responder:
    """A responder that asks the person at the terminal which event to send, with what JSON."""

    async def respond(state: ProcessState) -> tuple[str, Any] | None:
        console.print(f"[yellow]The process waits for an event:[/] {', '.join(state.accepted_events)}")
        for message in state.pending:
            console.print(
                f"  [dim]queued for {message.target.step}.{message.target.function}"
                f"({message.target.parameter}): {message.origin}[/]"
            )
        # The first event usually started the run; offer the next one.
        default = state.accepted_events[1 if len(state.accepted_events) > 1 else 0]
        while True:
            try:
                name = await in_daemon_thread(
                    Prompt.ask,
                    "Event to send",
                    choices=state.accepted_events,
                    default=default,
                    console=console,
                )
                raw = await in_daemon_thread(Prompt.ask, "Data (JSON)", default="null", console=console)
            except EOFError as e:
                raise NoMoreAnswers from e
            try:
                return name, json.loads(raw)
            except json.JSONDecodeError as e:
                console.print(f"[red]That is not JSON ({e.msg} at column {e.colno}); try again.[/]")

    return respond


def print_output(console: Console, result: ProcessResult) -> None:
    """The output of a finished run: a document as Markdown, anything else as JSON."""
    output = result.output
    if isinstance(output, dict) and isinstance(output.get("text"), str):
        console.print(Panel(Markdown(output["text"]), title=str(output.get("title", "output"))))
        rest = {k: v for k, v in output.items() if k != "text"}
        console.print_json(json.dumps(rest))
    else:
        console.print_json(json.dumps(output))
    console.print(f"[dim]{result.supersteps} supersteps; runs per step: {result.run_counts}[/]")
