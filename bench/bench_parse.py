"""Benchmark the capped parser on crafted header fields against a legitimate field of the same
length, all in one run. Prints figures; passes or fails nothing.

The legitimate field is a ``To:`` of 100 ordinary addresses. Each crafted field has the same
length and aims at a super-linear path of the stdlib's header parser (comments, quoted
strings, nested comments, RFC 2231 parameter sections, encoded words), either far over the
cost caps of :mod:`pytest_smtp.parsing` (then kept as unstructured text) or just under them
(then parsed). One figure is the median time to parse the message and read the field the way
a test does (``message.to``, ``get_content_type()`` / ``params``, ``str(subject)``).

Run: .venv/bin/python bench/bench_parse.py [--repetitions N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from _support import environment_line

from pytest_smtp.parsing import MAX_PARSE_TOKENS, MAX_WORD_TOKENS, parse_message

LEGIT_TO = ", ".join(f"User Number{i} <user{i}@example.org>" for i in range(100))
LENGTH = len(LEGIT_TO)


def fill(unit: str, length: int = LENGTH) -> str:
    """``unit`` repeated to exactly ``length`` characters."""
    return (unit * (length // len(unit) + 1))[:length]


def at_the_caps(token: str) -> str:
    """The costliest field the caps still parse: MAX_PARSE_TOKENS tokens, MAX_WORD_TOKENS in
    each whitespace-free word, the words as long as the field allows."""
    words = MAX_PARSE_TOKENS // MAX_WORD_TOKENS
    width = LENGTH // words - 1
    pad = width // MAX_WORD_TOKENS - len(token)
    opener, closer = token[0], token[-1]
    unit = opener + "a" * max(pad, 1) + closer
    return " ".join(fill(unit, MAX_WORD_TOKENS * len(unit)) for _ in range(words))[:LENGTH]


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


CASES: dict[str, tuple[str, str, Callable[[bytes], object]]] = {
    "legit To: 100 ordinary addresses": ("To", LEGIT_TO, read_to),
    "comments in To (a)(a)...": ("To", fill("(a)"), read_to),
    'quotes in To """...': ("To", fill('"'), read_to),
    "nested comments in To": (
        "To",
        "a@b " + "(" * (LENGTH // 2 - 2) + ")" * (LENGTH // 2 - 2),
        read_to,
    ),
    "comments at the caps": ("To", at_the_caps("()"), read_to),
    "quoted strings at the caps": ("To", at_the_caps('""'), read_to),
    "spaced comments (a) (a) ...": ("To", fill("(a) "), read_to),
    "encoded words in To": ("To", fill("=?utf-8?q?a?="), read_to),
    "rfc2231 params a*0*=x;": ("Content-Type", "text/plain; " + fill("a*0*=x;"), read_content_type),
    "comments in Content-Type": ("Content-Type", fill("(a)"), read_content_type),
    "encoded words in Subject": ("Subject", fill("=?utf-8?q?a?= "), read_subject),
    "legit Subject of words": ("Subject", fill("word "), read_subject),
}
#: Linear in the field's length but costly per character; bounded by MAX_STRUCTURED_FIELD only.
LINEAR_CASES: dict[str, tuple[str, str, Callable[[bytes], object]]] = {
    "commas in To": ("To", fill(","), read_to),
    "dots in To": ("To", fill("."), read_to),
    "backslash escapes in To": ("To", fill('"\\a"'), read_to),
}


def measure(name: str, value: str, read: Callable[[bytes], object], repetitions: int) -> float:
    """Median seconds to parse a message carrying the field and read it."""
    raw = f"From: s@x.test\r\n{name}: {value}\r\nMessage-ID: <m@x.test>\r\n\r\nbody\r\n".encode()
    times = []
    for _ in range(repetitions):
        started = time.perf_counter()
        read(raw)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repetitions", type=int, default=15)
    args = parser.parse_args()
    print(environment_line())
    print(f"every field {LENGTH} characters; median of {args.repetitions} parses")
    figures = {}
    for label, (name, value, read) in CASES.items():
        figures[label] = measure(name, value, read, args.repetitions)
    legit = figures["legit To: 100 ordinary addresses"]
    for label, seconds in figures.items():
        print(f"  {label:<36} {seconds * 1000:8.2f} ms  {seconds / legit:5.2f}x")
    print("linear in length, not capped by cost (for the record):")
    for label, (name, value, read) in LINEAR_CASES.items():
        seconds = measure(name, value, read, args.repetitions)
        print(f"  {label:<36} {seconds * 1000:8.2f} ms  {seconds / legit:5.2f}x")
    crafted = {k: v for k, v in figures.items() if not k.startswith("legit")}
    worst = max(crafted, key=crafted.__getitem__)
    print(
        f"target worst crafted <= 3x legit To: {crafted[worst] * 1000:.2f} ms ({worst}) vs "
        f"{legit * 1000:.2f} ms = {crafted[worst] / legit:.2f}x"
    )


if __name__ == "__main__":
    main()
