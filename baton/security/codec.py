"""The payload codec: every payload Temporal stores is compressed (when big) and encrypted.

AES-256-GCM with a random nonce per payload; the key ID, the compression and the run travel in
the payload's metadata and are bound into the authentication, so changing any byte, the key ID,
the flag or the run is detected. A run that holds a data subject's data has its payloads
encrypted with that subject's own key instead (crypto-shredding, `baton.persistence.subjects`);
the codec learns the run from Temporal's serialization context. A payload this codec did not
encrypt (histories from before encryption) is passed through on decode.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec, SerializationContext, WithSerializationContext

from baton.errors import BatonError, Conflict

from .keys import DecryptionError, Keyring, LiveKeyring, UnknownKey

if TYPE_CHECKING:  # persistence imports security, not the other way round at run time
    from ..persistence.subjects import SubjectKeys

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
COMPRESSION = "encryption-compression"
SUBJECT = "encryption-subject"
"""Metadata naming the data subject's key (`<ref>.<generation>`) that encrypts the payload."""
WORKFLOW = "encryption-workflow"
"""Metadata naming the run the payload belongs to (authenticated): what the codec server audits."""
SUBJECT_RUN_SUFFIX = "~ds"
"""Ends the workflow ID of every run that holds a data subject's data (no run key or name has `~`)."""


def root_run_id(workflow_id: str) -> str:
    """The root run of a run: a sub-process runs as a child with the ID `<root>/<step>/<n>`."""
    return workflow_id.split("/", 1)[0]


def holds_subject(workflow_id: str) -> bool:
    """Whether a run holds a data subject's data: its root run's ID ends with the suffix."""
    return root_run_id(workflow_id).endswith(SUBJECT_RUN_SUFFIX)


def subject_run_id(workflow_id: str) -> str:
    """The workflow ID of a run that holds a data subject's data."""
    return workflow_id + SUBJECT_RUN_SUFFIX


class PayloadDecryptionError(BatonError):
    """A Baton-encrypted payload that cannot be read: tampered, truncated, or its key is gone."""


class PayloadEncryptionError(Conflict):
    """A payload that must not be written: its run's data subject is erased or unknown."""


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    def __init__(
        self,
        keys: LiveKeyring,
        compress_above: int = 1024,
        subjects: SubjectKeys | None = None,
        workflow_id: str | None = None,
    ) -> None:
        self.keys = keys
        self.compress_above = compress_above
        self._subjects = subjects
        self._workflow_id = workflow_id

    @property
    def subjects(self) -> SubjectKeys | None:
        """The data-subject keys this codec encrypts runs with, if any."""
        return self._subjects

    def with_context(self, context: SerializationContext) -> EncryptionCodec:
        """This codec for one run's payloads: they name their run, and use its data subject's key."""
        workflow_id = getattr(context, "workflow_id", None)
        if workflow_id == self._workflow_id:
            return self
        bound = copy.copy(self)
        bound._workflow_id = workflow_id
        return bound

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        subject = await self._subject_keyring()
        return [self.encrypt(p, subject) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [await self._decode(p) if p.metadata.get("encoding") == ENCODING else p for p in payloads]

    def encrypt(self, payload: Payload, subject: Keyring | None = None) -> Payload:
        plain = payload.SerializeToString()
        compression = b"none"
        if len(plain) > self.compress_above:
            # Level 1: twice the speed of the default for nearly the same size on JSON and prose.
            packed = zlib.compress(plain, 1)
            if len(packed) < len(plain):
                plain, compression = packed, b"zlib"
        keyring = subject or self.keys.keyring
        key_id = keyring.current.encode()
        workflow = (self._workflow_id or "").encode()
        metadata = {"encoding": ENCODING, KEY_ID: key_id, COMPRESSION: compression}
        if workflow:
            metadata[WORKFLOW] = workflow
        if subject is not None:
            metadata[SUBJECT] = key_id
        return Payload(metadata=metadata, data=keyring.seal(plain, _context(key_id, compression, workflow)))

    async def _decode(self, payload: Payload) -> Payload:
        subject_key = payload.metadata.get(SUBJECT)
        if subject_key is None:
            return self.decrypt(payload)
        if self._subjects is None:
            raise PayloadDecryptionError(
                "payload is encrypted with a data subject's key; this codec has no subject keys"
            )
        try:
            key_id = subject_key.decode()
        except UnicodeDecodeError:
            raise PayloadDecryptionError("payload names a data subject key that is not text") from None
        try:
            key = await self._subjects.data_key(key_id)
        except DecryptionError as e:
            raise PayloadDecryptionError(f"the data subject's key cannot be unwrapped: {e}") from None
        if key is None:
            raise PayloadDecryptionError("payload belongs to an erased data subject: its key was deleted")
        return self.decrypt(payload, Keyring(keys={key_id: key}, current=key_id))

    def decrypt(self, payload: Payload, subject: Keyring | None = None) -> Payload:
        key_id = payload.metadata.get(KEY_ID, b"")
        compression = payload.metadata.get(COMPRESSION, b"none")
        context = _context(key_id, compression, payload.metadata.get(WORKFLOW, b""))
        try:
            plain = subject.open(payload.data, context) if subject else self._open(payload.data, context)
        except DecryptionError as e:
            raise PayloadDecryptionError(f"encrypted payload cannot be read: {e}") from None
        if compression == b"zlib":
            plain = zlib.decompress(plain)
        elif compression != b"none":
            raise PayloadDecryptionError(f"encrypted payload has an unknown compression {compression!r}")
        return Payload.FromString(plain)

    async def _subject_keyring(self) -> Keyring | None:
        """The data subject's key for this run's payloads, when the run holds a subject's data."""
        if self._workflow_id is None:
            return None
        if self._subjects is None:
            if holds_subject(self._workflow_id):  # fail closed: no subject data under the master key
                raise PayloadEncryptionError(
                    f"run {self._workflow_id} holds a data subject's data; this codec has no subject keys"
                )
            return None
        key_id = await self._subjects.key_id_of(self._workflow_id)
        if key_id is None:
            return None
        key = await self._subjects.data_key(key_id)
        if key is None:  # fail closed: never write a subject's data where erasure cannot reach it
            raise PayloadEncryptionError(f"run {self._workflow_id} belongs to an erased data subject")
        return Keyring(keys={key_id: key}, current=key_id)

    def _open(self, sealed: bytes, context: bytes) -> bytes:
        try:
            return self.keys.keyring.open(sealed, context)
        except UnknownKey:
            # Sealed with a key rotated in since this process last looked: read the keys now.
            return self.keys.reload().open(sealed, context)


def _context(key_id: bytes, compression: bytes, workflow: bytes) -> bytes:
    """What the metadata says, authenticated with the data: a changed key ID, flag or run fails to open."""
    return b"|".join((b"baton-payload", key_id, compression, workflow))
