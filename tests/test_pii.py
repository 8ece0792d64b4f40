"""PII masking: what leaves for an LLM or a log line has no personal data, and nothing else changed."""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import IO

import pytest
import re2
from temporalio import activity, workflow

from baton.security import pii
from baton.security.pii import _DETECTORS, PiiKind, PiiMasker, PiiMatch, default_masker, restore
from baton.starter.cli import pii as pii_cli
from baton.starter.cli.pii import HELD_BACK, PIECE, mask_stream
from baton.telemetry.logs import JsonFormatter, MaskingFormatter, configure_logging
from bench.pii_corpus import generate, score

BATON = Path(sys.executable).with_name("baton")
KEY = b"test pseudonym key"


def found(text: str) -> list[tuple[PiiKind, str]]:
    return [(m.kind, m.value) for m in default_masker().find(text)]


@pytest.mark.parametrize(
    ("sentence", "kind", "value"),
    [
        (
            "Please write to ana.garcia+billing@mail.example.org before Friday.",
            PiiKind.EMAIL,
            "ana.garcia+billing@mail.example.org",
        ),
        ("Contact: <BOB_99@Example.CO.UK>", PiiKind.EMAIL, "BOB_99@Example.CO.UK"),
        ("Écrivez à éric.dupont@exemple.fr, merci.", PiiKind.EMAIL, "éric.dupont@exemple.fr"),
        ("Call me at (415) 555-2671 tonight.", PiiKind.PHONE, "(415) 555-2671"),
        ("My cell is 415-555-2671.", PiiKind.PHONE, "415-555-2671"),
        ("Office: 415.555.2671", PiiKind.PHONE, "415.555.2671"),
        ("Reach me on +1 415 555 2671 any time.", PiiKind.PHONE, "+1 415 555 2671"),
        ("The hotline is 1-800-555-0199.", PiiKind.PHONE, "1-800-555-0199"),
        ("Desk: 415-555-2671 x204, or +1-415-555-2671x47604.", PiiKind.PHONE, "415-555-2671 x204"),
        ("Desk: 415-555-2671 x204, or +1-415-555-2671x47604.", PiiKind.PHONE, "+1-415-555-2671x47604"),
        ("London desk: +44 20 7946 0958.", PiiKind.PHONE, "+44 20 7946 0958"),
        ("From abroad dial +44 (0)20 7946 0958.", PiiKind.PHONE, "+44 (0)20 7946 0958"),
        ("Berlin: +49 30 123456, ask for Jo.", PiiKind.PHONE, "+49 30 123456"),
        ("Paris: +33 1 23 45 67 89", PiiKind.PHONE, "+33 1 23 45 67 89"),
        ("Charge it to 4111 1111 1111 1111, thanks.", PiiKind.CARD, "4111 1111 1111 1111"),
        ("card=5500-0000-0000-0004", PiiKind.CARD, "5500-0000-0000-0004"),
        ("Amex 3782 822463 10005 on file", PiiKind.CARD, "3782 822463 10005"),
        ("PAN:4012888888881881", PiiKind.CARD, "4012888888881881"),
        ("Wire it to DE89 3704 0044 0532 0130 00 today.", PiiKind.IBAN, "DE89 3704 0044 0532 0130 00"),
        ("IBAN:GB82WEST12345698765432", PiiKind.IBAN, "GB82WEST12345698765432"),
        ("Account BE68 5390 0754 7034 THEN close it.", PiiKind.IBAN, "BE68 5390 0754 7034"),
        ("Login from 192.168.1.20 at noon.", PiiKind.IPV4, "192.168.1.20"),
        ("Blocked 10.0.0.1-10.0.0.9 and version 1.2.3.4 alike.", PiiKind.IPV4, "10.0.0.1"),
        ("Server at 203.0.113.7:8080 is down.", PiiKind.IPV4, "203.0.113.7"),
        ("My SSN is 078-05-1120.", PiiKind.SSN, "078-05-1120"),
        ("SSN:123 45 6789", PiiKind.SSN, "123 45 6789"),
    ],
)
def test_each_kind_is_found_in_a_sentence(sentence: str, kind: PiiKind, value: str) -> None:
    assert (kind, value) in found(sentence)


