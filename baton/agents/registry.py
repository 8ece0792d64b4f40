"""The agent registry: agents from YAML files (one per file) and from Python, by name."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError

from baton.documents import load_yaml
from baton.errors import InvalidRequest, NotFound

from .spec import AgentSpec


class AgentDefinitionError(InvalidRequest):
    """An agent file that cannot be used; the message names the file and every bad field."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


class AgentNotFound(NotFound, KeyError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        super().__init__(f"no agent named {name!r}; known agents: {', '.join(sorted(known)) or 'none'}")

    def __str__(self) -> str:
        return str(self.args[0])


def load_agent_file(path: Path) -> AgentSpec:
    """The agent in one YAML file."""
    try:
        data = load_yaml(path.read_text())
    except yaml.YAMLError as e:
        raise AgentDefinitionError(path, [f"not valid YAML: {e}"]) from None
    if not isinstance(data, dict):
        raise AgentDefinitionError(path, ["expected a mapping of agent fields"])
    try:
        return AgentSpec.model_validate(data)
    except ValidationError as e:
        raise AgentDefinitionError(
            path, [f"{'.'.join(map(str, err['loc'])) or 'agent'}: {err['msg']}" for err in e.errors()]
        ) from None


class AgentRegistry(Mapping[str, AgentSpec]):
    """Agents by name. Folders are read in order, so a later folder can override an example."""

    def __init__(self, agents: Iterable[AgentSpec] = ()) -> None:
        self._agents: dict[str, AgentSpec] = {}
        for agent in agents:
            self.add(agent)

    @classmethod
    def from_dirs(cls, dirs: Iterable[Path]) -> AgentRegistry:
        registry = cls()
        for folder in dirs:
            if not folder.is_dir():
                raise AgentDefinitionError(folder, ["agent folder does not exist"])
            for path in sorted(folder.glob("*.yaml")):
                registry.add(load_agent_file(path))
        return registry

    def add(self, agent: AgentSpec) -> None:
        self._agents[agent.name] = agent

    def __getitem__(self, name: str) -> AgentSpec:
        try:
            return self._agents[name]
        except KeyError:
            raise AgentNotFound(name, self._agents) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._agents)

    def __len__(self) -> int:
        return len(self._agents)
