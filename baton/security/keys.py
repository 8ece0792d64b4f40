"""Keys and authenticated encryption: Temporal payloads, stored payloads, cache entries.

A `Keyring` holds AES-256 keys by ID; new data is sealed with the current key and old keys
still open what they sealed, so rotation never strands old histories. A `KeyProvider` says
where the keyring comes from: a file under the data folder (the embedded default, mode 0600,
created on first use and rotated by `baton keys rotate`), or a folder of files such as a mounted
Kubernetes secret. A provider backed by a KMS or Key Vault would unwrap data keys in `load`
(envelope encryption); nothing above this interface changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..settings import BatonSettings

KEY_BYTES = 32
NONCE_BYTES = 12
_FORMAT = 1


class DecryptionError(Exception):
    """Sealed data could not be opened: unknown key, wrong context, or tampered bytes."""


class UnknownKey(DecryptionError):
    """Sealed with a key this keyring does not hold (a newer one, or one removed)."""


@dataclass(frozen=True)
class Keyring:
    """AES-256 keys by ID; `current` seals, every key opens."""

    keys: dict[str, bytes]
    current: str
    derivation: str | None = None
    """The key that `derive` uses; it must never change (default: the only key there is)."""
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ValueError(f"the current key {self.current!r} is not in the keyring")
        if self.derivation is not None and self.derivation not in self.keys:
            raise ValueError(f"the derivation key {self.derivation!r} is not in the keyring")
        for key_id, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id!r} has {len(key)} bytes; AES-256 needs {KEY_BYTES}")

    def seal(self, plaintext: bytes, context: bytes = b"") -> bytes:
        """Encrypt and authenticate `plaintext`, bound to `context` (which must match to open)."""
        key_id = self.current.encode()
        nonce = secrets.token_bytes(NONCE_BYTES)
        header = bytes([_FORMAT, len(key_id)]) + key_id + nonce
        return header + self._cipher(self.current).encrypt(nonce, plaintext, header + context)

    def open(self, sealed: bytes, context: bytes = b"") -> bytes:
        """The plaintext of `seal`'s output; `DecryptionError` if anything was changed."""
        if len(sealed) < 2 or sealed[0] != _FORMAT:
            raise DecryptionError("not sealed by Baton (unknown format)")
        id_end = 2 + sealed[1]
        if len(sealed) < id_end + NONCE_BYTES + 16:  # header, nonce and the 16-byte tag at least
            raise DecryptionError("sealed data is truncated")
        key_id = sealed[2:id_end].decode(errors="replace")
        if key_id not in self.keys:
            raise UnknownKey(f"sealed with key {key_id!r}, which this keyring does not hold")
        header = sealed[: id_end + NONCE_BYTES]
        try:
            return self._cipher(key_id).decrypt(
                sealed[id_end : id_end + NONCE_BYTES], sealed[len(header) :], header + context
            )
        except InvalidTag:
            raise DecryptionError(f"sealed data failed authentication (key {key_id!r})") from None

    def _cipher(self, key_id: str) -> AESGCM:
        """One AESGCM per key: its key schedule is worth keeping."""
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            cipher = self._ciphers[key_id] = AESGCM(self.keys[key_id])
        return cipher

    def derive(self, purpose: str) -> bytes:
        """A stable secret for one purpose (data-subject references, pseudonyms, cache keys).

        From the derivation key, never the current one: rotation must not change a subject's
        reference (erasure would miss them) or every pseudonym.
        """
        key_id = self.derivation
        if key_id is None:
            if len(self.keys) != 1:
                raise ValueError(
                    "a keyring with several keys must name its derivation key (the one whose "
                    "derived secrets are already in use, normally the first key ever created)"
                )
            (key_id,) = self.keys
        return hmac.new(self.keys[key_id], b"baton:" + purpose.encode(), hashlib.sha256).digest()


class KeysManagedElsewhere(Exception):
    """Baton reads these keys but does not own them: they are rotated in the secret store."""


class KeyProvider(ABC):
    """Where a process gets its keyring."""

    @abstractmethod
    def load(self) -> Keyring: ...

    def rotate(self) -> Keyring:
        """Add a fresh key and make it current; old keys stay, to open old data.

        Only a provider that owns its keys can; the others refuse with `KeysManagedElsewhere`.
        """
        raise KeysManagedElsewhere(
            f"{type(self).__name__} reads keys it does not own: add the new key and change `current` "
            "in the secret store they come from"
        )


