"""A mail network: submission, relay and MX hosts on loopback, routed by the fake DNS.

Every host is a real :class:`~pytest_smtp.smtp.server.SMTPServer` (options, faults,
transcript, mailbox, store) with an MTA behind it: what a host accepts and is not the final
destination for goes into its queue and is forwarded with aiosmtplib, by MX lookup or through
a smarthost, on the engine's loop. Time is virtual: ``run_until_idle()`` delivers what can be
delivered now, ``advance(minutes=30)`` moves the clock and runs the retries that fall due.

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
import dataclasses
import ipaddress
import random
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from ..engine import get_engine
from ..faults import FaultContext
from ..mail import Message, Reply
from ..smtp.server import SMTPServer
from ..smtp.tls import default_ca
from .dsn import (
    DSNRecipient,
    DSNReport,
    build_dsn,
    needs_smtputf8,
    parse_dsn,
    parse_notify,
)
from .mta import (
    ConnectionCache,
    Peer,
    RecipientVerdict,
    Target,
    count_received,
    deliver,
    normalize_line_endings,
    received_header,
    return_path_header,
)
from .queue import DeliveryQueue, QueuedRecipient, QueueItem, RetryPolicy, VirtualClock
from .routing import (
    Exchange,
    LookupCache,
    RoutingError,
    check_recipient_syntax,
    domain_of,
    resolve_route,
)

if TYPE_CHECKING:
    from ..fakedns import FakeDNS
    from .postfix import PostfixHop

__all__ = ["Event", "Host", "Journey", "MailNetwork", "distinct_loopback_available"]

Status = Literal["queued", "deferred", "delivered", "bounced", "dropped"]
STATUSES = ("queued", "deferred", "delivered", "bounced", "dropped")

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


def _fmt_offset(seconds: float) -> str:
    if seconds < 60:
        return f"+{seconds:g}s"
    if seconds < 3600:
        return f"+{seconds / 60:g}min"
    if seconds < 86400:
        return f"+{seconds / 3600:.4g}h"
    return f"+{seconds / 86400:.4g}d"


@dataclasses.dataclass(frozen=True)
class Event:
    """One step of a recipient's journey."""

    at: float
    """Virtual seconds since the network's clock started."""
    host: str
    kind: str
    """``accepted``, ``queued``, ``relayed``, ``deferred``, ``delivered``, ``bounced``,
    ``dropped`` or ``dsn``."""
    detail: str = ""

    def __str__(self) -> str:
        text = f"{_fmt_offset(self.at):>9} {self.host}: {self.kind}"
        return f"{text}: {self.detail}" if self.detail else text


