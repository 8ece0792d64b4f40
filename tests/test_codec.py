"""Every payload Temporal stores is encrypted: round trips, tampering, rotation, what Temporal
itself shows, and failures."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.failure.v1 import Failure
from temporalio.client import WorkflowFailureError
from temporalio.worker._workflow_instance import WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._runner import _fake_info

from baton.agents import AgentSpec
from baton.examples.document_generation.process import process as document_generation
from baton.process.runtime import StepRecord
from baton.security.codec import COMPRESSION, KEY_ID, WORKFLOW, EncryptionCodec, PayloadDecryptionError
from baton.security.keys import (
    DirectoryKeyProvider,
    FileKeyProvider,
    KeySourceError,
    LiveKeyring,
    key_provider,
)
from baton.settings import BatonSettings
from baton.temporal import data_converter, dev_server_path
from baton.testing import ProcessEnvironment
from baton.workflows import compliance
from baton.workflows.orchestrations import ORCHESTRATIONS
from tests.test_cli import baton as baton_cli

# Every Baton workflow that keeps the sandbox (the process and agent workflows run without it).
SANDBOXED_WORKFLOWS = [
    *ORCHESTRATIONS,
    compliance.StoredPayloadSweepWorkflow,
    compliance.AuditWitnessWorkflow,
    compliance.SubjectRetentionWorkflow,
    compliance.RetentionSweepWorkflow,
    compliance.DataSubjectRequestWorkflow,
    compliance.AuditWatchWorkflow,
]

SECRET = "Zebracorn-7f3a confidential launch"
DERIVATION_SECRET = "c2VjcmV0LWRlcml2YXRpb24tbWF0ZXJpYWwtMzJieXQ="


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


@pytest.fixture
def codec(tmp_path: Path) -> EncryptionCodec:
    return EncryptionCodec(LiveKeyring(FileKeyProvider(tmp_path / "keyring.json")), compress_above=1024)


async def test_round_trip_encrypts_and_compresses_big_payloads(codec: EncryptionCodec) -> None:
    small, big = payload(SECRET), payload(SECRET * 200)
    encoded = await codec.encode([small, big])

    assert [p.metadata[COMPRESSION] for p in encoded] == [b"none", b"zlib"]
    assert all(
        SECRET.encode() not in p.data and p.metadata["encoding"] == b"binary/encrypted" for p in encoded
    )
    assert len(encoded[1].data) < len(big.data) // 10
    assert await codec.decode(encoded) == [small, big]
    assert (await codec.encode([small]))[0].data != encoded[0].data  # a fresh nonce every time


async def test_payloads_from_before_encryption_pass_through(codec: EncryptionCodec) -> None:
    assert await codec.decode([payload("old history")]) == [payload("old history")]


@pytest.mark.parametrize(
    "tamper", ["bit flip", "wrong key id", "other compression", "other run", "truncated"]
)
async def test_tampering_is_a_clear_error(codec: EncryptionCodec, tamper: str) -> None:
    (encoded,) = await codec.encode([payload(SECRET)])
    if tamper == "bit flip":
        data = bytearray(encoded.data)
        data[len(data) // 2] ^= 0x01
        encoded.data = bytes(data)
    elif tamper == "wrong key id":
        encoded.metadata[KEY_ID] = b"k00000000"
    elif tamper == "other compression":
        encoded.metadata[COMPRESSION] = b"zlib"
    elif tamper == "other run":
        encoded.metadata[WORKFLOW] = b"process-Someone-else"
    else:
        encoded.data = encoded.data[:-5]

    with pytest.raises(
        PayloadDecryptionError, match="encrypted payload cannot be read: sealed data failed authentication"
    ):
        await codec.decode([encoded])


async def test_rotation_keeps_old_payloads_readable(tmp_path: Path) -> None:
    keys = FileKeyProvider(tmp_path / "keyring.json")
    before = EncryptionCodec(LiveKeyring(keys, reload_seconds=3600))  # a worker that has not looked yet
    (old,) = await before.encode([payload("old")])

    rotated = keys.rotate()
    assert rotated.derive("data-subjects") == before.keys.derive("data-subjects")  # references survive
    after = EncryptionCodec(LiveKeyring(keys))
    (new,) = await after.encode([payload("new")])

    assert new.metadata[KEY_ID].decode() == rotated.current != old.metadata[KEY_ID].decode()
    assert await after.decode([old, new]) == [payload("old"), payload("new")]
    assert await before.decode([new]) == [payload("new")]  # reloads the keys it had not seen


def test_keys_from_a_mounted_secret(tmp_path: Path) -> None:
    (tmp_path / "k1.key").write_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n")
    (tmp_path / "current").write_text("k1\n")
    with pytest.raises(KeySourceError, match="no derivation-secret file"):
        DirectoryKeyProvider(tmp_path).load()
    (tmp_path / "derivation").write_text("k1")  # how a folder named its derivation key before
    with pytest.raises(KeySourceError, match=r"add derivation-secret with the contents of k1\.key"):
        DirectoryKeyProvider(tmp_path).load()
    (tmp_path / "derivation").unlink()
    (tmp_path / "derivation-secret").write_text(DERIVATION_SECRET)
    keyring = DirectoryKeyProvider(tmp_path).load()
    assert keyring.current == "k1" and keyring.keys["k1"] == bytes(range(32))
    assert keyring.derivation_secret not in keyring.keys.values()  # its own material
    (tmp_path / "k2.key").write_text("AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n")
    (tmp_path / "current").write_text("k2")
    rotated = DirectoryKeyProvider(tmp_path).load()
    assert rotated.current == "k2" and rotated.derive("x") == keyring.derive("x")
    (tmp_path / "current").write_text("k3")
    with pytest.raises(KeySourceError, match="not a usable key folder"):
        DirectoryKeyProvider(tmp_path).load()
    (tmp_path / "current").write_text("k2")
    (tmp_path / "k2.key").write_text(
        "AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=!\n"
    )  # lax base64 once read this
    with pytest.raises(KeySourceError, match=r"k2\.key is not valid base64"):
        DirectoryKeyProvider(tmp_path).load()


def test_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BATON_ENCRYPTION_KEYS", '{"env-1": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}')
    monkeypatch.setenv("BATON_ENCRYPTION_KEY_CURRENT", "env-1")
    monkeypatch.setenv("BATON_ENCRYPTION_DERIVATION_SECRET", DERIVATION_SECRET)
    settings = BatonSettings(data_dir=tmp_path)
    assert key_provider(settings).load().keys == {"env-1": bytes(range(32))}
    assert "AAECAw" not in repr(settings) and DERIVATION_SECRET not in repr(settings)  # never in logs
    monkeypatch.delenv("BATON_ENCRYPTION_DERIVATION_SECRET")
    with pytest.raises(KeySourceError, match="BATON_ENCRYPTION_DERIVATION_SECRET"):
        key_provider(BatonSettings(data_dir=tmp_path)).load()
    monkeypatch.setenv("BATON_ENCRYPTION_DERIVATION_SECRET", DERIVATION_SECRET)
    monkeypatch.setenv("BATON_ENCRYPTION_KEYS", '{"env-1": "not base64!"}')
    with pytest.raises(ValueError, match="BATON_ENCRYPTION_KEYS"):
        key_provider(BatonSettings(data_dir=tmp_path)).load()
    monkeypatch.delenv("BATON_ENCRYPTION_KEY_CURRENT")
    with pytest.raises(ValueError, match="BATON_ENCRYPTION_KEY_CURRENT"):
        key_provider(BatonSettings(data_dir=tmp_path)).load()


async def test_temporal_shows_no_plaintext_of_a_run(env: ProcessEnvironment, temporal) -> None:
    run = await env.start(document_generation, "Start", {"name": SECRET, "features": ["durable runs"]})
    await run.send_event("ApprovalReceived", {"approved": True, "comment": SECRET})
    assert (await run.result()).output["title"] == SECRET  # Baton's own client reads it

    address = temporal.client.service_client.config.target_host
    shown = await asyncio.to_thread(
        subprocess.run,
        [
            dev_server_path(),
            "workflow",
            "show",
            "--workflow-id",
            run.id,
            "--address",
            address,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "ActivityTaskCompleted" in shown.stdout or "EVENT_TYPE_ACTIVITY_TASK_COMPLETED" in shown.stdout
    for plaintext in ("Zebracorn", "durable runs", "Technical writer", "Overview"):
        assert plaintext not in shown.stdout


async def test_failure_messages_are_encrypted_too(env: ProcessEnvironment) -> None:
    leaky = AgentSpec(name="Leaky", instructions="x", model="azure:nowhere")
    handle = await env.client.start_agent(leaky, SECRET)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "BATON_AZURE_OPENAI_ENDPOINT" in str(failure.value.cause.cause)  # decrypted for the client
    history = (await handle.fetch_history()).to_json()
    assert "BATON_AZURE_OPENAI_ENDPOINT" not in history and "Encoded failure" in history
    assert "Zebracorn" not in history


async def test_keys_cli_lists_and_rotates_without_printing_keys(settings: BatonSettings) -> None:
    nothing = await baton_cli(settings, "keys", "list")
    assert nothing.returncode == 0 and "no keyring" in nothing.stdout
    assert not (settings.data_dir / "keyring.json").exists()  # listing creates nothing
    LiveKeyring(key_provider(settings))  # what the first run does
    listed = await baton_cli(settings, "keys", "list")
    rotated = await baton_cli(settings, "keys", "rotate")
    relisted = await baton_cli(settings, "keys", "list")

    assert listed.returncode == rotated.returncode == relisted.returncode == 0
    (first,) = listed.stdout.split()[:1]
    assert "(current)" in listed.stdout and len(relisted.stdout.splitlines()) == 2
    assert f"{first}\n" in relisted.stdout and "(current)" not in relisted.stdout.splitlines()[0]
    keyring = json.loads((settings.data_dir / "keyring.json").read_text())
    assert not any(key in relisted.stdout + rotated.stdout for key in keyring["keys"].values())


async def test_keys_from_a_secret_store_are_not_rotated_by_baton(
    settings: BatonSettings, tmp_path: Path
) -> None:
    (tmp_path / "k1.key").write_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n")
    (tmp_path / "current").write_text("k1\n")
    (tmp_path / "derivation-secret").write_text(DERIVATION_SECRET)
    refused = await baton_cli(settings, "keys", "rotate", BATON_KEYS_DIR=str(tmp_path))
    assert refused.returncode == 2
    assert "DirectoryKeyProvider reads keys it does not own" in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "derivation-secret", "k1.key"]


def test_the_payload_converters_of_every_run_share_one_cache_of_type_adapters() -> None:
    # The SDK makes a payload converter for each workflow run it loads. Pydantic's own converter
    # builds its type adapters again in each: work and ~3 KB per cached run, for the same types.
    make = data_converter().payload_converter_class
    first, second = make(), make()
    assert first.converters[b"json/plain"] is second.converters[b"json/plain"]
    record = StepRecord(run_count=2)
    assert second.from_payloads(first.to_payloads([record]), [StepRecord]) == [record]


async def test_the_types_sandboxed_workflows_exchange_are_the_same_classes_in_every_run() -> None:
    # The type adapters are cached per process, by type. A class the sandbox imports anew for each
    # run would be a new key every run, and the cache would keep up to 1,024 copies of its module.
    exchanged = [
        cls for workflow_class in SANDBOXED_WORKFLOWS for cls in _exchanged_in_the_sandbox(workflow_class)
    ]
    assert len(exchanged) > len(SANDBOXED_WORKFLOWS)  # what is checked: run, signal, update, query types
    for cls in exchanged:
        assert cls is getattr(sys.modules[cls.__module__], cls.__qualname__, None), (
            f"{cls.__module__}.{cls.__qualname__} is imported anew in each run: import it in "
            "`workflow.unsafe.imports_passed_through()`"
        )


def _exchanged_in_the_sandbox(workflow_class: type) -> list[type]:
    """The classes in the signatures of the workflow's run method and handlers, as the sandbox
    sees them when it loads a run."""
    converter = data_converter()
    instance = SandboxedWorkflowRunner().create_instance(
        WorkflowInstanceDetails(
            payload_converter_factory=converter._new_payload_converter,
            failure_converter_class=converter.failure_converter_class,
            interceptor_classes=[],
            defn=workflow._Definition.must_from_class(workflow_class),
            info=_fake_info,
            randomness_seed=-1,
            extern_functions={},
            disable_eager_activity_execution=False,
            worker_level_failure_exception_types=[],
            patch_activation_callback=None,
            last_completion_result=Payloads(),
            last_failure=Failure(),
        )
    )
    in_sandbox: workflow._Definition = instance.globals_and_locals["__temporal_in_sandbox"].instance._defn  # type: ignore[attr-defined]
    handlers = [
        in_sandbox,
        *in_sandbox.signals.values(),
        *in_sandbox.updates.values(),
        *in_sandbox.queries.values(),
    ]
    return [leaf for handler in handlers for hint in handler.arg_types or [] for leaf in _classes_in(hint)]


def _classes_in(hint: object) -> Iterator[type]:
    if isinstance(hint, type):
        yield hint
    for argument in typing.get_args(hint):
        yield from _classes_in(argument)
