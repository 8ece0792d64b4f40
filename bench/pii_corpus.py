"""Prose sprinkled with PII and PII look-alikes, generated from a seed, with the truth about each.

The PII masking benchmark and its recall test share this generator, so the recall the benchmark
prints and the floor the test asserts are measured on the same kind of text. Every planted value
is recorded with its span as it is written: a `Planted` with a `kind` is PII the masker must mask
there, one with `kind=None` is a look-alike (an order number, a date, an amount, a version,
a Luhn-invalid digit run, a bad IBAN, an invalid SSN, a time...) that must come out untouched.

Import it as `bench.pii_corpus` from the repository root (the tests) or as `pii_corpus` from a
script in this folder (the benchmark).
"""

from __future__ import annotations

import bisect
import ipaddress
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

from baton.security.pii import PiiKind, PiiMatch


@dataclass(frozen=True, slots=True)
class Planted:
    """One value written into the corpus: PII of `kind`, or a look-alike when `kind` is None."""

    kind: PiiKind | None
    start: int
    end: int
    value: str


@dataclass(frozen=True, slots=True)
class Corpus:
    """The generated text and everything planted in it, in order of position."""

    text: str
    planted: list[Planted]

    def pii(self, kind: PiiKind) -> list[Planted]:
        """The planted PII of one kind."""
        return [p for p in self.planted if p.kind is kind]

    @property
    def lookalikes(self) -> list[Planted]:
        """The planted values that must stay untouched."""
        return [p for p in self.planted if p.kind is None]


# Mostly plain English, with the non-ASCII a chat transcript carries (accents, dashes, the euro
# sign), so the text is not the pure-ASCII best case for any engine.
_WORDS = (
    "the a an of to and in that is for it with as was on be at by this have from or one had not "
    "but what all were when we there can your which their said if do will each about how up out "
    "them then she many some so these would other into has more her two like him see time could no "
    "make than first been its who now people my made over did down only way find use may water long "
    "little very after words called just where most know get through back much before go good new "
    "write our used me man too any day same right look think also around another came come work "
    "three must because does part even place well such here take why help put different away again "
    "off went old number great tell men say small every found still between name should home big "
    "give air line set own under read last never us left end along while might next sound below "
    "saw something thought both few those always show large often together asked house world going "
    "want school important until form food keep children feet land side without boy once animal life "
    "enough took four head above kind began almost live page got earth need far hand high year mother "
    "light country father let night picture being study second soon story since white ever paper hard "
    "near sentence better best across during today however sure knew try told young sun thing whole "
    "hear example heard several change answer room sea against top turned learn point city play toward "
    "five himself usually money seen car morning body upon family later turn move face door cut done "
    "group true leave color red friend pretty eat front feel fact hour rest invoice account deploy "
    "server customer request payment shipping refund ticket report meeting contract quarter agent "
    "café naïve Zürich São Paulo résumé — € déjà vu"
).split()
_CONNECTORS = ("however", "meanwhile", "in short", "as discussed", "for the record", "by the way")
_ENDINGS = (".", ".", ".", "!", "?", "…")


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(6, 22))
    if rng.random() < 0.15:  # ordinary numbers in prose: counts, years, percentages
        words.insert(rng.randrange(len(words)), rng.choice(("3", "42", "2024", "15%", "7th", "1,200", "0.5")))
    if rng.random() < 0.1:
        words.insert(0, rng.choice(_CONNECTORS) + ",")
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice(_ENDINGS)


# -- PII ----------------------------------------------------------------------------------------


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(string.digits, k=n))


def _email(rng: random.Random) -> str:
    first = rng.choice(("ana", "bob", "chen", "dmitri", "eve", "fatima", "li", "zoë", "łukasz"))
    last = rng.choice(("smith", "garcia", "nguyen", "muller", "rossi", "kowalski", "tanaka"))
    local = rng.choice(
        (
            f"{first}.{last}",
            f"{first}{rng.randint(1, 999)}",
            f"{first}_{last}",
            f"{first}-{last}",
            f"{first}.{last}+{rng.choice(('news', 'billing', 'x'))}",
            f"{first[0]}{last}",
        )
    )
    domain = rng.choice(
        (
            "example.com",
            "mail.example.org",
            "corp.example.co.uk",
            "acme.io",
            "eu.sub.example.net",
            "gmail.com",
            "bücher.example.de",
        )
    )
    email = f"{local}@{domain}"
    return email.upper() if rng.random() < 0.05 else email


