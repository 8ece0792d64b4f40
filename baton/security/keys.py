"""Keys and authenticated encryption: Temporal payloads, stored payloads, cache entries.

A `Keyring` holds AES-256 keys by ID; new data is sealed with the current key and old keys
still open what they sealed, so rotation never strands old histories. Beside the keys it holds a
*derivation secret*: its own random material, never an encryption key, from which the stable
secrets are derived (data-subject references, pseudonyms, cache keys). Rotation changes the
current key, never the derivation secret, so erasure still finds a subject after a rotation.

A `KeyProvider` says where the keyring comes from: a file under the data folder (the embedded
default, mode 0600, created on first use and rotated by `baton keys rotate`), a folder of files
such as a mounted Kubernetes secret, or variables. A provider backed by a KMS or Key Vault would
unwrap data keys in `load` (envelope encryption); nothing above this interface changes.

`LiveKeyring` is the one owner of the keyring in a process: everything that seals (the codec,
data-subject keys, the LLM cache) asks it, and it reloads the keyring when its source changes,
so a rotation reaches running workers, clients and the codec server within `RELOAD_SECONDS`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from baton.errors import BatonError, ConfigurationError, Conflict

from ..settings import BatonSettings

KEY_BYTES = 32
NONCE_BYTES = 12
RELOAD_SECONDS = 1.0
"""How often a process looks whether its key source changed (a `stat`, not a read)."""
_FORMAT = 1
DERIVATION_FILE = "derivation-secret"


class DecryptionError(BatonError):
    """Sealed data could not be opened: unknown key, wrong context, or tampered bytes."""


class UnknownKey(DecryptionError):
    """Sealed with a key this keyring does not hold (a newer one, or one removed)."""


class KeySourceError(ConfigurationError):
    """The configured keys are missing or unusable; the message says what to set."""


@dataclass(frozen=True)
class Keyring:
    """AES-256 keys by ID; `current` seals, every key opens; `derivation_secret` feeds `derive`."""

    keys: dict[str, bytes]
    current: str
    derivation_secret: bytes | None = field(default=None, repr=False)
    """None for a keyring that only seals (one data subject's key)."""
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise KeySourceError(f"the current key {self.current!r} is not in the keyring")
        for key_id, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise KeySourceError(f"key {key_id!r} has {len(key)} bytes; AES-256 needs {KEY_BYTES}")
        if self.derivation_secret is not None and len(self.derivation_secret) != KEY_BYTES:
            raise KeySourceError(
                f"the derivation secret has {len(self.derivation_secret)} bytes; it needs {KEY_BYTES}"
            )

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
        """A stable secret for one purpose (data-subject references, pseudonyms, cache keys)."""
        if self.derivation_secret is None:
            raise ValueError("this keyring has no derivation secret")
        return hmac.new(self.derivation_secret, b"baton:" + purpose.encode(), hashlib.sha256).digest()


class KeysManagedElsewhere(Conflict):
    """Baton reads these keys but does not own them: they are rotated in the secret store."""


class KeyProvider(ABC):
    """Where a process gets its keyring."""

    @abstractmethod
    def load(self) -> Keyring: ...

    def fingerprint(self) -> object:
        """Something cheap that changes when the keys may have changed (None: they never do)."""
        return None

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
    """A keyring file, created with one key and a derivation secret on first use (the embedded default)."""

    path: Path

    def load(self) -> Keyring:
        return load_keyring(self.path)

    def fingerprint(self) -> object:
        return _stat(self.path)

    def rotate(self) -> Keyring:
        current = self.load()
        key_id = _new_key_id(current.keys)
        rotated = Keyring(
            keys={**current.keys, key_id: secrets.token_bytes(KEY_BYTES)},
            current=key_id,
            derivation_secret=current.derivation_secret,
        )
        _write_atomically(self.path, _document(rotated), replace=True)
        return rotated


@dataclass(frozen=True)
class DirectoryKeyProvider(KeyProvider):
    """Keys as files in a folder, e.g. a mounted Kubernetes secret: `<key-id>.key` holds a key in
    base64, `current` names the key that encrypts, and `derivation-secret` holds the derivation
    secret in base64 (32 random bytes, never changed)."""

    path: Path

    def load(self) -> Keyring:
        try:
            current = (self.path / "current").read_text().strip()
            keys = {f.stem: _b64(f.read_text(), f.name) for f in sorted(self.path.glob("*.key"))}
            secret_file = self.path / DERIVATION_FILE
            legacy = self.path / "derivation"
            if not secret_file.exists() and legacy.exists():
                # Before the secret had its own material, references came from the named key.
                named = legacy.read_text().strip()
                raise KeySourceError(
                    f"no {DERIVATION_FILE} file, but a `derivation` file naming key {named!r}: add "
                    f"{DERIVATION_FILE} with the contents of {named}.key, so that existing data "
                    "subjects' references stay the same"
                )
            if not secret_file.exists():
                raise KeySourceError(
                    f"no {DERIVATION_FILE} file: add one with 32 random bytes in base64 "
                    "(`head -c32 /dev/urandom | base64`), and never change it"
                )
            secret = _b64(secret_file.read_text(), DERIVATION_FILE)
            return Keyring(keys=keys, current=current, derivation_secret=secret)
        except (OSError, ValueError) as e:
            raise KeySourceError(f"{self.path}: not a usable key folder ({e})") from None

    def fingerprint(self) -> object:
        # A mounted secret is updated by swapping a symlink (`..data`): the folder's entries change.
        return tuple(_stat(p) for p in (self.path, self.path / "..data", self.path / "current"))


@dataclass(frozen=True)
class EnvironmentKeyProvider(KeyProvider):
    """Keys given as settings (`BATON_ENCRYPTION_KEYS`, `_KEY_CURRENT`, `_DERIVATION_SECRET`)."""

    keys: dict[str, str] = field(repr=False)
    current: str | None
    derivation_secret: str | None = field(default=None, repr=False)

    def load(self) -> Keyring:
        if not self.current:
            raise KeySourceError(
                "BATON_ENCRYPTION_KEYS is set: name the key that encrypts in BATON_ENCRYPTION_KEY_CURRENT"
            )
        if not self.derivation_secret:
            raise KeySourceError(
                "BATON_ENCRYPTION_KEYS is set: set BATON_ENCRYPTION_DERIVATION_SECRET too, 32 random "
                "bytes in base64, never changed. A deployment that set BATON_ENCRYPTION_KEY_DERIVATION "
                "before sets it to the key that named (or to its only key), so that existing data "
                "subjects' references stay the same"
            )
        try:
            keys = {k: _b64(v, k) for k, v in self.keys.items()}
            secret = _b64(self.derivation_secret, "BATON_ENCRYPTION_DERIVATION_SECRET")
            return Keyring(keys=keys, current=self.current, derivation_secret=secret)
        except ValueError as e:
            raise KeySourceError(f"BATON_ENCRYPTION_KEYS: {e}") from None


class LiveKeyring:
    """The process's keyring, kept current: one per process, shared by everything that seals.

    `keyring` looks at the provider's source at most every `reload_seconds` (a `stat`) and
    reloads it when it changed, so `baton keys rotate` (or a rotated secret) takes effect in a
    running process within that bound; `reload()` forces it, for data sealed with a key not
    seen yet.
    """

    def __init__(self, provider: KeyProvider, reload_seconds: float = RELOAD_SECONDS) -> None:
        self.provider = provider
        self.reload_seconds = reload_seconds
        self._fingerprint = provider.fingerprint()
        self._keyring = provider.load()
        self._checked_at = time.monotonic()

    @property
    def keyring(self) -> Keyring:
        if time.monotonic() - self._checked_at >= self.reload_seconds:
            self._checked_at = time.monotonic()
            if self.provider.fingerprint() != self._fingerprint:
                self.reload()
        return self._keyring

    def reload(self) -> Keyring:
        fingerprint = self.provider.fingerprint()
        keyring = self.provider.load()
        if keyring.derivation_secret != self._keyring.derivation_secret:
            # Every reference and pseudonym would change: erasure would miss existing subjects.
            raise KeySourceError("the derivation secret changed; it must never change (restore the old one)")
        self._keyring, self._fingerprint = keyring, fingerprint
        return keyring

    def derive(self, purpose: str) -> bytes:
        return self._keyring.derive(purpose)


def key_provider(settings: BatonSettings) -> KeyProvider:
    """The configured provider: keys in the environment, a key folder, or the keyring file."""
    if settings.encryption_keys is not None:
        return EnvironmentKeyProvider(
            {k: v.get_secret_value() for k, v in settings.encryption_keys.items()},
            settings.encryption_key_current,
            settings.encryption_derivation_secret.get_secret_value()
            if settings.encryption_derivation_secret
            else None,
        )
    if settings.keys_dir is not None:
        return DirectoryKeyProvider(settings.keys_dir)
    return FileKeyProvider(settings.keyring_path)


def load_keyring(path: Path, *, create: bool = True) -> Keyring:
    """The keyring in `path`, created with one fresh key (file mode 0600) when missing and `create`."""
    if not path.exists():
        if not create:
            raise KeySourceError(f"no keyring at {path} yet: it is created on first use")
        key_id = _new_key_id({})
        fresh = Keyring(
            keys={key_id: secrets.token_bytes(KEY_BYTES)},
            current=key_id,
            derivation_secret=secrets.token_bytes(KEY_BYTES),
        )
        _write_atomically(path, _document(fresh))
    try:
        document = json.loads(path.read_text())
        keys = {key_id: _b64(key, key_id) for key_id, key in document["keys"].items()}
        if "derivation_secret" in document:
            return Keyring(
                keys=keys,
                current=document["current"],
                derivation_secret=_b64(document["derivation_secret"], "derivation_secret"),
            )
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise KeySourceError(f"{path}: not a Baton keyring ({e})") from None
    # Written before the derivation secret had its own material: the references in use were derived
    # from a key (`derivation`, else the first). Keep them, and record the secret on its own, so it
    # survives the key being retired.
    legacy = Keyring(
        keys=keys,
        current=document["current"],
        derivation_secret=keys[document.get("derivation") or next(iter(keys))],
    )
    _write_atomically(path, _document(legacy), replace=True)
    return legacy


def _b64(text: str, name: str) -> bytes:
    """Strict base64 (no stray characters silently dropped), 32 bytes."""
    try:
        value = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeySourceError(f"{name} is not valid base64") from None
    if len(value) != KEY_BYTES:
        raise KeySourceError(f"{name} has {len(value)} bytes; it needs {KEY_BYTES}")
    return value


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        s = path.stat()
    except OSError:
        return None
    return (s.st_ino, s.st_mtime_ns, s.st_size)


def _new_key_id(existing: dict[str, bytes]) -> str:
    while (key_id := f"k{secrets.token_hex(4)}") in existing:
        pass
    return key_id


def _document(keyring: Keyring) -> dict[str, object]:
    if keyring.derivation_secret is None:
        raise KeySourceError("a keyring file must hold its derivation secret")
    return {
        "current": keyring.current,
        "keys": {k: base64.b64encode(v).decode() for k, v in keyring.keys.items()},
        "derivation_secret": base64.b64encode(keyring.derivation_secret).decode(),
    }


def _write_atomically(path: Path, document: dict[str, object], *, replace: bool = False) -> None:
    """Write aside (mode 0600), then link or rename into place: readers never see half a file, and
    of two processes creating the file at once, one wins and the other reads the winner's."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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
