"""Benchmark the IMAP side: what reading a message back costs a test, and FETCH against Dovecot.

1. Per-test cost, pytester-free: N iterations of what a test does with the shared fixtures
   (one SMTPServer and one IMAPServer over its store, both reset per iteration as the fixtures
   do), with the stdlib clients a test would use:
   - SMTP only: reset, smtplib sends one message, ``mailbox.one()`` sees it;
   - SMTP + IMAP: the same, then imaplib logs in as the recipient, SELECTs INBOX, FETCHes the
     message (``BODY.PEEK[]``) and logs out.
   The difference is what reading the message back over IMAP adds (target <= 3 ms).
2. FETCH of 1,000 messages, ours vs Dovecot in the same run: the same 1,000 messages APPENDed
   to both (pipelined with LITERAL+), then ``FETCH 1:1000 (BODY.PEEK[])`` and
   ``FETCH 1:1000 (ENVELOPE)`` timed with a wire-level client (so the client's parsing does
   not dominate). Needs Debian's dovecot-imapd; without it that part is skipped with a note.

Prints figures; passes or fails nothing.

Run: .venv/bin/python bench/bench_imap.py [--iterations N] [--messages N] [--repeat N]
"""

from __future__ import annotations

import argparse
import imaplib
import random
import smtplib
import statistics
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from _support import environment_line

from pytest_smtp import SMTPServer
from pytest_smtp.retrieval.imap import IMAPServer

# The Dovecot launcher and the wire-level client live with the differential tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from dovecot import Dovecot, RawIMAP, find_dovecot

RECIPIENT = "bob@example.org"
PASSWORD = "pw"


