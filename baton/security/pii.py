"""PII masking at the LLM boundary: e-mails, phones, cards, IBANs, IP addresses and SSNs.

Detection is two steps. A cheap *shape* step finds candidates: one RE2 pattern per detector, run
over the UTF-8 bytes of the text. RE2 matches with a DFA, without backtracking, so prose without
PII flows past at hundreds of MB/s whatever the patterns look like. A precise *check* step then
runs on the few candidates only: the Luhn check for cards, ISO 7064 mod 97 and the country's length
for IBANs, the octets' range for IPv4, `ipaddress` for IPv6, the SSA's rules for SSNs, the numbering plans for phones, and a
guard against values glued to letters or to a longer number.

Look-alikes (order numbers, dates, amounts, versions, clocks) fail the shapes or the checks. Overlaps
are settled before the checks: candidates are taken leftmost first, longest first on a tie, and one
that fails its check still *shadows* whatever starts inside it, so a bad-checksum IBAN does not
leave a card number masked in its middle.

    >>> masker = default_masker()
    >>> masker.mask("Mail ana@example.com or call +44 20 7946 0958 about order #12345678.")
    'Mail [EMAIL] or call [PHONE] about order #12345678.'

`pseudonymise` puts stable tokens in place of the values instead, so an LLM can still tell two
customers apart, and `restore` puts the values back into its answer.

Left alone on purpose: IBANs in lower case; phone numbers outside North America written without
their +country code (020 7946 0958); bare runs of ten digits (4155552671), which cannot be told
from order and account numbers; IPv6 addresses in ::/8 other than IPv4-mapped ones, which are
the loopback ::1 or, far more often, code (a[1::2]); anything glued to letters or digits.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import NamedTuple

import re2


class PiiKind(StrEnum):
    """A kind of personal data the masker finds; its name is what masks and tokens show."""

    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    IBAN = "iban"
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    SSN = "ssn"


TOKEN_HEX = 12
"""Hex digits of HMAC in a pseudonym: 48 bits, so two values of one chat practically never share a token."""


class PiiPolicy(StrEnum):
    """What happens to PII before text crosses a boundary, such as the call to an LLM provider."""

    OFF = "off"
    MASK = "mask"  # "[EMAIL]": the value is gone for good
    PSEUDONYMISE = "pseudonymise"  # "[EMAIL_3f9a2c1d8e07]": stable per value, reversible with the mapping


class PiiMatch(NamedTuple):
    """One value found in a text: `text[start:end] == value`.

    A named tuple, not a frozen dataclass: as immutable, and a third of the cost to make, which
    counts on a log file where most lines hold a value.
    """

    kind: PiiKind
    start: int
    end: int
    value: str


# -- checks ---------------------------------------------------------------------------------------
# A check takes the text and a candidate's span and returns the span of the valid value, or None.
# The span it returns may be shorter: a greedy shape can run on into a word or number after it.

Span = tuple[int, int]

_SEPARATORS = b" .-()+"


def _digits(value: str) -> bytes:
    """The ASCII digits of a value whose shape allows nothing but them and separators.

    Bytes, because bytes delete and translate in one pass of C, where a str looks each character
    up in a dict: a card's check costs less than half of what it did on a str.
    """
    return value.encode().translate(None, _SEPARATORS)


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


# Luhn doubles every second digit from the right and adds the digits of the result: 2n's digit sum.
_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")


def _luhn_ok(digits: bytes) -> bool:
    # Each digit, doubled or not, is still an ASCII digit: the sum of their values less 48 apiece.
    return (sum(digits[-1::-2]) + sum(digits[-2::-2].translate(_DOUBLED)) - 48 * len(digits)) % 10 == 0


def _check_card(text: str, start: int, end: int) -> Span | None:
    digits = _digits(text[start:end])
    # The first digit names the industry: 1-6 are airlines, travel, banking and retail, where every
    # card network lives; 0 and 7-9 are not cards (but are how most EAN-13 barcodes and all
    # ISBN-13s start, one in ten of which passes the Luhn check by chance).
    if not (13 <= len(digits) <= 19 and digits[:1] in b"123456"):
        return None
    return (start, end) if _luhn_ok(digits) else None


# IBAN length by country, from SWIFT's IBAN registry (ISO 13616). A country not listed here yet is
# still accepted on its checksum alone, at any length from 15 to 34.
_IBAN_LENGTHS = {
    country: length
    for length, countries in {
        15: "NO",
        16: "BE",
        18: "DK FI FK FO GL NL SD",
        19: "MK SI",
        20: "AT BA EE KZ LT LU MN XK",
        21: "CH HR LI LV",
        22: "BG BH CR DE GB GE IE ME RS VA",
        23: "AE GI IL IQ OM SO TL",
        24: "AD CZ ES MD PK RO SA SE SK TN VG",
        25: "LY PT ST",
        26: "IS TR",
        27: "BI DJ FR GR IT MC MR SM",
        28: "AL AZ BY CY DO GT HN HU LB NI PL SV",
        29: "BR EG PS QA UA",
        30: "JO KW MU YE",
        31: "MT SC",
        32: "LC",
        33: "RU",
    }.items()
    for country in countries.split()
}

# ISO 7064 mod 97-10 reads a letter as two digits: A=10 ... Z=35.
_IBAN_NUMBERS = str.maketrans({chr(c): str(c - 55) for c in range(ord("A"), ord("Z") + 1)})


def _mod97_ok(iban: str) -> bool:
    return int((iban[4:] + iban[:4]).translate(_IBAN_NUMBERS)) % 97 == 1


def _check_iban(text: str, start: int, end: int) -> Span | None:
    compact = text[start:end].replace(" ", "")
    length = _IBAN_LENGTHS.get(compact[:2])
    if length is None:
        return (start, end) if 15 <= len(compact) <= 34 and _mod97_ok(compact) else None
    if len(compact) < length:
        return None
    # The shape may have run on into what follows ("... 5597 0.5", "... 7034 THEN"): the country's
    # length says where the IBAN ends, which must be the end of a group. Trying shorter and
    # shorter cuts instead would give every bad IBAN a few more 1-in-97 chances to pass.
    cut, seen = start, 0
    while seen < length:
        seen += text[cut] != " "
        cut += 1
    if cut < end and text[cut] != " ":
        return None
    return (start, cut) if _mod97_ok(compact[:length]) else None


def _check_ssn(text: str, start: int, end: int) -> Span | None:
    value = text[start:end]  # "AAA-GG-SSSS" or "AAA GG SSSS", as the shape ensures
    area, group, serial = value[:3], value[4:6], value[7:]
    # The SSA never issues area 000, 666 or 9xx (those are ITINs), group 00 or serial 0000.
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    return start, end


# An extension ("x204", "ext. 204") follows a number without being one of its digits.
_EXTENSION = r" ?(?:x|ext\.?) ?\d{1,5}"
_TRAILING_EXTENSION = re.compile(_EXTENSION + "$")


def _phone_digits(value: str) -> bytes:
    if "x" in value:  # every extension has one: most numbers skip the regex
        value = _TRAILING_EXTENSION.sub("", value)
    # "(0)" is the trunk prefix of "+44 (0)20 ...", dialled only from inside the country.
    return _digits(value.replace("(0)", ""))


def _nanp_ok(national: bytes) -> bool:
    # North America: a 3-digit area code and a 3-digit exchange, neither starting with 0 or 1.
    return len(national) == 10 and national[0] >= ord("2") and national[3] >= ord("2")


def _check_us_phone(text: str, start: int, end: int) -> Span | None:
    digits = _phone_digits(text[start:end])
    national = digits[1:] if len(digits) == 11 else digits  # "1-800-..." has the country code
    return (start, end) if _nanp_ok(national) else None


def _check_intl_phone(text: str, start: int, end: int) -> Span | None:
    while True:
        digits = _phone_digits(text[start:end])
        # E.164 allows 15 digits with the country code; fewer than 8 reach nobody.
        valid = _nanp_ok(digits[1:]) if digits.startswith(b"1") else 8 <= len(digits) <= 15
        if valid:
            return start, end
        # A number right after the phone ("call +49 30 123456 2 times") goes, a group at a time.
        cut = max(text.rfind(sep, start, end) for sep in " .-")
        if cut <= start + 2:
            return None
        end = cut


def _check_ipv4(text: str, start: int, end: int) -> Span | None:
    # `ipaddress`'s rules, without its cost: no number over 255, no leading zero.
    for number in text[start:end].split("."):
        if len(number) > 1 and (number[0] == "0" or (len(number) == 3 and number > "255")):
            return None
    return start, end


def _check_ipv6(text: str, start: int, end: int) -> Span | None:
    # Clocks (12:30:45) and MAC addresses never get here: the shape wants `::` or six colons.
    # C++ names (Cafe::Bad), runs of colons and 64-bit MACs (aa:bb:cc:dd:ee:ff:11:22: groups of two
    # digits, so in ::/8) do, and the rules below turn them down. A glued prefix is trimmed:
    # "IPv6:fe80::1" matches the shape from its "6".
    spans = [(start, end)]
    first = text.find(":", start, end)
    if first > start:
        spans.append((first + 1, end))
    for s, e in spans:
        written = text[s:e]
        # Not glued to a word before it, nor part of a run of three colons, which no address has.
        if (s > 0 and _is_word(text[s - 1])) or ":::" in text[s : e + 1] or text[e : e + 2] == "::":
            continue
        # A digit, because C++ names such as Cafe::Bad are valid addresses too.
        if not ("::" in written or written.count(":") >= 6) or not any(ch.isdigit() for ch in written):
            continue
        try:
            address = ipaddress.IPv6Address(written)
        except ValueError:
            continue
        # ::/8 holds the loopback (::1), the unspecified address and IPv4 embeddings, none of which
        # names a host but the last; what else looks like it is code: the slices a[1::2], [::2].
        if address.packed[0] == 0 and address.ipv4_mapped is None and "." not in written:
            continue
        return s, e
    return None


def _check_email(text: str, start: int, end: int) -> Span | None:
    while text[start] == ".":  # an ellipsis before the address is not part of it
        start += 1
    return None if text[start] == "@" else (start, end)


# -- detectors ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Detector:
    """A shape (RE2 syntax, matched on UTF-8 bytes) and the check its candidates must pass.

    Every value must stand apart from letters and digits around it (`\\b` in RE2 knows only ASCII,
    so `_glued` checks again with Unicode). Some must also not continue a longer number: no
    character of `not_after` just before them, no character of `not_before_digit` followed by a
    digit just after (10.0.19045.2965, 1.2.3.4.5, INV-4111...).
    """

    kind: PiiKind
    shape: str
    check: Callable[[str, int, int], Span | None]
    not_after: str = ""
    not_before_digit: str = ""


_NUMBER_GLUE = ".-"

_HEX_GROUP = "[0-9A-Fa-f]{1,4}"
_HEX_GROUPS = rf"{_HEX_GROUP}(?::{_HEX_GROUP})"
_IPV4_TAIL = r"(?:\.\d{1,3}){3}"
# An optional group and colon first, for a glued prefix ("IPv6:fe80::1", see the check).
_IPV6_SHAPE = (
    rf"(?:{_HEX_GROUP}:)?"
    rf"(?:{_HEX_GROUPS}{{6,7}}(?:{_IPV4_TAIL})?|(?:{_HEX_GROUPS}{{0,6}})?::(?:{_HEX_GROUPS}{{0,6}}(?:{_IPV4_TAIL})?)?)"
)

_DETECTORS = (
    # RE2 has no look-behind, so the left edge of an address is where its local part starts.
    _Detector(PiiKind.EMAIL, r"[\pL\pN._%+\-]+@[\pL\pN\-]+(?:\.[\pL\pN\-]+)*\.\pL{2,}", _check_email),
    # "+44 20 7946 0958", "+33 1 23 45 67 89", "+1 (415) 555-2671", "+44 (0)20 ...", "+442079460958".
    _Detector(
        PiiKind.PHONE,
        r"\+\d{1,3}(?:[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,6}){1,6}" + rf"(?:{_EXTENSION})?\b",
        _check_intl_phone,
        not_before_digit=_NUMBER_GLUE,
    ),
    # "(415) 555-2671", "415-555-2671", "415.555.2671", "415 555 2671", "1-800-555-0199 x12".
    _Detector(
        PiiKind.PHONE,
        r"(?:\b1[ .\-])?(?:\(\d{3}\) ?|\b\d{3}[ .\-])\d{3}[ .\-]\d{4}" + rf"(?:{_EXTENSION})?\b",
        _check_us_phone,
        not_after=_NUMBER_GLUE,
        not_before_digit=_NUMBER_GLUE,
    ),
    # 13-19 digits in one run, or grouped 4-4-4-4(-3), 4-6-5 (Amex), 4-6-4 (Diners) or 4-4-5.
    _Detector(
        PiiKind.CARD,
        r"\b(?:\d{13,19}|\d{4}(?:[ \-]\d{4}){2}[ \-]\d{1,4}(?:[ \-]\d{3})?"
        r"|\d{4}[ \-]\d{6}[ \-]\d{4,5}|\d{4}[ \-]\d{4}[ \-]\d{5})\b",
        _check_card,
        not_after=_NUMBER_GLUE + "+",
        not_before_digit=_NUMBER_GLUE,
    ),
    # Country, check digits, and the account in groups of four, compact or spaced, in capitals.
    _Detector(PiiKind.IBAN, r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", _check_iban),
    # A range ("10.0.0.1-10.0.0.9") is two addresses, so only a dot makes an IPv4 part of a number.
    _Detector(
        PiiKind.IPV4,
        r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b",
        _check_ipv4,
        not_after=".",
        not_before_digit=".",
    ),
    # Full (seven colons, or six and an IPv4 tail), `::`-compressed, and IPv4-mapped
    # (::ffff:192.0.2.128). Fewer colons and no `::` is a clock (12:30:45), never a candidate.
    _Detector(PiiKind.IPV6, _IPV6_SHAPE, _check_ipv6),
    _Detector(
        PiiKind.SSN,
        r"\b\d{3}(?:-\d{2}-| \d{2} )\d{4}\b",
        _check_ssn,
        not_after=_NUMBER_GLUE,
        not_before_digit=_NUMBER_GLUE,
    ),
)


def _glued(text: str, span: Span, detector: _Detector) -> bool:
    """Whether the value is part of a longer word or number, not a value of its own."""
    start, end = span
    if start and (_is_word(before := text[start - 1]) or before in detector.not_after):
        return True
    if end < len(text):
        after = text[end]
        return _is_word(after) or (after in detector.not_before_digit and text[end + 1 : end + 2].isdigit())
    return False


# -- the masker -----------------------------------------------------------------------------------


SHAPE_SCAN_MEMORY = 8 << 20
"""Bytes RE2 may use for the set of every shape (its DFA); RE2's own default."""

