"""Benchmark: relay throughput against Postfix, both measured in the same run, 1000 messages.

A script, not a test:
``.venv/bin/python bench/bench_relay.py [--messages N] [--repeat R] [--no-reuse] [--profile N]``.

Like with like. The load generator is Postfix's ``smtp-source`` (``-s SESSIONS -d``: that many
parallel sessions, each carrying its messages one after another) and the sink is Postfix's
``smtp-sink`` (one for the whole run; its ``-c`` counter says when the last message is in),
both C programs, the same for both
sides:

- one relay hop, Postfix: ``smtp-source`` -> a private Postfix (:class:`Postfix`, queue on
  disk, ``relayhost`` = the sink) -> ``smtp-sink``;
- one relay hop, ours: ``smtp-source`` -> a :class:`MailNetwork` relay host (``auto=True``,
  MX routing to the sink through :meth:`MailNetwork.add_external`) -> ``smtp-sink``;
- the three-host chain, ours: ``smtp-source`` -> submission -> relay -> MX (filed there).

Each figure runs with 1 and 8 sessions; the clock starts before ``smtp-source`` and stops
when the sink has taken the last message (and every queue of ours is empty). Every repetition
measures Postfix and ours back to back, so each ratio is taken within one run.
Without Postfix installed, Postfix is skipped (one line says so) and ours runs with aiosmtplib
submitters and a pytest_smtp server as the sink.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import pstats
import shutil
import socket
import statistics
import subprocess
import threading
import time

import aiosmtplib

from pytest_smtp.fakedns import FakeDNS
from pytest_smtp.relay import MailNetwork
from pytest_smtp.relay.postfix import Postfix, find_postfix
from pytest_smtp.smtp.server import SMTPServer

SESSIONS = (1, 8)
SINK_DOMAIN = "sink.test"
SENDER = "alice@example.test"
BODY_BYTES = 400  # smtp-source -l: payload after its own From/To/Date/Message-Id headers
_SBIN = "/usr/sbin:/usr/lib/postfix/sbin:/sbin:/usr/local/sbin"


def _tool(name: str) -> str | None:
    return shutil.which(name, path=_SBIN)


def _free_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


# -- the sink -------------------------------------------------------------------------------
class Sink:
    """Where relayed mail ends: one ``smtp-sink`` at ``ip:port`` for the whole run, its
    running counter (``-c``: updated at each end of data) read by a thread; or, without
    Postfix, a pytest_smtp server. A context manager."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        self.port = _free_port(ip)
        self.binary = _tool("smtp-sink")
        self._process: subprocess.Popen[bytes] | None = None
        self._server: SMTPServer | None = None
        self._count = 0
        self._changed = threading.Condition()

    @property
    def address(self) -> tuple[str, int]:
        return (self.ip, self.port)

    def __enter__(self) -> Sink:
        if self.binary is None:
            self._server = SMTPServer(host=self.ip, port=self.port).start()
            return self
        command = [self.binary, "-u", "postfix", "-c", f"{self.ip}:{self.port}", "256"]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, bufsize=0)
        threading.Thread(target=self._read, args=(self._process,), daemon=True).start()
        _wait_listening(self.address, self._process)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.stop()
        if self._process is not None:
            self._process.kill()
            self._process.wait()

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        pending = b""
        while chunk := process.stdout.read(4096):
            *counters, pending = (pending + chunk).split(b"\r")
            if counters:
                with self._changed:
                    self._count = int(counters[-1].rpartition(b"mesg=")[2])
                    self._changed.notify_all()

    def received(self) -> int:
        """Messages the sink has taken so far."""
        if self._server is not None:
            return len(self._server.mailbox)
        with self._changed:
            return self._count

    def wait(self, count: int, timeout: float = 600) -> None:
        """Return when the sink has taken ``count`` messages in all."""
        if self._server is not None:
            self._server.mailbox.wait_for(count=count, timeout=timeout)
            return
        with self._changed:
            if not self._changed.wait_for(lambda: self._count >= count, timeout):
                raise RuntimeError(f"the sink took {self._count} of {count} messages")


def _wait_listening(address: tuple[str, int], process: subprocess.Popen[bytes]) -> None:
    # A benchmark, not a test: poll until the freshly started sink accepts (it cannot tell).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"smtp-sink exited at start ({process.returncode})")
        try:
            with socket.create_connection(address, timeout=1) as sock:
                sock.recv(512)
                sock.sendall(b"QUIT\r\n")
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"smtp-sink did not listen on {address[0]}:{address[1]}")


