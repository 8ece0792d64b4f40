"""Mermaid flowcharts of processes, for `baton process show` and the docs."""

from __future__ import annotations

import re

from .model import CompiledProcess, Route


def to_mermaid(process: CompiledProcess) -> str:
    """A `flowchart LR` with a node per step and an edge per routed target."""
    lines = ["flowchart LR"]
    for name in process.input_events:
        lines.append(f"    {_id('in', name)}([{_quote(name)}])")
    for step in process.steps.values():
        shape = {"process": "[[{}]]", "agent": "{{{{{}}}}}"}.get(step.kind, "[{}]").format(_quote(step.name))
        lines.append(f"    {_id('step', step.name)}{shape}")
    if any(r.stop for r in process.routes):
        lines.append("    end_node((end))")
    for route in process.routes:
        source = _id("in", route.name or "") if route.when == "input" else _id("step", route.source or "")
        trigger = _trigger(route)
        if route.stop:
            lines.append(
                f"    {source} -->|{_quote(trigger)}| end_node" if trigger else f"    {source} --> end_node"
            )
        for target in route.to:
            into = f"{target.function}({target.parameter or ''})"
            lines.append(
                f"    {source} -->|{_quote(f'{trigger} → {into}' if trigger else into)}| "
                f"{_id('step', target.step)}"
            )
    return "\n".join(lines) + "\n"


def _trigger(route: Route) -> str:
    """How an edge is labelled with what fires it; input edges start at the event's own node."""
    if route.when == "input":
        return ""
    return f"{route.when} {route.name}" if route.name else route.when


def _id(kind: str, name: str) -> str:
    return f"{kind}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"


def _quote(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'
