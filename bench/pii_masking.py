"""How fast `PiiMasker.mask` is, and how much it finds, on ~10 MB of generated chat-like text.

The text is prose with PII in varied formats and look-alikes (order numbers, dates, amounts,
versions, Luhn-invalid runs, bad IBANs, invalid SSNs, clocks, MAC addresses) sprinkled in; see
`pii_corpus.py`, which the recall test shares. Throughput is the best of 3 runs of `mask` on one
core, in MB of UTF-8 per second. For scale, the same shapes and checks run as one alternation in
Python's `re` (on the first MB only; it is slow), which is the approach RE2 replaces.

Then a log file: `--log-lines` short lines (~80 bytes, each with a timestamp; three in four hold
a value: an e-mail and an IP, a card beside an order number, or a phone) through `baton pii mask`
as a user runs it, the file on standard input, best of 3 wall-clock runs including the command's
start: as it comes (masking on every CPU) and with `--jobs 1`; and through `mask_stream`, the loop
the command runs, in this process, on one CPU.

Run: .venv/bin/python bench/pii_masking.py [--mb 10] [--seed 0] [--log-lines 200000]
The last line:
  pii_masking mb_per_s=<mask> recall_<kind>=... precision=<share of matches that are PII>
      lookalikes_touched=<count> vs_python_re=<speed-up over the one-alternation re>
      us_<line>=<µs to mask one line> cli_mb_per_s=<baton pii mask> cli_one_job_mb_per_s=<with --jobs 1>
      stream_mb_per_s=<mask_stream, one CPU> cpus=<CPUs the command may use>
"""

from __future__ import annotations

import argparse
import io
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pii_corpus import generate, score

from baton.security.pii import _DETECTORS, PiiKind, default_masker
from baton.starter.cli.pii import mask_stream

BATON = Path(sys.executable).with_name("baton")

NAIVE_SAMPLE = 1_000_000
LINE_CALLS = 20_000
# Log-like lines of ~80 bytes: what masking costs per line, where most lines hold nothing.
LINES = {
    "clean": "worker started the step Greeter for process Chatty and it finished all good ok.",
    "clean_with_clock": "2026-12-03T08:15:02 INFO worker started the step Greeter for process Chatty",
    "one_value": "worker started the step Greeter for process Chatty; mail ana@example.com now.",
    "two_values": "2026-12-03T08:15:02 INFO mail ana@example.com or call +44 20 7946 0958 now",
}


