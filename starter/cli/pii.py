"""`baton pii mask`: PII masked out of a stream, line by line, for pipes and log files.

tail -f app.log | baton pii mask > shareable.log
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import os
import signal
import sys
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from io import BufferedIOBase
from multiprocessing import get_context
from typing import BinaryIO

from baton.security.pii import PiiMasker, default_masker

# The most one read takes from the input: a block of lines for a file, what has come for a pipe.
READ = 1 << 16
# A line longer than this is masked in pieces, so that memory stays bounded whatever comes in.
PIECE = 1 << 20
# How much of a piece waits for the next one, so that a value the cut goes through is seen whole:
# more than the longest value the masker finds (an e-mail address is at most 254 characters).
HELD_BACK = 512


def main(argv: list[str] | None = None) -> None:
    """`baton pii ...` on its own, without the settings, logging and tracing of other commands."""
    parser = argparse.ArgumentParser(prog="baton")
    add_pii_commands(parser.add_subparsers(required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    try:
        code = asyncio.run(args.handler(args))
    except KeyboardInterrupt:
        code = 130
    except Exception as e:  # an unreadable input, say: a message and a status, as every command gives
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        code = 1
    sys.exit(code)


def add_pii_commands(sub: argparse._SubParsersAction) -> None:
    pii = sub.add_parser("pii", help="find personal data in text").add_subparsers(
        required=True, metavar="ACTION"
    )
    p = pii.add_parser(
        "mask",
        help="copy standard input to standard output with PII masked",
        description="Copy standard input to standard output, line by line, with e-mails, phones, cards, "
        "IBANs, IP addresses and SSNs replaced by [EMAIL], [PHONE], ... Input is read as UTF-8; "
        "undecodable bytes become U+FFFD.",
    )
    p.add_argument(
        "--jobs",
        type=_jobs,
        default=len(os.sched_getaffinity(0)),
        help="processes that mask a file's blocks side by side (default: the CPUs this command may use)",
    )
    p.set_defaults(handler=_mask)


def _jobs(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of processes (1 or more)")
    return int(value)


async def _mask(args: argparse.Namespace) -> int:
    # Blocking reads on the event loop on purpose: nothing else runs on it, and a blocked read in
    # a worker thread would keep Ctrl-C from ending the command.
    with open(sys.stdin.fileno(), "rb", closefd=False) as stdin:  # noqa: ASYNC230
        try:
            mask_stream(stdin, sys.stdout.buffer, default_masker(), args.jobs)
        except BrokenPipeError:
            # The reader went away (`| head`): stop, with the status a tool killed by SIGPIPE has
            # (so `set -o pipefail` sees the cut), and point standard output at nothing so that
            # the interpreter's last flush does not fail again.
            nothing = os.open(os.devnull, os.O_WRONLY)
            os.dup2(nothing, sys.stdout.fileno())
            os.close(nothing)
            return 128 + signal.SIGPIPE
    return 0


def mask_stream(source: BufferedIOBase, sink: BinaryIO, masker: PiiMasker, jobs: int = 1) -> None:
    """Copy `source` to `sink` with PII masked, each line written as soon as it has come in whole.

    Whatever one read returns, up to its last line end, is masked and written at once: a line
    typed into a pipe is answered at once, and a file goes through in blocks of many lines, which
    costs one masking call per block instead of one per line (no value spans a line end).

    With `jobs` above 1, blocks that come in full reads (a file, a pipe that keeps up) are masked
    by that many processes side by side, and written in the order they came; whenever the input
    pauses, everything read so far is written before the next read waits.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    with _Blocks(sink, masker, jobs) as blocks:
        while chunk := source.read1(READ):
            text = pending + decoder.decode(chunk)
            # Line endings pass through as they came (\r\n stays \r\n): no value contains either.
            cut = max(text.rfind("\n"), text.rfind("\r")) + 1
            if not cut and len(text) > PIECE:  # a long line is masked in pieces
                cut = _safe_cut(text, masker)
            if cut:
                blocks.mask(text[:cut], more_waiting=len(chunk) == READ)
            pending = text[cut:]
        blocks.mask(pending + decoder.decode(b"", final=True), more_waiting=False)


class _Blocks:
    """Masks blocks of lines and writes them in order: here, or on `jobs` processes while reads come full."""

    def __init__(self, sink: BinaryIO, masker: PiiMasker, jobs: int) -> None:
        self._sink = sink
        self._masker = masker
        self._jobs = jobs
        self._pool: ProcessPoolExecutor | None = None
        self._masked: deque[Future[bytes]] = deque()

    def __enter__(self) -> _Blocks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:  # blocks still queued after an error are dropped
            self._pool.shutdown(cancel_futures=True)

    def mask(self, block: str, *, more_waiting: bool) -> None:
        """Mask `block` and write it, or queue it while `more_waiting` says another read is ready."""
        if more_waiting and self._jobs > 1:
            if self._pool is None:
                # Forked, so that a process starts at once with the masker already built (a
                # spawned one would import Baton again); it leaves Ctrl-C to this one.
                self._pool = ProcessPoolExecutor(
                    self._jobs,
                    mp_context=get_context("fork"),
                    initializer=_start_job,
                    initargs=(self._masker,),
                )
            self._masked.append(self._pool.submit(_mask_block, block))
            # Write what is done, in order; wait only when enough is queued to keep every job busy.
            while self._masked and (self._masked[0].done() or len(self._masked) > 2 * self._jobs):
                self._sink.write(self._masked.popleft().result())
            return
        while self._masked:
            self._sink.write(self._masked.popleft().result())
        if block:
            self._sink.write(self._masker.mask(block).encode())
        self._sink.flush()


_job_masker: PiiMasker | None = None


def _start_job(masker: PiiMasker) -> None:
    global _job_masker
    _job_masker = masker
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _mask_block(block: str) -> bytes:
    assert _job_masker is not None, "_start_job runs first in every job"
    return _job_masker.mask(block).encode()


def _safe_cut(text: str, masker: PiiMasker) -> int:
    """Where to split a piece of a long line: at least HELD_BACK before its end, outside any value.

    A value that the piece starts with and that still runs past that point is no value the masker
    knows (the longest, an e-mail address, has at most 254 characters): it is cut at its end,
    masked whole as far as it has come, so that what waits for the next piece stays bounded.
    """
    cut = len(text) - HELD_BACK
    if cut <= 0:
        return 0
    for match in masker.find(text):
        if match.end > cut:
            return min(cut, match.start) or match.end
    return cut