class Journey:
    """What happened to one recipient of one message, across every hop.

    ``status`` is ``queued`` (waiting for a run), ``deferred`` (will be retried at
    ``next_attempt``), ``delivered`` (into the mailbox at ``host``), ``bounced`` (``status_code``,
    ``diagnostic``, and the DSN sent back, if any) or ``dropped`` (``host`` accepted it and threw
    it away).
    """

    def __init__(
        self,
        recipient: str,
        mail_from: str,
        network: MailNetwork,
        *,
        subject: str | None = None,
        message_id: str | None = None,
    ) -> None:
        self.recipient = recipient
        """The envelope recipient, as accepted by the first hop."""
        self.mail_from = mail_from
        """The envelope sender (``""`` for a DSN)."""
        self._subject = subject
        self._message_id = message_id
        self._headers_from: Message | None = None
        self.generated = False
        """True for a DSN made by a host of the network (not mail from outside)."""
        self.status: Status = "queued"
        self.hops: list[str] = []
        """Names of the hosts that accepted the message, in order."""
        self.events: list[Event] = []
        self.host: str | None = None
        """Where the recipient's copy is now, or was delivered, bounced or dropped."""
        self.message: Message | None = None
        """The message as captured by the final host (delivered), else None."""
        self.reply: Reply | None = None
        """The last reply of a remote host about this recipient."""
        self.status_code: str | None = None
        """Enhanced status of the last failure (``5.1.1``), or ``2.0.0`` when delivered."""
        self.diagnostic: str | None = None
        self.next_attempt: datetime | None = None
        self.dsn_raw: bytes | None = None
        """The DSN generated about this recipient (failure, delay, success or relayed)."""
        self.dsn_journeys: list[Journey] = []
        """The journeys of those DSNs back to the sender."""
        self._arrivals: set[tuple[str, int, str, int]] = set()
        self._network = network

    def _load_headers(self) -> None:
        # Parsing headers costs more than the rest of an arrival, and most journeys are never
        # read: take Subject and Message-ID from the first hop's copy on first use only.
        message = self._headers_from
        if message is not None:
            # Cleared last: a reader on another thread never sees the headers half-loaded.
            self._subject = _safe_subject(message)
            self._message_id = _safe_header(message, "Message-ID")
            self._headers_from = None

    @property
    def subject(self) -> str | None:
        """The message's ``Subject:`` as the first hop received it (None when absent)."""
        self._load_headers()
        return self._subject

    @subject.setter
    def subject(self, value: str | None) -> None:
        self._load_headers()
        self._subject = value

    @property
    def message_id(self) -> str | None:
        """The message's ``Message-ID:`` as the first hop received it (None when absent)."""
        self._load_headers()
        return self._message_id

    @message_id.setter
    def message_id(self, value: str | None) -> None:
        self._load_headers()
        self._message_id = value

    @property
    def delivered(self) -> bool:
        """True when the recipient's copy reached a mailbox."""
        return self.status == "delivered"

    @property
    def dsn(self) -> Message | None:
        """The last DSN about this recipient as it arrived in the sender's mailbox, if it did."""
        for journey in reversed(self.dsn_journeys):
            if journey.message is not None:
                return journey.message
        return None

    @property
    def report(self) -> DSNReport | None:
        """The last DSN generated about this recipient, parsed (None when there was none)."""
        return parse_dsn(self.dsn_raw) if self.dsn_raw is not None else None

    def _event(self, host: str, kind: str, detail: str = "") -> None:
        self.events.append(Event(self._network.clock.time(), host, kind, detail))

    def describe(self) -> str:
        """Several lines: a summary, then each event hop by hop."""
        head = f"<{self.recipient}> from <{self.mail_from}>"
        if self.subject is not None:
            head += f" subject={self.subject!r}"
        head += f": {self.status}"
        if self.host:
            head += f" at {self.host}"
        if self.status_code and self.status != "delivered":
            head += f" ({self.status_code}"
            head += f" {self.diagnostic})" if self.diagnostic else ")"
        if self.status == "deferred" and self.next_attempt is not None:
            head += f", next attempt {self.next_attempt.isoformat()}"
        head += f"; via {' -> '.join(self.hops) or '(nowhere)'}"
        return "\n".join([head, *(f"    {event}" for event in self.events)])

    def __repr__(self) -> str:
        return f"<Journey {self.describe().splitlines()[0]}>"


def _safe_subject(message: Message) -> str | None:
    try:
        return message.subject
    except Exception:
        return None


def _safe_header(message: Message, name: str) -> str | None:
    try:
        return message.headers.get(name)
    except Exception:
        return None


def _option(options: Iterable[str], key: str) -> str | None:
    prefix = key.upper() + "="
    for option in options:
        if option.upper().startswith(prefix):
            return option[len(prefix) :]
        if option.upper() == key.upper():
            return ""
    return None


