"""Errors of the process framework."""

from __future__ import annotations

from typing import Any

from baton.errors import InvalidRequest


class ProcessDefinitionError(InvalidRequest):
    """A process definition is invalid; `problems` lists every problem found, not just the first."""

    def __init__(self, process_name: str, problems: list[str]) -> None:
        self.process_name = process_name
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"process {process_name!r} has {len(problems)} {noun}:\n{listing}")

    @property
    def detail(self) -> str:
        return f"process {self.process_name!r} is invalid"

    def extensions(self) -> dict[str, Any]:
        return {"problems": self.problems}
