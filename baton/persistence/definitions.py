"""Versioned process definitions in the app database: deploy adds a version, runs use the latest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from baton.errors import Conflict, NotFound

from ..agents.registry import AgentRegistry
from ..agents.spec import AgentSpec
from ..process.builder import Process, load_process
from ..process.model import ProcessDefinition
from ..settings import BatonSettings
from .db import as_utc
from .models import ProcessDefinitionRow
from .schema import Schema


class DefinitionNotFound(NotFound):
    """No deployed definition has this name (or version), or every version of it is retired."""


class DefinitionRetired(Conflict, ValueError):
    """The version asked for was retired: new runs cannot take it."""


@dataclass(frozen=True)
class DeployedDefinition:
    name: str
    version: int
    definition: ProcessDefinition
    created_at: datetime
    retired_at: datetime | None = None


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
        raise Conflict(f"could not deploy {definition.name!r}: too many concurrent deploys")

    async def get(self, name: str, version: int | None = None) -> DeployedDefinition:
        """The given version of a definition (retired or not), or the latest one not retired
        when `version` is None."""
        query = select(ProcessDefinitionRow).where(ProcessDefinitionRow.name == name)
        query = (
            query.where(ProcessDefinitionRow.version == version)
            if version is not None
            else query.where(ProcessDefinitionRow.retired_at.is_(None))
            .order_by(ProcessDefinitionRow.version.desc())
            .limit(1)
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

    async def load_process(
        self,
        name: str,
        settings: BatonSettings,
        version: int | None = None,
        agents: Mapping[str, AgentSpec] | None = None,
    ) -> Process:
        """The latest (or given) deployed version, validated against the step code `settings`
        allow and `agents` (default: read from `settings`' agent folders); `DefinitionRetired`
        for a retired version."""
        deployed = await self.get(name, version)
        if deployed.retired_at is not None:
            raise DefinitionRetired(
                f"version {deployed.version} of process {name!r} was retired on "
                f"{deployed.retired_at:%Y-%m-%d}; start the latest version instead"
            )
        agents = AgentRegistry.from_dirs(settings.agent_dirs) if agents is None else agents
        return load_process(deployed.definition, settings.step_modules, agents).with_version(deployed.version)

    async def retire(self, name: str, version: int) -> DeployedDefinition:
        """Retire a version: new runs no longer take it (runs of it keep it, they carry their
        definition). Retiring it again changes nothing."""
        await self._schema.ready()
        async with self._sessions() as session, session.begin():
            row = await session.scalar(
                select(ProcessDefinitionRow).where(
                    ProcessDefinitionRow.name == name, ProcessDefinitionRow.version == version
                )
            )
            if row is None:
                raise DefinitionNotFound(f"no deployed version {version} of process {name!r}")
            if row.retired_at is None:
                row.retired_at = datetime.now(UTC)
            return _deployed(row)

    async def latest(self) -> list[DeployedDefinition]:
        """The latest version, not retired, of every deployed definition, by name."""
        newest = (
            select(ProcessDefinitionRow.name, func.max(ProcessDefinitionRow.version).label("version"))
            .where(ProcessDefinitionRow.retired_at.is_(None))
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

    async def versions(self, name: str) -> list[DeployedDefinition]:
        """Every version of a definition, the retired ones included, oldest first."""
        await self._schema.ready()
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ProcessDefinitionRow)
                .where(ProcessDefinitionRow.name == name)
                .order_by(ProcessDefinitionRow.version)
            )
            return [_deployed(row) for row in rows]


def _deployed(row: ProcessDefinitionRow) -> DeployedDefinition:
    return DeployedDefinition(
        name=row.name,
        version=row.version,
        definition=ProcessDefinition.model_validate(row.definition),
        created_at=as_utc(row.created_at),
        retired_at=as_utc(row.retired_at) if row.retired_at is not None else None,
    )
