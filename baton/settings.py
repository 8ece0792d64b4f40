"""Configuration, read once: `BATON_*` environment variables, then an optional `baton.yaml`.

Temporal's own environment configuration (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, profiles in
`temporal.toml`) applies where no `BATON_TEMPORAL_*` value is set, so existing tooling carries over.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)


def user_data_dir() -> Path:
    """`$XDG_DATA_HOME/baton`, else `~/.local/share/baton`: the same folder whatever the current one."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "baton"


WORKFLOW_CACHE_SIZE = 5_000
"""Runs a worker caches by default: ~330 MB at the ~66 KB a waiting run takes (docs/BENCHMARKS.md),
well inside the 2 GiB the Helm chart gives a worker."""

SECRETS_DIR_VARIABLE = "BATON_SECRETS_DIR"
"""A folder of files named after settings (`baton_database_url`, `baton_openai_api_key`), each
holding the value: secrets mounted as files (Kubernetes) rather than put in the environment, which
child processes inherit and crash reports copy. The environment wins over a file."""


class BatonSettings(BaseSettings):
    """Everything Baton reads from its environment (and, for secrets, `BATON_SECRETS_DIR`)."""

    # hide_input_in_errors: a mistyped key or URL must not reach a terminal or a log in the error.
    model_config = SettingsConfigDict(
        env_prefix="BATON_",
        yaml_file="baton.yaml",
        extra="forbid",
        validate_default=True,
        hide_input_in_errors=True,
    )

    data_dir: Path = Field(
        default_factory=lambda: user_data_dir(),
        description="Where the embedded defaults keep their files (keyring, SQLite databases, dev issuer): "
        "one folder per user, so every `baton` command on this machine shares them.",
    )
    log_level: str = Field(
        "WARNING",
        pattern=r"^(?i:DEBUG|INFO|WARNING|ERROR|CRITICAL)$",
        description="Log level of the `baton` command and its workers; PII is masked in every line.",
    )
    log_format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="JSON lines (one schema, for a log pipeline) or text; auto: text when stderr is "
        "a terminal, JSON otherwise (a container).",
    )
    database_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy async URL of the app database, e.g. "
        "postgresql+asyncpg://user@host/db. Default: SQLite under data_dir.",
    )
    database_pool_size: int = Field(10, ge=1, description="Pooled connections per process (PostgreSQL).")
    database_timeout_seconds: float = Field(
        30,
        gt=0,
        description="Longest a connection to PostgreSQL, or one statement, may wait for the server: a "
        "server that stops answering (a partition) fails calls with Unavailable after this, rather "
        "than holding them for ever.",
    )

    temporal_address: str | None = Field(None, description="host:port of the Temporal frontend.")
    temporal_namespace: str | None = Field(None, description="Temporal namespace.")
    temporal_tls: bool = Field(False, description="Connect to Temporal over TLS.")
    temporal_tls_cert: Path | None = Field(None, description="Client certificate (PEM) for mTLS.")
    temporal_tls_key: Path | None = Field(None, description="Client private key (PEM) for mTLS.")
    temporal_tls_ca: Path | None = Field(None, description="CA bundle (PEM) that signs the server.")
    temporal_api_key: SecretStr | None = Field(None, description="API key, for Temporal Cloud.")
    temporal_ui_url: str = Field("http://127.0.0.1:8233", description="Base URL of the Temporal UI.")

    workflows_queue: str = Field("baton-workflows", min_length=1)
    steps_queue: str | None = Field(
        None,
        min_length=1,
        description="Queue of step activities without a queue of their own; unset: the workflows "
        "queue, where Temporal hands a step straight to the worker whose workflow scheduled it "
        "(eager dispatch) instead of through the matching service. Set it to give steps a fleet of "
        "their own.",
    )
    llm_queue: str = Field("baton-llm", min_length=1)
    compliance_queue: str = Field("baton-compliance", min_length=1)
    step_activity_types: bool = Field(
        False,
        description="Runs this client starts schedule each step function as an activity type of "
        "its own, `<step>/<function>`, which the Temporal UI and the SDK's metrics show, with a "
        "smaller history (no summary payload); otherwise `baton.run_step`. Every worker of this "
        "release runs both: turn it on once no worker of an earlier release is left.",
    )

    # Nothing of the examples by default: a deployment names its own modules and folders. The
    # demo adds the examples itself, and this repository's baton.yaml names them for its checkout.
    step_modules: list[str] = Field(
        default_factory=list,
        description="Modules (and their submodules) that process steps may be imported from.",
    )

    agent_dirs: list[Path] = Field(
        default_factory=list,
        description="Folders of agent YAML files (`*.yaml`), loaded in order; a later name replaces an earlier one.",
    )
    tool_modules: list[str] = Field(
        default_factory=list,
        description="Modules the LLM worker imports so their `@tool` functions are registered.",
    )

    manager_modules: list[str] = Field(
        default_factory=list,
        description="Modules the workflow worker imports so their @chat_manager classes are registered.",
    )

    openai_base_url: str = Field(
        "https://api.openai.com/v1", description="OpenAI-compatible endpoint (`openai:` models)."
    )
    openai_api_key: SecretStr | None = None
    azure_openai_endpoint: str | None = Field(
        None, description="https://NAME.openai.azure.com; `azure:DEPLOYMENT` models use it."
    )
    azure_openai_api_key: SecretStr | None = None
    azure_openai_api_version: str = "2024-10-21"
    ollama_base_url: str = Field("http://127.0.0.1:11434/v1", description="Ollama's OpenAI-compatible API.")
    vllm_base_url: str = Field("http://127.0.0.1:8000/v1", description="vLLM's OpenAI-compatible API.")
    vllm_api_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_api_key: SecretStr | None = None
    llm_timeout_seconds: float = Field(120, gt=0, description="Longest one LLM call may take.")
    llm_rate_limit: float | None = Field(
        None, gt=0, description="LLM calls started per second across the whole LLM queue (all workers)."
    )

    breaker_failures: int = Field(
        5, ge=1, description="Consecutive failures that open an endpoint's breaker."
    )
    breaker_open_seconds: float = Field(30, gt=0, description="How long an open breaker fails fast.")

    redis_url: SecretStr | None = Field(
        None, description="redis://host:port/db: the L2 response cache and shared breaker state."
    )
    cache_ttl_seconds: float = Field(3600, gt=0, description="How long a cached LLM response stays valid.")
    cache_max_entries: int = Field(1024, ge=1, description="Responses kept in each process's L1 cache.")

    encryption_keys: dict[str, SecretStr] | None = Field(
        None,
        description="Keys from the environment: JSON {key-id: base64 key}; the current one is "
        "encryption_key_current. For secrets injected as variables.",
    )
    encryption_key_current: str | None = Field(None, description="Which of encryption_keys encrypts.")
    encryption_derivation_secret: SecretStr | None = Field(
        None,
        description="With encryption_keys: 32 random bytes in base64 that data-subject references, "
        "pseudonyms and cache keys are derived from. Never change it.",
    )
    keys_dir: Path | None = Field(
        None,
        description="A folder of key files (`<id>.key` in base64, `current` naming the active one), e.g. a "
        "mounted Kubernetes secret. Default: a keyring file in data_dir, created on first use.",
    )
    compress_above_bytes: int = Field(
        1024, ge=0, description="Payloads bigger than this are compressed before they are encrypted."
    )

    oidc_issuer: str | None = Field(
        None,
        description="OIDC issuer whose tokens the codec server (and API) accept. Default: the dev issuer.",
    )
    oidc_audience: str = Field("baton", description="The audience tokens must be issued for.")
    api_tenant_claim: str | None = Field(
        None,
        min_length=1,
        description="The access-token claim that names the caller's tenant (e.g. `tid`). When set, "
        "every token must carry it; callers see and start only their tenant's runs, and another "
        "tenant's run answers 404. Unset: one tenant.",
    )
    api_rate_limit: int = Field(
        600,
        ge=1,
        description="HTTP API calls a principal may make per minute (shared by every API process "
        "through Redis when BATON_REDIS_URL is set); more get 429 with Retry-After.",
    )

    @field_validator("oidc_issuer")
    @classmethod
    def _issuer_over_https(cls, issuer: str | None) -> str | None:
        """Keys fetched over plain HTTP could be anyone's: HTTPS, except on this machine."""
        if issuer is None:
            return None
        url = urlsplit(issuer)
        if url.scheme == "https" or (url.scheme == "http" and loopback_host(url.hostname or "")):
            return issuer
        raise ValueError(f"the OIDC issuer {issuer!r} must be an https:// URL (http:// only on loopback)")

    oidc_roles_claim: str = Field("roles", description="The claim that lists a token's roles.")
    alert_webhook_url: SecretStr | None = Field(
        None,
        description="Where alerts of suspicious activity are POSTed as JSON (retried until taken). "
        "Unset: they are logged and audited only.",
    )
    alert_window_seconds: int = Field(300, ge=10, description="The window alert thresholds count over.")
    alert_denied: int = Field(
        10, ge=1, description="Alert when one principal is refused more often than this."
    )
    alert_decoded_payloads: int = Field(
        1000, ge=1, description="Alert when one principal decrypts or exports more payloads than this."
    )
    alert_erasures: int = Field(50, ge=1, description="Alert when more subjects than this are erased.")
    alert_key_operations: int = Field(
        5, ge=1, description="Alert when keys are rotated more often than this."
    )
    exports_dir: Path | None = Field(
        None,
        description="Where data-subject access exports are written, sealed with the keyring "
        "(default: <data dir>/exports). Shared storage when several compliance workers run.",
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Where `baton worker` serves `/metrics` (Prometheus), `/healthz` and `/readyz`; unset: "
        "not served. The API and the codec server serve `/metrics` on their own port.",
    )
    metrics_host: str = Field("127.0.0.1", description="The address the worker's metrics listen on.")
    worker_shutdown_seconds: float = Field(
        0,
        ge=0,
        le=3600,
        description="How long a stopping worker (SIGTERM) lets its running activities finish before "
        "it cancels them; a cancelled one is retried on another worker. The Helm chart sets 60, "
        "with the pod's termination grace period longer still.",
    )
    workflow_cache_size: int = Field(
        WORKFLOW_CACHE_SIZE,
        ge=0,
        description="Runs a worker keeps in memory between their workflow tasks (Temporal's sticky "
        "cache), per workflow-running queue. A run that is not cached replays its history when "
        "its next event comes. 0 caches none. docs/SCALING.md sizes it.",
    )
    telemetry_content: bool = Field(
        False,
        description="Put prompts and answers in LLM spans and agent-execution log records: always "
        "PII-masked and cut to 1,000 characters. Off: only names, sizes and outcomes.",
    )
    memory_warning_mb: int = Field(
        1024,
        ge=1,
        description="A process whose resident memory passes this logs a warning (the seed's 1 GB).",
    )
    client_roles: list[str] = Field(
        default_factory=list,
        description="Roles a BatonClient acts with when it is given none (the CLI, scripts): runs "
        "it starts may use the agents these admit. Such a client holds Baton's keys, so it is "
        "trusted as far as the API is.",
    )
    codec_roles: list[str] = Field(
        default_factory=lambda: ["Admin"],
        description="Roles allowed to decrypt payloads through the codec server.",
    )
    codec_encode: bool = Field(
        False,
        description="Let the codec server encrypt (POST /encode), for input typed into the Temporal UI. "
        "It seals with the master key, as it cannot know the run: erasing a data subject does not "
        "shred what a person typed for their runs.",
    )
    codec_cors_origins: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:8233", "http://localhost:8233"],
        description="Origins (the Temporal UI) allowed to call the codec server from a browser.",
    )

    payload_offload_bytes: int = Field(
        32 * 1024,
        ge=1024,
        description="Payloads at least this big are stored, encrypted, in the app database and passed "
        "to Temporal by reference.",
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
        secrets_dir = os.environ.get(SECRETS_DIR_VARIABLE)
        if not secrets_dir:
            return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls))
        if not Path(secrets_dir).is_dir():
            raise ValueError(f"{SECRETS_DIR_VARIABLE}={secrets_dir!r} is not a folder")
        secrets = SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir)
        return (init_settings, env_settings, secrets, YamlConfigSettingsSource(settings_cls))

    @property
    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite+aiosqlite:///{self.data_dir / 'baton.db'}"

    @property
    def keyring_path(self) -> Path:
        return self.data_dir / "keyring.json"

    @property
    def resolved_exports_dir(self) -> Path:
        """Where data-subject access exports are written (sealed)."""
        return self.exports_dir or self.data_dir / "exports"

    @property
    def resolved_steps_queue(self) -> str:
        """Where steps without a queue of their own run."""
        return self.steps_queue or self.workflows_queue

    @property
    def all_queues(self) -> list[str]:
        queues = [self.workflows_queue, self.resolved_steps_queue, self.llm_queue, self.compliance_queue]
        return list(dict.fromkeys(queues))

    def workflow_url(self, workflow_id: str, namespace: str = "default") -> str:
        """Link to a run in the Temporal UI."""
        return f"{self.temporal_ui_url.rstrip('/')}/namespaces/{namespace}/workflows/{workflow_id}"


@lru_cache(maxsize=1)
def get_settings() -> BatonSettings:
    """The process-wide settings, read on first use."""
    return BatonSettings()


def loopback_host(host: str) -> bool:
    """Whether a host name or address is this machine: `localhost`, 127.0.0.0/8 or ::1."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: another machine, as far as anyone can tell from here
        return False