_SHAPE_PROBE = (
    b"ana@example.com +44 20 7946 0958 (415) 555-2671 4111111111111111 DE89370400440532013000 "
    b"192.0.2.1 2001:db8::1 078-05-1120"
)
"""One value of every detector's shape."""


def _shape_scan() -> re2.Set | None:
    """A set of every detector's shape, matched at once; None where RE2 cannot build one that works.

    RE2 reports a set whose DFA ran out of memory as matching nothing, which would mask nothing:
    so the set must find every shape of the probe before it is trusted. (Once built, a set's DFA
    does not give up on a long text: RE2 abandons slow searches for single patterns, never sets.)
    """
    options = re2.Options()
    options.max_mem = SHAPE_SCAN_MEMORY
    scan = re2.Set.SearchSet(options)
    try:
        for detector in _DETECTORS:
            scan.Add(detector.shape)
        scan.Compile()
    except re2.error:
        return None
    if sorted(scan.Match(_SHAPE_PROBE) or ()) != list(range(len(_DETECTORS))):
        return None
    return scan


def _compile(shape: str) -> re2._re2.RE2:
    """A shape compiled for `_spans`: RE2 itself, without the `re`-like wrapper around it."""
    return re2.compile(shape)._regexp


_UNANCHORED = re2._re2.RE2.Anchor.UNANCHORED


