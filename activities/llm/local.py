"""`local`: Baton's built-in deterministic model, for the demo and tests.

It needs no network and answers the same request the same way every time. Its answers fit the
agent's role (taken from its instructions), follow a requested outline (a line `Sections: A; B`
gets one heading per section), call tools when the agent has them, and always say they are
simulated.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from baton.llm import ChatMessage, LlmRequest, LlmResponse, ToolCall, ToolSpec, Usage

SIMULATED = "[simulated by Baton's local model]"
_SECTIONS = re.compile(r"^\s*Sections:\s*(.+)$", re.MULTILINE | re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][A-Za-z-]{3,}")
_STOP = frozenset(
    "this that with from your have will what when which about into their there these those them then than "
    "also been were they each other such more most only over some very just like make made the and for you "
    "are please write answer given using used should would could task give view".split()
)


class LocalModel:
    endpoint = "local"

    async def complete(
        self, request: LlmRequest, tools: list[ToolSpec], model: str, on_chunk: Any
    ) -> LlmResponse:
        return respond(request, tools, model)


def respond(request: LlmRequest, tools: list[ToolSpec], model: str = "baton") -> LlmResponse:
    """The local model's answer to `request`: a tool call, or a final text."""
    system = "\n".join(m.content for m in request.messages if m.role == "system")
    turn = _current_turn(request.messages)
    task = next((m.content for m in reversed(turn) if m.role == "user"), "")
    tool_results = [m for m in turn if m.role == "tool"]
    if (decision := _manager_decision(task)) is not None:
        return _response(ChatMessage(role="assistant", content=decision), request, model)
    names = {t.name for t in tools}
    handed_off = any(f"handed off to {request.agent}" in m.content for m in request.messages)
    if "complete_task" in names and handed_off:
        answer = _answer(request.agent, system, task, tool_results)
        call = ToolCall(
            id=f"call_{_digest(task, 'complete')[:12]}",
            name="complete_task",
            arguments=json.dumps({"answer": answer}),
        )
        return _response(
            ChatMessage(role="assistant", tool_calls=[call]), request, model, finish="tool_calls"
        )
    if tools and not tool_results:
        tool = _pick_tool(tools, task)
        call = ToolCall(
            id=f"call_{_digest(task, tool.name)[:12]}",
            name=tool.name,
            arguments=json.dumps(_arguments(tool, task)),
        )
        message = ChatMessage(role="assistant", tool_calls=[call])
        return _response(message, request, model, finish="tool_calls")
    text = _answer(request.agent, system, task, tool_results)
    return _response(ChatMessage(role="assistant", content=text), request, model)


def _manager_decision(task: str) -> str | None:
    """Answers to the questions Baton's orchestration managers ask, decided by who spoke least."""
    choose = re.search(r"Choose one of: ([^.\n]+)\.", task)
    participants = re.search(r"^Participants: (.+)$", task, re.MULTILINE)
    listing = choose or participants
    if listing is None:
        return None
    names = [n.strip() for n in listing.group(1).split(",")]
    spoken = {n: len(re.findall(rf"^- {re.escape(n)}:", task, re.MULTILINE)) for n in names}
    least = min(names, key=lambda n: spoken[n])
    everyone_spoke = min(spoken.values()) > 0
    if task.startswith("PROGRESS LEDGER"):
        topics = ", ".join(_keywords(task.split("\n", 2)[1], 3))
        return json.dumps(
            {
                "is_request_satisfied": everyone_spoke,
                "is_in_loop": False,
                "is_progress_being_made": True,
                "next_speaker": least,
                "instruction": f"Give your view on {topics}.",
            }
        )
    if choose:
        return least
    if "Answer yes or no" in task:
        return "yes" if everyone_spoke else "no"
    return None