def _phone(rng: random.Random) -> str:
    if rng.random() < 0.5:
        area = f"{rng.randint(2, 9)}{_digits(rng, 2)}"
        exchange = f"{rng.randint(2, 9)}{_digits(rng, 2)}"
        line = _digits(rng, 4)
        return rng.choice(
            (
                f"({area}) {exchange}-{line}",
                f"({area}){exchange}-{line}",
                f"{area}-{exchange}-{line}",
                f"{area}.{exchange}.{line}",
                f"{area} {exchange} {line}",
                f"+1 {area} {exchange} {line}",
                f"+1-{area}-{exchange}-{line}",
                f"+1 ({area}) {exchange}-{line}",
                f"+1{area}{exchange}{line}",
                f"1-{area}-{exchange}-{line}",
                f"{area}-{exchange}-{line} x{rng.randint(1, 9999)}",
                f"+1-{area}-{exchange}-{line}x{rng.randint(1, 99999)}",
                f"({area}) {exchange}-{line} ext. {rng.randint(1, 999)}",
            )
        )
    d = lambda n: _digits(rng, n)  # noqa: E731 - a local shorthand keeps the table readable
    return rng.choice(
        (
            f"+44 20 {d(4)} {d(4)}",
            f"+44 (0)20 {d(4)} {d(4)}",
            f"+44 7700 {d(6)}",
            f"+49 30 {d(6)}",
            f"+49 151 {d(8)}",
            f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}",
            f"+33 6 {d(2)} {d(2)} {d(2)} {d(2)}",
            f"+81 3-{d(4)}-{d(4)}",
            f"+91 9{d(4)} {d(5)}",
            f"+61 2 {d(4)} {d(4)}",
            f"+353 1 {d(3)} {d(4)}",
            f"+34 6{d(2)} {d(3)} {d(3)}",
            f"+4420{d(8)}",
        )
    )