def _spans(shape: re2._re2.RE2, data: bytes) -> list[Span]:
    """The byte spans of `shape`'s leftmost non-overlapping matches in `data`.

    `re2`'s own `finditer` builds a match object per match, several times the cost of finding it.
    """
    spans: list[Span] = []
    add, match = spans.append, shape.Match  # bound once: this loop runs once per candidate
    at, end = 0, len(data)
    while at <= end:
        span = match(_UNANCHORED, data, at, end)[0]
        if span[0] < 0:
            break
        add(span)
        at = span[1] if span[1] > span[0] else span[1] + 1
    return spans


_MASKS = {kind: f"[{kind.name}]" for kind in PiiKind}


class PiiMasker:
    """Finds PII in text and replaces it. Building one compiles the patterns; share it.

    It keeps no state between calls, so one instance serves every thread: `default_masker()`.
    """

    def __init__(self) -> None:
        self._detectors = [(_compile(d.shape), d) for d in _DETECTORS]
        # One scan with every shape at once says which detectors have a candidate at all: clean
        # text costs that scan alone, not one scan (and one Python call) per detector. Without a
        # working scan, every detector runs: slower, never blind.
        self._any_shape = _shape_scan()

    def find(self, text: str) -> list[PiiMatch]:
        """Every PII value in `text`: non-overlapping, sorted by start."""
        # "surrogatepass": a lone surrogate (from bytes decoded with surrogateescape) becomes bytes
        # that are not UTF-8, which RE2 treats as a character no shape matches.
        data = text.encode("utf-8", "surrogatepass")
        if self._any_shape is None:
            shaped: list[int] = list(range(len(self._detectors)))
        else:
            shaped = sorted(self._any_shape.Match(data) or ())
        if not shaped:
            return []
        found = [
            (start, end, detector)
            for shape, detector in (self._detectors[i] for i in shaped)
            for start, end in _spans(shape, data)
        ]
        found.sort(key=lambda c: (c[0], -c[1]))
        matches: list[PiiMatch] = []
        taken = 0  # end of the last match: nothing may overlap it
        shadow = (0, 0)  # the last candidate that failed its check: nothing may start inside it
        for start, end, detector in _char_spans(text, data, found):
            if start < taken or shadow[0] < start < shadow[1]:
                continue
            span = detector.check(text, start, end)
            if span is None or _glued(text, span, detector):
                if end > shadow[1]:  # a shorter one from the same start leaves the longer shadow
                    shadow = (start, end)
                continue
            matches.append(PiiMatch(detector.kind, span[0], span[1], text[span[0] : span[1]]))
            taken = span[1]
        return matches

    def mask(self, text: str) -> str:
        """`text` with each value replaced by its kind: "[EMAIL]", "[PHONE]", "[CARD]", ..."""
        return _replace(text, self.find(text), lambda m: _MASKS[m.kind])

    def pseudonymise(self, text: str, key: bytes) -> tuple[str, dict[str, str]]:
        """`text` with each value replaced by a token such as "[EMAIL_3f9a2c1d8e07]", and the mapping
        from token to value that `restore` needs.

        A token is the kind and the first 12 hex digits (48 bits) of HMAC-SHA256(key, kind + value): the same
        value gets the same token in every call under the same key, so a multi-turn chat stays
        coherent, and without the key a token tells nothing about its value.
        """
        mapping: dict[str, str] = {}

        def token(match: PiiMatch) -> str:
            digest = hmac.new(key, f"{match.kind.value}{match.value}".encode(), hashlib.sha256).hexdigest()
            name = f"[{match.kind.name}_{digest[:TOKEN_HEX]}]"
            mapping[name] = match.value
            return name

        return _replace(text, self.find(text), token), mapping