def _current_turn(messages: list[ChatMessage]) -> list[ChatMessage]:
    """The messages since the last user message, that message included."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            return messages[i:]
    return messages


def _answer(agent: str, system: str, task: str, tool_results: list[ChatMessage]) -> str:
    role = _role(agent, system)
    topics = _keywords(task.replace(SIMULATED, ""), 4)  # not the label of another agent's answer
    subject = ", ".join(topics) if topics else "the request"
    lines = [f"{SIMULATED} {role} on {subject}."]
    if sections := _SECTIONS.search(task):
        facts = _facts(task)
        for section in (s.strip() for s in re.split(r"[;,]", sections.group(1))):
            if section:
                lines += ["", f"## {section}", _section(role, section, topics, facts)]
    else:
        lines += ["", _sentence(role, "the request", topics)]
        for i, topic in enumerate(topics[:3], 1):
            lines.append(f"{i}. {topic.capitalize()}: {_sentence(role, topic, topics)}")
    for result in tool_results:
        lines += ["", f"Using {result.name or 'a tool'}: {result.content[:200]}"]
    return "\n".join(lines)


def _role(agent: str, system: str) -> str:
    """`Analysis agent`, or the role the instructions give (`You are a market analyst.`)."""
    found = re.search(r"\byou are (?:an? |the )?([^.,;\n]{3,60})", system, re.IGNORECASE)
    if found:
        role = found.group(1).strip()
        return role[0].upper() + role[1:]
    return f"{agent} agent" if agent else "Assistant"


def _facts(task: str) -> dict[str, str]:
    """`Key: value` lines of the task, by lower-case key (`summary`, `features`, ...)."""
    return {
        k.strip().lower(): v.strip()
        for k, v in re.findall(r"^\s*([A-Za-z ]{3,30}):\s*(.+)$", task, re.MULTILINE)
    }


def _section(role: str, section: str, topics: list[str], facts: dict[str, str]) -> str:
    """A section's text: what the task says about it when it says something, else a remark."""
    key = section.lower()
    known = facts.get(key) or (facts.get("summary") if key in ("overview", "introduction") else None)
    if known and key == "features":
        return "\n".join(f"- {item.strip()}" for item in known.split(";") if item.strip())
    if known:
        return known
    return _sentence(role, section.lower(), topics)


_REMARKS = (
    "For {focus}, the priority is {topic}: it shapes the outcome most.",
    "On {focus}: settle {topic} first, and the details follow from it.",
    "{Focus} depends mainly on {topic}; start there and keep it short.",
    "A practical next step for {focus} is to make {topic} explicit early.",
    "The main risk in {focus} lies around {topic}, and it is manageable.",
)


def _sentence(role: str, focus: str, topics: list[str]) -> str:
    template = _REMARKS[int(_digest(role, focus)[:4], 16) % len(_REMARKS)]
    topic = next((t for t in topics if t != focus), "the essentials")
    return template.format(focus=focus, Focus=focus[0].upper() + focus[1:], topic=topic)


def _keywords(text: str, limit: int) -> list[str]:
    seen: dict[str, None] = {}
    for word in _WORD.findall(text):
        lower = word.lower()
        if lower not in _STOP and not lower.startswith("section"):
            seen.setdefault(lower)
        if len(seen) == limit:
            break
    return list(seen)


def _pick_tool(tools: list[ToolSpec], task: str) -> ToolSpec:
    """The tool whose name or description shares most words with the task; the first on ties."""
    words = set(_keywords(task, 50))

    def overlap(tool: ToolSpec) -> int:
        return len(words & set(_keywords(f"{tool.name.replace('_', ' ')} {tool.description}", 50)))

    return max(tools, key=overlap)


def _arguments(tool: ToolSpec, task: str) -> dict[str, Any]:
    """Plausible arguments for `tool` from its JSON schema: text from the task, numbers found in it."""
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", task)]
    properties: dict[str, Any] = tool.parameters.get("properties", {})
    args: dict[str, Any] = {}
    for name, schema in properties.items():
        kind = schema.get("type")
        if kind in ("number", "integer"):
            value = numbers.pop(0) if numbers else 1
            args[name] = int(value) if kind == "integer" else value
        elif kind == "boolean":
            args[name] = True
        elif kind == "array":
            args[name] = _keywords(task, 3)
        elif "enum" in schema:
            args[name] = schema["enum"][0]
        else:
            args[name] = " ".join(_keywords(task, 3)) or task[:80]
    return args


def _response(message: ChatMessage, request: LlmRequest, model: str, finish: str = "stop") -> LlmResponse:
    prompt = sum(len(m.content) + len(m.tool_calls) * 20 for m in request.messages)
    produced = len(message.content) + sum(len(c.arguments) for c in message.tool_calls)
    return LlmResponse(
        message=message,
        usage=Usage(input_tokens=max(1, prompt // 4), output_tokens=max(1, produced // 4)),
        finish_reason=finish,
        model=f"local:{model}",
        simulated=True,
    )


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