def luhn_check_digit(payload: str) -> str:
    """The digit that makes `payload` + digit pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        n = int(ch)
        if i % 2 == 0:  # these get doubled once the check digit is appended
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return str(-total % 10)


def _group(digits: str, sizes: tuple[int, ...], sep: str) -> str:
    parts, at = [], 0
    for size in sizes:
        parts.append(digits[at : at + size])
        at += size
    return sep.join(p for p in parts if p)


def _card_digits(rng: random.Random) -> tuple[str, tuple[int, ...]]:
    prefix, length, groups = rng.choice(
        (
            ("4", 16, (4, 4, 4, 4)),
            ("5" + str(rng.randint(1, 5)), 16, (4, 4, 4, 4)),
            ("3" + rng.choice("47"), 15, (4, 6, 5)),
            ("6011", 16, (4, 4, 4, 4)),
            ("4", 13, (4, 4, 5)),
            ("62", 19, (4, 4, 4, 4, 3)),
            ("36", 14, (4, 6, 4)),
        )
    )
    payload = prefix + _digits(rng, length - len(prefix) - 1)
    return payload + luhn_check_digit(payload), groups


def _card(rng: random.Random) -> str:
    digits, groups = _card_digits(rng)
    return _group(digits, groups, rng.choice(("", " ", " ", "-")))


# Country, total length, and the BBAN as character classes: d digit, L letter, a either.
_IBAN_FORMATS = (
    ("DE", "d" * 18),
    ("GB", "LLLL" + "d" * 14),
    ("FR", "d" * 10 + "a" * 11 + "dd"),
    ("NL", "LLLL" + "d" * 10),
    ("ES", "d" * 20),
    ("IT", "L" + "d" * 10 + "a" * 12),
    ("BE", "d" * 12),
    ("CH", "d" * 5 + "a" * 12),
    ("PL", "d" * 24),
    ("NO", "d" * 11),
    ("MT", "LLLL" + "d" * 5 + "a" * 18),
)


def iban_check_digits(country: str, bban: str) -> str:
    """The two check digits ISO 13616 gives `country` + `bban` (ISO 7064 mod 97-10)."""
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{98 - int(numeric) % 97:02d}"


def _bban(rng: random.Random, shape: str) -> str:
    pools = {"d": string.digits, "L": string.ascii_uppercase, "a": string.digits + string.ascii_uppercase}
    return "".join(rng.choice(pools[c]) for c in shape)


def _format_iban(compact: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _iban(rng: random.Random) -> str:
    country, shape = rng.choice(_IBAN_FORMATS)
    bban = _bban(rng, shape)
    return _format_iban(country + iban_check_digits(country, bban) + bban, rng)


def _ipv4(rng: random.Random) -> str:
    return str(ipaddress.IPv4Address(rng.getrandbits(32)))


def _ipv6(rng: random.Random) -> str:
    form = rng.randrange(6)
    if form == 0:
        return "::ffff:" + _ipv4(rng)
    if form == 1:
        return rng.choice(("fe80::1", f"fe80::{rng.getrandbits(16):x}:{rng.getrandbits(16):x}"))
    groups = [rng.getrandbits(16) for _ in range(8)]
    # Global unicast (2000::/3) or unique local (fd00::/8), as hosts have; ::/8 is not handed out.
    groups[0] = rng.choice((rng.randint(0x2000, 0x3FFF), 0x2001, 0xFD00 | rng.getrandbits(8)))
    if form in (2, 3):  # a run of zeros, so the compressed form has `::` somewhere in the middle
        at = rng.randrange(1, 6)
        run = rng.randint(2, 3)
        groups[at : at + run] = [0] * run
    address = ipaddress.IPv6Address(int("".join(f"{g:04x}" for g in groups), 16))
    text = address.exploded if form == 4 else address.compressed
    return text.upper() if rng.random() < 0.1 else text


def _ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    sep = rng.choice("-- ")
    return f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"


_PII: dict[PiiKind, tuple[Callable[[random.Random], str], tuple[str, ...]]] = {
    PiiKind.EMAIL: (_email, ("email me at", "reach", "cc", "mailto:", "from", "contact:", "user=")),
    PiiKind.PHONE: (_phone, ("call", "phone:", "mobile", "on", "text me at", "tel:", "dial")),
    PiiKind.CARD: (_card, ("card", "card number", "charged to", "Visa", "paid with", "PAN:", "pan=")),
    PiiKind.IBAN: (_iban, ("IBAN", "IBAN:", "wire to", "account", "transfer to", "iban=")),
    PiiKind.IPV4: (_ipv4, ("from", "host", "IP", "client", "address", "server at", "src=")),
    PiiKind.IPV6: (_ipv6, ("from", "host", "IPv6", "client", "address", "via", "dst=")),
    PiiKind.SSN: (_ssn, ("SSN", "SSN:", "social security number", "my SSN is", "ssn#")),
}


# -- look-alikes --------------------------------------------------------------------------------


def _luhn_invalid_run(rng: random.Random) -> str:
    digits, groups = _card_digits(rng)
    wrong = str((int(digits[-1]) + rng.randint(1, 9)) % 10)
    return _group(digits[:-1] + wrong, groups, rng.choice(("", " ", "-")))


def _bad_iban(rng: random.Random) -> str:
    country, shape = rng.choice(_IBAN_FORMATS)
    bban = _bban(rng, shape)
    good = int(iban_check_digits(country, bban))
    wrong = rng.choice([n for n in range(2, 99) if n != good])  # 2..98 are distinct modulo 97
    return _format_iban(f"{country}{wrong:02d}{bban}", rng)


def _invalid_ssn(rng: random.Random) -> str:
    area, group, serial = f"{rng.randint(1, 899):03d}", f"{rng.randint(1, 99):02d}", _digits(rng, 3) + "1"
    match rng.randrange(4):
        case 0:
            area = rng.choice(("000", "666", str(rng.randint(900, 999))))
        case 1:
            group = "00"
        case _:
            serial = "0000"
    return f"{area}-{group}-{serial}"


def _date(rng: random.Random) -> str:
    y, m, d = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice(
        (f"{y}-{m:02d}-{d:02d}", f"{d:02d}/{m:02d}/{y}", f"{m:02d}-{d:02d}-{y}", f"{d:02d}.{m:02d}.{y}")
    )


def _amount(rng: random.Random) -> str:
    n = rng.randint(1, 9_999_999)
    cents = rng.randint(0, 99)
    european = f"{n:,}".replace(",", ".")
    return rng.choice(
        (
            f"${n:,}.{cents:02d}",
            f"EUR {european},{cents:02d}",
            f"€{european},{cents:02d}",
            f"USD {n}.{cents:02d}",
        )
    )


def _version(rng: random.Random) -> str:
    a, b, c = rng.randint(0, 20), rng.randint(0, 30), rng.randint(0, 300)
    return rng.choice(
        (
            f"v{a}.{b}.{c}",
            f"v{a}.{b}.{c}.{rng.randint(0, 255)}",
            f"{a}.{b}.{rng.randint(10000, 30000)}.{rng.randint(1000, 9999)}",
            f"{a}.{b}.{c}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",
        )
    )


def _order(rng: random.Random) -> str:
    return rng.choice(
        (
            f"Order #{_digits(rng, 8)}",
            f"PO-{rng.randint(2015, 2030)}-{_digits(rng, 6)}",
            f"INV-{_digits(rng, 9)}",
            f"ticket #{_digits(rng, 7)}",
        )
    )


def _time(rng: random.Random) -> str:
    h, m, s = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    return rng.choice((f"{h:02d}:{m:02d}:{s:02d}", f"{h:02d}:{m:02d}"))


def _mac(rng: random.Random) -> str:
    return ":".join(f"{rng.getrandbits(8):02X}" for _ in range(6))


def _code(rng: random.Random) -> str:
    # Python slices and the loopback address: valid IPv6 text, but no host's address.
    return rng.choice(("items[::2]", f"rows[{rng.randint(1, 9)}::{rng.randint(2, 9)}]", "::1", "[::1]:8080"))


def _bad_ipv4(rng: random.Random) -> str:
    octets = [str(rng.randint(0, 255)) for _ in range(4)]
    octets[rng.randrange(4)] = str(rng.randint(256, 999))
    return ".".join(octets)


_LOOKALIKES: tuple[Callable[[random.Random], str], ...] = (
    _order,
    _date,
    _amount,
    _version,
    _luhn_invalid_run,
    _bad_iban,
    _invalid_ssn,
    _time,
    _mac,
    _bad_ipv4,
    _code,
)
_LOOKALIKE_INTROS = ("ref", "see", "on", "total", "build", "at", "id", "number", "")


# -- the corpus ---------------------------------------------------------------------------------


_BRACKETS = (
    ("", ""),
    ("", ""),
    ("", ""),
    ("(", ")"),
    ('"', '"'),
    ("<", ">"),
    ("[", "]"),
    ("**", "**"),
    ("`", "`"),
)


def generate(size: int, seed: int = 0, pii_rate: float = 0.15, lookalike_rate: float = 0.15) -> Corpus:
    """About `size` characters of prose in which a sentence carries PII with probability `pii_rate`,
    else a look-alike with probability `lookalike_rate`; one line in fifty is a comma-separated
    record of three PII values. The same arguments give the same corpus."""
    rng = random.Random(seed)
    kinds = list(_PII)
    parts: list[str] = []
    planted: list[Planted] = []
    length = 0

    def write(text: str) -> None:
        nonlocal length
        parts.append(text)
        length += len(text)

    def plant(kind: PiiKind | None, value: str) -> None:
        planted.append(Planted(kind, length, length + len(value), value))
        write(value)

    while length < size:
        roll = rng.random()
        if roll < 0.02:  # "ana@example.com,+49 30 123456,4111 1111 1111 1111"
            for i, kind in enumerate(rng.sample(kinds, 3)):
                write("," if i else "")
                plant(kind, _PII[kind][0](rng))
            write("\n")
            continue
        sentence = _sentence(rng)
        roll = rng.random()
        if roll >= pii_rate + lookalike_rate:
            write(sentence)
        else:
            kind: PiiKind | None = None
            if roll < pii_rate:
                kind = rng.choice(kinds)
                make, intros = _PII[kind]
                value = make(rng)
            else:
                intros = _LOOKALIKE_INTROS
                value = rng.choice(_LOOKALIKES)(rng)
            # Split the sentence after a word and put "<intro> <value>" there, maybe bracketed.
            cut = sentence.find(" ", rng.randrange(len(sentence)))
            if cut < 0:  # in the last word: the value goes just before the closing punctuation
                cut = len(sentence) - 1
            head, tail = sentence[:cut], sentence[cut:]
            intro = rng.choice(intros)
            glued = intro.endswith("=") or (
                intro.endswith((":", "#")) and rng.random() < 0.5
            )  # "PAN:4111..."
            opener, closer = rng.choice(_BRACKETS)
            write(" ".join(filter(None, (head, intro))) + ("" if glued else " ") + opener)
            plant(kind, value)
            write(closer + (rng.choice(("", "", ",", ";")) if tail.startswith(" ") else "") + tail)
        write("\n" if rng.random() < 0.1 else " ")
    return Corpus("".join(parts), planted)


# -- scoring ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Score:
    """How a masker's matches compare with what was planted.

    A planted value counts as found when a match of its kind covers it (a phone masked together
    with a number right after it is still masked). A match is a true positive when it overlaps
    planted PII of its kind; a look-alike is touched when any match overlaps it.
    """

    recall: dict[PiiKind, float]
    precision: float
    touched_lookalikes: list[Planted]


def score(corpus: Corpus, matches: list[PiiMatch]) -> Score:
    """Recall per kind, precision, and the look-alikes the matches touched."""
    by_start = sorted(corpus.planted, key=lambda p: p.start)
    starts = [p.start for p in by_start]

    def overlapping(match: PiiMatch) -> list[Planted]:
        # Planted values do not overlap, so only the few just before the match's end can reach it.
        at = bisect.bisect_left(starts, match.end)
        return [p for p in by_start[max(0, at - 3) : at] if p.end > match.start]

    found: set[Planted] = set()
    true_positives = 0
    touched: list[Planted] = []
    for match in matches:
        hits = overlapping(match)
        same_kind = [p for p in hits if p.kind is match.kind]
        true_positives += bool(same_kind)
        found.update(p for p in same_kind if match.start <= p.start and p.end <= match.end)
        touched += [p for p in hits if p.kind is None]
    recall = {}
    for kind in PiiKind:
        planted = corpus.pii(kind)
        recall[kind] = sum(p in found for p in planted) / len(planted) if planted else 1.0
    return Score(recall, true_positives / len(matches) if matches else 1.0, touched)
