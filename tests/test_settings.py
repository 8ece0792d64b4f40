"""Configuration: environment first, then baton.yaml; bad values are named."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from baton.security.dev_issuer import DevIssuer
from baton.settings import BatonSettings
from baton.temporal import ConfigurationError, check_shared_setup, connect
from tests.test_cli import baton as baton_cli


def test_defaults_are_the_embedded_ones(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    settings = BatonSettings()
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path}/data/baton/baton.db"
    assert settings.all_queues == ["baton-workflows", "baton-llm", "baton-compliance"]  # steps: workflows
    assert (
        settings.workflow_url("process-X-1")
        == "http://127.0.0.1:8233/namespaces/default/workflows/process-X-1"
    )


def test_yaml_file_is_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "baton.yaml").write_text(
        "temporal_address: temporal.internal:7233\nsteps_queue: yaml-steps\nstep_modules: [myapp]\n"
    )
    monkeypatch.setenv("BATON_STEPS_QUEUE", "env-steps")
    settings = BatonSettings()
    assert settings.temporal_address == "temporal.internal:7233"
    assert settings.steps_queue == "env-steps"
    assert settings.step_modules == ["myapp"]


def test_secrets_are_read_from_files_in_the_secrets_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """How the Helm chart hands secrets over: files in a mounted folder, not variables."""
    monkeypatch.chdir(tmp_path)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "baton_database_url").write_text("postgresql+asyncpg://baton:s3cret@db.internal/baton")
    (secrets / "baton_openai_api_key").write_text("sk-from-file")
    monkeypatch.setenv("BATON_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("BATON_OPENAI_API_KEY", "sk-from-env")
    settings = BatonSettings()
    assert settings.resolved_database_url == "postgresql+asyncpg://baton:s3cret@db.internal/baton"
    assert settings.openai_api_key == SecretStr("sk-from-env")  # the environment wins
    monkeypatch.setenv("BATON_SECRETS_DIR", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"BATON_SECRETS_DIR=.*missing' is not a folder"):
        BatonSettings()


def test_unknown_and_invalid_settings_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "baton.yaml").write_text("temporal_adress: typo:7233\n")
    with pytest.raises(ValidationError, match="temporal_adress"):
        BatonSettings()
    (tmp_path / "baton.yaml").unlink()
    monkeypatch.setenv("BATON_DATABASE_POOL_SIZE", "0")
    with pytest.raises(ValidationError, match="database_pool_size"):
        BatonSettings()


def test_unsupported_database_driver_is_refused() -> None:
    from baton.persistence.db import create_engine

    with pytest.raises(ValueError, match="driver 'postgresql' is not supported; use one of postgresql"):
        create_engine("postgresql://localhost/db")


def test_every_folder_shares_one_data_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A keyring per folder meant a run started in one folder was sealed with a key the worker
    started in another lacked: it hung."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    in_a = BatonSettings().keyring_path
    monkeypatch.chdir(tmp_path / "b")
    assert BatonSettings().keyring_path == in_a == tmp_path / "data" / "baton" / "keyring.json"


@pytest.mark.parametrize("address", ["temporal.prod.internal:7233", "10.0.0.5:7233", "[2001:db8::1]:7233"])
async def test_embedded_defaults_are_refused_against_a_remote_temporal(address: str, tmp_path: Path) -> None:
    settings = BatonSettings(data_dir=tmp_path, temporal_address=address)
    with pytest.raises(ConfigurationError) as refused:
        await connect(settings)  # refused before any connection is tried
    message = str(refused.value)
    assert f"Temporal at {address} is not on this machine" in message
    assert "BATON_KEYS_DIR" in message and "BATON_DATABASE_URL" in message
    assert not (tmp_path / "keyring.json").exists()  # and nothing was generated for it

    shared = settings.model_copy(
        update={
            "keys_dir": tmp_path / "keys",
            "database_url": SecretStr("postgresql+asyncpg://baton@db/baton"),
        }
    )
    check_shared_setup(shared, address)  # what a deployment sets: accepted
    for here in ("127.0.0.1:7233", "127.0.0.2:7233", "localhost:7233", "[::1]:7233"):
        check_shared_setup(settings, here)  # the embedded server: the defaults are shared


def test_the_data_folder_is_private(tmp_path: Path) -> None:
    data = tmp_path / "baton"
    DevIssuer.load(BatonSettings(data_dir=data))
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


async def test_the_worker_command_says_what_to_set_for_a_remote_temporal(settings: BatonSettings) -> None:
    refused = await baton_cli(settings, "worker", BATON_TEMPORAL_ADDRESS="temporal.prod.internal:7233")
    assert refused.returncode == 2  # a ConfigurationError: nothing ran
    assert "not on this machine" in refused.stderr and "BATON_KEYS_DIR" in refused.stderr


def test_secrets_never_show_in_repr_or_dumps(tmp_path: Path) -> None:
    secrets = {
        "database_url": "postgresql+asyncpg://baton:hunter2-db@db/baton",
        "redis_url": "redis://:hunter2-redis@cache:6379/0",
        "openai_api_key": "sk-hunter2-openai",
        "azure_openai_api_key": "hunter2-azure",
        "vllm_api_key": "hunter2-vllm",
        "anthropic_api_key": "hunter2-anthropic",
        "temporal_api_key": "hunter2-temporal",
        "encryption_keys": {"k1": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
    }
    settings = BatonSettings(data_dir=tmp_path, **secrets)
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert "hunter2" not in shown and "AAECAw" not in shown
    assert settings.resolved_database_url == secrets["database_url"]  # still usable where needed


async def test_a_mistyped_secret_or_url_is_named_without_its_value(settings: BatonSettings) -> None:
    key_material = "S3cretKeyMaterialBase64=="
    refused = await baton_cli(settings, "keys", "list", BATON_ENCRYPTION_KEYS=f'["{key_material}"]')
    assert refused.returncode == 1 and "encryption_keys" in refused.stderr
    assert key_material not in refused.stderr + refused.stdout
    password = "S3cretPW"
    bad_url = settings.model_copy(
        update={"database_url": SecretStr(f"postgresql+asyncpg//baton:{password}@db/x")}
    )
    with pytest.raises(ValueError, match="BATON_DATABASE_URL is not a database URL") as raised:
        check_shared_setup(bad_url, "temporal.prod.internal:7233")
    assert password not in str(raised.value)
