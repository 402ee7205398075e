"""Benchmark: messages per second end to end, submission -> relay -> MX, 1000 messages.

A script, not a test:
``.venv/bin/python bench/bench_relay.py [--messages N] [--tls] [--no-reuse] [--profile N]``.
Eight aiosmtplib connections submit; the network delivers as mail arrives (``auto=True``), then
again with everything submitted first and one ``run_until_idle()``; the clock stops when the
last message is in the MX mailbox and every queue is empty. Each hop reuses its connection to
the next hop within a delivery run (``--no-reuse``: one connection per message, as before).
Compared with Postfix as a relay hop, ~350 msg/s on this machine (../shared/ANCHORS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time

import aiosmtplib

from pytest_smtp.fakedns import FakeDNS
from pytest_smtp.relay import MailNetwork

POSTFIX_RELAY = 350.0
CONNECTIONS = 8


async def _submit(address: tuple[str, int], count: int, start: int) -> None:
    client = aiosmtplib.SMTP(hostname=address[0], port=address[1], local_hostname="bench.test")
    await client.connect()
    for n in range(start, start + count):
        text = (
            f"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: m{n}\r\n"
            f"Message-ID: <{n}@bench.test>\r\n\r\n" + "Some body text.\r\n" * 20
        )
        await client.sendmail("alice@example.test", [f"u{n % 50}@example.test"], text)
    await client.quit()


async def _submit_all(address: tuple[str, int], total: int) -> None:
    share = total // CONNECTIONS
    counts = [share + (1 if i < total % CONNECTIONS else 0) for i in range(CONNECTIONS)]
    starts = [sum(counts[:i]) for i in range(CONNECTIONS)]
    await asyncio.gather(*(_submit(address, c, s) for c, s in zip(counts, starts, strict=True)))


async def _set_profile(profile: cProfile.Profile, on: bool) -> None:
    # cProfile follows one thread: this runs on the engine's, where the servers and MTAs run.
    if on:
        profile.enable()
    else:
        profile.disable()


def run(
    total: int, tls: bool, auto: bool, reuse: bool = True, profile: cProfile.Profile | None = None
) -> float:
    with FakeDNS() as dns:
        extra = {"tls": "starttls"} if tls else {}
        with MailNetwork.simple(
            dns, auto=auto, reuse_connections=reuse, relay=extra, mx=extra
        ) as net:
            if profile is not None:
                net.engine.call(_set_profile(profile, True))
            began = time.perf_counter()
            asyncio.run(_submit_all(net.address, total))
            net.run_until_idle(timeout=600)
            elapsed = time.perf_counter() - began
            if profile is not None:
                net.engine.call(_set_profile(profile, False))
            delivered = len(net.host("mx.example.test").mailbox)
            assert delivered == total, f"only {delivered} of {total} messages arrived"
            assert net.summary()["delivered"] == total
        assert not net.errors, net.errors
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--tls", action="store_true", help="STARTTLS on the relay and MX")
    parser.add_argument(
        "--no-reuse", action="store_true", help="one connection per message and hop"
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="N",
        default=0,
        help="instead of timing, profile the engine thread (servers and MTAs) in each mode "
        "and print its N costliest functions by own time, per message",
    )
    args = parser.parse_args()
    reuse = not args.no_reuse
    run(50, args.tls, True, reuse)  # warm up: TLS contexts, imports, DNS
    if args.profile:
        for auto in (True, False):
            profile = cProfile.Profile()
            rate = run(args.messages, args.tls, auto, reuse, profile)
            mode = "deliver as it arrives" if auto else "submit all, then run_until_idle()"
            print(f"profiled pass ({mode}): {rate:,.0f} msg/s under the profiler")
            _print_profile(profile, args.messages, args.profile)
        return
    for auto in (True, False):
        rate = run(args.messages, args.tls, auto, reuse)
        mode = "deliver as it arrives" if auto else "submit all, then run_until_idle()"
        print(
            f"{args.messages} messages submission -> relay -> MX "
            f"({'STARTTLS' if args.tls else 'plain'}, {mode}"
            f"{'' if reuse else ', no connection reuse'}): {rate:,.0f} msg/s; "
            f"Postfix relay hop ~{POSTFIX_RELAY:.0f} msg/s: x{rate / POSTFIX_RELAY:.2f}"
        )


def _print_profile(profile: cProfile.Profile, messages: int, top: int) -> None:
    stats = pstats.Stats(profile)
    rows = []
    for (path, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((own, cumulative, calls, f"{path.rsplit('/', 2)[-1]}:{line}({name})"))
    total = sum(row[0] for row in rows)
    print(f"engine thread: {total / messages * 1e6:,.0f} us of own time per message")
    print(f"{'own us/msg':>10} {'cum us/msg':>10} {'calls/msg':>9}  function")
    for own, cumulative, calls, where in sorted(rows, reverse=True)[:top]:
        print(
            f"{own / messages * 1e6:10.1f} {cumulative / messages * 1e6:10.1f} "
            f"{calls / messages:9.1f}  {where}"
        )


if __name__ == "__main__":
    main()
