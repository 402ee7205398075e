"""Cost of one whole SMTP transaction against the physical floor and the peers, in one run.

One transaction = what a test does to send one message: smtplib connects, EHLO (with
``local_hostname`` set, so no DNS), MAIL, RCPT, DATA, QUIT, on a new connection each time. The
client runs on the main thread; every server runs on a loop thread of the same process (the
floor responder in bench/peers.py on its own loop thread, pytest_smtp on its engine thread,
aiosmtpd on its Controller thread). Servers are measured in blocks, rotating, so a burst of
load on the shared machine falls on all of them alike; each figure is the median of the
block means, each ratio the median of the per-round ratios. Prints figures; passes or fails
nothing.

Three floors (bench/peers.py): the minimal responder of issue 15; the same answering EHLO with
the extensions SMTPServer offers, so the client does the same work (smtplib parses each line
and, SIZE being offered, sends ``size=``); and that one reading into a buffer it keeps, as
SMTPServer does (no new 256 KiB bytes object, so no mmap/munmap, per read).

``--steps N`` also times each step of N more transactions from the client (connect until the
greeting, EHLO, MAIL, RCPT, DATA until 354, the body until its 250, QUIT and close) against
ours and the buffered floor, in alternating blocks, and prints the medians and what we add to
each.

Run: .venv/bin/python bench/bench_transaction.py [--transactions N] [--rounds N] [--only ...]
     [--steps N]
"""

from __future__ import annotations

import argparse
import smtplib
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from itertools import pairwise

from _support import CLIENT_NAME, environment_line, fmt_ratio, median, small_message, version
from peers import (
    Running,
    bare_aiosmtpd,
    floor_buffered_server,
    floor_same_wire_server,
    floor_server,
    localserver,
    ours,
    smtpdfix_server,
)

ServerFactory = Callable[[], AbstractContextManager[Running]]

FLOOR = "floor (minimal asyncio responder)"
FLOOR_WIRE = "floor, our EHLO (same wire)"
FLOOR_BUFFERED = "floor, same wire, buffered reads"
FLOORS = (FLOOR, FLOOR_WIRE, FLOOR_BUFFERED)
OURS = "pytest_smtp SMTPServer"
STEPPED = (OURS, FLOOR_BUFFERED)
STEP_BLOCK = 100
MESSAGE = small_message()


def servers(only: list[str]) -> dict[str, ServerFactory]:
    """The servers to measure, by label: the floor and ours always, the installed peers."""
    found: dict[str, ServerFactory] = {
        FLOOR: floor_server,
        FLOOR_WIRE: floor_same_wire_server,
        FLOOR_BUFFERED: floor_buffered_server,
        OURS: ours,
    }
    found["bare aiosmtpd Controller"] = bare_aiosmtpd
    if version("smtpdfix") is not None:
        found["smtpdfix"] = smtpdfix_server
    if version("pytest-localserver") is not None:
        found["pytest-localserver"] = localserver
    if only:
        kept = (*FLOORS, OURS)
        found = {k: v for k, v in found.items() if k in kept or any(w in k for w in only)}
    return found


def block(host: str, port: int, count: int) -> float:
    """Mean seconds of ``count`` transactions, each on a new connection."""
    started = time.perf_counter()
    for _ in range(count):
        with smtplib.SMTP(host, port, local_hostname=CLIENT_NAME) as client:
            client.sendmail("alice@example.test", ["bob@example.test"], MESSAGE)
    return (time.perf_counter() - started) / count


STEPS = ("connect", "EHLO", "MAIL", "RCPT", "DATA", "body", "QUIT")


def stepped(host: str, port: int) -> list[float]:
    """Seconds of each step (:data:`STEPS`) of one transaction on a new connection."""
    marks = [time.perf_counter()]
    client = smtplib.SMTP(host, port, local_hostname=CLIENT_NAME)
    marks.append(time.perf_counter())
    client.ehlo(CLIENT_NAME)
    marks.append(time.perf_counter())
    client.mail("alice@example.test")
    marks.append(time.perf_counter())
    client.rcpt("bob@example.test")
    marks.append(time.perf_counter())
    client.putcmd("data")
    client.getreply()
    marks.append(time.perf_counter())
    client.send(MESSAGE + b"\r\n.\r\n")
    code, _ = client.getreply()
    marks.append(time.perf_counter())
    client.quit()
    marks.append(time.perf_counter())
    if code != 250:
        raise RuntimeError(f"the body was answered {code}, not 250")
    return [b - a for a, b in pairwise(marks)]


