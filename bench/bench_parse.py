"""Benchmark the capped parser on crafted header fields against a legitimate field of the same
length, all in one run. Prints figures; passes or fails nothing.

The legitimate field is a ``To:`` of 100 ordinary addresses. Every crafted field has the same
length and aims at a costly path of the stdlib's header parser: comments, quoted strings,
nested comments, RFC 2231 sections and encoded words (super-linear), many tiny or empty
addresses, long runs of dots, words or specials (linear but dear per character), fields just
under each cap of :mod:`pytest_smtp.parsing`, and a few fields of seeded random specials.
All of them are in ONE list; the target line compares the worst of them with the legitimate
field. A figure is the CPU time of this process (best of the repetitions: what other
processes on the machine skew least) to parse the message and read the field the way a test
does (``message.to``, ``get_content_type()`` / ``params``, ``str(subject)``).

``--scaling`` also times every shape at 500, 1000, 2000 and 4000 characters, to tell a
super-linear cost from a linear one with a high constant.

Run: .venv/bin/python bench/bench_parse.py [--repetitions N] [--scaling]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from _support import environment_line

from pytest_smtp.parsing import (
    MAX_ADDRESS_LENGTH,
    MAX_ADDRESS_TOKENS,
    MAX_ADDRESSES,
    MAX_PARSE_TOKENS,
    MAX_WORD_TOKENS,
    parse_message,
)

LEGIT_TO = ", ".join(f"User Number{i} <user{i}@example{i}.test>" for i in range(100))
LENGTH = len(LEGIT_TO)
SPECIALS = '()<>@,;:\\".[] \t=?*'


def fill(unit: str, length: int) -> str:
    """``unit`` repeated to exactly ``length`` characters."""
    return (unit * (length // len(unit) + 1))[:length]


def legit(length: int) -> str:
    """Ordinary addresses, as many as fit in ``length``."""
    many = ", ".join(f"User Number{i} <user{i}@example{i}.test>" for i in range(length // 20))
    return many[:length].rsplit(",", 1)[0]


def at_the_caps(token: str, length: int) -> str:
    """The costliest field the comment/quote caps still parse: MAX_PARSE_TOKENS tokens,
    MAX_WORD_TOKENS in each whitespace-free word, the words as long as the field allows."""
    words = MAX_PARSE_TOKENS // MAX_WORD_TOKENS
    width = length // words - 1
    pad = width // MAX_WORD_TOKENS - len(token)
    unit = token[0] + "a" * max(pad, 1) + token[-1]
    return " ".join(fill(unit, MAX_WORD_TOKENS * len(unit)) for _ in range(words))[:length]


def elements_of(make: Callable[[int], str], length: int) -> str:
    """Addresses of MAX_ADDRESS_LENGTH characters made by ``make``, to ``length``."""
    return fill(make(MAX_ADDRESS_LENGTH - 2) + ", ", length)


def fuzz(seed: int, length: int) -> str:
    """Seeded random specials with a few letters and an at sign now and then."""
    chosen = random.Random(seed)
    return "".join(chosen.choice(SPECIALS + "a@") for _ in range(length))


def read_to(raw: bytes) -> object:
    message, _ = parse_message(raw)
    header = message["To"]
    return [a.addr_spec for a in getattr(header, "addresses", ())]


def read_content_type(raw: bytes) -> object:
    message, _ = parse_message(raw)
    header = message["Content-Type"]
    return message.get_content_type(), dict(getattr(header, "params", {}))


def read_subject(raw: bytes) -> object:
    message, _ = parse_message(raw)
    return str(message["Subject"])


Shape = tuple[str, Callable[[int], str], Callable[[bytes], object]]
LEGIT_LABEL = "legit To: 100 ordinary addresses"
CASES: dict[str, Shape] = {
    LEGIT_LABEL: ("To", legit, read_to),
    "comments in To (a)(a)...": ("To", lambda n: fill("(a)", n), read_to),
    'quotes in To """...': ("To", lambda n: fill('"', n), read_to),
    "nested comments in To": (
        "To",
        lambda n: "a@b " + "(" * (n // 2 - 2) + ")" * (n // 2 - 2),
        read_to,
    ),
    "comments at the caps": ("To", lambda n: at_the_caps("()", n), read_to),
    "quoted strings at the caps": ("To", lambda n: at_the_caps('""', n), read_to),
    "spaced comments (a) (a) ...": ("To", lambda n: fill("(a) ", n), read_to),
    "encoded words in To": ("To", lambda n: fill("=?utf-8?q?a?=", n), read_to),
    "backslash escapes in To": ("To", lambda n: fill('"\\a"', n), read_to),
    "tiny addresses a@b,a@b,...": ("To", lambda n: fill("a@b,", n), read_to),
    "angle addresses <a@b>,...": ("To", lambda n: fill("<a@b>,", n), read_to),
    "short named a <b@c>,...": ("To", lambda n: fill("a <b@c>,", n), read_to),
    "commas ,,,": ("To", lambda n: fill(",", n), read_to),
    "spaced commas , , ,": ("To", lambda n: fill(" ,", n), read_to),
    "dots a....@x": ("To", lambda n: "a" + "." * (n - 4) + "@x", read_to),
    "dot domain a@a.a.a...": ("To", lambda n: "a@" + fill("a.", n - 2), read_to),
    "spaced words a a a ... <a@b>": ("To", lambda n: fill("a ", n - 5) + "<a@b>", read_to),
    "dotted words a. a. ...": ("To", lambda n: fill("a. ", n), read_to),
    "groups g:;g:;...": ("To", lambda n: fill("g:;", n), read_to),
    "at signs @@@": ("To", lambda n: fill("@", n), read_to),
    "semicolons ;;;": ("To", lambda n: fill(";", n), read_to),
    "colons :::": ("To", lambda n: fill(":", n), read_to),
    "brackets [][]": ("To", lambda n: fill("[]", n), read_to),
    "domain literal a@[aaa...]": ("To", lambda n: "a@[" + fill("a", n - 4) + "]", read_to),
    "words, address-length cap": (
        "To",
        lambda n: elements_of(lambda w: fill("a ", w - 5) + "<a@b>", n),
        read_to,
    ),
    "dotted words, address-length cap": (
        "To",
        lambda n: elements_of(lambda w: fill("a. ", w - 5) + "<a@b>", n),
        read_to,
    ),
    "dots, address-length cap": (
        "To",
        lambda n: elements_of(lambda w: "a" + "." * (w - 3) + "@x", n),
        read_to,
    ),
    "quoted words, address-length cap": (
        "To",
        lambda n: elements_of(lambda w: '"' + fill("a ", w - 8) + '" <a@b>', n),
        read_to,
    ),
    "rfc2231 params a*0*=x;": (
        "Content-Type",
        lambda n: "text/plain; " + fill("a*0*=x;", n - 12),
        read_content_type,
    ),
    "comments in Content-Type": ("Content-Type", lambda n: fill("(a)", n), read_content_type),
    "encoded words in Subject": ("Subject", lambda n: fill("=?utf-8?q?a?= ", n), read_subject),
    "legit Subject of words": ("Subject", lambda n: fill("word ", n), read_subject),
}
for _seed in range(6):
    CASES[f"random specials, seed {_seed}"] = ("To", lambda n, s=_seed: fuzz(s, n), read_to)


