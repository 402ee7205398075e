"""The PROXY protocol header (HAProxy's, versions 1 and 2) a load balancer sends first.

A TCP proxy in front of a mail server (HAProxy ``send-proxy``/``send-proxy-v2``, AWS NLB, ...)
opens its own connection to the server, so the server sees the proxy's address, not the
client's. With the PROXY protocol the proxy writes one header before anything else, naming the
connection it relays; the server reads it before its greeting. ``SMTPServer(proxy_protocol=
True)`` expects it (as Postfix's ``smtpd_upstream_proxy_protocol = haproxy`` does) and records
it on :attr:`SessionInfo.proxy <pytest_smtp.SessionInfo.proxy>`; tests that play the proxy
send :meth:`ProxyHeader.encode`.

Version 1 is one text line, at most 107 octets with its CRLF::

    PROXY TCP4 203.0.113.7 192.0.2.25 51234 25\\r\\n

Version 2 is binary: a 12-octet signature, a version/command octet, a family/protocol octet,
the length of the rest (two octets, network order), the addresses, then type-length-value
extensions. ``LOCAL`` (version 2) and ``UNKNOWN`` (version 1) carry no usable addresses: the
connection is the proxy's own (a health check).

This module parses and builds headers; it never reads a socket.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

__all__ = [
    "PROXY_V1_MAX",
    "PROXY_V2_SIGNATURE",
    "ProxyHeader",
    "ProxyHeaderError",
    "header_length",
    "octets_wanted",
    "parse_header",
]

#: The longest version 1 header, CRLF included.
PROXY_V1_MAX = 107
#: The first 12 octets of every version 2 header.
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

_V2_FIXED = 16  # signature, version/command, family/protocol, length
_SHORTEST = len(b"PROXY UNKNOWN\r\n")  # no header is shorter
# Version 2's family/protocol octet, named as version 1 names TCP (one name per kind).
_KINDS = {
    0x00: "UNKNOWN",
    0x11: "TCP4",
    0x12: "UDP4",
    0x21: "TCP6",
    0x22: "UDP6",
    0x31: "UNIX_STREAM",
    0x32: "UNIX_DGRAM",
}
_KIND_OCTETS = {name: octet for octet, name in _KINDS.items()}
_ADDRESS_SIZES = {0x0: 0, 0x1: 12, 0x2: 36, 0x3: 216}  # by the octet's family nibble


class ProxyHeaderError(ValueError):
    """A PROXY protocol header is malformed; the message says what was wrong."""


@dataclass(frozen=True)
class ProxyHeader:
    """One PROXY protocol header: the connection a proxy relays.

    ``source`` is the client as the proxy saw it (``(ip, port)``), ``destination`` the address
    the client connected to. Both are None for a ``LOCAL`` (version 2) or ``UNKNOWN`` (version
    1) header, and for ``UNIX`` sockets. ``tlvs`` are version 2's extensions by type, as sent.
    """

    version: int = 1
    """1 (text) or 2 (binary)."""
    command: str = "PROXY"
    """``PROXY`` (a relayed connection) or ``LOCAL`` (the proxy's own; version 2 only)."""
    family: str = "TCP4"
    """What is relayed: ``TCP4``, ``TCP6`` or ``UNKNOWN`` (both versions); version 2 also
    ``UDP4``, ``UDP6``, ``UNIX_STREAM``, ``UNIX_DGRAM``."""
    source: tuple[str, int] | None = None
    """The client's address and port, as the proxy saw them."""
    destination: tuple[str, int] | None = None
    """The address and port the client connected to (the proxy's)."""
    tlvs: tuple[tuple[int, bytes], ...] = field(default=())
    """Version 2 extensions, ``(type, value)`` in order (e.g. ``0x01`` ALPN, ``0x02``
    authority, ``0x20`` SSL)."""

    def describe(self) -> str:
        """One line: ``PROXY v1 TCP4 203.0.113.7:51234 -> 192.0.2.25:25`` (and how many
        extensions a version 2 header carries)."""
        text = f"{self.command} v{self.version} {self.family}"
        if self.source is not None and self.destination is not None:
            text += (
                f" {self.source[0]}:{self.source[1]} -> {self.destination[0]}:{self.destination[1]}"
            )
        if self.tlvs:
            text += f", {len(self.tlvs)} extension{'s' if len(self.tlvs) > 1 else ''}"
        return text

    @property
    def client(self) -> tuple[str, int] | None:
        """The relayed client (:attr:`source`) when the header names one, else None."""
        return self.source if self.command == "PROXY" else None

    def encode(self) -> bytes:
        """The header as a proxy sends it (its :attr:`version`): for tests that play the
        proxy, ``sock.sendall(ProxyHeader(source=..., destination=...).encode())``."""
        if self.version == 1:
            return self._encode_v1()
        if self.version == 2:
            return self._encode_v2()
        raise ProxyHeaderError(f"PROXY protocol version must be 1 or 2, not {self.version!r}")

    def _encode_v1(self) -> bytes:
        if self.family == "UNKNOWN":
            return b"PROXY UNKNOWN\r\n"
        if self.family not in ("TCP4", "TCP6") or self.source is None or not self.destination:
            raise ProxyHeaderError(
                "a version 1 header is TCP4 or TCP6 with source and destination, or UNKNOWN; "
                f"got family {self.family!r}, source {self.source!r}, "
                f"destination {self.destination!r}"
            )
        destination = self.destination
        line = (
            f"PROXY {self.family} {self.source[0]} {destination[0]} "
            f"{self.source[1]} {destination[1]}\r\n"
        )
        return line.encode("ascii")

    def _encode_v2(self) -> bytes:
        command = {"LOCAL": 0x0, "PROXY": 0x1}.get(self.command)
        if command is None:
            raise ProxyHeaderError(f"command must be 'PROXY' or 'LOCAL', not {self.command!r}")
        kind = _KIND_OCTETS.get(self.family)
        if kind is None or kind >> 4 == 0x3:
            names = ", ".join(n for n in _KIND_OCTETS if not n.startswith("UNIX"))
            raise ProxyHeaderError(f"cannot encode family {self.family!r} (one of {names})")
        addresses = b""
        if kind and self.source is not None:
            destination = self.destination
            if destination is None:
                raise ProxyHeaderError(
                    f"a {self.family} header names both ends: give destination as well as source"
                )
            packed = [ipaddress.ip_address(a[0]).packed for a in (self.source, destination)]
            addresses = b"".join(packed) + struct.pack("!HH", self.source[1], destination[1])
        kind = kind if addresses else 0x00
        extensions = b"".join(struct.pack("!BH", t, len(v)) + v for t, v in self.tlvs)
        body = addresses + extensions
        head = PROXY_V2_SIGNATURE + bytes([0x20 | command, kind])
        return head + struct.pack("!H", len(body)) + body


def header_length(data: bytes | bytearray) -> int | None:
    """How many octets at the start of ``data`` form the header: None while more are needed;
    :class:`ProxyHeaderError` as soon as ``data`` cannot begin a header."""
    if not data:
        return None
    if data[:1] == b"P":
        if not b"PROXY ".startswith(bytes(data[:6])):
            raise ProxyHeaderError(f"no PROXY protocol header: the connection began {_head(data)}")
        end = data.find(b"\r\n", 0, PROXY_V1_MAX)
        if end >= 0:
            return end + 2
        if len(data) >= PROXY_V1_MAX:
            raise ProxyHeaderError(
                f"PROXY version 1 header without CRLF in its first {PROXY_V1_MAX} octets"
            )
        return None
    if not PROXY_V2_SIGNATURE.startswith(bytes(data[:12])):
        raise ProxyHeaderError(f"no PROXY protocol header: the connection began {_head(data)}")
    if len(data) < _V2_FIXED:
        return None
    total = _V2_FIXED + int.from_bytes(data[14:16], "big")
    return total if len(data) >= total else None


def octets_wanted(data: bytes | bytearray) -> int:
    """How many octets may follow ``data`` (the start of a header) without any of them being
    past the header's end; at least 1. For a reader that must leave what comes after the
    header unread (a TLS handshake): the shortest header first, then a version 1 line octet by
    octet to its CRLF, a version 2 header to its fixed part and then to the length given."""
    if len(data) < _SHORTEST:
        return _SHORTEST - len(data)
    if data.startswith(b"PROXY"):
        return 1
    if len(data) < _V2_FIXED:
        return _V2_FIXED - len(data)
    return max(_V2_FIXED + int.from_bytes(data[14:16], "big") - len(data), 1)


def parse_header(data: bytes) -> ProxyHeader:
    """The header that is exactly ``data`` (as :func:`header_length` measured it)."""
    if data.startswith(b"PROXY "):
        return _parse_v1(data)
    return _parse_v2(data)


def _head(data: bytes | bytearray) -> str:
    return repr(bytes(data[:16]))


def _parse_v1(data: bytes) -> ProxyHeader:
    if not data.endswith(b"\r\n") or b"\r" in data[:-2] or b"\n" in data[:-2]:
        raise ProxyHeaderError("PROXY version 1 header must be one line ending in CRLF")
    try:
        text = data[:-2].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY version 1 header must be ASCII") from None
    parts = text.split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyHeader(version=1, command="PROXY", family="UNKNOWN")
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(
            "PROXY version 1 header must read 'PROXY TCP4|TCP6 <source> <destination> "
            f"<source port> <destination port>' or 'PROXY UNKNOWN', not {text!r}"
        )
    _, family, source, destination, sport, dport = parts
    wanted = 4 if family == "TCP4" else 6
    addresses = []
    for what, value in (("source", source), ("destination", destination)):
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ProxyHeaderError(f"PROXY {family} {what} {value!r} is not an address") from None
        if address.version != wanted:
            raise ProxyHeaderError(f"PROXY {family} {what} {value!r} is not an IPv{wanted} address")
        addresses.append(str(address))
    ports = []
    for what, value in (("source port", sport), ("destination port", dport)):
        if not value.isdigit() or int(value) > 65535 or (len(value) > 1 and value[0] == "0"):
            raise ProxyHeaderError(f"PROXY {what} {value!r} is not a port from 0 to 65535")
        ports.append(int(value))
    return ProxyHeader(
        version=1,
        command="PROXY",
        family=family,
        source=(addresses[0], ports[0]),
        destination=(addresses[1], ports[1]),
    )


def _parse_v2(data: bytes) -> ProxyHeader:
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError(f"PROXY version 2 signature with version {version}, not 2")
    if command not in (0x0, 0x1):
        raise ProxyHeaderError(f"PROXY version 2 command {command:#x}: must be LOCAL or PROXY")
    family = _KINDS.get(data[13])
    if family is None:
        raise ProxyHeaderError(f"PROXY version 2 family/protocol octet {data[13]:#04x} unknown")
    body = data[_V2_FIXED:]
    size = _ADDRESS_SIZES[data[13] >> 4]
    if command == 0x1 and len(body) < size:
        raise ProxyHeaderError(
            f"PROXY version 2 {family} addresses need {size} octets, the header has {len(body)}"
        )
    source = destination = None
    if command == 0x1 and family in ("TCP4", "UDP4", "TCP6", "UDP6"):
        width = 4 if family.endswith("4") else 16
        src = ipaddress.ip_address(body[:width])
        dst = ipaddress.ip_address(body[width : 2 * width])
        sport, dport = struct.unpack("!HH", body[2 * width : 2 * width + 4])
        source, destination = (str(src), sport), (str(dst), dport)
    elif command == 0x0 and len(body) < size:
        size = 0  # LOCAL may carry addresses (skipped, never a client) or none at all
    tlvs: list[tuple[int, bytes]] = []
    rest = body[size:]
    while rest:
        if len(rest) < 3:
            raise ProxyHeaderError("PROXY version 2 extension cut short (fewer than 3 octets)")
        kind, length = rest[0], int.from_bytes(rest[1:3], "big")
        if len(rest) < 3 + length:
            raise ProxyHeaderError(
                f"PROXY version 2 extension {kind:#04x} says {length} octets, "
                f"{len(rest) - 3} follow"
            )
        tlvs.append((kind, bytes(rest[3 : 3 + length])))
        rest = rest[3 + length :]
    return ProxyHeader(
        version=2,
        command="PROXY" if command == 0x1 else "LOCAL",
        family=family,
        source=source,
        destination=destination,
        tlvs=tuple(tlvs),
    )
