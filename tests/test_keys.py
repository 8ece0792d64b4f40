"""The keyring that seals stored payloads and cache entries."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from baton.security.keys import DecryptionError, Keyring, load_keyring


def test_the_keyring_is_created_once_readable_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "keyring.json"
    first = load_keyring(path)
    again = load_keyring(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first == again and len(first.keys[first.current]) == 32


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


def test_old_keys_still_open_what_they_sealed(tmp_path: Path) -> None:
    old = load_keyring(tmp_path / "keyring.json")
    sealed = old.seal(b"before rotation")
    rotated = Keyring(keys={**old.keys, "k-new": b"\x01" * 32}, current="k-new", derivation=old.derivation)

    assert rotated.open(sealed) == b"before rotation"
    assert rotated.open(rotated.seal(b"after")) == b"after"
    assert rotated.derive("pseudonyms") == old.derive("pseudonyms")  # pseudonyms survive rotation
    with pytest.raises(ValueError, match="must name its derivation key"):
        Keyring(keys=rotated.keys, current="k-new").derive("pseudonyms")
    with pytest.raises(DecryptionError, match="does not hold"):
        Keyring(keys={"k-new": b"\x01" * 32}, current="k-new").open(sealed)


def test_a_broken_keyring_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    path.write_text('{"current": "k1"}')
    with pytest.raises(ValueError, match="not a Baton keyring"):
        load_keyring(path)
