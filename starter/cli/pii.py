"""`baton pii mask`: PII masked out of a stream, line by line, for pipes and log files.

tail -f app.log | baton pii mask > shareable.log
"""

from __future__ import annotations

import argparse
import codecs
import ctypes
import os
import select
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
    """`baton pii ...`, which `baton.starter.cli:main` hands over before the rest of the command
    line loads: no settings, logging, tracing or event loop, which a text filter does not need."""
    parser = argparse.ArgumentParser(prog="baton")
    add_pii_commands(parser.add_subparsers(required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    # `kill` ends the command as Ctrl-C does: through the `with` blocks, which stop the jobs.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        code = args.handler(args)
        sys.stdout.flush()
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    except SystemExit as stopped:
        code = stopped.code if isinstance(stopped.code, int) else 1
    except Exception as e:  # an unreadable input, say: a message and a status, as every command gives
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        code = 1
    sys.stderr.flush()
    # Without the interpreter's last flush of standard output: stopped while its reader was not
    # reading (a paused pager), the command would wait on that flush for ever.
    os._exit(code)


def _exit_on_signal(number: int, frame: object) -> None:
    raise SystemExit(128 + number)


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
        help="processes that mask a file's blocks side by side (default: the CPUs this command may use)",
    )
    p.set_defaults(handler=_mask)


def _jobs(value: str) -> int:
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of processes (1 or more)")
    return jobs


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: the CPUs this process may run on
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _mask(args: argparse.Namespace) -> int:
    with open(sys.stdin.fileno(), "rb", closefd=False) as stdin:
        try:
            mask_stream(stdin, sys.stdout.buffer, default_masker(), args.jobs or _usable_cpus())
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

    With `jobs` above 1, blocks read while more input is ready (a file, a pipe whose writer is
    ahead) are masked by that many processes side by side, and written in the order they came;
    whenever the input pauses, everything read so far is written before the next read waits.
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
                blocks.mask(text[:cut], more_waiting=_more_ready(source))
            pending = text[cut:]
        blocks.mask(pending + decoder.decode(b"", final=True), more_waiting=False)


def _more_ready(source: BufferedIOBase) -> bool:
    """Whether another read would return at once: a file, or a pipe whose writer is ahead."""
    try:
        descriptor = source.fileno()
    except OSError:  # in memory: all of it is there
        return True
    return bool(select.select([descriptor], [], [], 0)[0])


class _Blocks:
    """Masks blocks of lines and writes them in order: here, or on `jobs` processes while more input is ready."""

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
                # spawned one would import Baton again).
                self._pool = ProcessPoolExecutor(
                    self._jobs,
                    mp_context=get_context("fork"),
                    initializer=_start_job,
                    initargs=(self._masker, os.getpid()),
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


def _start_job(masker: PiiMasker, command: int) -> None:
    """Make a forked process a job of the `command` process: it masks what that one sends, and
    nothing else of the command's is its business."""
    global _job_masker
    _job_masker = masker
    # Ctrl-C and `kill` are for the command, which stops its jobs; if it is killed outright, the
    # kernel kills its jobs too (they would otherwise wait for blocks for ever).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != command:  # killed before the line above
        os._exit(1)
    # Nor do its input and output belong to a job: holding them open, a job that outlived the
    # command would keep its reader from ever seeing the end of the output.
    nothing = os.open(os.devnull, os.O_RDWR)
    for descriptor in (0, 1):
        os.dup2(nothing, descriptor)
    os.close(nothing)


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


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
