"""The keyring that seals payloads, stored payloads and cache entries, and how a process keeps it current."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
from pathlib import Path

import pytest

from baton.security.codec import KEY_ID, EncryptionCodec
from baton.security.keys import (
    DecryptionError,
    FileKeyProvider,
    Keyring,
    KeySourceError,
    LiveKeyring,
    load_keyring,
)
from baton.settings import BatonSettings
from tests.test_cli import baton as baton_cli
from tests.test_codec import payload


def test_the_keyring_is_created_once_readable_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "keyring.json"
    first = load_keyring(path)
    again = load_keyring(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first == again and len(first.keys[first.current]) == 32
    assert first.derivation_secret == again.derivation_secret  # persisted, not made up on each load
    assert first.derivation_secret not in first.keys.values()  # its own material, not a key's


def test_sealed_data_opens_only_unchanged_and_in_its_context(tmp_path: Path) -> None:
    keyring = load_keyring(tmp_path / "keyring.json")
    sealed = keyring.seal(b"a prompt with secrets", b"context-1")

    assert keyring.open(sealed, b"context-1") == b"a prompt with secrets"
    assert b"secrets" not in sealed
    with pytest.raises(DecryptionError, match="failed authentication"):
        keyring.open(sealed, b"context-2")
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    with pytest.raises(DecryptionError, match="failed authentication"):
        keyring.open(bytes(flipped), b"context-1")
    with pytest.raises(DecryptionError, match="unknown format"):
        keyring.open(b"\x07" + sealed[1:], b"context-1")


def test_rotation_keeps_old_keys_and_the_derivation_secret(tmp_path: Path) -> None:
    provider = FileKeyProvider(tmp_path / "keyring.json")
    old = provider.load()
    sealed = old.seal(b"before rotation")
    rotated = provider.rotate()

    assert rotated.open(sealed) == b"before rotation"
    assert rotated.open(rotated.seal(b"after")) == b"after"
    assert rotated.derive("pseudonyms") == old.derive("pseudonyms")  # pseudonyms survive rotation
    assert json.loads(provider.path.read_text())["derivation_secret"]  # and it is written back
    with pytest.raises(DecryptionError, match="does not hold"):
        Keyring(keys={"k-new": b"\x01" * 32}, current="k-new").open(sealed)


def test_a_keyring_from_before_the_derivation_secret_keeps_its_references(tmp_path: Path) -> None:
    first, second = bytes(range(32)), bytes(range(1, 33))
    path = tmp_path / "keyring.json"
    legacy = {
        "current": "k2",
        "keys": {"k1": base64.b64encode(first).decode(), "k2": base64.b64encode(second).decode()},
    }
    path.write_text(json.dumps({**legacy, "derivation": "k1"}))

    keyring = load_keyring(path)

    # References were derived from the key named `derivation`: the same ones come out, and the
    # secret is now recorded on its own, so retiring k1 one day loses nothing.
    assert keyring.derive("data-subjects") == Keyring(
        keys={"k1": first}, current="k1", derivation_secret=first
    ).derive("data-subjects")
    assert base64.b64decode(json.loads(path.read_text())["derivation_secret"]) == first


def test_a_broken_keyring_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    path.write_text('{"current": "k1"}')
    with pytest.raises(KeySourceError, match="not a Baton keyring"):
        load_keyring(path)
    path.write_text('{"current": "k1", "keys": {"k1": "AAEC*AwQ="}, "derivation_secret": "AAEC"}')
    with pytest.raises(KeySourceError, match="k1 is not valid base64"):
        load_keyring(path)


async def test_a_rotation_reaches_a_running_process(settings: BatonSettings) -> None:
    """`baton keys rotate` in another process: this process encrypts with the new key within
    RELOAD_SECONDS, without meeting a payload sealed with it first."""
    keys = LiveKeyring(FileKeyProvider(settings.keyring_path), reload_seconds=0.05)
    codec = EncryptionCodec(keys)
    (before,) = await codec.encode([payload("before")])

    rotated = await baton_cli(settings, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    new_key = rotated.stdout.split("new current key ")[1].split(";")[0]

    # Polled, not timed: the reload bound is measured in docs/BENCHMARKS.md.
    for _ in range(200):
        (after,) = await codec.encode([payload("after")])
        if after.metadata[KEY_ID].decode() == new_key:
            break
        await asyncio.sleep(0.05)
    assert after.metadata[KEY_ID].decode() == new_key != before.metadata[KEY_ID].decode()
    assert await codec.decode([before, after]) == [payload("before"), payload("after")]


def test_the_derivation_secret_may_never_change_under_a_running_process(tmp_path: Path) -> None:
    provider = FileKeyProvider(tmp_path / "keyring.json")
    keys = LiveKeyring(provider)
    document = json.loads(provider.path.read_text())
    document["derivation_secret"] = base64.b64encode(b"\x02" * 32).decode()
    provider.path.write_text(json.dumps(document))
    with pytest.raises(KeySourceError, match="derivation secret changed"):
        keys.reload()
