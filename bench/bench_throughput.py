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

In both modes the bench also measures each thread's CPU time per message (Linux): the
client's (the main thread) and the server's. With one GIL the two mostly take turns, so
throughput is near 1 / (client + server); the last lines say how much CPU our server may spend
per message for the 1.5x target at our client's cost.

Run: .venv/bin/python bench/bench_throughput.py [--messages N] [--repetitions N]
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import aiosmtplib
from _support import CLIENT_NAME, environment_line, fmt_ratio, median, thread_cpu, version
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


def split_cpu(
    before: dict[int, int] | None, after: dict[int, int] | None, count: int
) -> tuple[float, float]:
    """(client, server) CPU microseconds per message between two :func:`thread_cpu` snapshots:
    the main thread is the client, every other thread the server's. NaN where unknown."""
    if before is None or after is None:
        return float("nan"), float("nan")
    main = threading.main_thread().native_id or 0
    client = after.get(main, 0) - before.get(main, 0)
    server = sum(ns - before.get(tid, 0) for tid, ns in after.items() if tid != main)
    return client / count / 1e3, server / count / 1e3


#: One mode's result: messages per second, then the client's and the server's CPU microseconds
#: per message.
Figures = tuple[float, float, float]


def measure(factory: ServerFactory, count: int) -> tuple[Figures, Figures]:
    """(one connection, concurrent) figures against a fresh server."""
    with factory() as (host, port, stored):
        one_connection(host, port, min(100, count))  # warm-up: imports, caches, first accept
        before = stored()
        started = thread_cpu()
        single = one_connection(host, port, count)
        middle = thread_cpu()
        concurrent = concurrent_connections(host, port, count)
        ended = thread_cpu()
        arrived = stored() - before
        if arrived != 2 * count:
            raise RuntimeError(f"{factory.__name__}: {arrived} of {2 * count} messages stored")
    return (
        (single, *split_cpu(started, middle, count)),
        (concurrent, *split_cpu(middle, ended, count)),
    )


def print_cpu_split(
    mode: str, cpu: dict[str, tuple[float, float]], rates: dict[str, float], best_label: str
) -> None:
    """Per message, the client's and the server's CPU time, and what the 1.5x target asks of
    our server at our client's cost. Client and server share one GIL, so they mostly take
    turns: throughput is near 1 / (client + server); above it where the two threads' kernel
    work overlaps, below it where both wait (a round trip, a core waking up)."""
    if any(value != value for pair in cpu.values() for value in pair):
        print(f"CPU by thread, {mode}: not available here (needs /proc/self/task/*/schedstat)")
        return
    print(f"CPU per message by thread, {mode} (medians; one GIL: near 1 / (client + server)):")
    print(f"{'server':28} {'client':>9} {'server':>9} {'sum':>9} {'1 / sum':>11} {'measured':>11}")
    for label, (client, server) in cpu.items():
        total = client + server
        print(
            f"{label:28} {client:6.0f} us {server:6.0f} us {total:6.0f} us "
            f"{1e6 / total:6.0f} msg/s {rates[label]:6.0f} msg/s"
        )
    client, server = cpu["pytest_smtp SMTPServer"]
    budget = sum(cpu[best_label]) / 1.5
    print(
        f"for >= 1.5x {best_label} by CPU: client + server <= {budget:.0f} us; at our "
        f"client's {client:.0f} us the server may take {budget - client:.0f} us "
        f"(it takes {server:.0f} us: {fmt_ratio(server / (budget - client))} of that)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000, help="messages per mode")
    parser.add_argument("--repetitions", type=int, default=3, help="runs per server")
    args = parser.parse_args()
    print(environment_line())
    found = servers()
    labels = list(found)
    results: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label in labels}
    # By mode (0: one connection, 1: concurrent), by server: client and server CPU per message.
    cpu_runs: list[dict[str, tuple[list[float], list[float]]]] = [
        {label: ([], []) for label in labels} for _ in range(2)
    ]
    for rep in range(args.repetitions):
        shift = rep % len(labels)
        for label in labels[shift:] + labels[:shift]:
            for index, (rate, client, server) in enumerate(measure(found[label], args.messages)):
                results[label][index].append(rate)
                cpu_runs[index][label][0].append(client)
                cpu_runs[index][label][1].append(server)
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
    best_labels = []
    for index, mode in enumerate(("one connection", f"{CONNECTIONS} connections")):
        best_label = max(peers, key=lambda label: peers[label][index])
        best = peers[best_label][index]
        ratio = mine[index] / best
        verdict = "met" if ratio >= 1.5 else "NOT met"
        # The floors answer and store nothing: what they reach over the best peer is as far
        # as any server in this process can go with this client.
        ceiling = max(table[label][index] for label in FLOORS) / best
        best_labels.append(best_label)
        print(
            f"target {mode}: >= 1.5x the best peer ({best_label}, {best:.0f} msg/s) -> "
            f"{fmt_ratio(ratio)}: {verdict} (the best floor reaches {fmt_ratio(ceiling)})"
        )

    for index, mode in enumerate(("one connection", f"{CONNECTIONS} connections")):
        cpu = {label: (median(c), median(s)) for label, (c, s) in cpu_runs[index].items()}
        rates = {label: figures[index] for label, figures in table.items()}
        print_cpu_split(mode, cpu, rates, best_labels[index])


if __name__ == "__main__":
    main()