def test_a_match_says_where_the_value_is_even_after_emoji_and_accents() -> None:
    text = "😀 café — write to zoë@example.com or call +44 20 7946 0958 ✓"
    for match in default_masker().find(text):
        assert text[match.start : match.end] == match.value
    assert [m.kind for m in default_masker().find(text)] == [PiiKind.EMAIL, PiiKind.PHONE]


@pytest.mark.parametrize(
    "text",
    [
        "Order #12345678 shipped.",
        "See PO-2024-000123 and INV-000123456.",
        "Due 2024-05-17, or 17/05/2024, or 05-17-2024, or 17.05.2024.",
        "Total $1,234,567.89 (EUR 12.500,00, €1.234,56).",
        "Upgrade from v1.2.3 to v1.2.3.4, Windows 10.0.19045.2965, build 1.2.3.4.5.",
        "Meet at 12:30:45 or 09:05.",
        "NIC 00:1A:2B:3C:4D:5E is fine.",
        "Not an address: 300.1.2.3 or 1.2.3.256.",
        "Code, not addresses: items[::2], rows[1::2], and the loopback ::1.",
        "Tracking 4111 1111 1111 1112 and 4111111111111112 fail Luhn.",
        "IBAN DE88 3704 0044 0532 0130 00 has a bad checksum.",
        "A digit run glued to letters: ID4111111111111111 or 4111111111111111x.",
        "Call extension 555-2671 or 2671.",
        "ISBN 9780306400001 passes Luhn, but no card starts with 9.",
        "Plain numbers: 42 people, 15% more, in 2024.",
    ],
)
def test_lookalikes_stay_untouched(text: str) -> None:
    assert default_masker().mask(text) == text


@pytest.mark.parametrize(
    "ssn", ["000-12-3456", "666-12-3456", "900-12-3456", "999-12-3456", "123-00-4567", "123-45-0000"]
)
def test_numbers_the_ssa_never_issues_are_not_ssns(ssn: str) -> None:
    assert found(f"SSN {ssn}") == []


@pytest.mark.parametrize(
    "address",
    [
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "2001:db8:85a3::8a2e:370:7334",
        "2001:DB8::1",
        "fe80::1",
        "::ffff:192.0.2.128",
    ],
)
def test_ipv6_forms_are_found(address: str) -> None:
    texts = [f"from {address} today", f"host=[{address}]:443", f"IPv6:{address}"]
    if not address.startswith(":"):  # "ip:::1" could be "ip::" and ":1" as well
        texts.append(f"ip:{address}: up")
    for text in texts:
        assert found(text) == [(PiiKind.IPV6, address)], text


@pytest.mark.parametrize("text", ["at 12:30:45.120", "ab:cd:ef:12:34:56", "a:b:c:d::e:f:1:::2", "fe80::1:::"])
def test_clocks_and_colon_runs_are_no_ipv6(text: str) -> None:
    assert found(text) == []


def test_mask_replaces_each_value_by_its_kind() -> None:
    text = (
        "Hi, I'm ana@example.com, phone +44 20 7946 0958, card 4111-1111-1111-1111, "
        "IBAN GB82 WEST 1234 5698 7654 32, SSN 078-05-1120, from 10.1.2.3 and fe80::1. Order #12345678."
    )
    assert default_masker().mask(text) == (
        "Hi, I'm [EMAIL], phone [PHONE], card [CARD], IBAN [IBAN], SSN [SSN], from [IPV4] and [IPV6]. Order #12345678."
    )


def test_pseudonyms_are_stable_across_turns_and_keys_tell_them_apart() -> None:
    masker = default_masker()
    first, first_map = masker.pseudonymise("I am ana@example.com.", KEY)
    second, second_map = masker.pseudonymise("Again: ana@example.com, and bob@example.com", KEY)
    (token,) = first_map
    assert first == f"I am {token}."
    assert token.startswith("[EMAIL_") and len(token) == len("[EMAIL_3f9a2c1d8e07]")
    assert second_map[token] == "ana@example.com" and second.startswith(f"Again: {token}, and [EMAIL_")
    other, _ = masker.pseudonymise("I am ana@example.com.", b"another key")
    assert other != first