def print_steps(running: dict[str, Running], count: int) -> None:
    """:func:`stepped` ``count`` times against ours and the buffered floor, in alternating
    blocks of :data:`STEP_BLOCK`. Not one by one: a server whose thread ran a moment before
    answers its first round trips several times faster on this VM (an idle virtual CPU takes
    tens of microseconds to wake), which alternating transactions would hand to the floor."""
    times: dict[str, list[list[float]]] = {label: [] for label in STEPPED}
    while len(times[OURS]) < count:
        size = min(STEP_BLOCK, count - len(times[OURS]))
        for label, kept in times.items():
            kept.extend(stepped(running[label][0], running[label][1]) for _ in range(size))
    print(f"each step, {count} transactions (medians, us): ours, {FLOOR_BUFFERED}, ours added")
    for index, step in enumerate(STEPS):
        ours_us = statistics.median(t[index] for t in times[OURS]) * 1e6
        floor_us = statistics.median(t[index] for t in times[FLOOR_BUFFERED]) * 1e6
        print(f"  {step:8} {ours_us:8.1f} {floor_us:8.1f} {ours_us - floor_us:+8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transactions", type=int, default=100, help="per block (default 100)")
    parser.add_argument("--rounds", type=int, default=9, help="blocks per server (default 9)")
    parser.add_argument(
        "--only", nargs="*", default=[], help="peers to add to the floor and ours (default all)"
    )
    parser.add_argument(
        "--steps", type=int, default=0, help="time each step of N more transactions (default 0)"
    )
    args = parser.parse_args()
    print(environment_line())
    found = servers(args.only)
    labels = list(found)
    means: dict[str, list[float]] = {label: [] for label in labels}
    with_servers = [(label, found[label]()) for label in labels]
    running: dict[str, Running] = {}
    try:
        for label, manager in with_servers:
            running[label] = manager.__enter__()
            block(running[label][0], running[label][1], 10)  # warm-up: first accept, caches
        for rnd in range(args.rounds):
            shift = rnd % len(labels)
            for label in labels[shift:] + labels[:shift]:
                host, port, _ = running[label]
                means[label].append(block(host, port, args.transactions))
        if args.steps:
            print_steps(running, args.steps)
        for label in labels:
            stored = running[label][2]()
            wanted = 10 + args.rounds * args.transactions + (args.steps if label in STEPPED else 0)
            if stored != wanted:
                raise RuntimeError(f"{label}: {stored} of {wanted} messages stored")
    finally:
        for label, manager in reversed(with_servers):
            if label in running:
                manager.__exit__(None, None, None)
    print(
        f"{args.transactions} transactions per block (connect, EHLO, MAIL, RCPT, DATA, QUIT), "
        f"{args.rounds} blocks per server, rotating; client and servers in one process"
    )
    print(f"{'server':36} {'ms/txn':>7} {'min-max':>13} {'x floor':>8} {'ours /':>8}")
    for label in labels:
        per_round = [m / f for m, f in zip(means[label], means[FLOOR], strict=True)]
        ours_over = [o / m for o, m in zip(means[OURS], means[label], strict=True)]
        print(
            f"{label:36} {median(means[label]) * 1000:7.3f} "
            f"{min(means[label]) * 1000:6.3f}-{max(means[label]) * 1000:.3f} "
            f"{fmt_ratio(median(per_round)):>8} {fmt_ratio(median(ours_over)):>8}"
        )
    for floor in FLOORS:
        ratios = [o / f for o, f in zip(means[OURS], means[floor], strict=True)]
        spread = f"per round {min(ratios):.2f}-{max(ratios):.2f}"
        verdict = "met" if statistics.median(ratios) <= 1.1 else "NOT met"
        print(
            f"target per transaction: SMTPServer <= 1.10x the {floor} -> "
            f"{fmt_ratio(statistics.median(ratios))} ({spread}): {verdict}"
        )


if __name__ == "__main__":
    main()