def _message(index: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Alice <alice@example.com>"
    message["To"] = f"Bob <{RECIPIENT}>"
    message["Subject"] = f"message {index}"
    message["Message-ID"] = f"<bench-{index}@example.com>"
    message.set_content(f"Hello Bob,\nthis is message {index}.\n")
    return message


def _summary(costs: list[float]) -> tuple[float, float, float]:
    """(mean, median, p99) in milliseconds."""
    ms = sorted(c * 1000 for c in costs)
    return statistics.mean(ms), statistics.median(ms), ms[max(0, int(len(ms) * 0.99) - 1)]


def per_test_costs(iterations: int) -> tuple[list[float], list[float]]:
    """Per-iteration seconds of the SMTP-only test and of the SMTP + IMAP read-back test."""
    smtp_only: list[float] = []
    with_imap: list[float] = []
    with SMTPServer() as smtp, IMAPServer(smtp.store, auth="any") as imap:

        def send(index: int) -> None:
            with smtplib.SMTP(smtp.host, smtp.port, local_hostname="localhost") as client:
                client.send_message(_message(index))
            assert smtp.mailbox.one().subject == f"message {index}"

        def read_back(index: int) -> None:
            client = imaplib.IMAP4(imap.host, imap.port)
            client.login(RECIPIENT, PASSWORD)
            client.select("INBOX")
            status, data = client.fetch("1", "(BODY.PEEK[])")
            client.logout()
            assert status == "OK"
            first = data[0]
            assert isinstance(first, tuple)
            assert f"message {index}".encode() in first[1]

        def one_test(index: int, imap_too: bool) -> float:
            started = time.perf_counter()
            smtp.reset()  # what smtp_server does before each test (the store is reset too)
            if imap_too:
                imap.reset()  # what smtp_imap adds
            send(index)
            if imap_too:
                read_back(index)
            return time.perf_counter() - started

        for index in range(50):  # warm up both paths
            one_test(index, index % 2 == 0)
        # Interleaved so drift (CPU frequency, other load) hits both alike.
        for index in range(iterations):
            smtp_only.append(one_test(index, False))
            with_imap.append(one_test(index, True))
    return smtp_only, with_imap


def _corpus(count: int) -> list[bytes]:
    rng = random.Random(1000)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"]
    corpus = []
    for index in range(count):
        message = _message(index)
        message["Cc"] = f"carol{rng.randrange(100)}@example.net"
        message["Date"] = f"Mon, {1 + index % 28:02d} May 2023 12:00:00 +0000"
        body = "\n".join(" ".join(rng.choices(words, k=12)) for _ in range(rng.randrange(5, 40)))
        message.set_content(body + "\n")
        corpus.append(message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    return corpus


def _append_all(client: RawIMAP, corpus: list[bytes]) -> float:
    """APPEND every message pipelined with LITERAL+; seconds taken."""
    started = time.perf_counter()
    payload = bytearray()
    for index, raw in enumerate(corpus):
        payload += b"A%d APPEND INBOX {%d+}\r\n" % (index, len(raw)) + raw + b"\r\n"
    client.sock.sendall(payload)
    answered = 0
    while answered < len(corpus):
        response = client.read_response()
        if response.startswith(b"A"):
            assert b" OK" in response, response
            answered += 1
    return time.perf_counter() - started


def _timed_fetch(client: RawIMAP, items: str, count: int, repeat: int) -> list[float]:
    costs = []
    for _ in range(repeat):
        started = time.perf_counter()
        untagged, tagged = client.command(f"FETCH 1:{count} ({items})".encode())
        costs.append(time.perf_counter() - started)
        assert tagged.startswith(b"OK"), tagged
        assert sum(b" FETCH " in line for line in untagged) == count
    return costs


def fetch_figures(address: tuple[str, int], corpus: list[bytes], repeat: int) -> dict[str, float]:
    """Median seconds of the two FETCHes (and the APPEND of the corpus) against one server."""
    with RawIMAP(*address) as client:
        _, tagged = client.command(f"LOGIN {RECIPIENT} {PASSWORD}".encode())
        assert tagged.startswith(b"OK"), tagged
        append = _append_all(client, corpus)
        _, tagged = client.command(b"SELECT INBOX")
        assert tagged.startswith(b"OK"), tagged
        count = len(corpus)
        _timed_fetch(client, "UID", count, 1)  # warm caches/indexes on both servers
        return {
            "append": append,
            "body": statistics.median(_timed_fetch(client, "BODY.PEEK[]", count, repeat)),
            "envelope": statistics.median(_timed_fetch(client, "ENVELOPE", count, repeat)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    print(environment_line())
    smtp_only, with_imap = per_test_costs(args.iterations)
    print(f"per-test cost over {args.iterations} iterations (mean / median / p99, ms):")
    for label, costs in (
        ("SMTP only (send + mailbox.one)", smtp_only),
        ("SMTP + IMAP read-back (imaplib)", with_imap),
    ):
        mean, median, p99 = _summary(costs)
        print(f"  {label:<34}{mean:7.2f} / {median:6.2f} / {p99:6.2f}")
    # Each IMAP test ran right after an SMTP-only one: the paired differences cancel the drift
    # a busy machine adds, which the difference of two medians does not.
    added = sorted((b - a) * 1000 for a, b in zip(smtp_only, with_imap, strict=True))
    quartile = len(added) // 4
    extra = statistics.median(added)
    print(
        f"  IMAP read-back adds (paired): median {extra:.2f} ms, "
        f"quartiles {added[quartile]:.2f}..{added[-quartile - 1]:.2f} ms"
    )
    verdict = "met" if extra <= 3 else "MISSED"
    print(f"target: IMAP read-back adds <= 3 ms per test -> {extra:.2f} ms: {verdict}")

    corpus = _corpus(args.messages)
    total = sum(map(len, corpus))
    print(f"\nFETCH of {len(corpus)} messages ({total / 1024:.0f} KiB), median of {args.repeat}:")
    results: dict[str, dict[str, float]] = {}
    with IMAPServer(auth="any") as ours:
        results["ours"] = fetch_figures(ours.address, corpus, args.repeat)
    if find_dovecot() is None:
        print("  (Dovecot not installed: apt-get install dovecot-imapd dovecot-pop3d)")
    else:
        with Dovecot({RECIPIENT: PASSWORD}) as dovecot:
            results["dovecot"] = fetch_figures(dovecot.imap_address, corpus, args.repeat)
    rows: list[tuple[str, Callable[[dict[str, float]], float]]] = [
        ("FETCH 1:N (BODY.PEEK[])", lambda r: r["body"]),
        ("FETCH 1:N (ENVELOPE)", lambda r: r["envelope"]),
        ("APPEND N (LITERAL+, pipelined)", lambda r: r["append"]),
    ]
    names = list(results)
    print("  " + " " * 32 + "".join(f"{name:>12}" for name in names))
    for label, pick in rows:
        cells = "".join(f"{pick(results[name]) * 1000:9.1f} ms" for name in names)
        print(f"  {label:<32}{cells}")
    if "dovecot" in results:
        ratio = results["ours"]["envelope"] / results["dovecot"]["envelope"]
        body_ratio = results["ours"]["body"] / results["dovecot"]["body"]
        print(
            f"target: FETCH of {len(corpus)} vs Dovecot (no fixed target) -> BODY.PEEK[] "
            f"{body_ratio:.1f}x, ENVELOPE {ratio:.1f}x Dovecot's time"
        )


if __name__ == "__main__":
    main()