def _char_spans(
    text: str, data: bytes, found: list[tuple[int, int, _Detector]]
) -> list[tuple[int, int, _Detector]]:
    """The candidates with their byte offsets in `data` turned into character offsets in `text`."""
    if len(data) == len(text):  # all ASCII: a byte is a character
        return found
    spans = []
    byte_at = char_at = 0
    for start, end, detector in found:  # sorted by start, so the text is decoded once, in pieces
        char_at += len(data[byte_at:start].decode("utf-8", "surrogatepass"))
        byte_at = start
        spans.append((char_at, char_at + len(data[start:end].decode("utf-8", "surrogatepass")), detector))
    return spans


def _replace(text: str, matches: list[PiiMatch], replacement: Callable[[PiiMatch], str]) -> str:
    if not matches:
        return text
    parts: list[str] = []
    at = 0
    for match in matches:
        parts += (text[at : match.start], replacement(match))
        at = match.end
    parts.append(text[at:])
    return "".join(parts)


_KIND_NAMES = "|".join(kind.name for kind in PiiKind)
_TOKEN = re.compile(rf"\[(?:{_KIND_NAMES})_[0-9a-f]{{{TOKEN_HEX}}}\]")


def restore(text: str, mapping: dict[str, str]) -> str:
    """`text` (an LLM's answer to pseudonymised text, say) with each token of `mapping` replaced by
    its value, wherever the answer put it; tokens the mapping does not hold stay as they are."""
    return _TOKEN.sub(lambda m: mapping.get(m[0], m[0]), text)


@cache
def default_masker() -> PiiMasker:
    """The process's shared masker, built on first use."""
    return PiiMasker()
