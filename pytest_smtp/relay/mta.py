"""The relay MTA's SMTP client side: one delivery attempt of a queued message, with aiosmtplib.

Everything runs on the engine's loop and awaits; nothing blocks. An attempt walks the
exchanges of a route in order (RFC 5321 §5.1), as Postfix does: a connection failure, a
non-220 greeting (4xx or 5xx, Postfix's ``smtp_skip_5xx_greeting``), a failed EHLO/HELO or a
failed TLS handshake moves every recipient on to the next address or host. In a transaction,
the replies to MAIL, RCPT and DATA decide per recipient: 2xx delivered and 5xx bounced are
final; a 4xx (or a lost connection, or a 421 at any point) moves that recipient on to the next
host in the same attempt. Only a recipient that every host deferred stays queued, with the
last reply a server gave about it (a later connection failure does not hide it).

It also holds the byte-level helpers of forwarding: line-ending normalisation (the defence
against SMTP smuggling: a bare CR or LF becomes CRLF, and aiosmtplib then dot-stuffs every
line, so a fake end-of-data inside a message can never end it early at the next hop), trace
headers (``Received:``, ``Return-Path:``) and the hop count used for loop detection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import re
import ssl
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeAlias

import aiosmtplib

from ..mail import Reply
from .queue import QueuedRecipient, QueueItem

__all__ = [
    "AttemptResult",
    "ConnectionCache",
    "Peer",
    "RecipientVerdict",
    "Session",
    "Target",
    "count_received",
    "deliver",
    "normalize_line_endings",
    "received_header",
    "return_path_header",
]

_LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")
_RECEIVED = re.compile(rb"(?im)^received[ \t]*:")
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})(?: |$)")


def normalize_line_endings(raw: bytes) -> bytes:
    """Every CR, LF and CRLF becomes CRLF, and the message ends with CRLF."""
    pairs = raw.count(b"\r\n")
    if raw.count(b"\r") == pairs and raw.count(b"\n") == pairs:
        # Already CRLF throughout (the usual case): three counts instead of one substitution
        # per line.
        data = raw
    else:
        data = _LINE_ENDINGS.sub(b"\r\n", raw)
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def _header_end(raw: bytes) -> int:
    end = raw.find(b"\r\n\r\n")
    return len(raw) if end < 0 else end + 2


def count_received(raw: bytes) -> int:
    """How many ``Received:`` fields the header section holds (the hop count)."""
    return len(_RECEIVED.findall(raw, 0, _header_end(raw)))


def received_header(
    *,
    helo: str | None,
    peer_ip: str,
    by: str,
    protocol: str,
    queue_id: str,
    recipient: str | None,
    when: datetime,
    tls: str | None = None,
) -> bytes:
    """A ``Received:`` field (RFC 5321 §4.4), folded, ending in CRLF.

    ``protocol`` is ``SMTP``, ``ESMTP``, ``ESMTPS``, ``ESMTPA`` or ``ESMTPSA`` (RFC 3848).
    ``recipient`` is given only for a single-recipient delivery (listing several recipients
    would disclose Bcc recipients).
    """
    # No reverse DNS here: "from HELO ([address])", as MTAs write for an unresolved client.
    lines = [f"Received: from {helo or 'unknown'} ([{peer_ip}])"]
    if tls:
        lines.append(f"\t({tls})")
    lines.append(f"\tby {by} (pytest_smtp relay) with {protocol} id {queue_id}")
    stamp = email.utils.format_datetime(when)
    if recipient is not None:
        lines.append(f"\tfor <{recipient}>; {stamp}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{stamp}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def return_path_header(mail_from: str) -> bytes:
    """``Return-Path: <sender>`` (RFC 5321 §4.4), added at final delivery."""
    return f"Return-Path: <{mail_from}>\r\n".encode()


@dataclasses.dataclass(frozen=True)
class Target:
    """One address to try: the exchange's name (for TLS and the trace) and where it listens."""

    name: str
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.name} [{self.ip}]:{self.port}"


@dataclasses.dataclass(frozen=True)
class Peer:
    """A host that took part in a transaction of an attempt, as this client saw it."""

    target: Target
    dsn: bool
    """Whether it advertised DSN (RFC 3461)."""
    tls: str | None
    """The TLS version used towards it, if any."""
    local: tuple[str, int]
    """Our end of the connection that carried the transaction."""