# -- the load -------------------------------------------------------------------------------
def load(address: tuple[str, int], sessions: int, total: int, rcpt: str) -> None:
    """Send ``total`` messages to ``address`` over ``sessions`` parallel sessions: with
    ``smtp-source`` when installed, else with aiosmtplib."""
    source = _tool("smtp-source")
    if source is None:
        asyncio.run(_submit_all(address, sessions, total, rcpt))
        return
    command = [source, "-s", str(sessions), "-m", str(total), "-d", "-l", str(BODY_BYTES)]
    command += ["-M", "bench.test", "-f", SENDER, "-t", rcpt, f"{address[0]}:{address[1]}"]
    done = subprocess.run(command, capture_output=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source failed ({done.returncode}): {done.stderr.decode()}")


async def _submit(address: tuple[str, int], count: int, rcpt: str) -> None:
    client = aiosmtplib.SMTP(hostname=address[0], port=address[1], local_hostname="bench.test")
    await client.connect()
    body = "Some body text.\r\n" * (BODY_BYTES // 17)
    for n in range(count):
        text = f"From: {SENDER}\r\nTo: {rcpt}\r\nSubject: m{n}\r\n\r\n{body}"
        await client.sendmail(SENDER, [rcpt], text)
    await client.quit()


async def _submit_all(address: tuple[str, int], sessions: int, total: int, rcpt: str) -> None:
    counts = [total // sessions + (1 if i < total % sessions else 0) for i in range(sessions)]
    await asyncio.gather(*(_submit(address, c, rcpt) for c in counts if c))


# -- the two sides --------------------------------------------------------------------------
def postfix_hop(postfix: Postfix, sink: Sink, sessions: int, total: int) -> float:
    """msg/s of ``smtp-source`` -> Postfix -> ``smtp-sink``."""
    goal = sink.received() + total
    began = time.perf_counter()
    load(postfix.address, sessions, total, f"bob@{SINK_DOMAIN}")
    sink.wait(goal)
    return total / (time.perf_counter() - began)


def our_hop(
    net: MailNetwork,
    sink: Sink,
    sessions: int,
    total: int,
    profile: cProfile.Profile | None = None,
) -> float:
    """msg/s of ``smtp-source`` -> our relay host -> ``smtp-sink``."""
    before = net.summary()["delivered"]
    goal = sink.received() + total
    _profiling(net, profile, True)
    began = time.perf_counter()
    load(net.host("relay.bench.test").address, sessions, total, f"bob@{SINK_DOMAIN}")
    sink.wait(goal)
    net.run_until_idle(timeout=600)
    elapsed = time.perf_counter() - began
    _profiling(net, profile, False)
    delivered = net.summary()["delivered"] - before
    assert delivered == total, f"only {delivered} of {total} messages left the relay"
    return total / elapsed


def our_chain(
    net: MailNetwork, sessions: int, total: int, profile: cProfile.Profile | None = None
) -> float:
    """msg/s of ``smtp-source`` -> submission -> relay -> MX (filed)."""
    mailbox = net.host("mx.example.test").mailbox
    before = len(mailbox)
    _profiling(net, profile, True)
    began = time.perf_counter()
    load(net.address, sessions, total, "bob@example.test")
    net.run_until_idle(timeout=600)
    elapsed = time.perf_counter() - began
    _profiling(net, profile, False)
    delivered = len(mailbox) - before
    assert delivered == total, f"only {delivered} of {total} messages arrived"
    return total / elapsed


def add_hop(net: MailNetwork, sink: Sink) -> None:
    """A relay host that relays for 127.0.0.0/8 and routes ``sink.test`` to the sink."""
    net.add_relay("relay.bench.test", networks=["127.0.0.0/8"])
    net.add_external("sink.bench.test", sink.address, domains=[SINK_DOMAIN])


async def _set_profile(profile: cProfile.Profile, on: bool) -> None:
    # cProfile follows one thread: this runs on the engine's, where the servers and MTAs run.
    if on:
        profile.enable()
    else:
        profile.disable()


def _profiling(net: MailNetwork, profile: cProfile.Profile | None, on: bool) -> None:
    if profile is not None:
        net.engine.call(_set_profile(profile, on))


# -- reporting ------------------------------------------------------------------------------
def _spread(values: list[float], unit: str = "x") -> str:
    """``median unit (min–max)``; rates as ``1,234 msg/s``, ratios as ``1.23x``."""
    if not values:
        return "n/a"
    fmt = "{:.2f}" if unit == "x" else "{:,.0f}"
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{fmt.format(mid)}{unit} ({fmt.format(low)}–{fmt.format(high)})"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument(
        "--no-reuse", action="store_true", help="ours: one connection per message and hop"
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="N",
        default=0,
        help="instead of timing, profile the engine thread (servers and MTAs) for our hop and "
        "chain with 8 sessions and print its N costliest functions by own time, per message",
    )
    args = parser.parse_args()
    total, reuse = args.messages, not args.no_reuse
    have_postfix = find_postfix() is not None and _tool("smtp-source") is not None
    if not have_postfix:
        print("Postfix is not installed (Debian package 'postfix'): Postfix skipped")
    with contextlib.ExitStack() as stack:
        dns = stack.enter_context(FakeDNS())
        # One network: the chain (submission -> relay -> MX) and the hop (relay.bench.test).
        net = stack.enter_context(MailNetwork.simple(dns, auto=True, reuse_connections=reuse))
        # The sink gets its own loopback address (the network's hosts start at 127.0.0.2).
        sink = stack.enter_context(Sink("127.0.0.250" if net.distinct_addresses else "127.0.0.1"))
        add_hop(net, sink)
        postfix = None
        if have_postfix:
            postfix = stack.enter_context(
                Postfix("postfix.bench.test", main_cf={"relayhost": f"[{sink.ip}]:{sink.port}"})
            )
        # Warm up: imports, first connections, Postfix's daemons.
        our_hop(net, sink, 8, 50)
        our_chain(net, 8, 50)
        if postfix is not None:
            postfix_hop(postfix, sink, 8, 50)
        if args.profile:
            for name, run in (
                ("one hop", lambda p: our_hop(net, sink, 8, total, p)),
                ("three-host chain", lambda p: our_chain(net, 8, total, p)),
            ):
                profile = cProfile.Profile()
                rate = run(profile)
                print(f"profiled ({name}, 8 sessions): {rate:,.0f} msg/s under the profiler")
                _print_profile(profile, total, args.profile)
            return
        figures: dict[str, list[float]] = {}
        for rep in range(args.repeat):
            for sessions in SESSIONS:
                row = {}
                if postfix is not None:
                    row["postfix"] = postfix_hop(postfix, sink, sessions, total)
                row["hop"] = our_hop(net, sink, sessions, total)
                row["chain"] = our_chain(net, sessions, total)
                for key, value in row.items():
                    figures.setdefault(f"{key}/{sessions}", []).append(value)
                if postfix is not None:
                    for key in ("hop", "chain"):
                        figures.setdefault(f"{key}÷postfix/{sessions}", []).append(
                            row[key] / row["postfix"]
                        )
                print(
                    f"run {rep + 1}, {sessions} session(s): "
                    + ", ".join(f"{k} {v:,.0f} msg/s" for k, v in row.items())
                    + (
                        f"; hop ÷ Postfix {row['hop'] / row['postfix']:.2f}x, "
                        f"chain ÷ Postfix {row['chain'] / row['postfix']:.2f}x"
                        if "postfix" in row
                        else ""
                    )
                )
    print(
        f"\n{total} messages, {'smtp-source' if have_postfix else 'aiosmtplib'} -> relay -> "
        f"{'smtp-sink' if have_postfix else 'pytest_smtp server'}, median (min–max) over "
        f"{args.repeat} runs{'' if reuse else ', ours without connection reuse'}:"
    )
    for sessions in SESSIONS:
        print(f"  {sessions} session(s):")
        rows = (
            ("Postfix relay hop", "postfix", " msg/s"),
            ("pytest_smtp relay hop", "hop", " msg/s"),
            ("pytest_smtp 3-host chain", "chain", " msg/s"),
            ("hop ÷ Postfix hop", "hop÷postfix", "x"),
            ("chain ÷ Postfix hop", "chain÷postfix", "x"),
        )
        for label, key, unit in rows:
            if f"{key}/{sessions}" not in figures:
                continue  # Postfix not installed: said once at the start
            print(f"    {label + ':':<28}{_spread(figures.get(f'{key}/{sessions}', []), unit)}")


if __name__ == "__main__":
    main()