@dataclass(frozen=True)
class FileKeyProvider(KeyProvider):
    """A keyring file, created with one key on first use (the embedded default)."""

    path: Path

    def load(self) -> Keyring:
        return load_keyring(self.path)

    def rotate(self) -> Keyring:
        current = self.load()
        key_id = _new_key_id(current.keys)
        derivation = current.derivation or next(iter(current.keys))
        rotated = Keyring(
            keys={**current.keys, key_id: secrets.token_bytes(KEY_BYTES)},
            current=key_id,
            derivation=derivation,
        )
        _write_atomically(self.path, _document(rotated), replace=True)
        return rotated


@dataclass(frozen=True)
class DirectoryKeyProvider(KeyProvider):
    """Keys as files in a folder, e.g. a mounted Kubernetes secret: `<key-id>.key` holds the key
    in base64, `current` names the key that encrypts, and `derivation` (needed once there are
    several keys) the key whose derived secrets are in use; it never changes."""

    path: Path

    def load(self) -> Keyring:
        try:
            current = (self.path / "current").read_text().strip()
            keys = {f.stem: base64.b64decode(f.read_text().strip()) for f in sorted(self.path.glob("*.key"))}
            derivation_file = self.path / "derivation"
            derivation = derivation_file.read_text().strip() if derivation_file.exists() else None
            return Keyring(keys=keys, current=current, derivation=derivation)
        except (OSError, ValueError) as e:
            raise ValueError(f"{self.path}: not a usable key folder ({e})") from None


@dataclass(frozen=True)
class EnvironmentKeyProvider(KeyProvider):
    """Keys given as settings (`BATON_ENCRYPTION_KEYS`, `BATON_ENCRYPTION_KEY_CURRENT`)."""

    keys: dict[str, str] = field(repr=False)
    current: str | None
    derivation: str | None = None

    def load(self) -> Keyring:
        if not self.current:
            raise ValueError(
                "BATON_ENCRYPTION_KEYS is set: name the key that encrypts in BATON_ENCRYPTION_KEY_CURRENT"
            )
        try:
            keys = {k: base64.b64decode(v, validate=True) for k, v in self.keys.items()}
            return Keyring(keys=keys, current=self.current, derivation=self.derivation)
        except ValueError as e:
            raise ValueError(f"BATON_ENCRYPTION_KEYS: {e}") from None


def key_provider(settings: BatonSettings) -> KeyProvider:
    """The configured provider: keys in the environment, a key folder, or the keyring file."""
    if settings.encryption_keys is not None:
        return EnvironmentKeyProvider(
            settings.encryption_keys, settings.encryption_key_current, settings.encryption_key_derivation
        )
    if settings.keys_dir is not None:
        return DirectoryKeyProvider(settings.keys_dir)
    return FileKeyProvider(settings.keyring_path)


def load_keyring(path: Path) -> Keyring:
    """The keyring in `path`, created with one fresh key (file mode 0600) when missing."""
    if not path.exists():
        key_id = _new_key_id({})
        _write_atomically(
            path, _document(Keyring(keys={key_id: secrets.token_bytes(KEY_BYTES)}, current=key_id))
        )
    try:
        document = json.loads(path.read_text())
        keys = {key_id: base64.b64decode(key) for key_id, key in document["keys"].items()}
        # Files written before `derivation` was recorded derived from their first key.
        return Keyring(
            keys=keys, current=document["current"], derivation=document.get("derivation", next(iter(keys)))
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a Baton keyring ({e})") from None


def _new_key_id(existing: dict[str, bytes]) -> str:
    while (key_id := f"k{secrets.token_hex(4)}") in existing:
        pass
    return key_id


def _document(keyring: Keyring) -> dict[str, object]:
    return {
        "current": keyring.current,
        "keys": {k: base64.b64encode(v).decode() for k, v in keyring.keys.items()},
    }


def _write_atomically(path: Path, document: dict[str, object], *, replace: bool = False) -> None:
    """Write aside (mode 0600), then link or rename into place: readers never see half a file, and
    of two processes creating the file at once, one wins and the other reads the winner's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(document, f)
    try:
        if replace:
            os.replace(staging, path)
        else:
            os.link(staging, path)
    except FileExistsError:
        pass
    finally:
        staging.unlink(missing_ok=True)
