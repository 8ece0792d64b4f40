"""Errors of the process framework."""

from __future__ import annotations


class ProcessDefinitionError(ValueError):
    """A process definition is invalid; `problems` lists every problem found, not just the first."""

    def __init__(self, process_name: str, problems: list[str]) -> None:
        self.process_name = process_name
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"process {process_name!r} has {len(problems)} {noun}:\n{listing}")