def measure(name: str, value: str, read: Callable[[bytes], object], repetitions: int) -> float:
    """Best CPU seconds of ``repetitions`` to parse a message carrying the field and read it."""
    raw = f"From: s@x.test\r\n{name}: {value}\r\nMessage-ID: <m@x.test>\r\n\r\nbody\r\n".encode()
    best = float("inf")
    for _ in range(repetitions):
        started = time.process_time()
        read(raw)
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repetitions", type=int, default=9)
    parser.add_argument("--scaling", action="store_true", help="also time 500-4000 characters")
    args = parser.parse_args()
    print(environment_line())
    print(
        f"every field {LENGTH} characters; best CPU time of {args.repetitions} parses; caps: "
        f"{MAX_ADDRESSES} addresses, {MAX_ADDRESS_TOKENS} tokens, {MAX_ADDRESS_LENGTH} "
        "characters per address"
    )
    figures = {
        label: measure(name, make(LENGTH), read, args.repetitions)
        for label, (name, make, read) in CASES.items()
    }
    legit_seconds = figures[LEGIT_LABEL]
    for label, seconds in figures.items():
        print(f"  {label:<36} {seconds * 1000:8.2f} ms  {seconds / legit_seconds:5.2f}x")
    crafted = {k: v for k, v in figures.items() if k != LEGIT_LABEL}
    worst = max(crafted, key=crafted.__getitem__)
    print(
        f"target worst crafted <= 3x legit To: {crafted[worst] * 1000:.2f} ms ({worst}) vs "
        f"{legit_seconds * 1000:.2f} ms = {crafted[worst] / legit_seconds:.2f}x"
    )
    if args.scaling:
        lengths = (500, 1000, 2000, 4000)
        print("scaling, ms at " + " / ".join(str(n) for n in lengths) + " characters:")
        for label, (name, make, read) in CASES.items():
            row = [measure(name, make(n), read, args.repetitions) * 1000 for n in lengths]
            print(f"  {label:<36} " + " / ".join(f"{ms:6.2f}" for ms in row))


if __name__ == "__main__":
    main()
