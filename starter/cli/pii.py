"""`baton pii mask`: PII masked out of a stream, line by line, for pipes and log files.

tail -f app.log | baton pii mask > shareable.log
"""

from __future__ import annotations

import argparse
import io
import sys
from typing import BinaryIO

from baton.security.pii import PiiMasker, default_masker

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
    mask_stream(sys.stdin.buffer, sys.stdout.buffer, default_masker())
    return 0


def mask_stream(source: BinaryIO, sink: BinaryIO, masker: PiiMasker) -> None:
    """Copy `source` to `sink` with PII masked, flushing after every line so it works in a pipe."""
    # newline="": line endings pass through as they came (\r\n stays \r\n).
    lines = io.TextIOWrapper(source, encoding="utf-8", errors="replace", newline="")
    try:
        pending = ""
        while piece := lines.readline(PIECE):
            text = pending + piece
            if piece.endswith(("\n", "\r")):
                out, pending = masker.mask(text), ""
            else:  # the end of the input, or a piece of a long line
                cut = _safe_cut(text, masker)
                out, pending = masker.mask(text[:cut]), text[cut:]
            sink.write(out.encode())
            sink.flush()
        sink.write(masker.mask(pending).encode())
        sink.flush()
    finally:
        lines.detach()  # the caller owns `source`; closing the wrapper would close it


def _safe_cut(text: str, masker: PiiMasker) -> int:
    """Where to split a piece of a long line: at least HELD_BACK before its end, outside any value."""
    cut = len(text) - HELD_BACK
    if cut <= 0:
        return 0
    for match in masker.find(text):
        if match.end > cut:
            return min(cut, match.start)
    return cut
