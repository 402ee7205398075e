"""One host of a mail network: what it is (:class:`Host`) and what its MTA does (:class:`HostMTA`).

A :class:`Host` is the public face: an :class:`~pytest_smtp.smtp.server.SMTPServer`, its
address, the domains it is final for or relays, who may relay through it, and its queue. The
:class:`HostMTA` behind it is the mail transfer agent: as the server receives, it refuses what
a relay must refuse (access, address syntax, hop count), stamps ``Received:``, files final
copies and queues the rest; as the network runs, it routes each queued item (MX or
smarthost), hands it to :func:`~pytest_smtp.relay.mta.deliver`, and settles the verdicts:
delivered, deferred with a retry, or bounced with a DSN back to the sender.

The MTA sees its network through :class:`Surroundings` (the settings and the other hosts),
and records through a :class:`~pytest_smtp.relay.journey.JourneyBook`; it never imports the
network module. This module never imports pytest.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import ssl
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from ..faults import FaultContext
from ..mail import Message, Reply
from ..smtp.server import SMTPServer
from .dsn import DSNRecipient, build_dsn, needs_smtputf8, parse_notify
from .journey import Journey, JourneyBook, Link, LinkKey, format_offset
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
    resolve_host,
    resolve_route,
)

__all__ = ["Host", "HostMTA", "Surroundings"]


@dataclasses.dataclass
class Host:
    """One machine of the network: an SMTP server, its queue and its routing rules (the
    :class:`HostMTA` behind it does the work)."""

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


class Surroundings(Protocol):
    """What a host's MTA reads of the network it belongs to (``MailNetwork`` is one)."""

    clock: VirtualClock
    retry: RetryPolicy
    seed: int
    timeout: float
    reuse_connections: bool
    distinct_addresses: bool
    connections: ConnectionCache
    hosts: dict[str, Host]

    def port_of(self, name: str, ip: str) -> int | None:
        """The port a host of the network called ``name`` listens on at ``ip``, or None."""
        ...

    def foreign_hop(self, ip: str, port: int | None = None) -> str | None:
        """The name of a hop the network follows but does not run (a real Postfix) at
        ``ip`` (and ``port``), or None."""
        ...

    def external(self, ip: str, port: int) -> str | None:
        """The name of a server outside the network at ``ip:port``, or None."""
        ...


