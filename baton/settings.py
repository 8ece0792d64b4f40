"""Configuration, read once: `BATON_*` environment variables, then an optional `baton.yaml`.

Temporal's own environment configuration (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, profiles in
`temporal.toml`) applies where no `BATON_TEMPORAL_*` value is set, so existing tooling carries over.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)


class BatonSettings(BaseSettings):
    """Everything Baton reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="BATON_", yaml_file="baton.yaml", extra="forbid", validate_default=True
    )

    data_dir: Path = Field(Path(".baton"), description="Where the embedded defaults keep their files.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy async URL of the app database, e.g. "
        "postgresql+asyncpg://user@host/db. Default: SQLite under data_dir.",
    )
    database_pool_size: int = Field(10, ge=1, description="Pooled connections per process (PostgreSQL).")

    temporal_address: str | None = Field(None, description="host:port of the Temporal frontend.")
    temporal_namespace: str | None = Field(None, description="Temporal namespace.")
    temporal_tls: bool = Field(False, description="Connect to Temporal over TLS.")
    temporal_tls_cert: Path | None = Field(None, description="Client certificate (PEM) for mTLS.")
    temporal_tls_key: Path | None = Field(None, description="Client private key (PEM) for mTLS.")
    temporal_tls_ca: Path | None = Field(None, description="CA bundle (PEM) that signs the server.")
    temporal_api_key: str | None = Field(None, description="API key, for Temporal Cloud.", repr=False)
    temporal_ui_url: str = Field("http://127.0.0.1:8233", description="Base URL of the Temporal UI.")

    workflows_queue: str = Field("baton-workflows", min_length=1)
    steps_queue: str = Field("baton-steps", min_length=1)
    llm_queue: str = Field("baton-llm", min_length=1)
    compliance_queue: str = Field("baton-compliance", min_length=1)

    step_modules: list[str] = Field(
        default_factory=lambda: ["examples"],
        description="Modules (and their submodules) that process steps may be imported from.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls))

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'baton.db'}"

    @property
    def all_queues(self) -> list[str]:
        return [self.workflows_queue, self.steps_queue, self.llm_queue, self.compliance_queue]

    def workflow_url(self, workflow_id: str, namespace: str = "default") -> str:
        """Link to a run in the Temporal UI."""
        return f"{self.temporal_ui_url.rstrip('/')}/namespaces/{namespace}/workflows/{workflow_id}"


@lru_cache(maxsize=1)
def get_settings() -> BatonSettings:
    """The process-wide settings, read on first use."""
    return BatonSettings()
