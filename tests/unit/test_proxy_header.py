"""The PROXY protocol header (HAProxy's versions 1 and 2): parsing byte vectors written by hand
from the specification, every malformed form named, and what ``encode`` writes read back by
aiosmtpd's own parser (an independent implementation)."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from aiosmtpd.proxy_protocol import AF, V2_CMD, get_proxy

from pytest_smtp import ProxyHeader, ProxyHeaderError
from pytest_smtp.mail.proxy import PROXY_V2_SIGNATURE, header_length, octets_wanted, parse_header

SIG = b"\r\n\r\n\x00\r\nQUIT\n"  # the specification's 12 octets, written out again
FRONT = ("192.0.2.25", 25)
INET = socket.inet_aton("203.0.113.7") + socket.inet_aton("192.0.2.25") + b"\xc8\x22\x00\x19"


def measured(data: bytes) -> ProxyHeader:
    """Parse ``data`` as the server does: measure it, then read exactly that much."""
    size = header_length(data)
    assert size == len(data)
    return parse_header(data)


def test_the_signature_is_the_specifications() -> None:
    assert PROXY_V2_SIGNATURE == SIG


@pytest.mark.parametrize(
    ("line", "family", "source", "destination"),
    [
        (
            b"PROXY TCP4 203.0.113.7 192.0.2.25 51234 25\r\n",
            "TCP4",
            ("203.0.113.7", 51234),
            ("192.0.2.25", 25),
        ),
        (
            b"PROXY TCP6 2001:db8::7 2001:db8::19 51234 25\r\n",
            "TCP6",
            ("2001:db8::7", 51234),
            ("2001:db8::19", 25),
        ),
    ],
)
def test_version_1_names_the_relayed_connection(
    line: bytes, family: str, source: tuple[str, int], destination: tuple[str, int]
) -> None:
    header = measured(line)
    assert header == ProxyHeader(
        version=1, command="PROXY", family=family, source=source, destination=destination
    )
    assert header.client == source


@pytest.mark.parametrize("line", [b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ::1 ::1 1 2\r\n"])
def test_version_1_unknown_carries_no_client(line: bytes) -> None:
    header = measured(line)
    assert (header.family, header.source, header.client) == ("UNKNOWN", None, None)


def test_version_2_inet_with_extensions() -> None:
    authority = b"\x02\x00\x07mx.test"
    data = SIG + b"\x21\x11" + struct.pack("!H", len(INET) + len(authority)) + INET + authority
    header = measured(data)
    assert header == ProxyHeader(
        version=2,
        command="PROXY",
        family="TCP4",
        source=("203.0.113.7", 51234),
        destination=("192.0.2.25", 25),
        tlvs=((0x02, b"mx.test"),),
    )


def test_version_2_inet6() -> None:
    src, dst = (
        socket.inet_pton(socket.AF_INET6, "2001:db8::7"),
        socket.inet_pton(socket.AF_INET6, "2001:db8::19"),
    )
    data = SIG + b"\x21\x21\x00\x24" + src + dst + struct.pack("!HH", 4242, 25)
    header = measured(data)
    assert (header.family, header.source, header.destination) == (
        "TCP6",
        ("2001:db8::7", 4242),
        ("2001:db8::19", 25),
    )


def test_version_2_local_is_the_proxys_own_connection() -> None:
    header = measured(SIG + b"\x20\x00\x00\x00")
    assert (header.command, header.family, header.client) == ("LOCAL", "UNKNOWN", None)
    # LOCAL may carry addresses; they are skipped, never taken for a client.
    header = measured(SIG + b"\x20\x11\x00\x0c" + INET)
    assert (header.command, header.source, header.client, header.tlvs) == ("LOCAL", None, None, ())


def test_the_length_is_known_only_when_the_whole_header_is_in() -> None:
    for data in (
        b"PROXY TCP4 203.0.113.7 192.0.2.25 51234 25\r\n",
        SIG + b"\x21\x11\x00\x0c" + INET,
    ):
        for cut in range(len(data)):
            assert header_length(data[:cut]) is None, (data, cut)
        assert header_length(data + b"EHLO x\r\n") == len(data)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"EHLO client.test\r\n", "no PROXY protocol header: the connection began b'EHLO"),
        (b"PROXY TCP4 1.2.3.4" + b" " * 100, "without CRLF in its first 107 octets"),
        (b"\r\n\r\n\x00\r\nQUITX", "no PROXY protocol header"),
    ],
)
def test_a_connection_that_cannot_begin_a_header_is_named(data: bytes, why: str) -> None:
    with pytest.raises(ProxyHeaderError, match=why.replace("(", r"\(")):
        header_length(data)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "must read 'PROXY TCP4|TCP6"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "must read 'PROXY TCP4|TCP6"),
        (b"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n", "source '1.2.3.400' is not an address"),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "source '::1' is not an IPv4 address"),
        (b"PROXY TCP6 ::1 5.6.7.8 1 2\r\n", "destination '5.6.7.8' is not an IPv6 address"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "source port '65536' is not a port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 025\r\n", "destination port '025' is not a port"),
        (b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", "one line ending in CRLF"),
        (SIG + b"\x31\x11\x00\x0c" + INET, "with version 3, not 2"),
        (SIG + b"\x22\x11\x00\x0c" + INET, "command 0x2: must be LOCAL or PROXY"),
        (SIG + b"\x21\x41\x00\x0c" + INET, "family/protocol octet 0x41 unknown"),
        (SIG + b"\x21\x11\x00\x08" + INET[:8], "TCP4 addresses need 12 octets, the header has 8"),
        (SIG + b"\x21\x11\x00\x0e" + INET + b"\x02\x00", "extension cut short"),
        (SIG + b"\x21\x11\x00\x10" + INET + b"\x02\x00\x05a", "says 5 octets, 1 follow"),
    ],
)
def test_a_malformed_header_is_named(data: bytes, why: str) -> None:
    with pytest.raises(ProxyHeaderError, match=why.replace("|", r"\|")):
        parse_header(data)


def aiosmtpd_reads(data: bytes) -> object:
    async def read() -> object:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await get_proxy(reader)

    return asyncio.run(read())


@pytest.mark.parametrize("version", [1, 2])
def test_what_encode_writes_aiosmtpd_reads_the_same(version: int) -> None:
    header = ProxyHeader(
        version=version,
        family="TCP4",
        source=("203.0.113.7", 51234),
        destination=("192.0.2.25", 25),
        tlvs=((0x02, b"mx.test"),) if version == 2 else (),
    )
    data = header.encode()
    theirs = aiosmtpd_reads(data)
    assert theirs.valid, theirs.error  # type: ignore[attr-defined]
    assert str(theirs.src_addr) == "203.0.113.7" and theirs.src_port == 51234  # type: ignore[attr-defined]
    assert str(theirs.dst_addr) == "192.0.2.25" and theirs.dst_port == 25  # type: ignore[attr-defined]
    assert theirs.family == AF.INET  # type: ignore[attr-defined]
    if version == 2:
        assert theirs.command == V2_CMD.PROXY  # type: ignore[attr-defined]
        assert theirs.tlv.AUTHORITY == b"mx.test"  # type: ignore[attr-defined]
    assert parse_header(data) == header


def test_encode_refuses_what_it_cannot_write() -> None:
    with pytest.raises(ProxyHeaderError, match="version must be 1 or 2, not 3"):
        ProxyHeader(version=3, source=("1.2.3.4", 1)).encode()
    with pytest.raises(ProxyHeaderError, match="TCP4 or TCP6 with source and destination"):
        ProxyHeader(version=1, family="TCP4").encode()
    with pytest.raises(ProxyHeaderError, match="TCP4 or TCP6 with source and destination"):
        ProxyHeader(version=1, source=("1.2.3.4", 1)).encode()
    with pytest.raises(ProxyHeaderError, match="names both ends: give destination"):
        ProxyHeader(version=2, source=("1.2.3.4", 1)).encode()
    with pytest.raises(ProxyHeaderError, match="cannot encode family 'UNIX_STREAM'"):
        ProxyHeader(version=2, family="UNIX_STREAM").encode()
    with pytest.raises(ProxyHeaderError, match="command must be 'PROXY' or 'LOCAL'"):
        ProxyHeader(version=2, command="RELAY", source=("1.2.3.4", 1), destination=FRONT).encode()
    assert ProxyHeader(version=1, family="UNKNOWN").encode() == b"PROXY UNKNOWN\r\n"
    assert ProxyHeader(version=2, command="LOCAL", family="UNKNOWN").encode() == (
        SIG + b"\x20\x00\x00\x00"
    )


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY UNKNOWN\r\n",
        b"PROXY TCP4 203.0.113.7 192.0.2.25 51234 25\r\n",
        SIG + b"\x20\x00\x00\x00",
        SIG + b"\x21\x11\x00\x0c" + INET,
    ],
)
def test_reading_what_octets_wanted_says_stops_at_the_header_end(header: bytes) -> None:
    # What a reader before implicit TLS does: never an octet of what follows the header.
    stream, read = header + b"\x16\x03\x01 ClientHello", b""
    while header_length(read) is None:
        want = octets_wanted(read)
        assert want >= 1
        read += stream[len(read) : len(read) + want]
    assert read == header
