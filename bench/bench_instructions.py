"""Instructions per transaction and per message, ours against the floor, counted by callgrind.

Time on this shared machine moves by 30% between runs; instruction counts do not. Each server
(the floor responder of bench/peers.py and pytest_smtp's SMTPServer) is driven by the same
smtplib client in a child process under ``valgrind --tool=callgrind --separate-threads=yes``,
twice: a short run and a long one. The difference, divided by the difference in work, is the
cost of one transaction (connect, EHLO, MAIL, RCPT, DATA, QUIT on a new connection) or of one
message on a kept connection (MAIL, RCPT, DATA), without start-up and imports. The main thread
is the client; every other thread is the server's (the engine thread, the floor's loop thread,
aiosmtpd's Controller thread). Bare aiosmtpd (the best peer of bench_throughput.py in most
runs) is counted too: "ours /" is our process total over that server's.
Prints figures; passes or fails nothing. Needs valgrind (Debian package ``valgrind``).

"floor-wire" is the floor answering EHLO with the extensions SMTPServer offers, so the client
does the same work against both (see bench/peers.py). "concurrent" is bench_throughput.py's
second mode (8 aiosmtplib connections): when the CPU, not a wake-up, is the limit, throughput is
the inverse of the instructions per message, so "bare aiosmtpd / ours" is the throughput ratio.

Run: .venv/bin/python bench/bench_instructions.py [--short N] [--long N]
     [--only transaction connection concurrent] [--servers floor floor-wire ours aiosmtpd]
"""

from __future__ import annotations

import argparse
import shutil
import smtplib
import subprocess
import sys
import tempfile
from pathlib import Path

from _support import CLIENT_NAME, environment_line, small_message
from peers import bare_aiosmtpd, floor_same_wire_server, floor_server, ours

SERVERS = {
    "floor": floor_server,
    "floor-wire": floor_same_wire_server,
    "ours": ours,
    "aiosmtpd": bare_aiosmtpd,
}
MODES = ("transaction", "connection", "concurrent")
UNITS = {
    "transaction": "per transaction",
    "connection": "per message, one connection",
    "concurrent": "per message, 8 connections",
}


def child(server: str, mode: str, count: int) -> None:
    """Run ``count`` transactions (or messages on one connection) against ``server``."""
    message = small_message()
    with SERVERS[server]() as (host, port, stored):
        if mode == "transaction":
            for _ in range(count):
                with smtplib.SMTP(host, port, local_hostname=CLIENT_NAME) as client:
                    client.sendmail("alice@example.test", ["bob@example.test"], message)
        elif mode == "connection":
            with smtplib.SMTP(host, port, local_hostname=CLIENT_NAME) as client:
                for _ in range(count):
                    client.sendmail("alice@example.test", ["bob@example.test"], message)
        else:  # bench_throughput.py's concurrent mode: 8 aiosmtplib connections
            from bench_throughput import concurrent_connections

            concurrent_connections(host, port, count)
        if stored() != count:
            raise RuntimeError(f"{server}: {stored()} of {count} messages stored")


def counted(server: str, mode: str, count: int) -> tuple[int, int]:
    """(client thread, server threads) instructions of one child run under callgrind."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--separate-threads=yes",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--child",
                server,
                mode,
                str(count),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        threads: dict[int, int] = {}
        for path in Path(folder).glob("callgrind.out-*"):
            number = int(path.name.rsplit("-", 1)[1])
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith(("totals:", "summary:")):
                    threads[number] = int(line.split()[1])
                    break
    client = threads.pop(1, 0)
    return client, sum(threads.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--short", type=int, default=10, help="work of the short run")
    parser.add_argument("--long", type=int, default=110, help="work of the long run")
    parser.add_argument("--only", nargs="*", default=list(MODES), choices=MODES)
    parser.add_argument("--servers", nargs="*", default=list(SERVERS), choices=list(SERVERS))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    if shutil.which("valgrind") is None:
        print("skipped: bench_instructions.py needs valgrind (Debian package valgrind)")
        return
    print(environment_line())
    extra = args.long - args.short
    print(
        f"callgrind, --separate-threads=yes: ({args.long} - {args.short}) / {extra}; "
        f"M = million instructions"
    )
    print(
        f"{'':44} {'server':>8} {'client':>8} {'process':>8} {'x floor':>8} {'x wire':>7} "
        f"{'ours /':>7}"
    )
    first = ["floor", "floor-wire", "ours"]
    servers = [*first, *(s for s in args.servers if s not in first)]
    for mode in args.only:
        totals: dict[str, tuple[float, float]] = {}
        for server in servers:
            short = counted(server, mode, args.short)
            long = counted(server, mode, args.long)
            client = (long[0] - short[0]) / extra / 1e6
            serving = (long[1] - short[1]) / extra / 1e6
            totals[server] = (serving, client)
        floor_total = sum(totals["floor"])
        wire_total = sum(totals["floor-wire"])
        ours_total = sum(totals["ours"])
        for server, (serving, client) in totals.items():
            total = serving + client
            print(
                f"{UNITS[mode] + ': ' + server:44} {serving:7.3f}M {client:7.3f}M {total:7.3f}M "
                f"{total / floor_total:7.2f}x {total / wire_total:6.2f}x {ours_total / total:6.2f}x"
            )
        if mode == "transaction":
            for name, base in (("floor", floor_total), ("same-wire floor", wire_total)):
                ratio = ours_total / base
                verdict = "met" if ratio <= 1.1 else "NOT met"
                print(
                    f"target per transaction (instructions, whole process): SMTPServer <= 1.10x "
                    f"the {name} -> {ratio:.2f}x: {verdict}"
                )
        if mode == "concurrent" and "aiosmtpd" in totals:
            ratio = sum(totals["aiosmtpd"]) / ours_total
            verdict = "met" if ratio >= 1.5 else "NOT met"
            print(
                f"throughput when the CPU is the limit (8 connections, instructions): "
                f"bare aiosmtpd / ours = {ratio:.2f}x; target >= 1.50x: {verdict}"
            )


if __name__ == "__main__":
    main()
