"""What Baton's payload codec costs, against raw AES-256-GCM on the same bytes.

For payloads of 1 KB, 64 KB and 1 MB of JSON (an LLM request with a document), side by side in
one run: encode+decode through `EncryptionCodec` (serialize, compress above 1 KB, encrypt with
metadata bound in, and back) against `AESGCM.encrypt` + `decrypt` of the serialized payload.

Run: make bench   (or: .venv/bin/python bench/codec_throughput.py)
The last line:
  codec_throughput mb_per_s_1mb=<codec> raw_mb_per_s_1mb=<raw> overhead_ratio_1kb=<codec/raw per payload>
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload

from baton.security.codec import EncryptionCodec
from baton.security.keys import FileKeyProvider, LiveKeyring

SIZES = {"1kb": 1024, "64kb": 64 * 1024, "1mb": 1024 * 1024}
BUDGET_S = float(os.environ.get("BENCH_CODEC_SECONDS", 1.0))


def payload(size: int) -> Payload:
    # Words drawn at random from a large vocabulary: compresses about 2:1, like prose.
    vocabulary = [secrets.token_hex(3) for _ in range(5000)]
    text = " ".join(secrets.choice(vocabulary) for _ in range(size // 7 + 1))[:size]
    body = json.dumps({"model": "openai:gpt-4o", "messages": [{"role": "user", "content": text}]})
    return Payload(metadata={"encoding": b"json/plain"}, data=body.encode())


async def per_second(work, budget: float = BUDGET_S) -> float:
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget:
        await work()
        done += 1
    return done / elapsed


async def main() -> None:
    codec = EncryptionCodec(LiveKeyring(FileKeyProvider(Path(tempfile.mkdtemp()) / "keyring.json")))
    aes, nonce = AESGCM(secrets.token_bytes(32)), secrets.token_bytes(12)
    results = {}
    for name, size in SIZES.items():
        p = payload(size)
        raw_bytes = p.SerializeToString()

        async def through_codec(p: Payload = p) -> None:
            await codec.decode(await codec.encode([p]))

        async def raw(data: bytes = raw_bytes) -> None:
            aes.decrypt(nonce, aes.encrypt(nonce, data, None), None)

        codec_rate, raw_rate = await per_second(through_codec), await per_second(raw)
        stored = (await codec.encode([p]))[0].ByteSize()
        results[name] = (codec_rate, raw_rate)
        mb = len(raw_bytes) / 1e6
        print(
            f"{name:>5}: codec {codec_rate * mb:8.1f} MB/s ({1e6 / codec_rate:8.1f} µs per payload), "
            f"raw AES-GCM {raw_rate * mb:8.1f} MB/s ({1e6 / raw_rate:8.1f} µs); "
            f"stored {stored} bytes for {len(raw_bytes)}"
        )
    big, small = results["1mb"], results["1kb"]
    mb = len(payload(SIZES["1mb"]).SerializeToString()) / 1e6
    print(
        f"codec_throughput mb_per_s_1mb={big[0] * mb:.1f} raw_mb_per_s_1mb={big[1] * mb:.1f} "
        f"overhead_ratio_1kb={small[1] / small[0]:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
