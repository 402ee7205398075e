"""Benchmark: messages per second end to end, submission -> relay -> MX, 1000 messages.

A script, not a test:
``.venv/bin/python bench/bench_relay.py [--messages N] [--tls] [--no-reuse]``.
Eight aiosmtplib connections submit; the network delivers as mail arrives (``auto=True``), then
again with everything submitted first and one ``run_until_idle()``; the clock stops when the
last message is in the MX mailbox and every queue is empty. Each hop reuses its connection to
the next hop within a delivery run (``--no-reuse``: one connection per message, as before).
Compared with Postfix as a relay hop, ~350 msg/s on this machine (../shared/ANCHORS.md).
"""

from __future__ import annotations

import argparse
import asyncio
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


def run(total: int, tls: bool, auto: bool, reuse: bool = True) -> float:
    with FakeDNS() as dns:
        extra = {"tls": "starttls"} if tls else {}
        with MailNetwork.simple(
            dns, auto=auto, reuse_connections=reuse, relay=extra, mx=extra
        ) as net:
            began = time.perf_counter()
            asyncio.run(_submit_all(net.address, total))
            net.run_until_idle(timeout=600)
            elapsed = time.perf_counter() - began
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
    args = parser.parse_args()
    reuse = not args.no_reuse
    run(50, args.tls, True, reuse)  # warm up: TLS contexts, imports, DNS
    for auto in (True, False):
        rate = run(args.messages, args.tls, auto, reuse)
        mode = "deliver as it arrives" if auto else "submit all, then run_until_idle()"
        print(
            f"{args.messages} messages submission -> relay -> MX "
            f"({'STARTTLS' if args.tls else 'plain'}, {mode}"
            f"{'' if reuse else ', no connection reuse'}): {rate:,.0f} msg/s; "
            f"Postfix relay hop ~{POSTFIX_RELAY:.0f} msg/s: x{rate / POSTFIX_RELAY:.2f}"
        )


if __name__ == "__main__":
    main()
