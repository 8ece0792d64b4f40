"""Versioned process definitions in the app database: deploy adds a version, runs use the latest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from ..agents.registry import AgentRegistry
from ..process.builder import Process, load_process
from ..process.model import ProcessDefinition
from ..settings import BatonSettings
from .db import as_utc
from .models import ProcessDefinitionRow
from .schema import Schema


class DefinitionNotFound(LookupError):
    """No deployed definition has this name (or version)."""


@dataclass(frozen=True)
class DeployedDefinition:
    name: str
    version: int
    definition: ProcessDefinition
    created_at: datetime


class DefinitionStore:
    """Reads and writes deployed process definitions (the embedded SQLite migrates on first use)."""

    def __init__(self, schema: Schema) -> None:
        self._schema = schema
        self._sessions = async_sessionmaker(schema.engine, expire_on_commit=False)

    async def deploy(self, definition: ProcessDefinition) -> int:
        """Store `definition` as the next version of its name and return that version.

        Validate the definition first (`load_process`); this stores what it is given.
        """
        await self._schema.ready()
        for _ in range(5):  # a concurrent deploy of the same name takes the number: try the next
            async with self._sessions() as session:
                latest = await session.scalar(
                    select(func.max(ProcessDefinitionRow.version)).where(
                        ProcessDefinitionRow.name == definition.name
                    )
                )
                version = (latest or 0) + 1
                session.add(
                    ProcessDefinitionRow(
                        name=definition.name,
                        version=version,
                        definition=definition.model_dump(mode="json", by_alias=True),
                    )
                )
                try:
                    await session.commit()
                except IntegrityError:
                    continue
                return version
        raise RuntimeError(f"could not deploy {definition.name!r}: too many concurrent deploys")

    async def get(self, name: str, version: int | None = None) -> DeployedDefinition:
        """The given version of a definition, or the latest when `version` is None."""
        query = select(ProcessDefinitionRow).where(ProcessDefinitionRow.name == name)
        query = (
            query.where(ProcessDefinitionRow.version == version)
            if version is not None
            else query.order_by(ProcessDefinitionRow.version.desc()).limit(1)
        )
        await self._schema.ready()
        async with self._sessions() as session:
            row = await session.scalar(query)
        if row is None:
            which = f"version {version} of " if version is not None else ""
            raise DefinitionNotFound(
                f"no deployed {which}process {name!r}; deploy it with 'baton process deploy'"
            )
        return _deployed(row)

    async def load_process(self, name: str, settings: BatonSettings, version: int | None = None) -> Process:
        """The latest (or given) deployed version, validated against the step code and agents
        `settings` allow."""
        deployed = await self.get(name, version)
        agents = AgentRegistry.from_dirs(settings.agent_dirs)
        return load_process(deployed.definition, settings.step_modules, agents).with_version(deployed.version)

    async def latest(self) -> list[DeployedDefinition]:
        """The latest version of every deployed definition, by name."""
        newest = (
            select(ProcessDefinitionRow.name, func.max(ProcessDefinitionRow.version).label("version"))
            .group_by(ProcessDefinitionRow.name)
            .subquery()
        )
        await self._schema.ready()
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ProcessDefinitionRow)
                .join(
                    newest,
                    (ProcessDefinitionRow.name == newest.c.name)
                    & (ProcessDefinitionRow.version == newest.c.version),
                )
                .order_by(ProcessDefinitionRow.name)
            )
            return [_deployed(row) for row in rows]

    async def versions(self, name: str) -> list[int]:
        await self._schema.ready()
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ProcessDefinitionRow.version)
                .where(ProcessDefinitionRow.name == name)
                .order_by(ProcessDefinitionRow.version)
            )
            return list(rows)


def _deployed(row: ProcessDefinitionRow) -> DeployedDefinition:
    return DeployedDefinition(
        name=row.name,
        version=row.version,
        definition=ProcessDefinition.model_validate(row.definition),
        created_at=as_utc(row.created_at),
    )