def best_of(runs: int, fn: Callable[[], object]) -> float:
    """The shortest of `runs` timings of `fn()`, in seconds."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def log_lines(count: int, seed: int) -> bytes:
    """`count` lines of an application log, most holding a value, every value different."""
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        clock = f"2026-12-03T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{i % 1000:03d}Z"
        match i % 4:
            case 0:
                octets = ".".join(str(rng.randrange(1, 255)) for _ in range(3))
                event = f"INFO login ok user=user{i}@example.com ip=10.{octets}"
            case 1:
                card = "4" + "".join(rng.choice("0123456789") for _ in range(14))
                card += str(-sum(map(int, card[-1::-2].translate(_DOUBLED) + card[-2::-2])) % 10)
                event = f"WARN payment declined card={card[:4]} {card[4:8]} {card[8:12]} {card[12:]} order=#{i:08d}"
            case 2:
                event = f"INFO callback to +44 20 7946 {rng.randrange(10_000):04d} queued id={i}"
            case _:
                event = f"DEBUG cache hit key=session:{i} v1.2.{i % 50} took {rng.randrange(1, 900) / 10}ms"
        lines.append(f"{clock} {event}\n")
    return "".join(lines).encode()


# Luhn doubles every second digit left of the check digit and adds the digits of the result.
_DOUBLED = str.maketrans("0123456789", "0246813579")


def naive_masker() -> Callable[[str], str]:
    """Masking with the detectors' shapes and checks, but as one alternation in Python's `re`."""
    # RE2's Unicode classes, spelled for `re`: a letter is a word character that is no digit or _.
    shapes = [
        d.shape.replace(r"\pL\pN", r"\w").replace(r"\pL", r"[^\W\d_]").replace(r"\pN", r"\d")
        for d in _DETECTORS
    ]
    combined = re.compile("|".join(f"(?P<d{i}>{shape})" for i, shape in enumerate(shapes)))

    def mask(text: str) -> str:
        parts, at = [], 0
        for m in combined.finditer(text):
            detector = _DETECTORS[int(m.lastgroup[1:])]  # type: ignore[index]
            span = detector.check(text, m.start(), m.end())
            if span and span[0] >= at:
                parts += (text[at : span[0]], f"[{detector.kind.name}]")
                at = span[1]
        return "".join([*parts, text[at:]])

    return mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10, help="size of the generated text, in MB")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-lines", type=int, default=200_000, help="lines of the log file")
    args = parser.parse_args()

    corpus = generate(int(args.mb * 1_000_000), seed=args.seed)
    megabytes = len(corpus.text.encode()) / 1e6
    masker = default_masker()
    masker.mask("warm-up: compile and touch every path once, ana@example.com")
    seconds = best_of(3, lambda: masker.mask(corpus.text))
    mb_per_s = megabytes / seconds

    sample = corpus.text[:NAIVE_SAMPLE]
    naive = naive_masker()
    naive_mb_per_s = len(sample.encode()) / 1e6 / best_of(1, lambda: naive(sample))

    result = score(corpus, masker.find(corpus.text))

    log = log_lines(args.log_lines, args.seed)
    log_mb = len(log) / 1e6
    stream_mb_per_s = log_mb / best_of(3, lambda: mask_stream(io.BytesIO(log), io.BytesIO(), masker))
    with tempfile.TemporaryFile() as log_file:
        log_file.write(log)

        def run_cli(*options: str) -> None:
            log_file.seek(0)
            subprocess.run(
                [BATON, "pii", "mask", *options], stdin=log_file, stdout=subprocess.DEVNULL, check=True
            )

        cli_mb_per_s = log_mb / best_of(3, run_cli)
        cli_one_job_mb_per_s = log_mb / best_of(3, lambda: run_cli("--jobs", "1"))
    cpus = len(os.sched_getaffinity(0))
    per_line = {
        name: best_of(3, lambda line=line: [masker.mask(line) for _ in range(LINE_CALLS)]) / LINE_CALLS * 1e6
        for name, line in LINES.items()
    }
    print(
        f"{megabytes:.1f} MB, {len(corpus.planted)} values planted, {len(corpus.lookalikes)} of them look-alikes"
    )
    print(f"mask: {mb_per_s:.1f} MB/s (best of 3, {seconds:.3f} s)")
    print(
        f"one Python re alternation: {naive_mb_per_s:.1f} MB/s on the first MB; RE2 is {mb_per_s / naive_mb_per_s:.1f}x"
    )
    for kind in PiiKind:
        print(f"  {kind.value:6} recall {result.recall[kind]:.4f} of {len(corpus.pii(kind))}")
    print(f"precision {result.precision:.4f}; look-alikes touched: {len(result.touched_lookalikes)}")
    for planted in result.touched_lookalikes[:10]:
        print(f"  touched: {planted.value!r}")
    for name, micros in per_line.items():
        print(f"  one {len(LINES[name])}-byte line, {name}: {micros:.1f} µs")
    print(
        f"a log file of {args.log_lines} lines, {log_mb:.1f} MB: baton pii mask {cli_mb_per_s:.1f} MB/s "
        f"(with its start, on {cpus} CPUs), {cli_one_job_mb_per_s:.1f} MB/s with --jobs 1; "
        f"mask_stream {stream_mb_per_s:.1f} MB/s"
    )
    recalls = " ".join(f"recall_{kind.value}={result.recall[kind]:.3f}" for kind in PiiKind)
    print(
        f"pii_masking mb_per_s={mb_per_s:.1f} {recalls} precision={result.precision:.3f} "
        f"lookalikes_touched={len(result.touched_lookalikes)} vs_python_re={mb_per_s / naive_mb_per_s:.1f} "
        + " ".join(f"us_{name}={micros:.1f}" for name, micros in per_line.items())
        + f" cli_mb_per_s={cli_mb_per_s:.1f} cli_one_job_mb_per_s={cli_one_job_mb_per_s:.1f}"
        f" stream_mb_per_s={stream_mb_per_s:.1f} cpus={cpus}"
    )


if __name__ == "__main__":
    main()