def test_restore_puts_values_back_wherever_the_answer_puts_tokens() -> None:
    masker = default_masker()
    prompt, mapping = masker.pseudonymise(
        "Email ana@example.com and ana@example.com's manager at 415-555-2671.", KEY
    )
    token_of = {value: token for token, value in mapping.items()}
    email_token, phone_token = token_of["ana@example.com"], token_of["415-555-2671"]
    assert prompt.count(email_token) == 2
    assert restore(prompt, mapping) == "Email ana@example.com and ana@example.com's manager at 415-555-2671."
    answer = f"Done: I called {phone_token} first, then wrote to {email_token} ({email_token} replied)."
    assert restore(answer, mapping) == (
        "Done: I called 415-555-2671 first, then wrote to ana@example.com (ana@example.com replied)."
    )


def test_restore_leaves_tokens_it_has_no_value_for() -> None:
    assert restore("Ask [EMAIL_0badc0de0bad] or [CARD]", {"[EMAIL_123456789abc]": "x@example.com"}) == (
        "Ask [EMAIL_0badc0de0bad] or [CARD]"
    )


def test_log_lines_carry_no_pii_from_arguments_or_exceptions() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(MaskingFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.pii")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("signed in: %s from %s", "ana@example.com", "10.1.2.3")
        try:
            raise ValueError("no account for bob@example.com")
        except ValueError:
            logger.exception("lookup failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = stream.getvalue()
    assert "WARNING signed in: [EMAIL] from [IPV4]" in lines
    assert "ValueError: no account for [EMAIL]" in lines
    assert "@example.com" not in lines


def test_configure_logging_twice_installs_one_handler() -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        configure_logging("DEBUG", "text")
        added = [h for h in root.handlers if h not in before[0]]
        assert len(added) == 1 and isinstance(added[0].formatter, MaskingFormatter)
        configure_logging("warning", "json")
        assert [h for h in root.handlers if h not in before[0]] == added  # the same handler
        assert isinstance(added[0].formatter, JsonFormatter)
        assert root.level == logging.WARNING
        configure_logging("INFO", "json")
        assert logging.getLogger("httpx").level == logging.WARNING  # its INFO lines are whole URLs
        # A JSON line has the run's fields as fields: Temporal does not append them to the message.
        assert not workflow.logger.workflow_info_on_message and not activity.logger.activity_info_on_message
        configure_logging("INFO", "text")
        assert workflow.logger.workflow_info_on_message and activity.logger.activity_info_on_message
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])


