"""Throughput of the capturing server against the peers' servers and bare aiosmtpd, in one run.

For each server: N small messages over ONE smtplib connection (each ``sendmail`` waits for its
replies), then N over 8 concurrent aiosmtplib connections (N/8 each). Every server stores what it
accepts; the bench checks that exactly N arrived. Client and server share one process and the
GIL in every case (the server on its own thread: pytest_smtp's engine thread or aiosmtpd's
Controller thread), as they do in a test suite. Each figure is the median of the repetitions;
servers are measured in a rotating order. Prints figures; passes or fails nothing.

The two floors of bench/peers.py (the minimal responder, and the same answering EHLO as
SMTPServer does) run too: they answer and keep nothing, so how far the better of them gets over
the best peer, printed with each target, is as far as any server in this process can get with
this client.

Run: .venv/bin/python bench/bench_throughput.py [--messages N] [--repetitions N]
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import aiosmtplib
from _support import CLIENT_NAME, environment_line, fmt_ratio, median, version
from peers import (
    Running,
    bare_aiosmtpd,
    floor_same_wire_server,
    floor_server,
    localserver,
    ours,
    smtpdfix_server,
)

ServerFactory = Callable[[], AbstractContextManager[Running]]

SENDER = "alice@example.test"
RECIPIENTS = ["bob@example.test"]
MESSAGE = (
    b"From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n"
    b"Subject: throughput\r\nMessage-ID: <bench@example.test>\r\n\r\n"
    b"Hello Bob,\r\nthis is a small message sent by the benchmark.\r\n"
)
CONNECTIONS = 8
FLOOR = "floor (minimal responder)"
WIRE = "same-wire floor"
FLOORS = (FLOOR, WIRE)


def servers() -> dict[str, ServerFactory]:
    """Every server to measure that is installed, by label."""
    found: dict[str, ServerFactory] = {
        "pytest_smtp SMTPServer": ours,
        FLOOR: floor_server,
        WIRE: floor_same_wire_server,
    }
    found["bare aiosmtpd Controller"] = bare_aiosmtpd
    if version("smtpdfix") is not None:
        found["smtpdfix"] = smtpdfix_server
    else:
        print("smtpdfix is not installed: skipped (pip install -e '.[bench]')")
    if version("pytest-localserver") is not None:
        found["pytest-localserver"] = localserver
    else:
        print("pytest-localserver is not installed: skipped (pip install -e '.[bench]')")
    return found


def one_connection(host: str, port: int, count: int) -> float:
    """Messages per second over one smtplib connection."""
    with smtplib.SMTP(host, port, local_hostname=CLIENT_NAME) as client:
        client.ehlo()
        started = time.perf_counter()
        for _ in range(count):
            client.sendmail(SENDER, RECIPIENTS, MESSAGE)
        elapsed = time.perf_counter() - started
    return count / elapsed


def concurrent_connections(host: str, port: int, count: int) -> float:
    """Messages per second over :data:`CONNECTIONS` aiosmtplib connections in parallel."""

    async def worker(share: int) -> None:
        client = aiosmtplib.SMTP(
            hostname=host, port=port, local_hostname=CLIENT_NAME, start_tls=False, timeout=30
        )
        await client.connect()
        for _ in range(share):
            await client.sendmail(SENDER, RECIPIENTS, MESSAGE)
        await client.quit()

    async def run() -> float:
        shares = [count // CONNECTIONS + (i < count % CONNECTIONS) for i in range(CONNECTIONS)]
        started = time.perf_counter()
        await asyncio.gather(*(worker(share) for share in shares))
        return count / (time.perf_counter() - started)

    return asyncio.run(run())


def measure(factory: ServerFactory, count: int) -> tuple[float, float]:
    """(one connection, concurrent) messages per second against a fresh server."""
    with factory() as (host, port, stored):
        one_connection(host, port, min(100, count))  # warm-up: imports, caches, first accept
        before = stored()
        single = one_connection(host, port, count)
        concurrent = concurrent_connections(host, port, count)
        arrived = stored() - before
        if arrived != 2 * count:
            raise RuntimeError(f"{factory.__name__}: {arrived} of {2 * count} messages stored")
    return single, concurrent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000, help="messages per mode")
    parser.add_argument("--repetitions", type=int, default=3, help="runs per server")
    args = parser.parse_args()
    print(environment_line())
    found = servers()
    labels = list(found)
    results: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label in labels}
    for rep in range(args.repetitions):
        shift = rep % len(labels)
        for label in labels[shift:] + labels[:shift]:
            single, concurrent = measure(found[label], args.messages)
            results[label][0].append(single)
            results[label][1].append(concurrent)
    print(
        f"{args.messages} small messages per mode, median of {args.repetitions} runs, "
        "client and server in one process (one GIL)"
    )
    print(
        f"{'server':28} {'1 smtplib conn':>15} {'/ floor':>8} "
        f"{f'{CONNECTIONS} aiosmtplib conns':>20} {'/ floor':>8}"
    )
    table = {label: (median(s), median(c)) for label, (s, c) in results.items()}
    # Per repetition, over the floor's figure of the same repetition.
    floor_s, floor_c = results[FLOOR]
    for label, (single, concurrent) in table.items():
        s_all, c_all = results[label]
        x_s = median([a / f for a, f in zip(s_all, floor_s, strict=True)])
        x_c = median([a / f for a, f in zip(c_all, floor_c, strict=True)])
        print(
            f"{label:28} {single:11.0f} msg/s {fmt_ratio(x_s):>8} "
            f"{concurrent:14.0f} msg/s {fmt_ratio(x_c):>8}"
        )
    mine = table["pytest_smtp SMTPServer"]
    peers = {
        label: value
        for label, value in table.items()
        if label not in ("pytest_smtp SMTPServer", *FLOORS)
    }
    for index, mode in enumerate(("one connection", f"{CONNECTIONS} connections")):
        best_label = max(peers, key=lambda label: peers[label][index])
        best = peers[best_label][index]
        ratio = mine[index] / best
        verdict = "met" if ratio >= 1.5 else "NOT met"
        # The floors answer and store nothing: what they reach over the best peer is as far
        # as any server in this process can go with this client.
        ceiling = max(table[label][index] for label in FLOORS) / best
        print(
            f"target {mode}: >= 1.5x the best peer ({best_label}, {best:.0f} msg/s) -> "
            f"{fmt_ratio(ratio)}: {verdict} (the best floor reaches {fmt_ratio(ceiling)})"
        )


if __name__ == "__main__":
    main()
