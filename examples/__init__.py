"""The seed's processes, agents, tools and chat managers, runnable.

Nothing here is on by default: `with_examples(settings)` is what `baton demo` runs with, and this
repository's `baton.yaml` names the same modules and folder for commands run from its checkout.
"""

from __future__ import annotations

from pathlib import Path

from baton.settings import BatonSettings

AGENTS = Path(__file__).resolve().parent / "agents"
STEP_MODULES = ["baton.examples"]
TOOL_MODULES = ["baton.examples.tools"]
MANAGER_MODULES = ["baton.examples.managers"]


def with_examples(settings: BatonSettings) -> BatonSettings:
    """`settings` with the examples' steps, agents, tools and chat managers added."""

    def plus(current: list, extra: list) -> list:
        return [*current, *(item for item in extra if item not in current)]

    return settings.model_copy(
        update={
            "step_modules": plus(settings.step_modules, STEP_MODULES),
            "agent_dirs": plus(settings.agent_dirs, [AGENTS]),
            "tool_modules": plus(settings.tool_modules, TOOL_MODULES),
            "manager_modules": plus(settings.manager_modules, MANAGER_MODULES),
        }
    )