@dataclasses.dataclass
class Host:
    """One machine of the network: an SMTP server plus its MTA (queue and routing rules)."""

    name: str
    """The DNS name, also the SMTP hostname in greetings and ``Received:``."""
    server: SMTPServer
    ip: str
    domains: set[str]
    """Domains this host is the final destination for (mail is delivered into mailboxes)."""
    relay_domains: set[str]
    """Domains it accepts from anyone and forwards (a backup MX)."""
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    """Client addresses allowed to relay through it (besides authenticated users)."""
    trust_network: bool
    """Whether every other host of the network may relay through it."""
    smarthost: str | None
    """Forward everything not final here to this host name instead of looking up MX."""
    hop_limit: int
    queue: DeliveryQueue = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.queue = DeliveryQueue(self.name)

    @property
    def address(self) -> tuple[str, int]:
        """``(ip, port)`` of the host's SMTP server, for ``smtplib.SMTP(*host.address)``."""
        return self.server.address

    @property
    def port(self) -> int:
        """The server's port."""
        return self.server.port

    @property
    def mailbox(self) -> Any:
        """The server's capture log (every message it accepted)."""
        return self.server.mailbox

    @property
    def faults(self) -> Any:
        """The server's fault rules."""
        return self.server.faults

    @property
    def transactions(self) -> Any:
        """Every transaction the server saw."""
        return self.server.transactions

    def is_final(self, address_or_domain: str) -> bool:
        """True when this host delivers mail for that domain into mailboxes."""
        return (
            domain_of(address_or_domain) in self.domains
            if "@" in address_or_domain
            else (address_or_domain.lower() in self.domains)
        )

    def __repr__(self) -> str:
        where = f"{self.ip}:{self.server.port}" if self.server.running else self.ip
        return f"<Host {self.name} {where} final={sorted(self.domains)} queue={len(self.queue)}>"


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
        if timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
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
        self._journeys: list[Journey] = []
        self._item_journeys: dict[str, dict[str, Journey]] = {}
        self._links: dict[tuple[str, int, str, int], tuple[str, dict[str, Journey]]] = {}
        self._lock = threading.RLock()
        self._pump: asyncio.Task[None] | None = None
        self._removers: list[Callable[[], None]] = []
        self._closed = False
        self._tls_context = default_ca().client_context()
        self._resolver = dns.resolver()
        self._cache = LookupCache(self._resolver)
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
        for option in ("host", "port", "hostname"):
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
        server = SMTPServer(host=ip, hostname=key, **server_options)
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
        server.policy.reject(
            "rcpt",
            553,
            "Source routes and %/! addresses are not accepted",
            enhanced="5.7.1",
            predicate=lambda ctx: _bad_syntax(ctx),
            name="relay: address syntax",
        )
        server.policy.reject(
            "rcpt",
            554,
            "Relay access denied",
            enhanced="5.7.1",
            predicate=lambda ctx: not self._may_relay(host, ctx),
            name="relay: access",
        )
        server.policy.reject(
            "eod",
            554,
            f"Too many hops (hop limit {host.hop_limit}): mail loop?",
            enhanced="5.4.6",
            predicate=lambda ctx: _too_many_hops(host, ctx),
            name="relay: hop limit",
        )
        server.delivery_hook = lambda message, rcpt: self._final_copy(host, message, rcpt)
        self._removers.append(server.mailbox.add_listener(lambda m: self._arrived(host, m)))
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
            key, self._allocate_ip(), resolver=self._resolver, port_of=self._port, seed=self.seed,
            main_cf=main_cf,
        )  # fmt: skip
        hop.start()
        self._removers.append(hop.stop)
        self._ports[hop.host if self.distinct_addresses else key] = hop.port
        self._postfix[f"{hop.host}:{hop.port}"] = hop
        self.dns.add_a(key, hop.host)
        return hop

    def _via_postfix(self, peer_ip: str, rcpt: str, to: str) -> Journey | None:
        """The journey a Postfix hop (client address ``peer_ip``) is handing on to ``to``."""
        for hop in self._postfix.values():
            if hop.host == peer_ip and self.distinct_addresses:
                for journey in reversed(self.journeys(rcpt)):
                    if journey.host == hop.name and journey.status == "queued":
                        journey._event(hop.name, "relayed", f"to {to} (by Postfix)")
                        return journey
        return None

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

    def journeys(self, rcpt: str | None = None) -> list[Journey]:
        """Every journey (one per recipient of each message accepted by a host from outside
        the network, and of each DSN), optionally only those to ``rcpt``."""
        with self._lock:
            journeys = list(self._journeys)
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
        counts = dict.fromkeys(STATUSES, 0)
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
        self._cache = LookupCache(self._resolver)
        while True:
            now = self.clock.time()
            for host in list(self.hosts.values()):
                for item in host.queue.due(now):
                    if len(running) >= self.concurrency:
                        break
                    item.in_flight = True
                    running.add(asyncio.get_running_loop().create_task(self._attempt(host, item)))
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

    # -- arrivals (engine thread, inside the receiving server) --------------------------------
    def _may_relay(self, host: Host, ctx: FaultContext) -> bool:
        address = ctx.address or ""
        domain = domain_of(address)
        if domain in host.domains or domain in host.relay_domains:
            return True
        if ctx.session.auth_user:
            return True
        peer = ctx.session.peer[0]
        try:
            ip = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if any(ip in net for net in host.networks):
            return True
        if host.trust_network:
            if not self.distinct_addresses:
                return ip.is_loopback
            return any(h.ip == peer for h in self.hosts.values() if h is not host)
        return False

    def _final_copy(self, host: Host, message: Message, rcpt: str) -> bytes | None:
        if not host.is_final(rcpt):
            return None  # forwarded, not filed: only the final MX has the maildrop
        session = message.session
        header = received_header(
            helo=session.helo,
            peer_ip=session.peer[0],
            by=host.name,
            protocol=_protocol(message),
            queue_id=_queue_id(host, message),
            recipient=rcpt,
            when=self.clock.now(),
            tls=session.tls_version,
        )
        return return_path_header(message.mail_from) + header + normalize_line_endings(message.raw)

    def _arrived(self, host: Host, message: Message) -> None:
        key = (host.ip, host.port, message.session.peer[0], message.session.peer[1])
        with self._lock:
            linked = self._links.pop(key, None)
        sender_host, link = linked if linked is not None else (None, None)
        raw = normalize_line_endings(message.raw)
        single = message.rcpt_tos[0] if len(message.rcpt_tos) == 1 else None
        forward_raw = (
            received_header(
                helo=message.session.helo,
                peer_ip=message.session.peer[0],
                by=host.name,
                protocol=_protocol(message),
                queue_id=_queue_id(host, message),
                recipient=single,
                when=self.clock.now(),
                tls=message.session.tls_version,
            )
            + raw
        )
        peer = f"{message.session.helo or 'unknown'} [{message.session.peer[0]}]"
        journeys: dict[str, Journey] = {}
        for rcpt in message.rcpt_tos:
            journey = (
                link.get(rcpt.lower())
                if link
                else self._via_postfix(message.session.peer[0], rcpt, host.name)
            )
            if journey is None:
                journey = Journey(rcpt, message.mail_from, self)
                journey._headers_from = message
                with self._lock:
                    self._journeys.append(journey)
            elif sender_host is not None:
                journey._event(sender_host, "relayed", f"to {host.name}")
            journey._arrivals.add(key)
            if not journey.hops or journey.hops[-1] != host.name:
                journey.hops.append(host.name)
            journey.host = host.name
            journey.status = "queued"
            journey._event(host.name, "accepted", f"from {peer}")
            journeys[rcpt] = journey
        final = [r for r in message.rcpt_tos if host.is_final(r)]
        for rcpt in final:
            journey = journeys[rcpt]
            journey.status = "delivered"
            journey.message = message
            journey.status_code = "2.0.0"
            journey._event(host.name, "delivered", f"to mailbox <{rcpt}>")
        success = [r for r in final if self._wants(message, r, "SUCCESS")]
        if success and message.mail_from:
            item = self._item(host, message, forward_raw, success, "(report)")
            self._send_dsn(
                host,
                item,
                journeys,
                [
                    (
                        r,
                        DSNRecipient(
                            r,
                            "delivered",
                            "2.0.0",
                            _orcpt(message, r),
                            None,
                            "250 delivered to mailbox",
                            self.clock.now(),
                        ),
                    )
                    for r in success
                ],
            )
        forward = [r for r in message.rcpt_tos if not host.is_final(r)]
        if not forward:
            return
        groups: dict[str, list[str]] = {}
        for rcpt in forward:
            destination = host.smarthost or domain_of(rcpt)
            groups.setdefault(destination, []).append(rcpt)
        for destination, rcpts in groups.items():
            item = self._item(host, message, forward_raw, rcpts, destination)
            host.queue.add(item)
            with self._lock:
                self._item_journeys[item.id] = {r.lower(): journeys[r] for r in rcpts}
            for rcpt in rcpts:
                journeys[rcpt]._event(host.name, "queued", f"{item.id} for {destination}")
        if self.auto:
            self._kick()

    def _item(
        self, host: Host, message: Message, raw: bytes, rcpts: Sequence[str], destination: str
    ) -> QueueItem:
        options = message.mail_options
        ret = _option(options, "RET")
        return QueueItem(
            host=host.name,
            destination=destination,
            mail_from=message.mail_from,
            raw=raw,
            recipients=[
                QueuedRecipient(
                    r,
                    notify=_notify(message, r),
                    orcpt=_orcpt(message, r),
                )
                for r in rcpts
            ],
            arrived=self.clock.time(),
            next_attempt=self.clock.time(),
            ret=ret.upper() if ret else None,
            envid=_option(options, "ENVID"),
            smtputf8=_option(options, "SMTPUTF8") is not None,
            eight_bit=not raw.isascii(),
        )

    @staticmethod
    def _wants(message: Message, rcpt: str, kind: str) -> bool:
        notify = _notify(message, rcpt)
        if notify is None:
            return kind in ("FAILURE", "DELAY")
        return kind in notify

    # -- delivery attempts -------------------------------------------------------------------
    def _port(self, name: str, ip: str) -> int | None:
        if self.distinct_addresses:
            return self._ports.get(ip)
        return self._ports.get(name) if ip == "127.0.0.1" else None

    def _is_self(self, host: Host) -> Callable[[str], bool]:
        def check(name_or_ip: str) -> bool:
            if name_or_ip.lower() == host.name:
                return True
            return self.distinct_addresses and name_or_ip == host.ip

        return check

    async def _targets(self, host: Host, item: QueueItem) -> tuple[list[Target], list[str]]:
        if host.is_final(item.destination):
            # A DSN for a local sender: the host hands it to its own server.
            return [Target(host.name, host.ip, host.port)], []
        # The seed and stable ids only: never the message bytes (their Date: is wall-clock
        # time) nor the process-wide queue id (it depends on what ran before), so a replay
        # with the same seed picks the same hosts.
        envelope = ",".join(r.address.lower() for r in item.recipients)
        rng = random.Random(
            f"{self.seed}:{host.name}:{item.destination}:{item.attempts}:"
            f"{item.mail_from.lower()}:{envelope}"
        )
        if host.smarthost and item.destination == host.smarthost:
            route_exchanges: Sequence[Exchange] = [await _smarthost(self._cache, host.smarthost)]
        else:
            route = await resolve_route(
                self._cache, item.destination, rng=rng, is_self=self._is_self(host)
            )
            route_exchanges = route.exchanges
        targets: list[Target] = []
        notes: list[str] = []
        for exchange in route_exchanges:
            if exchange.error:
                notes.append(exchange.error)
                if exchange.transient and not exchange.addresses:
                    continue
            for ip in exchange.addresses:
                port = self._port(exchange.name, ip)
                if port is None:
                    notes.append(f"{exchange.name} [{ip}]: nothing of this network listens there")
                    continue
                targets.append(Target(exchange.name, ip, port))
        if not targets and any(e.transient for e in route_exchanges):
            raise RoutingError("4.4.3", "; ".join(notes) or "no usable host; will retry")
        return targets, notes

    async def _attempt(self, host: Host, item: QueueItem) -> None:
        journeys = self._item_journeys.get(item.id, {})
        try:
            try:
                targets, notes = await self._targets(host, item)
            except RoutingError as exc:
                code = (556 if exc.status == "5.1.10" else 550) if exc.permanent else 451
                reply = Reply(code, exc.text, exc.status)
                verdicts = [RecipientVerdict(r.address, reply, "route") for r in item.recipients]
                self._settle(host, item, journeys, verdicts)
                return
            keys: list[tuple[str, int, str, int]] = []
            entries: list[tuple[tuple[str, int, str, int], tuple[str, dict[str, Journey]]]] = []

            def on_connect(target: Target, local: tuple[str, int]) -> None:
                key = (target.ip, target.port, local[0], local[1])
                keys.append(key)
                link = {
                    r.address.lower(): journeys[r.address.lower()]
                    for r in item.recipients
                    if r.address.lower() in journeys
                }
                entry = (host.name, link)
                entries.append((key, entry))
                with self._lock:
                    self._links[key] = entry

            if not targets:
                detail = "; ".join(notes) or "no host to try"
                reply = Reply(451, f"delivery temporarily suspended: {detail}", "4.4.1")
                self._settle(
                    host,
                    item,
                    journeys,
                    [RecipientVerdict(r.address, reply, "connect") for r in item.recipients],
                )
                return
            try:
                result = await deliver(
                    item,
                    targets,
                    helo=host.name,
                    source_ip=host.ip if self.distinct_addresses else None,
                    tls_context=self._tls_context,
                    timeout=self.timeout,
                    on_connect=on_connect,
                    cache=self.connections if self.reuse_connections else None,
                )
            finally:
                with self._lock:
                    # Only our own links: a session this attempt gave back to the cache
                    # before trying the next host may already carry another item's message.
                    for key, entry in entries:
                        if self._links.get(key) is entry:
                            del self._links[key]
            self._settle(host, item, journeys, result.verdicts, keys)
        finally:
            item.in_flight = False

    def _settle(
        self,
        host: Host,
        item: QueueItem,
        journeys: dict[str, Journey],
        verdicts: Sequence[RecipientVerdict],
        keys: Sequence[tuple[str, int, str, int]] = (),
    ) -> None:
        """Apply one attempt's verdicts: delivered/relayed, deferred, bounced."""
        now = self.clock.time()
        item.attempts += 1
        by_address = {r.address: r for r in item.recipients}
        bounced: list[tuple[str, Reply, str | None]] = []
        relayed_notice: list[tuple[str, DSNRecipient]] = []
        deferred: list[tuple[str, Reply, str | None]] = []
        for verdict in verdicts:
            address, reply, peer = verdict.address, verdict.reply, verdict.peer
            remote = peer.target.name if peer is not None else None
            journey = journeys.get(address.lower())
            rcpt = by_address.get(address)
            if rcpt is None:
                continue
            if 200 <= reply.code < 300:
                item.recipients.remove(rcpt)
                if journey is None:
                    continue
                journey.reply = reply
                if not any(k in journey._arrivals for k in keys):
                    self._dropped(journey, peer)
                else:
                    if (
                        peer is not None
                        and not peer.dsn
                        and item.mail_from
                        and rcpt.wants("SUCCESS")
                    ):
                        relayed_notice.append(
                            (
                                address,
                                DSNRecipient(
                                    address,
                                    "relayed",
                                    "2.0.0",
                                    rcpt.orcpt,
                                    remote,
                                    f"{reply.code} {reply.text}".strip(),
                                    self.clock.now(),
                                ),
                            )
                        )
            elif reply.code >= 500:
                bounced.append((address, reply, remote))
            else:
                deferred.append((address, reply, remote))
        if relayed_notice:
            self._send_dsn(host, item, journeys, relayed_notice)
        if bounced:
            self._finish_recipients(host, item, journeys, bounced, "bounced")
        if deferred:
            age = now - item.arrived
            if age >= self.retry.lifetime:
                # RFC 3463 (X.4.7): report the actual problem, not "delivery time expired";
                # like Postfix, the last status and diagnostic go into the failed DSN.
                self._finish_recipients(
                    host,
                    item,
                    journeys,
                    deferred,
                    "bounced",
                    note=f"message expired after {_fmt_offset(age)[1:]} in the queue; ",
                )
            else:
                item.next_attempt = now + self.retry.backoff(item.attempts)
                when = self.clock.at(item.next_attempt)
                for address, reply, remote in deferred:
                    rcpt = by_address[address]
                    rcpt.last_error = str(reply)
                    rcpt.last_status = reply.enhanced
                    rcpt.remote_mta = remote
                    journey = journeys.get(address.lower())
                    if journey is None:
                        continue
                    journey.status = "deferred"
                    journey.host = host.name
                    journey.reply = reply
                    journey.status_code = reply.enhanced or "4.0.0"
                    journey.diagnostic = str(reply)
                    journey.next_attempt = when
                    where = f" (from {remote})" if remote else ""
                    journey._event(
                        host.name,
                        "deferred",
                        f"{reply}{where}; next attempt {_fmt_offset(item.next_attempt)}",
                    )
                self._maybe_warn(host, item, journeys)
        if not item.recipients:
            host.queue.remove(item)
            with self._lock:
                self._item_journeys.pop(item.id, None)

    def _dropped(self, journey: Journey, peer: Peer | None) -> None:
        hop = self._postfix.get(f"{peer.target.ip}:{peer.target.port}") if peer else None
        if hop is not None:  # queued in a real Postfix: followed again when it hands it on
            journey.host = hop.name
            journey.hops.append(hop.name)
            journey._event(hop.name, "accepted", "into Postfix's queue")
            return
        where = peer.target.name if peer is not None else "the next hop"
        detail = "accepted (250) and discarded"
        if peer is not None:
            target_host = next(
                (
                    h
                    for h in self.hosts.values()
                    if h.ip == peer.target.ip and h.port == peer.target.port
                ),
                None,
            )
            if target_host is not None:
                where = target_host.name
                # One session may carry several messages: match the recipient as well.
                rcpt = journey.recipient.lower()
                dropped = target_host.transactions.filter(
                    outcome="dropped",
                    predicate=lambda t: (
                        t.session.peer == peer.local and rcpt in (r.lower() for r in t.rcpt_tos)
                    ),
                )
                if not dropped:
                    detail = "accepted (250) but not recorded as received"
        journey.status = "dropped"
        journey.host = where
        journey.hops.append(where)
        journey._event(where, "dropped", detail)

    def _finish_recipients(
        self,
        host: Host,
        item: QueueItem,
        journeys: dict[str, Journey],
        failures: Sequence[tuple[str, Reply, str | None]],
        kind: str,
        note: str = "",
    ) -> None:
        """Bounce ``failures`` (``(address, reply, remote host)``) and send the DSN;
        ``note`` prefixes the journey's event (why a transient failure became final)."""
        reports: list[tuple[str, DSNRecipient]] = []
        by_address = {r.address: r for r in item.recipients}
        for address, reply, remote in failures:
            rcpt = by_address.get(address)
            if rcpt is not None:
                item.recipients.remove(rcpt)
            status = reply.enhanced or ("5.0.0" if reply.code >= 500 else "4.0.0")
            journey = journeys.get(address.lower())
            if journey is not None:
                journey.status = "bounced"
                journey.host = host.name
                journey.reply = reply
                journey.status_code = status
                journey.diagnostic = str(reply)
                journey.next_attempt = None
                where = f" (from {remote})" if remote else ""
                journey._event(host.name, kind, f"{note}{reply}{where}")
            wants = rcpt.wants("FAILURE") if rcpt is not None else True
            if item.mail_from and wants:
                reports.append(
                    (
                        address,
                        DSNRecipient(
                            address,
                            "failed",
                            status,
                            rcpt.orcpt if rcpt else None,
                            remote,
                            f"{reply.code} {status} {reply.text}".strip(),
                            self.clock.now(),
                        ),
                    )
                )
            elif journey is not None:
                why = "null sender" if not item.mail_from else "NOTIFY without FAILURE"
                journey._event(host.name, "dsn", f"none sent ({why})")
        if reports:
            self._send_dsn(host, item, journeys, reports)

    def _maybe_warn(self, host: Host, item: QueueItem, journeys: dict[str, Journey]) -> None:
        warning = self.retry.delay_warning
        if warning is None or item.delay_warned or not item.mail_from:
            return
        if self.clock.time() - item.arrived < warning:
            return
        item.delay_warned = True
        until = self.clock.at(item.arrived + self.retry.lifetime)
        reports = [
            (
                r.address,
                DSNRecipient(
                    r.address,
                    "delayed",
                    r.last_status or "4.0.0",
                    r.orcpt,
                    r.remote_mta,
                    r.last_error,
                    self.clock.now(),
                    until,
                ),
            )
            for r in item.recipients
            if r.wants("DELAY")
        ]
        if reports:
            self._send_dsn(host, item, journeys, reports)

    def _send_dsn(
        self,
        host: Host,
        item: QueueItem,
        journeys: dict[str, Journey],
        reports: Sequence[tuple[str, DSNRecipient]],
    ) -> None:
        """Queue a DSN from ``host`` to the item's sender (routed like any other mail)."""
        original = item.raw
        raw = build_dsn(
            reporting_mta=host.name,
            sender=item.mail_from,
            original=original,
            recipients=[r for _, r in reports],
            arrival=self.clock.at(item.arrived),
            now=self.clock.now(),
            envid=item.envid,
            ret=item.ret,
        )
        now = self.clock.time()
        sender = item.mail_from
        dsn_item = QueueItem(
            host=host.name,
            destination=host.smarthost
            if host.smarthost and not host.is_final(sender)
            else domain_of(sender),
            mail_from="",
            raw=normalize_line_endings(raw),
            recipients=[QueuedRecipient(sender)],
            arrived=now,
            next_attempt=now,
            smtputf8=needs_smtputf8(raw),
            eight_bit=not raw.isascii(),
        )
        subject = next(
            (line[9:] for line in raw.split(b"\r\n", 8) if line.startswith(b"Subject: ")), b""
        ).decode()
        dsn_journey = Journey(sender, "", self, subject=subject or None)
        dsn_journey.generated = True
        dsn_journey.hops.append(host.name)
        dsn_journey.host = host.name
        dsn_journey._event(host.name, "queued", f"DSN {dsn_item.id} ({reports[0][1].action})")
        with self._lock:
            self._journeys.append(dsn_journey)
            self._item_journeys[dsn_item.id] = {sender.lower(): dsn_journey}
        for address, report in reports:
            journey = journeys.get(address.lower())
            if journey is not None:
                journey.dsn_raw = raw
                journey.dsn_journeys.append(dsn_journey)
                journey._event(host.name, "dsn", f"{report.action} DSN to <{sender}>")
        host.queue.add(dsn_item)
        if self.auto:
            self._kick()

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