def test_baton_pii_mask_masks_standard_input_line_by_line() -> None:
    stdin = (
        b"ana@example.com wrote\n"
        b"call +44 20 7946 0958 about order #12345678\r\n"
        b"\xff\xfe not UTF-8, card 4111 1111 1111 1111\n"
        b"last line without newline: 078-05-1120"
    )
    result = subprocess.run([BATON, "pii", "mask"], input=stdin, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split("\n") == [
        "[EMAIL] wrote",
        "call [PHONE] about order #12345678\r",
        "\ufffd\ufffd not UTF-8, card [CARD]",
        "last line without newline: [SSN]",
    ]


def test_baton_pii_mask_answers_each_line_before_input_ends() -> None:
    with subprocess.Popen([BATON, "pii", "mask"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as baton:
        assert baton.stdin and baton.stdout
        baton.stdin.write(b"from 10.1.2.3\n")
        baton.stdin.flush()
        assert baton.stdout.readline() == b"from [IPV4]\n"
        baton.stdin.close()
        assert baton.wait(timeout=60) == 0


def test_baton_pii_mask_stops_quietly_when_its_reader_goes_away() -> None:
    # `baton pii mask < app.log | head -1`: head exits after one line.
    with subprocess.Popen(
        [BATON, "pii", "mask"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as baton:
        assert baton.stdin and baton.stdout and baton.stderr
        baton.stdin.write(b"from 10.1.2.3\n")
        baton.stdin.flush()
        assert baton.stdout.readline() == b"from [IPV4]\n"
        baton.stdout.close()
        with contextlib.suppress(BrokenPipeError):  # it may be gone before this is written
            baton.stdin.write(b"ana@example.com\n" * 10_000)
            baton.stdin.close()
        assert baton.wait(timeout=60) in (0, 141)  # 141 if it was still writing, as `cat` would be
        assert baton.stderr.read() == b""


def test_baton_pii_mask_masks_a_value_across_the_pieces_of_a_very_long_line() -> None:
    # The e-mail straddles the boundary where the first piece of the line ends.
    head = "x" * (PIECE - 10) + " "
    line = head + "ana@example.com " + "y" * (3 * HELD_BACK) + "\n"
    result = subprocess.run([BATON, "pii", "mask"], input=line.encode(), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == head + "[EMAIL] " + "y" * (3 * HELD_BACK) + "\n"


def test_baton_pii_mask_gives_what_masking_each_line_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    # Reads of 7 bytes cut lines, values and a two-byte character ("é") anywhere.
    monkeypatch.setattr(pii_cli, "READ", 7)
    lines = [
        "2026-12-03T08:15:02Z login ana@example.com from 10.1.2.3\n",
        "café: card 4111 1111 1111 1111, order #12345678\r\n",
        "\n",
        "clock 12:30:45 only\r",
        "call +44 20 7946 0958\n",
        "no line end: fe80::1",
    ]
    masked = io.BytesIO()
    mask_stream(io.BytesIO("".join(lines).encode()), masked, default_masker())
    assert masked.getvalue().decode() == "".join(default_masker().mask(line) for line in lines)


def test_baton_pii_mask_holds_back_a_bounded_amount_of_a_line_whatever_it_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One e-mail-shaped run far longer than any address: waiting for its end would keep the whole
    # line in memory, and scan it again on every read.
    monkeypatch.setattr(pii_cli, "PIECE", 8192)
    monkeypatch.setattr(pii_cli, "READ", 1024)
    line = b"a" * 100_000 + b"@example." + b"c" * 100_000 + b" then ana@example.com\n"
    scanned: list[int] = []

    class Watched(PiiMasker):
        def find(self, text: str) -> list[PiiMatch]:
            scanned.append(len(text))
            return super().find(text)

    sink = io.BytesIO()
    mask_stream(io.BytesIO(line), sink, Watched())
    assert max(scanned) <= 8192 + 1024
    assert sink.getvalue().endswith(b" then [EMAIL]\n") and b"@example." not in sink.getvalue()


def _log_file(lines: int) -> str:
    """An application log where most lines hold a value: what `baton pii mask` is for."""
    return "".join(
        f"2026-12-03T08:15:{i % 60:02d}Z login user{i}@example.com from 10.0.{i % 250}.{i % 199 + 1} "
        f"card 4111 1111 1111 1111 order #{i:08d}\n"
        for i in range(lines)
    )


def test_blocks_masked_by_several_processes_come_out_as_one_process_masks_them() -> None:
    log = _log_file(20_000)  # about 40 full reads

    class Tagged(PiiMasker):
        """Marks each block with the process that masked it."""

        def mask(self, text: str) -> str:
            return f"<{os.getpid()}>" + super().mask(text)

    sink = io.BytesIO()
    mask_stream(io.BytesIO(log.encode()), sink, Tagged(), jobs=2)
    tags = re.findall(r"<(\d+)>", sink.getvalue().decode())
    assert {int(tag) for tag in tags} - {os.getpid()}, "no block was masked by another process"
    assert re.sub(r"<\d+>", "", sink.getvalue().decode()) == default_masker().mask(log)


def test_baton_pii_mask_masks_a_file_on_every_cpu_as_on_one(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(_log_file(20_000))
    expected = default_masker().mask(log.read_text()).encode()
    for jobs in ([], ["--jobs", "1"], ["--jobs", "3"]):
        with log.open("rb") as stdin:
            result = subprocess.run(
                [BATON, "pii", "mask", *jobs], stdin=stdin, capture_output=True, timeout=120
            )
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected, jobs


@pytest.mark.parametrize("jobs", ["0", "-1", "two", "²"])
def test_baton_pii_mask_refuses_a_number_of_jobs_below_one(jobs: str) -> None:
    result = subprocess.run([BATON, "pii", "mask", "--jobs", jobs], capture_output=True, timeout=60)
    assert result.returncode == 2
    assert f"argument --jobs: {jobs!r} is not a number of processes (1 or more)".encode() in result.stderr


def test_baton_pii_mask_writes_a_full_read_when_the_input_pauses_after_it() -> None:
    # Exactly one read's worth of lines, then nothing for as long as the writer likes (`tail -f`):
    # the lines must come out now, not when more input comes.
    block = _log_file(5_000).encode()[: pii_cli.READ]
    block = block[: block.rindex(b"\n") + 1]
    block += b"x" * (pii_cli.READ - len(block) - 1) + b"\n"
    with subprocess.Popen(
        [BATON, "pii", "mask", "--jobs", "2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as baton:
        assert baton.stdin and baton.stdout
        baton.stdin.write(block)  # into the pipe's buffer whole, before the command reads
        baton.stdin.flush()
        assert _readable_within(baton.stdout, seconds=30), "the block waits for more input"
        assert baton.stdout.readline().endswith(b"card [CARD] order #00000000\n")
        baton.stdin.close()
        assert baton.wait(timeout=60) == 0


def _readable_within(stream: IO[bytes], seconds: float) -> bool:
    return bool(select.select([stream], [], [], seconds)[0])


def _masking_a_stream_that_never_ends(mark: str) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """A writer that never stops, and `baton pii mask` on several processes reading it, with the
    output in a pipe; both carry `mark` in their environment, as the command's jobs do."""
    line = b"2026-12-03T08:15:02Z login ana@example.com from 10.1.2.3\n"
    marked = {**os.environ, "BATON_TEST_MARK": mark}
    feeder = subprocess.Popen(
        [sys.executable, "-c", f"import sys\nwhile True: sys.stdout.buffer.write({line * 2000!r})"],
        stdout=subprocess.PIPE,
        env=marked,
    )
    assert feeder.stdout
    baton = subprocess.Popen(
        [BATON, "pii", "mask", "--jobs", "2"],
        stdin=feeder.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=marked,
    )
    feeder.stdout.close()  # the command holds the only reading end: the feeder dies with it
    assert baton.stdout
    assert baton.stdout.readline() == b"2026-12-03T08:15:02Z login [EMAIL] from [IPV4]\n"
    return feeder, baton


@pytest.mark.parametrize(
    ("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGKILL, -9)]
)
def test_baton_pii_mask_stopped_mid_stream_stops_its_jobs_and_ends_its_output(
    stop: signal.Signals, status: int
) -> None:
    # Ctrl-C, `kill`, the OOM killer: the command ends at once, its reader sees the end of its
    # output, and no job is left masking (or holding a pipe open) for nobody.
    mark = f"baton-test-{uuid.uuid4()}"
    feeder, baton = _masking_a_stream_that_never_ends(mark)
    assert baton.stdout and baton.stderr
    try:
        baton.send_signal(stop)
        assert baton.wait(timeout=30) == status
        assert _ends_within(baton.stdout, seconds=30), "the output stays open after the command ended"
        assert baton.stderr.read() == b""
        assert _processes_marked_after(mark, seconds=30) == [], "jobs outlived the command"
    finally:
        for pid in _processes_marked(mark):
            os.kill(pid, signal.SIGKILL)
        for process in (baton, feeder):
            process.kill()
            process.wait()
            assert process.stdout
            process.stdout.close()
        baton.stderr.close()


def _ends_within(stream: IO[bytes], seconds: float) -> bool:
    """Whether `stream` reaches its end within `seconds`, whatever is still in it."""
    deadline = time.monotonic() + seconds
    while _readable_within(stream, max(0.0, deadline - time.monotonic())):
        if not os.read(stream.fileno(), 1 << 16):
            return True
    return False


def test_baton_pii_mask_on_a_file_leaves_no_process_behind_when_its_reader_goes_away(tmp_path: Path) -> None:
    # `baton pii mask < app.log | head -1`, while several processes mask the file's blocks.
    log = tmp_path / "app.log"
    log.write_text(_log_file(100_000))
    mark = f"baton-test-{uuid.uuid4()}"
    with (
        log.open("rb") as stdin,
        subprocess.Popen(
            [BATON, "pii", "mask", "--jobs", "2"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "BATON_TEST_MARK": mark},
        ) as baton,
    ):
        assert baton.stdout and baton.stderr
        assert baton.stdout.readline().endswith(b"card [CARD] order #00000000\n")
        baton.stdout.close()
        assert baton.wait(timeout=60) == 141
        assert baton.stderr.read() == b""
    assert _processes_marked(mark) == []


def _processes_marked_after(mark: str, seconds: float) -> list[int]:
    """The processes whose environment holds `mark` once `seconds` have passed, or none before."""
    deadline = time.monotonic() + seconds
    while (marked := _processes_marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return marked


def _processes_marked(mark: str) -> list[int]:
    """The processes whose environment holds `mark` (a zombie's environment is gone)."""
    marked = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            if f"BATON_TEST_MARK={mark}".encode() in environ.read_bytes().split(b"\0"):
                marked.append(int(environ.parent.name))
    return marked


def test_baton_pii_mask_starts_without_loading_settings_or_temporal() -> None:
    # The filter's start is the imports it does: none of the command line's heavy ones.
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "baton.starter.cli", "pii", "mask"],
        input=b"ana@example.com\n",
        capture_output=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"[EMAIL]\n"
    imported = {line.rpartition("|")[2].strip() for line in run.stderr.decode().splitlines()}
    assert "baton.security.pii" in imported
    heavy = {"temporalio", "sqlalchemy", "pydantic_settings", "rich", "opentelemetry", "asyncio"}
    assert {name.split(".")[0] for name in imported} & heavy == set()


def test_recall_and_precision_on_generated_chat_text() -> None:
    corpus = generate(1_000_000, seed=7)
    result = score(corpus, default_masker().find(corpus.text))
    for kind in (PiiKind.EMAIL, PiiKind.CARD, PiiKind.IBAN, PiiKind.SSN):
        assert result.recall[kind] >= 0.99, kind
    for kind in (PiiKind.PHONE, PiiKind.IPV4, PiiKind.IPV6):
        assert result.recall[kind] >= 0.97, kind
    assert result.touched_lookalikes == []
    assert result.precision >= 0.99


def test_matches_do_not_overlap_and_are_sorted() -> None:
    corpus = generate(200_000, seed=3)
    matches = default_masker().find(corpus.text)
    assert all(isinstance(m, PiiMatch) for m in matches)
    assert all(a.end <= b.start for a, b in itertools.pairwise(matches))


class _EveryShape:
    """Stands in for the masker's set scan: every detector runs, as before the scan existed."""

    def Match(self, data: bytes) -> list[int]:
        return list(range(len(_DETECTORS)))


def test_the_set_scan_skips_only_detectors_that_would_find_nothing() -> None:
    corpus = generate(300_000, seed=11)
    assert default_masker()._any_shape is not None  # RE2 built it: its probe found every shape
    every_detector = PiiMasker()
    every_detector._any_shape = _EveryShape()  # type: ignore[assignment]
    # Sentences: short texts, most with one kind of value or none, so that the scan skips many.
    sentences = [s for line in corpus.text.splitlines() for s in line.split(". ")]
    with_values = sum(1 for s in sentences if default_masker().find(s))
    assert len(sentences) // 10 < with_values < len(sentences) * 9 // 10
    for sentence in sentences:
        assert default_masker().find(sentence) == every_detector.find(sentence), sentence


@pytest.mark.parametrize("failure", ["too little memory to build it", "its DFA out of memory"])
def test_a_set_scan_re2_cannot_run_leaves_every_detector_running(
    monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    corpus = generate(50_000, seed=5)
    expected = default_masker().find(corpus.text)
    if failure == "too little memory to build it":
        monkeypatch.setattr(pii, "SHAPE_SCAN_MEMORY", 256 << 10)
    else:
        monkeypatch.setattr(re2.Set, "Match", lambda self, text: None)  # how RE2 reports it
    masker = PiiMasker()
    assert masker._any_shape is None  # the scan is refused, not trusted
    text = "Mail ana@example.com or call +44 20 7946 0958 about card 4111 1111 1111 1111."
    assert masker.mask(text) == "Mail [EMAIL] or call [PHONE] about card [CARD]."
    assert masker.find(corpus.text) == expected