@dataclasses.dataclass(frozen=True)
class RecipientVerdict:
    """What the remote side said about one recipient in one attempt."""

    address: str
    reply: Reply
    stage: str
    """Where the verdict came from: ``route`` (DNS), ``connect``, ``mail``, ``rcpt``, ``data``
    or ``eod``."""
    peer: Peer | None = None
    """The host that gave it (None when no host could be reached)."""

    @property
    def kind(self) -> str:
        """``delivered``, ``deferred`` or ``bounced``."""
        if 200 <= self.reply.code < 300:
            return "delivered"
        return "deferred" if self.reply.code < 500 else "bounced"

    @property
    def status(self) -> str:
        """The enhanced status code, or one derived from the reply code class."""
        if self.reply.enhanced:
            return self.reply.enhanced
        return {2: "2.0.0", 4: "4.0.0"}.get(self.reply.code // 100, "5.0.0")


@dataclasses.dataclass
class AttemptResult:
    """The outcome of one delivery attempt: one verdict per recipient, in queue order."""

    verdicts: list[RecipientVerdict]
    errors: list[str] = dataclasses.field(default_factory=list)
    """Connection-level failures, one per address tried without success."""


def _reply(code: int, message: str) -> Reply:
    text = " ".join(message.split("\n")) if message else ""
    enhanced = None
    match = _ENHANCED.match(text)
    if match:
        enhanced, text = match.group(1), text[match.end() :]
    try:
        return Reply(code, text, enhanced)
    except ValueError:
        return Reply(code, text)


class _Skip(Exception):
    """This target failed before a transaction started: try the next one."""


CacheKey: TypeAlias = "tuple[str, str | None, Target]"
"""``(helo, source address, target)``: sessions are shared only between identical clients."""


@dataclasses.dataclass
class Session:
    """An open SMTP session with a next hop, past EHLO (and STARTTLS when offered)."""

    client: aiosmtplib.SMTP
    target: Target
    local: tuple[str, int]
    """Our end of the connection (how the next hop sees this client)."""
    tls: str | None
    """The TLS version in use, or None for plain text."""
    transactions: int = 0
    """How many transactions this session has carried."""


class ConnectionCache:
    """Idle sessions to next hops, kept for the next message to the same host.

    A delivery takes a session (:meth:`take`), runs one transaction on it and gives it back
    (:meth:`put`) when the session is still in a known state; the next delivery to that host
    sends ``RSET`` and reuses it instead of connecting, greeting, ``EHLO``-ing and negotiating
    TLS again (what Postfix's connection cache saves). :meth:`release` says ``QUIT`` to every
    idle session, in the background; :meth:`wait_closed` waits for those goodbyes.
    Engine-loop only.
    """

    def __init__(self) -> None:
        self._idle: dict[CacheKey, list[Session]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.opened = 0
        """Sessions opened since the cache was made."""
        self.reused = 0
        """Transactions that ran on a session opened for an earlier one."""

    def take(self, key: CacheKey) -> Session | None:
        """An idle session for ``key`` (now owned by the caller), or None."""
        sessions = self._idle.get(key)
        if not sessions:
            return None
        session = sessions.pop()
        if not sessions:
            del self._idle[key]
        return session

    def put(self, key: CacheKey, session: Session) -> None:
        """Keep ``session`` for a later delivery (closed instead when it is disconnected)."""
        if session.client.is_connected:
            self._idle.setdefault(key, []).append(session)
        else:
            session.client.close()

    def release(self) -> None:
        """Say ``QUIT`` to every idle session in the background and forget them."""
        sessions = [s for group in self._idle.values() for s in group]
        self._idle.clear()
        loop = asyncio.get_running_loop()
        for session in sessions:
            task = loop.create_task(_goodbye(session.client))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def wait_closed(self) -> None:
        """Wait until every session given to :meth:`release` is closed."""
        while self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)

    async def aclose(self) -> None:
        """:meth:`release`, then :meth:`wait_closed`."""
        self.release()
        await self.wait_closed()

    def __len__(self) -> int:
        """The number of idle sessions."""
        return sum(len(group) for group in self._idle.values())

    def __repr__(self) -> str:
        return f"<ConnectionCache idle={len(self)} opened={self.opened} reused={self.reused}>"


async def _goodbye(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await client.quit()
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
        pass
    finally:
        client.close()


async def deliver(
    item: QueueItem,
    targets: Sequence[Target],
    *,
    helo: str,
    source_ip: str | None,
    tls_context: ssl.SSLContext | None,
    timeout: float,
    on_connect: Callable[[Target, tuple[str, int]], None] | None = None,
    cache: ConnectionCache | None = None,
) -> AttemptResult:
    """Try ``targets`` in order until every recipient of ``item`` has a final verdict.

    A recipient that a host defers (4xx) is offered to the next target in the same attempt
    (RFC 5321 §5.1); one that every target deferred keeps the last server reply about it,
    or a ``451 4.4.1`` listing the connection failures when no server answered for it.

    ``on_connect(target, local_address)`` is called as soon as a session is ready for the
    transaction, new or reused (the network uses it to recognise the message when it arrives
    at the next hop). With a ``cache``, an idle session to a target is reused (after
    ``RSET``) and the session is given back after the transaction; without one, every
    attempt connects and says ``QUIT``.
    """
    pending = list(item.recipients)
    final: dict[str, RecipientVerdict] = {}
    deferred: dict[str, RecipientVerdict] = {}
    errors: list[str] = []
    for target in targets:
        if not pending:
            break
        try:
            verdicts = await _attempt(
                item, pending, target, helo, source_ip, tls_context, timeout, on_connect, cache
            )
        except _Skip as exc:
            errors.append(f"{target}: {exc}")
            continue
        for verdict in verdicts:
            (deferred if verdict.kind == "deferred" else final)[verdict.address] = verdict
        pending = [r for r in pending if r.address not in final]
    if pending:
        detail = "; ".join(errors) if errors else "no host to try"
        reply = Reply(451, f"delivery temporarily suspended: {detail}", "4.4.1")
        for rcpt in pending:
            final[rcpt.address] = deferred.get(rcpt.address) or RecipientVerdict(
                rcpt.address, reply, "connect"
            )
    return AttemptResult([final[r.address] for r in item.recipients], errors=errors)


async def _attempt(
    item: QueueItem,
    recipients: Sequence[QueuedRecipient],
    target: Target,
    helo: str,
    source_ip: str | None,
    tls_context: ssl.SSLContext | None,
    timeout: float,
    on_connect: Callable[[Target, tuple[str, int]], None] | None,
    cache: ConnectionCache | None,
) -> list[RecipientVerdict]:
    key: CacheKey = (helo, source_ip, target)
    session = cache.take(key) if cache is not None else None
    if session is not None and not await _reset(session.client):
        # Closed by the next hop while idle (or it refused RSET): nothing was at stake yet,
        # so a fresh session is as good as the cached one would have been.
        session = None
    if session is None:
        session = await _open(target, helo, source_ip, tls_context, timeout)
        if cache is not None:
            cache.opened += 1
    elif cache is not None:
        cache.reused += 1
    if on_connect is not None:
        on_connect(target, session.local)
    reusable = False
    try:
        peer = Peer(target, session.client.supports_extension("dsn"), session.tls, session.local)
        verdicts, reusable = await _transaction(session.client, item, recipients, peer)
        session.transactions += 1
        return verdicts
    finally:
        if not reusable:
            session.client.close()
        elif cache is not None:
            cache.put(key, session)
        else:
            await _goodbye(session.client)


async def _open(
    target: Target,
    helo: str,
    source_ip: str | None,
    tls_context: ssl.SSLContext | None,
    timeout: float,
) -> Session:
    """Connect, read the greeting, EHLO (STARTTLS and EHLO again when offered); or _Skip."""
    client = aiosmtplib.SMTP(
        hostname=target.ip,
        port=target.port,
        local_hostname=helo,
        source_address=(source_ip, 0) if source_ip else None,
        timeout=timeout,
        start_tls=False,
        use_tls=False,
    )
    try:
        try:
            await client.connect()
        except aiosmtplib.SMTPConnectResponseError as exc:
            raise _Skip(f"greeting {exc.code} {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _Skip(f"connect failed: {exc}") from None
        local = client.get_transport_info("sockname")
        local_address = (str(local[0]), int(local[1])) if local else ("", 0)
        tls = None
        try:
            await _hello(client, helo)
            if client.supports_extension("starttls") and tls_context is not None:
                await client.starttls(server_hostname=target.name, tls_context=tls_context)
                ssl_object = client.get_transport_info("ssl_object")
                tls = ssl_object.version() if ssl_object is not None else "TLS"
                await _hello(client, helo)
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            raise _Skip(f"session setup failed: {exc}") from None
    except BaseException:
        client.close()
        raise
    return Session(client, target, local_address, tls)


async def _reset(client: aiosmtplib.SMTP) -> bool:
    """RSET on a cached session: True when it is ready for a new transaction."""
    if not client.is_connected:
        return False
    try:
        response = await client.execute_command(b"RSET")
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
        client.close()
        return False
    if response.code != 250:
        client.close()
        return False
    return True


async def _hello(client: aiosmtplib.SMTP, helo: str) -> None:
    try:
        await client.ehlo(hostname=helo)
    except aiosmtplib.SMTPHeloError:
        await client.helo(hostname=helo)


async def _transaction(
    client: aiosmtplib.SMTP,
    item: QueueItem,
    recipients: Sequence[QueuedRecipient],
    peer: Peer,
) -> tuple[list[RecipientVerdict], bool]:
    """One transaction for ``recipients``; also whether the session is still usable (its
    state is known)."""
    dsn = peer.dsn
    verdicts: list[RecipientVerdict] = []

    def everyone(
        reply: Reply, stage: str, who: Sequence[str], usable: bool = True
    ) -> tuple[list[RecipientVerdict], bool]:
        verdicts.extend(RecipientVerdict(a, reply, stage, peer) for a in who)
        # A 421 means the next hop is closing the connection (aiosmtplib has closed it).
        return verdicts, usable and reply.code != 421 and client.is_connected

    options: list[str] = []
    if item.eight_bit and client.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")
    if item.smtputf8 and client.supports_extension("smtputf8"):
        options.append("SMTPUTF8")
    elif item.smtputf8 and item.needs_smtputf8(recipients):
        # RFC 6531 §3.4: only UTF-8 in the envelope or the headers needs the extension; an
        # all-ASCII message that was merely submitted with SMTPUTF8 goes on without it.
        reply = Reply(
            554, f"SMTPUTF8 is required, but was not offered by {peer.target.name}", "5.6.7"
        )
        return everyone(reply, "mail", [r.address for r in recipients])
    if dsn:
        if item.ret:
            options.append(f"RET={item.ret}")
        if item.envid:
            options.append(f"ENVID={item.envid}")
    try:
        response = await client.execute_command(
            b"MAIL", f"FROM:<{item.mail_from}>".encode(), *(o.encode() for o in options)
        )
    except aiosmtplib.SMTPException as exc:
        return everyone(_lost(exc), "mail", [r.address for r in recipients], usable=False)
    if response.code != 250:
        return everyone(
            _reply(response.code, response.message), "mail", [r.address for r in recipients]
        )
    accepted: list[str] = []
    for rcpt in recipients:
        rcpt_options = rcpt.options() if dsn else []
        try:
            response = await client.execute_command(
                b"RCPT", f"TO:<{rcpt.address}>".encode(), *(o.encode() for o in rcpt_options)
            )
        except aiosmtplib.SMTPException as exc:
            done = {v.address for v in verdicts}
            return everyone(
                _lost(exc),
                "rcpt",
                [r.address for r in recipients if r.address not in done],
                usable=False,
            )
        if response.code in (250, 251):
            accepted.append(rcpt.address)
        else:
            verdicts.append(
                RecipientVerdict(
                    rcpt.address, _reply(response.code, response.message), "rcpt", peer
                )
            )
    if not accepted:
        # The transaction is left open; RSET (on reuse) or QUIT ends it.
        return verdicts, client.is_connected
    try:
        response = await client.data(item.raw)
    except aiosmtplib.SMTPDataError as exc:
        return everyone(_reply(exc.code, exc.message), "eod", accepted)
    except aiosmtplib.SMTPException as exc:
        return everyone(_lost(exc), "eod", accepted, usable=False)
    return everyone(_reply(response.code, response.message), "eod", accepted)


def _lost(exc: BaseException) -> Reply:
    return Reply(451, f"lost connection with the next hop: {exc}", "4.4.2")
