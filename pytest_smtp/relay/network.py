"""The mail network: build it, look things up in it, run it, close it (:class:`MailNetwork`).

Every host (:mod:`pytest_smtp.relay.host`) is a real
:class:`~pytest_smtp.smtp.server.SMTPServer` (options, faults, transcript, mailbox, store) with
an MTA behind it: what a host accepts and is not the final destination for goes into its queue
and is forwarded with aiosmtplib, by MX lookup or through a smarthost, on the engine's loop.
What happens to each recipient is recorded as a :class:`~pytest_smtp.relay.journey.Journey`.
Time is virtual: ``run_until_idle()`` delivers what can be delivered now,
``advance(minutes=30)`` moves the clock and runs the retries that fall due.

Addresses: each host gets its own loopback address (127.0.0.2, .3, ...; Linux routes all of
127/8 to ``lo``) and an ephemeral port. The DNS A records point at those addresses; the MTAs
find the port in the network's address table (``ip -> port``) where a real MTA would use port
25. Where only 127.0.0.1 can be bound (macOS, some containers), every host listens on
127.0.0.1, every A record says 127.0.0.1 and the table is keyed by host name instead; then a
relay cannot tell hosts apart by client address, so "trusted networks" match every host.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..engine import get_engine
from ..mail import Message
from ..smtp.options import positive_seconds
from ..smtp.server import SMTPServer
from ..smtp.tls import default_ca
from .host import Host, HostMTA
from .journey import STATUSES, Journey, JourneyBook
from .mta import ConnectionCache
from .queue import QueueItem, RetryPolicy, VirtualClock
from .routing import LookupCache, domain_of

if TYPE_CHECKING:
    from ..fakedns import FakeDNS
    from .postfix import PostfixHop

__all__ = ["MailNetwork", "distinct_loopback_available"]

_probe_lock = threading.Lock()
_distinct: bool | None = None


def distinct_loopback_available() -> bool:
    """True when this platform lets a process bind 127.0.0.2 (Linux does; macOS does not)."""
    global _distinct
    with _probe_lock:
        if _distinct is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.2", 0))
                _distinct = True
            except OSError:
                _distinct = False
            finally:
                sock.close()
        return _distinct


class MailNetwork:
    """Hosts that exchange mail over loopback, routed by a :class:`~pytest_smtp.fakedns.FakeDNS`.

    ``seed`` fixes the order of equal-preference MX hosts. ``retry`` is a
    :class:`~pytest_smtp.relay.queue.RetryPolicy` (Postfix-like defaults). ``timeout`` bounds
    each SMTP step of a delivery in real seconds. ``hop_limit`` is Postfix's
    ``hopcount_limit`` (50): a host refuses a message at the end of DATA (``554 5.4.6``, no
    DSN of its own) when its ``Received:`` fields, counting the one the host adds, number
    ``hop_limit`` or more, so it accepts at most ``hop_limit - 2`` incoming ones. ``auto``:
    deliver as soon as mail arrives instead of waiting for :meth:`run_until_idle`.
    ``concurrency``: deliveries in flight at once. ``reuse_connections``: within one
    delivery run, a host keeps its connection to a next hop open and sends the next message
    for that hop over it (``RSET`` between messages, ``QUIT`` when the run ends), as Postfix's
    connection cache does; ``False`` opens one connection per delivery attempt.

    Build it with :meth:`add_submission`, :meth:`add_relay`, :meth:`add_domain` /
    :meth:`add_mx`, or all at once with :meth:`simple`. Use as a context manager or call
    :meth:`close`.
    """

    def __init__(
        self,
        dns: FakeDNS,
        *,
        seed: int = 0,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        hop_limit: int = 50,
        auto: bool = False,
        concurrency: int = 32,
        reuse_connections: bool = True,
        clock: VirtualClock | None = None,
        distinct_addresses: bool | None = None,
    ) -> None:
        timeout = positive_seconds("timeout", timeout)
        if hop_limit < 1:
            raise ValueError(f"hop_limit must be 1 or more, not {hop_limit!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be 1 or more, not {concurrency!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, not {type(retry).__name__}")
        self.dns = dns
        self.seed = seed
        self.retry = retry or RetryPolicy()
        self.timeout = float(timeout)
        self.hop_limit = hop_limit
        self.auto = auto
        self.concurrency = concurrency
        self.reuse_connections = bool(reuse_connections)
        self.clock = clock or VirtualClock()
        """The virtual clock every queue runs on."""
        if distinct_addresses is None:
            distinct_addresses = distinct_loopback_available()
        self.distinct_addresses = distinct_addresses
        """True when each host has its own 127.0.0.x address (else all share 127.0.0.1)."""
        self.hosts: dict[str, Host] = {}
        """Every host by (lower-case) name, in the order added."""
        self.errors: list[str] = []
        """Unexpected exceptions in the MTAs (a test should fail on them)."""
        self.engine = get_engine()
        self._submission: Host | None = None
        self._next_ip = 2
        self._ports: dict[str, int] = {}
        self._postfix: dict[str, PostfixHop] = {}
        self._external: dict[tuple[str, int], str] = {}
        self._book = JourneyBook()
        self._mtas: list[HostMTA] = []
        self._pump: asyncio.Task[None] | None = None
        self._removers: list[Callable[[], None]] = []
        self._closed = False
        self._tls_context = default_ca().client_context()
        self._resolver = dns.resolver()
        self.connections = ConnectionCache()
        """Sessions to next hops kept open between the deliveries of a run (``opened`` and
        ``reused`` count them)."""

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def simple(
        cls,
        dns: FakeDNS,
        domain: str = "example.test",
        *,
        submission: dict[str, Any] | None = None,
        relay: dict[str, Any] | None = None,
        mx: dict[str, Any] | None = None,
        **options: Any,
    ) -> MailNetwork:
        """One call, a working chain: ``smtp.DOMAIN`` (submission, relays for clients on
        127.0.0.1 and for authenticated users) -> ``relay.DOMAIN`` (MX routing, queue, retries,
        bounces) -> ``mx.DOMAIN`` (final for ``DOMAIN``). ``submission``/``relay``/``mx`` are
        extra keyword arguments of :meth:`add_host` for each; other options go to the
        constructor. Submit to ``network.submission.address``."""
        network = cls(dns, **options)
        try:
            network.add_relay(f"relay.{domain}", **(relay or {}))
            network.add_submission(
                f"smtp.{domain}", smarthost=f"relay.{domain}", **(submission or {})
            )
            network.add_domain(domain, mx=[f"mx.{domain}"], **(mx or {}))
        except BaseException:
            network.close()
            raise
        return network

    def add_host(
        self,
        name: str,
        *,
        domains: Iterable[str] = (),
        relay_domains: Iterable[str] = (),
        networks: Iterable[str] = (),
        trust_network: bool = False,
        smarthost: str | None = None,
        hop_limit: int | None = None,
        **server_options: Any,
    ) -> Host:
        """Start a host called ``name`` (an A record is added for it) and return it.

        ``domains``: final destination for these. ``relay_domains``: accepted from anyone and
        forwarded. ``networks``: CIDRs of clients allowed to relay. ``trust_network``: every
        host of this network may relay. ``smarthost``: forward through that host instead of
        by MX. ``dsn=False``: the server does not advertise DSN (RFC 3461), so a relay sends a
        "relayed" notice to senders who asked for SUCCESS. Other keywords are
        :class:`~pytest_smtp.smtp.server.SMTPServer` options (``tls``, ``auth``, ...).
        """
        self._check_open()
        key = name.lower().rstrip(".")
        if not key or "@" in key or " " in key:
            raise ValueError(f"a host name looks like 'mx.example.test', not {name!r}")
        if key in self.hosts:
            raise ValueError(f"host {key!r} already exists in this network")
        for option in ("host", "port", "hostname", "dns"):
            if option in server_options:
                raise TypeError(
                    f"{option}= is chosen by the network (the host name is {key!r}); "
                    "remove it from the options"
                )
        try:
            parsed = [ipaddress.ip_network(n, strict=False) for n in networks]
        except ValueError as exc:
            raise ValueError(f"networks must be CIDRs such as '127.0.0.1/32': {exc}") from None
        ip = self._allocate_ip()
        server = SMTPServer(host=ip, hostname=key, dns=self.dns, **server_options)
        host = Host(
            name=key,
            server=server,
            ip=ip,
            domains={d.lower() for d in domains},
            relay_domains={d.lower() for d in relay_domains},
            networks=parsed,
            trust_network=trust_network,
            smarthost=smarthost.lower() if smarthost else None,
            hop_limit=hop_limit if hop_limit is not None else self.hop_limit,
        )
        server.start()
        self.hosts[key] = host
        if self.distinct_addresses:
            self._ports[ip] = server.port
        else:
            self._ports[key] = server.port
        self.dns.add_a(key, ip)
        mta = HostMTA(host, self, self._book, tls_context=self._tls_context, on_queued=self._queued)
        self._removers.append(mta.install())
        self._mtas.append(mta)
        return host

    def add_submission(
        self,
        name: str = "smtp.example.test",
        *,
        smarthost: str | None = None,
        networks: Iterable[str] = ("127.0.0.1/32",),
        **options: Any,
    ) -> Host:
        """A submission host (MSA) for the code under test: relays for clients in
        ``networks`` (default 127.0.0.1, where tests run) and for authenticated users; routes
        by MX, or through ``smarthost``. The first one added is :attr:`submission`."""
        host = self.add_host(name, smarthost=smarthost, networks=networks, **options)
        if self._submission is None:
            self._submission = host
        return host

    def add_relay(self, name: str, *, smarthost: str | None = None, **options: Any) -> Host:
        """A relay MTA: accepts from every host of the network (``trust_network``) and from
        ``networks``/authenticated users; routes by MX or through ``smarthost``."""
        options.setdefault("trust_network", True)
        return self.add_host(name, smarthost=smarthost, **options)

    def add_mx(
        self,
        domain: str,
        name: str,
        preference: int = 10,
        *,
        backup: bool = False,
        **options: Any,
    ) -> Host:
        """Publish ``MX preference name`` for ``domain``; start the host if it is new. The
        host is the final destination for ``domain`` (or, with ``backup=True``, accepts it and
        forwards it to a better MX)."""
        key = name.lower().rstrip(".")
        host = self.hosts.get(key)
        if host is None:
            host = self.add_host(key, **options)
        elif options:
            raise TypeError(
                f"host {key!r} already exists; options {sorted(options)} apply only to a new one"
            )
        (host.relay_domains if backup else host.domains).add(domain.lower())
        self.dns.add_mx(domain, key, preference)
        return host

    def add_domain(
        self,
        domain: str,
        mx: Sequence[str | tuple[str, int]] = (),
        *,
        null_mx: bool = False,
        **options: Any,
    ) -> list[Host]:
        """Publish a mail domain: ``mx`` names (preference 10, 20, ... in order) or
        ``(name, preference)`` pairs; new hosts get ``options``. ``null_mx=True`` publishes
        ``MX 0 .`` (RFC 7505: the domain accepts no mail) and nothing else."""
        if null_mx:
            if mx:
                raise ValueError("a null MX domain has no other MX hosts: drop mx= or null_mx=")
            self.dns.add_mx(domain, ".", 0)
            return []
        if not mx:
            mx = [f"mx.{domain}"]
        hosts = []
        for index, entry in enumerate(mx):
            name, preference = (entry, 10 * (index + 1)) if isinstance(entry, str) else entry
            existing = name.lower().rstrip(".") in self.hosts
            hosts.append(self.add_mx(domain, name, preference, **({} if existing else options)))
        return hosts

    def add_postfix(self, name: str, **main_cf: Any) -> PostfixHop:
        """Start a real Postfix (Debian package ``postfix``, needs root) as host ``name``: it
        receives from the previous hop and routes by the network's fake DNS to its hosts (see
        :mod:`pytest_smtp.relay.postfix`). ``main_cf`` sets ``main.cf`` parameters. Stopped by
        :meth:`close`; ``PostfixError`` names the package when it is missing."""
        from .postfix import PostfixHop

        self._check_open()
        key = name.lower().rstrip(".")
        if not key or "@" in key or " " in key or key in self.hosts:
            raise ValueError(f"a new host name looks like 'postfix.example.test', not {name!r}")
        hop = PostfixHop(
            key, self._allocate_ip(), resolver=self._resolver, port_of=self.port_of,
            seed=self.seed, main_cf=main_cf,
        )  # fmt: skip
        hop.start()
        self._removers.append(hop.stop)
        self._ports[hop.host if self.distinct_addresses else key] = hop.port
        self._postfix[f"{hop.host}:{hop.port}"] = hop
        self.dns.add_a(key, hop.host)
        return hop

    def add_external(
        self, name: str, address: tuple[str, int], *, domains: Iterable[str] = ()
    ) -> None:
        """Route to a server this network does not run (``smtp-sink``, another MTA) listening
        at ``address``: an A record for ``name`` and ``MX 10 name`` for each of ``domains``.

        Mail a host hands to it leaves the network: its journey ends ``delivered`` at
        ``name`` (an event says it left), with no captured message. ``address`` must be a
        loopback address no host of the network uses (with shared addresses, 127.0.0.1)."""
        self._check_open()
        key = name.lower().rstrip(".")
        if not key or "@" in key or " " in key or key in self.hosts:
            raise ValueError(f"a new host name looks like 'sink.example.test', not {name!r}")
        ip, port = address[0], int(address[1])
        if self.distinct_addresses:
            if ip in self._ports:
                raise ValueError(f"{ip} is already an address of this network's hosts")
            self._ports[ip] = port
        elif ip != "127.0.0.1":
            raise ValueError(
                f"this network's hosts share 127.0.0.1 (distinct loopback addresses are not "
                f"available here): an external server must listen there too, not on {ip}"
            )
        else:
            self._ports[key] = port
        self._external[(ip, port)] = key
        self.dns.add_a(key, ip)
        for domain in domains:
            self.dns.add_mx(domain, key, 10)

    def external(self, ip: str, port: int) -> str | None:
        """The name of the server at ``ip:port`` added with :meth:`add_external`, or None."""
        return self._external.get((ip, port))

    def _allocate_ip(self) -> str:
        if not self.distinct_addresses:
            return "127.0.0.1"
        while self._next_ip < 255 * 255:
            n = self._next_ip
            self._next_ip += 1
            ip = f"127.0.{n // 255}.{n % 255}"
            if n % 255 in (0, 1) or ip in self._ports:
                continue
            return ip
        raise RuntimeError("out of loopback addresses for this network")

    # -- lookups -----------------------------------------------------------------------------
    @property
    def submission(self) -> Host:
        """The host the code under test submits to (the first :meth:`add_submission`)."""
        if self._submission is None:
            raise LookupError("this network has no submission host: call add_submission()")
        return self._submission

    @property
    def address(self) -> tuple[str, int]:
        """``submission.address``: where the code under test connects."""
        return self.submission.address

    def host(self, name: str) -> Host:
        """The host called ``name``; ``KeyError`` listing the hosts when there is none."""
        host = self.hosts.get(name.lower().rstrip("."))
        if host is None:
            raise KeyError(f"no host {name!r} in this network; hosts: {', '.join(self.hosts)}")
        return host

    def __getitem__(self, name: str) -> Host:
        return self.host(name)

    def foreign_hop(self, ip: str, port: int | None = None) -> str | None:
        """The name of the hop this network follows but does not run (a real Postfix, see
        :meth:`add_postfix`) at ``ip`` (and ``port``), or None."""
        for hop in self._postfix.values():
            if hop.host == ip and (port is None or hop.port == port):
                return hop.name
        return None

    def port_of(self, name: str, ip: str) -> int | None:
        """The port the host of this network called ``name`` listens on at ``ip`` (where a
        real MTA would use port 25), or None when nothing of the network listens there."""
        if self.distinct_addresses:
            return self._ports.get(ip)
        return self._ports.get(name) if ip == "127.0.0.1" else None

    def journeys(self, rcpt: str | None = None) -> list[Journey]:
        """Every journey (one per recipient of each message accepted by a host from outside
        the network, and of each DSN), optionally only those to ``rcpt``."""
        journeys = self._book.all()
        if rcpt is None:
            return journeys
        return [j for j in journeys if j.recipient.lower() == rcpt.lower()]

    def outcome(self, rcpt: str) -> Journey:
        """The latest journey to ``rcpt``; ``LookupError`` naming the known recipients."""
        found = self.journeys(rcpt)
        if not found:
            known = sorted({j.recipient for j in self.journeys()})
            raise LookupError(f"no message for <{rcpt}> entered the network; recipients: {known}")
        return found[-1]

    def delivered(self, rcpt: str) -> list[Message]:
        """The messages delivered to ``rcpt``'s mailbox, as captured by the final host."""
        return [j.message for j in self.journeys(rcpt) if j.message is not None]

    def maildrop(self, rcpt: str) -> Any:
        """The maildrop of ``rcpt`` at the host that is final for its domain (what a POP3 or
        IMAP client would read; messages carry ``Return-Path:`` and the last ``Received:``)."""
        for host in self.hosts.values():
            if host.is_final(rcpt):
                return host.server.store.maildrop(rcpt)
        raise LookupError(f"no host of this network is final for {domain_of(rcpt)!r}")

    def queued(self) -> list[QueueItem]:
        """Every item waiting in any queue."""
        return [item for host in self.hosts.values() for item in host.queue]

    def summary(self) -> dict[str, int]:
        """How many journeys are in each status."""
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for journey in self.journeys():
            counts[journey.status] += 1
        return counts

    def describe(self) -> str:
        """Every journey hop by hop (what the relay assertions print on failure)."""
        journeys = self.journeys()
        if not journeys:
            return "(no message entered the network)"
        return "\n".join(j.describe() for j in journeys)

    # -- running -----------------------------------------------------------------------------
    def run_until_idle(self, timeout: float = 60.0) -> None:
        """Deliver everything deliverable now; return when nothing is due or in flight."""
        self._check_open()
        self.engine.call(self._idle(), timeout=timeout)

    async def run_until_idle_async(self) -> None:
        """:meth:`run_until_idle` for async code on any event loop."""
        self._check_open()
        await self.engine.submit(self._idle())

    def advance(
        self,
        delta: float | timedelta = 0,
        *,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        days: float = 0,
        timeout: float = 120.0,
    ) -> None:
        """Move the virtual clock forward, running every retry at its due time on the way,
        then run until idle. ``advance(minutes=30)``, ``advance(timedelta(days=5))``."""
        self._check_open()
        self.engine.call(
            self._advance(self._delta(delta, seconds, minutes, hours, days)), timeout=timeout
        )

    async def advance_async(
        self,
        delta: float | timedelta = 0,
        *,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        days: float = 0,
    ) -> None:
        """:meth:`advance` for async code on any event loop."""
        self._check_open()
        await self.engine.submit(self._advance(self._delta(delta, seconds, minutes, hours, days)))

    @staticmethod
    def _delta(
        delta: float | timedelta, seconds: float, minutes: float, hours: float, days: float
    ) -> float:
        base = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        total = base + seconds + 60 * minutes + 3600 * hours + 86400 * days
        if total < 0:
            raise ValueError(f"the clock only moves forward; got a delta of {total} s")
        return total

    async def _advance(self, delta: float) -> None:
        target = self.clock.time() + delta
        await self._idle()
        while True:
            upcoming = [t for h in self.hosts.values() if (t := h.queue.next_due()) is not None]
            if not upcoming or min(upcoming) > target:
                break
            self.clock.set(max(min(upcoming), self.clock.time()))
            await self._idle()
        self.clock.set(target)
        await self._idle()

    def _queued(self) -> None:
        """A host queued something: with ``auto``, deliver it now."""
        if self.auto:
            self._kick()

    def _kick(self) -> None:
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._run())

    async def _idle(self) -> None:
        while True:
            self._kick()
            assert self._pump is not None
            await asyncio.shield(self._pump)
            now = self.clock.time()
            if not any(h.queue.due(now) for h in self.hosts.values()):
                await self.connections.wait_closed()
                return

    async def _run(self) -> None:
        running: set[asyncio.Task[None]] = set()
        lookups = LookupCache(self._resolver)
        while True:
            now = self.clock.time()
            for mta in list(self._mtas):
                for item in mta.host.queue.take(now, self.concurrency - len(running)):
                    running.add(asyncio.get_running_loop().create_task(mta.attempt(item, lookups)))
            if not running:
                # The run is over: nothing is left for the cached sessions to carry.
                self.connections.release()
                return
            done, running_pending = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            running = set(running_pending)
            for task in done:
                exc = task.exception()
                if exc is not None:
                    import traceback

                    self.errors.append(
                        "relay delivery failed:\n"
                        + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                    )

    # -- closing -----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this MailNetwork is closed")

    def close(self) -> None:
        """Stop every host (bounded); the journeys stay readable."""
        if self._closed:
            return
        self._closed = True
        for remove in self._removers:
            remove()
        self._removers.clear()
        pump = self._pump
        if pump is not None and not pump.done():
            with contextlib.suppress(Exception):
                self.engine.call(_cancel(pump), timeout=5)
        with contextlib.suppress(Exception):
            self.engine.call(self.connections.aclose(), timeout=5)
        for host in self.hosts.values():
            host.server.stop()
            self.errors.extend(host.server.errors)
            self.errors.extend(host.server.mailbox.listener_errors)

    def __enter__(self) -> MailNetwork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.queued())} queued"
        return f"<MailNetwork hosts={list(self.hosts)} {state} clock={self.clock.time():g}s>"


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
