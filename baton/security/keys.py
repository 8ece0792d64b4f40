"""Keys and authenticated encryption for what Baton keeps outside Temporal.

A `Keyring` holds AES-256 keys by ID; new data is sealed with the current key and old keys
still open what they sealed. The embedded default keeps its keyring in a file under the data
folder (mode 0600), created on first use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
_FORMAT = 1


class DecryptionError(Exception):
    """Sealed data could not be opened: unknown key, wrong context, or tampered bytes."""


@dataclass(frozen=True)
class Keyring:
    """AES-256 keys by ID; `current` seals, every key opens."""

    keys: dict[str, bytes]
    current: str

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ValueError(f"the current key {self.current!r} is not in the keyring")
        for key_id, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id!r} has {len(key)} bytes; AES-256 needs {KEY_BYTES}")

    def seal(self, plaintext: bytes, context: bytes = b"") -> bytes:
        """Encrypt and authenticate `plaintext`, bound to `context` (which must match to open)."""
        key_id = self.current.encode()
        nonce = secrets.token_bytes(NONCE_BYTES)
        header = bytes([_FORMAT, len(key_id)]) + key_id + nonce
        return header + AESGCM(self.keys[self.current]).encrypt(nonce, plaintext, header + context)

    def open(self, sealed: bytes, context: bytes = b"") -> bytes:
        """The plaintext of `seal`'s output; `DecryptionError` if anything was changed."""
        if len(sealed) < 2 or sealed[0] != _FORMAT:
            raise DecryptionError("not sealed by Baton (unknown format)")
        id_end = 2 + sealed[1]
        key_id = sealed[2:id_end].decode(errors="replace")
        key = self.keys.get(key_id)
        if key is None:
            raise DecryptionError(f"sealed with key {key_id!r}, which this keyring does not hold")
        header = sealed[: id_end + NONCE_BYTES]
        try:
            return AESGCM(key).decrypt(
                sealed[id_end : id_end + NONCE_BYTES], sealed[len(header) :], header + context
            )
        except InvalidTag:
            raise DecryptionError(f"sealed data failed authentication (key {key_id!r})") from None

    def derive(self, purpose: str) -> bytes:
        """A stable secret for one purpose (pseudonyms, cache keys), from the first key.

        The first key, not the current one, so that rotation does not change pseudonyms or
        invalidate every cache entry.
        """
        first = next(iter(self.keys.values()))
        return hmac.new(first, b"baton:" + purpose.encode(), hashlib.sha256).digest()


def load_keyring(path: Path) -> Keyring:
    """The keyring in `path`, created with one fresh key (file mode 0600) when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key_id = f"k{secrets.token_hex(4)}"
        document = {
            "current": key_id,
            "keys": {key_id: base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()},
        }
        # Written aside, then linked into place: a concurrent starter either wins the link or
        # reads the winner's complete file, never a half-written one.
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(document, f)
        try:
            os.link(staging, path)
        except FileExistsError:
            pass
        finally:
            staging.unlink()
    try:
        document = json.loads(path.read_text())
        return Keyring(
            keys={key_id: base64.b64decode(key) for key_id, key in document["keys"].items()},
            current=document["current"],
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a Baton keyring ({e})") from None