async def _smarthost(resolver: Any, name: str) -> Exchange:
    from .routing import _addresses

    return await _addresses(resolver, name, 0)


def _queue_id(host: Host, message: Message) -> str:
    return f"{host.name.split('.')[0].upper()}{message.transaction_id:05X}"


def _bad_syntax(ctx: FaultContext) -> bool:
    raw_path = None
    if ctx.transaction is not None and ctx.transaction.transcript:
        line = ctx.transaction.transcript[-1]
        head = line[3:] if line.startswith("C: ") else line
        if head[:8].upper() == "RCPT TO:":
            raw_path = head[8:]
    return check_recipient_syntax(ctx.address or "", raw_path) is not None


def _too_many_hops(host: Host, ctx: FaultContext) -> bool:
    """Postfix's ``hopcount_limit`` test: the ``Received:`` fields, counting the one this host
    adds, reach the limit (``hops >= limit``; with 50, a message arriving with 49 is refused)."""
    if ctx.message is None:
        return False
    return count_received(normalize_line_endings(ctx.message.raw)) + 1 >= host.hop_limit


def _notify(message: Message, rcpt: str) -> frozenset[str] | None:
    value = _option(message.rcpt_options.get(rcpt, []), "NOTIFY")
    try:
        return parse_notify(value)
    except ValueError:
        return None


def _orcpt(message: Message, rcpt: str) -> str | None:
    return _option(message.rcpt_options.get(rcpt, []), "ORCPT")


def _protocol(message: Message) -> str:
    session = message.session
    if not session.esmtp:
        return "SMTP"
    return "ESMTP" + ("S" if session.tls else "") + ("A" if session.auth_user else "")