class HostMTA:
    """The mail transfer agent behind one :class:`Host` of a network.

    ``network`` gives the settings and the other hosts, ``book`` records the journeys,
    ``tls_context`` is the client side of STARTTLS to next hops, and ``on_queued`` is called
    each time something enters the host's queue (the network starts a run when ``auto``).
    """

    def __init__(
        self,
        host: Host,
        network: Surroundings,
        book: JourneyBook,
        *,
        tls_context: ssl.SSLContext,
        on_queued: Callable[[], None],
    ) -> None:
        self.host = host
        self.network = network
        self.book = book
        self._tls_context = tls_context
        self._on_queued = on_queued

    def install(self) -> Callable[[], None]:
        """Put the MTA behind the host's server: the relay's standing refusals (address
        syntax, relay access, hop limit), the final-copy hook and the arrival listener.
        Returns the function that removes the listener."""
        server = self.host.server
        server.policy.reject(
            "rcpt",
            553,
            "Source routes and %/! addresses are not accepted",
            enhanced="5.7.1",
            predicate=_bad_syntax,
            name="relay: address syntax",
        )
        server.policy.reject(
            "rcpt",
            554,
            "Relay access denied",
            enhanced="5.7.1",
            predicate=lambda ctx: not self.may_relay(ctx),
            name="relay: access",
        )
        server.policy.reject(
            "eod",
            554,
            f"Too many hops (hop limit {self.host.hop_limit}): mail loop?",
            enhanced="5.4.6",
            predicate=self._too_many_hops,
            name="relay: hop limit",
        )
        server.delivery_hook = self.final_copy
        remove: Callable[[], None] = server.mailbox.add_listener(self.arrived)
        return remove

    # -- arrivals (engine thread, inside the receiving server) --------------------------------
    def _too_many_hops(self, ctx: FaultContext) -> bool:
        """Postfix's ``hopcount_limit`` test: the ``Received:`` fields, counting the one this
        host adds, reach the limit (``hops >= limit``; with 50, a message arriving with 49 is
        refused)."""
        if ctx.message is None:
            return False
        return count_received(normalize_line_endings(ctx.message.raw)) + 1 >= self.host.hop_limit

    def may_relay(self, ctx: FaultContext) -> bool:
        address = ctx.address or ""
        domain = domain_of(address)
        if domain in self.host.domains or domain in self.host.relay_domains:
            return True
        if ctx.session.auth_user:
            return True
        peer = ctx.session.peer[0]
        try:
            ip = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if any(ip in net for net in self.host.networks):
            return True
        if self.host.trust_network:
            if not self.network.distinct_addresses:
                return ip.is_loopback
            return any(h.ip == peer for h in self.network.hosts.values() if h is not self.host)
        return False

    def final_copy(self, message: Message, rcpt: str) -> bytes | None:
        if not self.host.is_final(rcpt):
            return None  # forwarded, not filed: only the final MX has the maildrop
        session = message.session
        header = received_header(
            helo=session.helo,
            peer_ip=session.peer[0],
            by=self.host.name,
            protocol=_protocol(message),
            queue_id=_queue_id(self.host, message),
            recipient=rcpt,
            when=self.network.clock.now(),
            tls=session.tls_version,
        )
        return return_path_header(message.mail_from) + header + normalize_line_endings(message.raw)

    def arrived(self, message: Message) -> None:
        key = (self.host.ip, self.host.port, message.session.peer[0], message.session.peer[1])
        linked = self.book.claim(key)
        sender_host, link = linked if linked is not None else (None, None)
        raw = normalize_line_endings(message.raw)
        single = message.rcpt_tos[0] if len(message.rcpt_tos) == 1 else None
        forward_raw = (
            received_header(
                helo=message.session.helo,
                peer_ip=message.session.peer[0],
                by=self.host.name,
                protocol=_protocol(message),
                queue_id=_queue_id(self.host, message),
                recipient=single,
                when=self.network.clock.now(),
                tls=message.session.tls_version,
            )
            + raw
        )
        peer = f"{message.session.helo or 'unknown'} [{message.session.peer[0]}]"
        journeys: dict[str, Journey] = {}
        for rcpt in message.rcpt_tos:
            journey = (
                link.get(rcpt.lower()) if link else self._handed_on(message.session.peer[0], rcpt)
            )
            if journey is None:
                journey = Journey(rcpt, message.mail_from, self.network.clock)
                journey._headers_from = message
                self.book.add(journey)
            elif sender_host is not None:
                journey._event(sender_host, "relayed", f"to {self.host.name}")
            journey._arrivals.add(key)
            if not journey.hops or journey.hops[-1] != self.host.name:
                journey.hops.append(self.host.name)
            journey.host = self.host.name
            journey.status = "queued"
            journey._event(self.host.name, "accepted", f"from {peer}")
            journeys[rcpt] = journey
        final = [r for r in message.rcpt_tos if self.host.is_final(r)]
        for rcpt in final:
            journey = journeys[rcpt]
            journey.status = "delivered"
            journey.message = message
            journey.status_code = "2.0.0"
            journey._event(self.host.name, "delivered", f"to mailbox <{rcpt}>")
        success = [
            r for r in final if QueuedRecipient(r, notify=_notify(message, r)).wants("SUCCESS")
        ]
        if success and message.mail_from:
            item = self._item(message, forward_raw, success, "(report)")
            self._send_dsn(
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
                            self.network.clock.now(),
                        ),
                    )
                    for r in success
                ],
            )
        forward = [r for r in message.rcpt_tos if not self.host.is_final(r)]
        if not forward:
            return
        groups: dict[str, list[str]] = {}
        for rcpt in forward:
            destination = self.host.smarthost or domain_of(rcpt)
            groups.setdefault(destination, []).append(rcpt)
        for destination, rcpts in groups.items():
            item = self._item(message, forward_raw, rcpts, destination)
            self.host.queue.add(item)
            self.book.track(item.id, {r.lower(): journeys[r] for r in rcpts})
            for rcpt in rcpts:
                journeys[rcpt]._event(self.host.name, "queued", f"{item.id} for {destination}")
        self._on_queued()

    def _handed_on(self, peer_ip: str, rcpt: str) -> Journey | None:
        """The journey a foreign hop (a real Postfix at client address ``peer_ip``) is
        handing on to this host, or None."""
        hop = self.network.foreign_hop(peer_ip) if self.network.distinct_addresses else None
        if hop is None:
            return None
        for journey in reversed(self.book.all()):
            if (
                journey.recipient.lower() == rcpt.lower()
                and journey.host == hop
                and journey.status == "queued"
            ):
                journey._event(hop, "relayed", f"to {self.host.name} (by Postfix)")
                return journey
        return None

    def _item(
        self, message: Message, raw: bytes, rcpts: Sequence[str], destination: str
    ) -> QueueItem:
        options = message.mail_options
        ret = _option(options, "RET")
        return QueueItem(
            host=self.host.name,
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
            arrived=self.network.clock.time(),
            next_attempt=self.network.clock.time(),
            ret=ret.upper() if ret else None,
            envid=_option(options, "ENVID"),
            smtputf8=_option(options, "SMTPUTF8") is not None,
            eight_bit=not raw.isascii(),
        )

    # -- delivery attempts -------------------------------------------------------------------
    def _is_self(self) -> Callable[[str], bool]:
        def check(name_or_ip: str) -> bool:
            if name_or_ip.lower() == self.host.name:
                return True
            return self.network.distinct_addresses and name_or_ip == self.host.ip

        return check

    async def _targets(
        self, item: QueueItem, lookups: LookupCache
    ) -> tuple[list[Target], list[str]]:
        if self.host.is_final(item.destination):
            # A DSN for a local sender: the host hands it to its own server.
            return [Target(self.host.name, self.host.ip, self.host.port)], []
        # The seed and stable ids only: never the message bytes (their Date: is wall-clock
        # time) nor the process-wide queue id (it depends on what ran before), so a replay
        # with the same seed picks the same hosts.
        envelope = ",".join(r.address.lower() for r in item.recipients)
        rng = random.Random(
            f"{self.network.seed}:{self.host.name}:{item.destination}:{item.attempts}:"
            f"{item.mail_from.lower()}:{envelope}"
        )
        if self.host.smarthost and item.destination == self.host.smarthost:
            route_exchanges: Sequence[Exchange] = [await resolve_host(lookups, self.host.smarthost)]
        else:
            route = await resolve_route(lookups, item.destination, rng=rng, is_self=self._is_self())
            route_exchanges = route.exchanges
        targets: list[Target] = []
        notes: list[str] = []
        for exchange in route_exchanges:
            if exchange.error:
                notes.append(exchange.error)
                if exchange.transient and not exchange.addresses:
                    continue
            for ip in exchange.addresses:
                port = self.network.port_of(exchange.name, ip)
                if port is None:
                    notes.append(f"{exchange.name} [{ip}]: nothing of this network listens there")
                    continue
                targets.append(Target(exchange.name, ip, port))
        if not targets and any(e.transient for e in route_exchanges):
            raise RoutingError("4.4.3", "; ".join(notes) or "no usable host; will retry")
        return targets, notes

    async def attempt(self, item: QueueItem, lookups: LookupCache) -> None:
        """One delivery attempt of ``item`` (taken from the host's queue), looking names up
        through ``lookups``; the verdicts are applied to the queue and the journeys."""
        journeys = self.book.of_item(item.id)
        try:
            try:
                targets, notes = await self._targets(item, lookups)
            except RoutingError as exc:
                code = (556 if exc.status == "5.1.10" else 550) if exc.permanent else 451
                reply = Reply(code, exc.text, exc.status)
                verdicts = [RecipientVerdict(r.address, reply, "route") for r in item.recipients]
                self._settle(item, journeys, verdicts)
                return
            keys: list[LinkKey] = []
            entries: list[tuple[LinkKey, Link]] = []

            def on_connect(target: Target, local: tuple[str, int]) -> None:
                key = (target.ip, target.port, local[0], local[1])
                keys.append(key)
                link = {
                    r.address.lower(): journeys[r.address.lower()]
                    for r in item.recipients
                    if r.address.lower() in journeys
                }
                entry = (self.host.name, link)
                entries.append((key, entry))
                self.book.link(key, entry)

            if not targets:
                detail = "; ".join(notes) or "no host to try"
                reply = Reply(451, f"delivery temporarily suspended: {detail}", "4.4.1")
                self._settle(
                    item,
                    journeys,
                    [RecipientVerdict(r.address, reply, "connect") for r in item.recipients],
                )
                return
            try:
                result = await deliver(
                    item,
                    targets,
                    helo=self.host.name,
                    source_ip=self.host.ip if self.network.distinct_addresses else None,
                    tls_context=self._tls_context,
                    timeout=self.network.timeout,
                    on_connect=on_connect,
                    cache=self.network.connections if self.network.reuse_connections else None,
                )
            finally:
                # Only our own links: a session this attempt gave back to the cache before
                # trying the next host may already carry another item's message.
                for key, entry in entries:
                    self.book.unlink(key, entry)
            self._settle(item, journeys, result.verdicts, keys)
        finally:
            self.host.queue.release(item)

    def _settle(
        self,
        item: QueueItem,
        journeys: dict[str, Journey],
        verdicts: Sequence[RecipientVerdict],
        keys: Sequence[LinkKey] = (),
    ) -> None:
        """Apply one attempt's verdicts: delivered/relayed, deferred, bounced."""
        now = self.network.clock.time()
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
                                    self.network.clock.now(),
                                ),
                            )
                        )
            elif reply.code >= 500:
                bounced.append((address, reply, remote))
            else:
                deferred.append((address, reply, remote))
        if relayed_notice:
            self._send_dsn(item, journeys, relayed_notice)
        if bounced:
            self._finish_recipients(item, journeys, bounced, "bounced")
        if deferred:
            age = now - item.arrived
            if age >= self.network.retry.lifetime:
                # RFC 3463 (X.4.7): report the actual problem, not "delivery time expired";
                # like Postfix, the last status and diagnostic go into the failed DSN.
                self._finish_recipients(
                    item,
                    journeys,
                    deferred,
                    "bounced",
                    note=f"message expired after {format_offset(age)[1:]} in the queue; ",
                )
            else:
                item.next_attempt = now + self.network.retry.backoff(item.attempts)
                when = self.network.clock.at(item.next_attempt)
                for address, reply, remote in deferred:
                    rcpt = by_address[address]
                    rcpt.last_error = str(reply)
                    rcpt.last_status = reply.enhanced
                    rcpt.remote_mta = remote
                    journey = journeys.get(address.lower())
                    if journey is None:
                        continue
                    journey.status = "deferred"
                    journey.host = self.host.name
                    journey.reply = reply
                    journey.status_code = reply.enhanced or "4.0.0"
                    journey.diagnostic = str(reply)
                    journey.next_attempt = when
                    where = f" (from {remote})" if remote else ""
                    journey._event(
                        self.host.name,
                        "deferred",
                        f"{reply}{where}; next attempt {format_offset(item.next_attempt)}",
                    )
                self._maybe_warn(item, journeys)
        if not item.recipients:
            self.host.queue.remove(item)
            self.book.forget(item.id)

    def _dropped(self, journey: Journey, peer: Peer | None) -> None:
        outside = self.network.external(peer.target.ip, peer.target.port) if peer else None
        if outside is not None:  # handed to a server outside the network: the journey ends
            journey.status = "delivered"
            journey.status_code = (journey.reply.enhanced if journey.reply else None) or "2.0.0"
            journey.host = outside
            journey.hops.append(outside)
            journey._event(outside, "delivered", "accepted; leaves the network (external server)")
            return
        hop = self.network.foreign_hop(peer.target.ip, peer.target.port) if peer else None
        if hop is not None:  # queued in a real Postfix: followed again when it hands it on
            journey.host = hop
            journey.hops.append(hop)
            journey._event(hop, "accepted", "into Postfix's queue")
            return
        where = peer.target.name if peer is not None else "the next hop"
        detail = "accepted (250) and discarded"
        if peer is not None:
            target_host = next(
                (
                    h
                    for h in self.network.hosts.values()
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
                journey.host = self.host.name
                journey.reply = reply
                journey.status_code = status
                journey.diagnostic = str(reply)
                journey.next_attempt = None
                where = f" (from {remote})" if remote else ""
                journey._event(self.host.name, kind, f"{note}{reply}{where}")
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
                            self.network.clock.now(),
                        ),
                    )
                )
            elif journey is not None:
                why = "null sender" if not item.mail_from else "NOTIFY without FAILURE"
                journey._event(self.host.name, "dsn", f"none sent ({why})")
        if reports:
            self._send_dsn(item, journeys, reports)

    def _maybe_warn(self, item: QueueItem, journeys: dict[str, Journey]) -> None:
        warning = self.network.retry.delay_warning
        if warning is None or item.delay_warned or not item.mail_from:
            return
        if self.network.clock.time() - item.arrived < warning:
            return
        item.delay_warned = True
        until = self.network.clock.at(item.arrived + self.network.retry.lifetime)
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
                    self.network.clock.now(),
                    until,
                ),
            )
            for r in item.recipients
            if r.wants("DELAY")
        ]
        if reports:
            self._send_dsn(item, journeys, reports)

    def _send_dsn(
        self,
        item: QueueItem,
        journeys: dict[str, Journey],
        reports: Sequence[tuple[str, DSNRecipient]],
    ) -> None:
        """Queue a DSN from this host to the item's sender (routed like any other mail)."""
        original = item.raw
        raw = build_dsn(
            reporting_mta=self.host.name,
            sender=item.mail_from,
            original=original,
            recipients=[r for _, r in reports],
            arrival=self.network.clock.at(item.arrived),
            now=self.network.clock.now(),
            envid=item.envid,
            ret=item.ret,
        )
        now = self.network.clock.time()
        sender = item.mail_from
        dsn_item = QueueItem(
            host=self.host.name,
            destination=self.host.smarthost
            if self.host.smarthost and not self.host.is_final(sender)
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
        dsn_journey = Journey(sender, "", self.network.clock, subject=subject or None)
        dsn_journey.generated = True
        dsn_journey.hops.append(self.host.name)
        dsn_journey.host = self.host.name
        dsn_journey._event(self.host.name, "queued", f"DSN {dsn_item.id} ({reports[0][1].action})")
        self.book.add(dsn_journey)
        self.book.track(dsn_item.id, {sender.lower(): dsn_journey})
        for address, report in reports:
            journey = journeys.get(address.lower())
            if journey is not None:
                journey.dsn_raw = raw
                journey.dsn_journeys.append(dsn_journey)
                journey._event(self.host.name, "dsn", f"{report.action} DSN to <{sender}>")
        self.host.queue.add(dsn_item)
        self._on_queued()


def _option(options: Iterable[str], key: str) -> str | None:
    prefix = key.upper() + "="
    for option in options:
        if option.upper().startswith(prefix):
            return option[len(prefix) :]
        if option.upper() == key.upper():
            return ""
    return None


def _queue_id(host: Host, message: Message) -> str:
    return f"{host.name.split('.')[0].upper()}{message.transaction_id:05X}"


def _bad_syntax(ctx: FaultContext) -> bool:
    return check_recipient_syntax(ctx.address or "", ctx.source_route) is not None


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
