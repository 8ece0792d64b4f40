"""`baton pii mask`: PII masked out of a stream, line by line, for pipes and log files.

tail -f app.log | baton pii mask > shareable.log
"""

from __future__ import annotations

import argparse
import codecs
import os
import signal
import sys
from io import BufferedIOBase
from typing import BinaryIO

from baton.security.pii import PiiMasker, default_masker

# The most one read takes from the input: a block of lines for a file, what has come for a pipe.
READ = 1 << 16
# A line longer than this is masked in pieces, so that memory stays bounded whatever comes in.
PIECE = 1 << 20
# How much of a piece waits for the next one, so that a value the cut goes through is seen whole:
# more than the longest value the masker finds (an e-mail address is at most 254 characters).
HELD_BACK = 512


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
    p.set_defaults(handler=_mask)


async def _mask(args: argparse.Namespace) -> int:
    # Blocking reads on the event loop on purpose: nothing else runs on it, and a blocked read in
    # a worker thread would keep Ctrl-C from ending the command.
    with open(sys.stdin.fileno(), "rb", closefd=False) as stdin:  # noqa: ASYNC230
        try:
            mask_stream(stdin, sys.stdout.buffer, default_masker())
        except BrokenPipeError:
            # The reader went away (`| head`): stop, with the status a tool killed by SIGPIPE has
            # (so `set -o pipefail` sees the cut), and point standard output at nothing so that
            # the interpreter's last flush does not fail again.
            nothing = os.open(os.devnull, os.O_WRONLY)
            os.dup2(nothing, sys.stdout.fileno())
            os.close(nothing)
            return 128 + signal.SIGPIPE
    return 0


def mask_stream(source: BufferedIOBase, sink: BinaryIO, masker: PiiMasker) -> None:
    """Copy `source` to `sink` with PII masked, each line written as soon as it has come in whole.

    Whatever one read returns, up to its last line end, is masked and written at once: a line
    typed into a pipe is answered at once, and a file goes through in blocks of many lines, which
    costs one masking call per block instead of one per line (no value spans a line end).
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    while chunk := source.read1(READ):
        text = pending + decoder.decode(chunk)
        # Line endings pass through as they came (\r\n stays \r\n): no value contains either.
        cut = max(text.rfind("\n"), text.rfind("\r")) + 1
        if not cut and len(text) > PIECE:  # a long line is masked in pieces
            cut = _safe_cut(text, masker)
        if cut:
            sink.write(masker.mask(text[:cut]).encode())
            sink.flush()
        pending = text[cut:]
    sink.write(masker.mask(pending + decoder.decode(b"", final=True)).encode())
    sink.flush()


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
