"""Configuration: environment first, then baton.yaml; bad values are named."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from baton.settings import BatonSettings


def test_defaults_are_the_embedded_ones(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = BatonSettings()
    assert settings.resolved_database_url == "sqlite+aiosqlite:///.baton/baton.db"
    assert settings.all_queues == ["baton-workflows", "baton-steps", "baton-llm", "baton-compliance"]
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
