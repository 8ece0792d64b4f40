"""The payload codec: every payload Temporal stores is compressed (when big) and encrypted.

AES-256-GCM with a random nonce per payload; the key ID and the compression travel in the
payload's metadata and are bound into the authentication, so changing any byte, the key ID or
the flag is detected. A payload this codec did not encrypt (histories from before encryption)
is passed through on decode.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from .keys import DecryptionError, KeyProvider, UnknownKey

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
COMPRESSION = "encryption-compression"


class PayloadDecryptionError(Exception):
    """A Baton-encrypted payload that cannot be read: tampered, truncated, or its key is gone."""


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: KeyProvider, compress_above: int = 1024) -> None:
        self._keys = keys
        self._keyring = keys.load()
        self.compress_above = compress_above

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) if p.metadata.get("encoding") == ENCODING else p for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        plain = payload.SerializeToString()
        compression = b"none"
        if len(plain) > self.compress_above:
            packed = zlib.compress(plain, 6)
            if len(packed) < len(plain):
                plain, compression = packed, b"zlib"
        key_id = self._keyring.current.encode()
        sealed = self._keyring.seal(plain, _context(key_id, compression))
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id, COMPRESSION: compression}, data=sealed)

    def decrypt(self, payload: Payload) -> Payload:
        key_id = payload.metadata.get(KEY_ID, b"")
        compression = payload.metadata.get(COMPRESSION, b"none")
        try:
            plain = self._open(payload.data, _context(key_id, compression))
        except DecryptionError as e:
            raise PayloadDecryptionError(f"encrypted payload cannot be read: {e}") from None
        if compression == b"zlib":
            plain = zlib.decompress(plain)
        elif compression != b"none":
            raise PayloadDecryptionError(f"encrypted payload has an unknown compression {compression!r}")
        return Payload.FromString(plain)

    def _open(self, sealed: bytes, context: bytes) -> bytes:
        try:
            return self._keyring.open(sealed, context)
        except UnknownKey:
            # Keys were rotated since this process loaded them: read them again, once.
            self._keyring = self._keys.load()
            return self._keyring.open(sealed, context)


def _context(key_id: bytes, compression: bytes) -> bytes:
    """What the metadata says, authenticated with the data: a changed key ID or flag fails to open."""
    return b"baton-payload|" + key_id + b"|" + compression
