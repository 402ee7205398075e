"""The fake nameserver: a real DNS server on loopback, UDP and TCP on one port, on the engine.

:class:`FakeDNS` answers from its :class:`~pytest_smtp.fakedns.zone.ZoneSet` as an
authoritative server, injects faults per name and type, logs every query, and patches
dnspython and ``socket.getaddrinfo`` so code under test finds it (:meth:`FakeDNS.patch`).

This module never imports pytest.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from pytest_smtp.engine import LISTEN_BACKLOG, LoopServer, bind_socket
from pytest_smtp.fakedns.patch import Addresses, patched, server_changed
from pytest_smtp.fakedns.zone import (
    MAX_CNAME_HOPS,
    NameLike,
    RecordBuilder,
    Zone,
    ZoneSet,
    fill_response,
    make_response,
    to_name,
    to_rdtype,
)
from pytest_smtp.smtp.options import positive_seconds

if TYPE_CHECKING:
    import dns.rdata

__all__ = ["FAULT_ACTIONS", "FakeDNS", "Fault", "Query", "QueryLog"]

R = TypeVar("R", bound=dns.resolver.BaseResolver)

#: The fault actions :meth:`FakeDNS.fault` accepts.
FAULT_ACTIONS = ("servfail", "refused", "nxdomain", "timeout", "delay", "truncate")

_UDP_PLAIN_LIMIT = 512
_TCP_LIMIT = 65535
_TCP_IDLE_TIMEOUT = 30.0
_BIND_ATTEMPTS = 50


@dataclass(frozen=True)
class Query:
    """One query the fake nameserver received, and what it answered."""

    name: str
    """The name asked for, lower-cased, without the trailing dot (``"mx1.example.test"``)."""
    rdtype: str
    """The type asked for (``"MX"``, ``"A"``, ...)."""
    transport: str
    """``"udp"`` or ``"tcp"`` (``"local"`` for a lookup made on the engine's own loop)."""
    rcode: str
    """``"NOERROR"``, ``"NXDOMAIN"``, ``"SERVFAIL"``, ``"REFUSED"``, ... or ``"TIMEOUT"`` when
    a timeout fault sent no reply."""
    answer: tuple[str, ...] = ()
    """The answer section as ``"TYPE DATA"`` strings: ``("MX 10 mx1.example.test.",)``."""
    truncated: bool = False
    """True when the reply had TC=1 (too big for UDP, or a ``truncate`` fault)."""
    fault: str | None = None
    """The fault action applied to this query, if any."""
    client: tuple[str, int] = ("", 0)
    """The client's address."""

    def __str__(self) -> str:
        extra = " TC" if self.truncated else ""
        fault = f" [fault: {self.fault}]" if self.fault else ""
        answer = f" -> {', '.join(self.answer)}" if self.answer else ""
        head = f"{self.name} {self.rdtype} over {self.transport}: {self.rcode}"
        return f"{head}{extra}{answer}{fault}"


def _norm(name: str) -> str:
    return name.strip().rstrip(".").lower() or "."


class QueryLog(list[Query]):
    """The queries a :class:`FakeDNS` received, oldest first (a list; ``clear()`` empties it)."""

    def filter(
        self,
        name: str | None = None,
        rdtype: str | None = None,
        *,
        transport: str | None = None,
        rcode: str | None = None,
    ) -> list[Query]:
        """The queries matching every given criterion (names and types case-insensitive)."""
        want_name = _norm(name) if name is not None else None
        want_type = rdtype.upper() if rdtype is not None else None
        want_rcode = rcode.upper() if rcode is not None else None
        return [
            q
            for q in list(self)
            if (want_name is None or q.name == want_name)
            and (want_type is None or q.rdtype == want_type)
            and (transport is None or q.transport == transport)
            and (want_rcode is None or q.rcode == want_rcode)
        ]

    def names(self) -> list[str]:
        """The names asked for, in order (with repeats)."""
        return [q.name for q in list(self)]

    def __str__(self) -> str:
        if not self:
            return "no DNS queries"
        return "\n".join(str(q) for q in list(self))


@dataclass
class Fault:
    """A fault injected by :meth:`FakeDNS.fault`."""

    name: str
    """The name it applies to: exact, ``"*.example.test"`` for every name below, ``"*"`` all."""
    rdtype: str | None
    """The query type it applies to, or None for every type."""
    action: str
    """One of :data:`FAULT_ACTIONS`."""
    times: int | None = None
    """How many queries it applies to before it is spent (None: every one)."""
    seconds: float = 0.0
    """The delay of a ``delay`` fault."""
    hits: int = 0
    """How many queries it has applied to so far."""

    @property
    def spent(self) -> bool:
        """True once ``times`` queries have been hit."""
        return self.times is not None and self.hits >= self.times

    def matches(self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType, transport: str) -> bool:
        """True when this fault applies to a query (ignoring ``times``)."""
        if self.action == "truncate" and transport != "udp":
            return False  # the client's retry over TCP must get the answer
        if self.rdtype is not None and dns.rdatatype.to_text(qtype) != self.rdtype:
            return False
        if self.name == "*":
            return True
        if self.name.startswith("*."):
            base = dns.name.from_text(self.name[2:], origin=dns.name.root)
            return qname != base and qname.is_subdomain(base)
        return bool(qname == dns.name.from_text(self.name, origin=dns.name.root))


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: FakeDNS) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not every loop's datagram transport subclasses asyncio.DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.transport is not None:
            self.server._on_datagram(self.transport, data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP "port unreachable" from a client that gave up: nothing to do.
        pass


class FakeDNS(LoopServer, RecordBuilder):
    """A fake authoritative nameserver on loopback: UDP and TCP on one ephemeral port.

    Build zones with :meth:`add`, :meth:`add_mx`, :meth:`add_a`, :meth:`add_aaaa`,
    :meth:`add_txt`, :meth:`add_cname`, :meth:`add_ptr`, :meth:`add_records` and
    :meth:`load`; inject faults with :meth:`fault`; read :attr:`queries`; point code under test
    at it with :meth:`patch`. Names outside the fake zones get REFUSED (nothing is forwarded to
    real DNS). Use it as ``with FakeDNS() as dns:``; the ``smtp_dns`` fixture gives one.

    ``lifetime`` bounds, in seconds, each lookup made by the resolvers this server configures
    (the patched dnspython defaults, :meth:`resolver`, :meth:`sync_resolver`) and by the
    patched ``socket.getaddrinfo``; lower it to make ``timeout`` faults quick.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, lifetime: float = 5.0) -> None:
        super().__init__(host=host, port=port)
        self._default_lifetime = positive_seconds("lifetime", lifetime)
        self._lifetime = self._default_lifetime
        self.zones: ZoneSet = ZoneSet()
        """The zones served."""
        self._queries = QueryLog()
        self._faults: list[Fault] = []
        self._fault_lock = threading.Lock()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    @property
    def lifetime(self) -> float:
        """Time limit in seconds of one lookup by the resolvers this server configures.

        Setting it while :meth:`patch` is active also updates the patched default resolvers.
        """
        return self._lifetime

    @lifetime.setter
    def lifetime(self, value: float) -> None:
        self._lifetime = positive_seconds("lifetime", value)
        server_changed(self)

    def __repr__(self) -> str:
        where = f"{self._sockname[0]}:{self._sockname[1]}" if self._sockname else "not started"
        return f"<FakeDNS {where} zones={[str(o) for o in self.zones.zones]}>"

    # -- addresses -------------------------------------------------------------------------
    @property
    def nameserver(self) -> tuple[str, int]:
        """``(host, port)`` of the nameserver, for ``dig @host -p port`` or a resolver."""
        return self.address

    # -- zones -----------------------------------------------------------------------------
    def _add_rdatas(
        self,
        name: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        rdatas: list[dns.rdata.Rdata],
        ttl: int,
    ) -> None:
        self.zones._add_rdatas(name, rdtype, rdatas, ttl)

    def remove(self, name: NameLike, rdtype: str | int | None = None) -> None:
        """Remove the records of ``rdtype`` at ``name`` (every type when None); the name then
        answers NODATA or NXDOMAIN. ``KeyError`` when there is nothing to remove."""
        self.zones.remove(name, rdtype)

    def load(self, text: str, origin: NameLike | None = None) -> None:
        """Add the records of master-file text (``$ORIGIN``, ``$TTL``, relative names); see
        :meth:`ZoneSet.load <pytest_smtp.fakedns.zone.ZoneSet.load>`."""
        self.zones.load(text, origin)

    def add_zone(self, zone: Zone | NameLike) -> Zone:
        """Serve a :class:`Zone` (or a new empty zone at an origin); returns it."""
        return self.zones.add_zone(zone)

    def remove_zone(self, origin: NameLike) -> None:
        """Stop serving the zone at ``origin``: its names are no longer fake."""
        self.zones.remove_zone(origin)

    # -- mail authentication records (pytest_smtp.quality.auth; the auth extra) ------------
    def dkim_key(self, domain: str, selector: str = "s1", *, bits: int = 2048) -> bytes:
        """Publish a new DKIM key at ``selector._domainkey.domain`` and return its private
        half (PEM) to sign with: :func:`pytest_smtp.quality.publish_dkim_key`."""
        from pytest_smtp.quality.auth import publish_dkim_key

        return publish_dkim_key(self, domain, selector, bits=bits)

    def spf(self, domain: str, record: str) -> None:
        """Publish the SPF ``record`` (``"v=spf1 ip4:127.0.0.0/8 -all"``) for ``domain``:
        :func:`pytest_smtp.quality.publish_spf`."""
        from pytest_smtp.quality.auth import publish_spf

        publish_spf(self, domain, record)

    def dmarc(self, domain: str, record: str) -> None:
        """Publish the DMARC ``record`` (``"v=DMARC1; p=reject"``) at ``_dmarc.domain``:
        :func:`pytest_smtp.quality.publish_dmarc`."""
        from pytest_smtp.quality.auth import publish_dmarc

        publish_dmarc(self, domain, record)

    def is_fake(self, name: str | bytes | dns.name.Name | None) -> bool:
        """True when ``name`` is inside a fake zone (the names :meth:`patch` diverts here)."""
        if name is None:
            return False
        if isinstance(name, bytes):
            try:
                name = name.decode("ascii")
            except UnicodeDecodeError:
                return False
        return self.zones.covers(name)

    # -- faults ----------------------------------------------------------------------------
    def fault(
        self,
        name: str,
        rdtype: str | None = None,
        action: str | None = None,
        *,
        times: int | None = None,
        seconds: float | None = None,
    ) -> Fault:
        """Make queries for ``name`` (and ``rdtype``; None means every type) fail.

        ``action`` is ``"servfail"``, ``"refused"``, ``"nxdomain"`` (with the zone's SOA),
        ``"timeout"`` (no reply at all), ``"delay"`` (the normal answer after ``seconds``) or
        ``"truncate"`` (TC=1 over UDP, so the client retries over TCP and gets the answer).
        ``times`` limits the fault to the next N matching queries. ``name`` may be
        ``"*.example.test"`` (every name below) or ``"*"`` (every name). The two-argument form
        ``fault(name, action)`` applies to every type. Faults are tried in the order added;
        the first that matches applies. Examples::

            dns.fault("example.test", "MX", "servfail")
            dns.fault("mx1.example.test", "timeout", times=1)
            dns.fault("example.test", "MX", "delay", seconds=0.2)
        """
        if action is None and isinstance(rdtype, str) and rdtype.lower() in FAULT_ACTIONS:
            rdtype, action = None, rdtype
        if action is None:
            raise ValueError(
                "fault() needs an action: one of "
                + ", ".join(FAULT_ACTIONS)
                + "; for example dns.fault('example.test', 'MX', 'servfail')"
            )
        if not isinstance(action, str) or action.lower() not in FAULT_ACTIONS:
            raise ValueError(
                f"unknown fault action {action!r}; use one of {', '.join(FAULT_ACTIONS)}"
            )
        action = action.lower()
        type_text = dns.rdatatype.to_text(to_rdtype(rdtype)) if rdtype is not None else None
        if not isinstance(name, str):
            raise TypeError(f"name must be a str such as 'example.test', not {type(name).__name__}")
        pattern = name.strip()
        if pattern != "*":
            base = pattern[2:] if pattern.startswith("*.") else pattern
            text = str(to_name(base)).rstrip(".").lower() or "."
            pattern = f"*.{text}" if pattern.startswith("*.") else text
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 1
        ):
            raise ValueError(f"times must be a positive int (or None for always), not {times!r}")
        if action == "delay":
            if (
                seconds is None
                or isinstance(seconds, bool)
                or not isinstance(seconds, (int, float))
                or seconds <= 0
            ):
                raise ValueError(
                    f"a delay fault needs seconds > 0, e.g. fault(name, 'delay', seconds=0.2), "
                    f"not seconds={seconds!r}"
                )
        elif seconds is not None:
            raise ValueError(f"seconds= applies only to the 'delay' action, not {action!r}")
        fault = Fault(pattern, type_text, action, times, float(seconds or 0.0))
        with self._fault_lock:
            self._faults.append(fault)
        return fault

    @property
    def faults(self) -> list[Fault]:
        """The faults added (spent ones included), in order."""
        with self._fault_lock:
            return list(self._faults)

    def clear_faults(self) -> None:
        """Remove every fault."""
        with self._fault_lock:
            self._faults.clear()

    def _take_fault(
        self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType, transport: str
    ) -> Fault | None:
        with self._fault_lock:
            for fault in self._faults:
                if not fault.spent and fault.matches(qname, qtype, transport):
                    fault.hits += 1
                    return fault
        return None

    # -- log and reset ---------------------------------------------------------------------
    @property
    def queries(self) -> QueryLog:
        """Every query received since the last :meth:`reset` (``queries.clear()`` empties it)."""
        return self._queries

    def reset(self) -> None:
        """Forget zones, faults and logged queries, and restore ``lifetime``: a fresh server."""
        self.zones.clear()
        self.clear_faults()
        self._queries.clear()
        self.lifetime = self._default_lifetime

    # -- resolvers and patching ------------------------------------------------------------
    def configure(self, resolver: R) -> R:
        """Point a dnspython resolver (sync or async) at this nameserver; returns it."""
        host, port = self.nameserver
        resolver.port = port
        resolver.nameserver_ports = {}
        resolver.nameservers = [host]
        resolver.lifetime = self.lifetime
        resolver.timeout = min(2.0, self.lifetime)
        resolver.search = []
        resolver.cache = None
        return resolver

    def resolver(self) -> dns.asyncresolver.Resolver:
        """A new ``dns.asyncresolver.Resolver`` asking this nameserver (no system config read).

        Use it from any event loop: ``await dns.resolver().resolve("example.test", "MX")``.
        """
        return self.configure(dns.asyncresolver.Resolver(configure=False))

    def sync_resolver(self) -> dns.resolver.Resolver:
        """A new ``dns.resolver.Resolver`` asking this nameserver (no system config read)."""
        return self.configure(dns.resolver.Resolver(configure=False))

    def patch(self) -> contextlib.AbstractContextManager[FakeDNS]:
        """Divert lookups to this nameserver while the ``with`` block runs.

        dnspython's default resolvers (``dns.resolver`` and ``dns.asyncresolver``) and every
        ``Resolver()`` created meanwhile ask this server; ``socket.getaddrinfo``,
        ``gethostbyname`` and ``gethostbyname_ex`` (so asyncio, smtplib, aiosmtplib) resolve
        names inside the fake zones here and pass every other name to the originals.
        Everything is restored on exit, also when the block raised. Nesting is allowed.
        """
        return patched(self)

    # -- serving ---------------------------------------------------------------------------
    async def _astart(self) -> None:
        loop = asyncio.get_running_loop()
        tcp, udp = self._bind_pair()
        try:
            self._tcp = await asyncio.start_server(self._on_tcp, sock=tcp, backlog=LISTEN_BACKLOG)
            transport, _ = await loop.create_datagram_endpoint(lambda: _UDPProtocol(self), sock=udp)
        except BaseException:
            tcp.close()
            udp.close()
            raise
        self._udp = transport
        name = tcp.getsockname()
        self._sockname = (name[0], name[1])

    def _bind_pair(self) -> tuple[socket.socket, socket.socket]:
        # The kernel picks a free TCP port; the same UDP port may be taken, so try again.
        attempts = _BIND_ATTEMPTS if self._port_arg == 0 else 1
        for attempt in range(attempts):
            tcp = bind_socket(self._host_arg, self._port_arg, socket.SOCK_STREAM)
            try:
                udp = bind_socket(self._host_arg, tcp.getsockname()[1], socket.SOCK_DGRAM)
            except OSError:
                tcp.close()
                if attempt == attempts - 1:
                    raise
                continue
            return tcp, udp
        raise AssertionError("unreachable")

    async def _aclose(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            # No wait_closed(): on 3.12+ it waits for clients; the base class aborts them.
            tcp, self._tcp = self._tcp, None
            await self._close_listener(tcp)

    def _on_datagram(
        self, transport: asyncio.DatagramTransport, data: bytes, addr: tuple[Any, ...]
    ) -> None:
        client = (str(addr[0]), int(addr[1]))
        try:
            reply, delay = self._process(data, "udp", client)
        except Exception:
            self._record_error("FakeDNS: error answering a UDP query")
            reply, delay = self._header_reply(data, dns.rcode.SERVFAIL, "udp", client), 0.0
        if reply is None:
            return
        if delay > 0:
            self._track(asyncio.ensure_future(self._send_later(transport, reply, addr, delay)))
        else:
            transport.sendto(reply, addr)

    async def _send_later(
        self,
        transport: asyncio.DatagramTransport,
        reply: bytes,
        addr: tuple[Any, ...],
        delay: float,
    ) -> None:
        await asyncio.sleep(delay)
        if not transport.is_closing():
            transport.sendto(reply, addr)

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._track(task)
        self._track_transport(writer.transport)
        peer = writer.get_extra_info("peername") or ("", 0)
        client = (str(peer[0]), int(peer[1]))
        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(2), _TCP_IDLE_TIMEOUT)
                (length,) = struct.unpack("!H", header)
                data = await reader.readexactly(length)
                try:
                    reply, delay = self._process(data, "tcp", client)
                except Exception:
                    self._record_error("FakeDNS: error answering a TCP query")
                    reply = self._header_reply(data, dns.rcode.SERVFAIL, "tcp", client)
                    delay = 0.0
                if reply is None:
                    continue
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (
            asyncio.CancelledError,
            asyncio.IncompleteReadError,
            asyncio.TimeoutError,
            ConnectionError,
        ):
            pass
        except Exception:
            self._record_error("FakeDNS: error in a TCP connection")
        finally:
            self._untrack_transport(writer.transport)
            with contextlib.suppress(Exception):
                writer.close()

    # -- the answer to one query -----------------------------------------------------------
    def _process(
        self, data: bytes, transport: str, client: tuple[str, int]
    ) -> tuple[bytes | None, float]:
        """The reply to one query (None: send nothing) and how long to wait before sending."""
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return self._header_reply(data, dns.rcode.FORMERR, transport, client), 0.0
        if query.flags & dns.flags.QR:
            return None, 0.0  # a response, not a query: never answer it (no reflection loops)
        if len(query.question) != 1:
            response = self.zones.answer(query)
            return self._finish(query, response, transport, client, None), 0.0
        question = query.question[0]
        fault = self._take_fault(question.name, question.rdtype, transport)
        delay = 0.0
        if fault is None or fault.action == "delay":
            response = self.zones.answer(query)
            if fault is not None:
                delay = fault.seconds
        elif fault.action == "timeout":
            self._log(query, None, transport, client, fault, "TIMEOUT")
            return None, 0.0
        elif fault.action == "nxdomain":
            response = fill_response(
                make_response(query),
                self.zones.negative(question.name, dns.rcode.NXDOMAIN),
            )
        elif fault.action == "truncate":
            response = make_response(query)
            response.flags |= dns.flags.TC
        else:
            response = make_response(query)
            response.set_rcode(dns.rcode.from_text(fault.action.upper()))
        return self._finish(query, response, transport, client, fault), delay

    def _finish(
        self,
        query: dns.message.Message,
        response: dns.message.Message,
        transport: str,
        client: tuple[str, int],
        fault: Fault | None,
    ) -> bytes:
        if transport == "udp":
            limit = max(_UDP_PLAIN_LIMIT, query.payload) if query.edns >= 0 else _UDP_PLAIN_LIMIT
        else:
            limit = _TCP_LIMIT
        # Records go out in the order added (no shuffling): tests stay deterministic.
        try:
            wire = response.to_wire(max_size=limit, want_shuffle=False)
        except dns.exception.TooBig:
            # Real truncation: drop the extras first, then everything, and set TC=1 so the
            # client retries over TCP (RFC 2181 section 9).
            del response.additional[:]
            try:
                wire = response.to_wire(max_size=limit, want_shuffle=False)
            except dns.exception.TooBig:
                del response.answer[:]
                del response.authority[:]
                response.flags |= dns.flags.TC
                wire = response.to_wire(max_size=limit, want_shuffle=False)
        self._log(query, response, transport, client, fault, None)
        return wire

    def _log(
        self,
        query: dns.message.Message,
        response: dns.message.Message | None,
        transport: str,
        client: tuple[str, int],
        fault: Fault | None,
        rcode: str | None,
    ) -> None:
        if query.question:
            name = _norm(str(query.question[0].name))
            rdtype = dns.rdatatype.to_text(query.question[0].rdtype)
        else:
            name, rdtype = "", ""
        answer: tuple[str, ...] = ()
        truncated = False
        if response is not None:
            rcode = dns.rcode.to_text(response.rcode())
            answer = tuple(
                f"{dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text()}"
                for rrset in response.answer
                for rdata in rrset
            )
            truncated = bool(response.flags & dns.flags.TC)
        self._queries.append(
            Query(
                name=name,
                rdtype=rdtype,
                transport=transport,
                rcode=rcode or "",
                answer=answer,
                truncated=truncated,
                fault=fault.action if fault is not None else None,
                client=client,
            )
        )

    def _header_reply(
        self, data: bytes, rcode: dns.rcode.Rcode, transport: str, client: tuple[str, int]
    ) -> bytes | None:
        """A bare reply (header only) for a query that cannot be parsed or answered."""
        if len(data) < 12:
            return None  # not even a header: nothing to answer
        (ident, flags) = struct.unpack("!HH", data[:4])
        if flags & dns.flags.QR:
            return None
        opcode_bits = flags & 0x7800
        self._queries.append(
            Query(
                name="",
                rdtype="",
                transport=transport,
                rcode=dns.rcode.to_text(rcode),
                client=client,
            )
        )
        return struct.pack("!HHHHHH", ident, dns.flags.QR | opcode_bits | rcode, 0, 0, 0, 0)

    # -- lookups for the patched socket functions ------------------------------------------
    def _ask(
        self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> dns.message.Message | None:
        query = dns.message.make_query(qname, rdtype)
        if self.engine.in_loop():
            # Asking our own socket from the loop that serves it would deadlock: answer here.
            reply, _ = self._process(query.to_wire(), "local", ("local", 0))
            return dns.message.from_wire(reply) if reply is not None else None
        host, port = self.nameserver
        response, _ = dns.query.udp_with_fallback(query, host, timeout=self.lifetime, port=port)
        return response

    def lookup_addresses(self, host: str, rdtypes: tuple[str, ...]) -> Addresses:
        """Addresses of a fake name, for the patched socket functions: the ``rdtypes``
        (``"A"``, ``"AAAA"``) in order, CNAMEs followed; ``socket.gaierror`` on failure, as the
        C library reports it."""
        qname = to_name(host)
        result = Addresses(_norm(host), [], [])
        for index, type_text in enumerate(rdtypes):
            rdtype = dns.rdatatype.from_text(type_text)
            try:
                response = self._ask(qname, rdtype)
            except (dns.exception.DNSException, OSError):
                response = None
            if response is None:
                raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
            rcode = response.rcode()
            if rcode == dns.rcode.NXDOMAIN:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            if rcode != dns.rcode.NOERROR:
                raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
            name = qname
            aliases: list[str] = []
            for _ in range(MAX_CNAME_HOPS):
                rrset = response.get_rrset(response.answer, name, dns.rdataclass.IN, rdtype)
                if rrset is not None:
                    result.addresses.extend(rd.address for rd in rrset)
                    break
                cname = response.get_rrset(
                    response.answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME
                )
                if cname is None:
                    break
                aliases.append(_norm(str(name)))
                name = cname[0].target
            if index == 0:
                result.aliases = aliases
                result.canonical = _norm(str(name))
        return result
