"""The fake nameserver over real UDP and TCP sockets, asked by dnspython."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import dns.asyncresolver
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest

from pytest_smtp import OptionError
from pytest_smtp.engine import EngineError
from pytest_smtp.fakedns import FakeDNS


@pytest.fixture(scope="module")
def server() -> Iterator[FakeDNS]:
    with FakeDNS() as fake:
        yield fake
    assert fake.errors == []


@pytest.fixture
def fake(server: FakeDNS) -> FakeDNS:
    server.reset()
    server.add_mx("example.test", "mx1.example.test", 10)
    server.add_a("mx1.example.test", "127.0.0.2")
    return server


def test_udp_and_tcp_listen_on_the_same_loopback_port(fake: FakeDNS) -> None:
    host, port = fake.nameserver
    assert host == "127.0.0.1"
    assert port == fake.port != 0
    query = dns.message.make_query("mx1.example.test", "A")
    by_udp = dns.query.udp(query, host, port=port, timeout=5)
    by_tcp = dns.query.tcp(query, host, port=port, timeout=5)
    assert by_udp.answer == by_tcp.answer
    assert by_udp.answer[0][0].address == "127.0.0.2"
    assert [q.transport for q in fake.queries] == ["udp", "tcp"]


def test_sync_resolver_gets_mx_and_a(fake: FakeDNS) -> None:
    resolver = fake.sync_resolver()
    mx = resolver.resolve("example.test", "MX")
    assert [(r.preference, str(r.exchange)) for r in mx] == [(10, "mx1.example.test.")]
    assert [r.address for r in resolver.resolve("mx1.example.test", "A")] == ["127.0.0.2"]


@pytest.mark.asyncio
async def test_async_resolver_from_another_event_loop(fake: FakeDNS) -> None:
    resolver = fake.resolver()
    assert isinstance(resolver, dns.asyncresolver.Resolver)
    answer = await resolver.resolve("example.test", "MX")
    assert str(answer[0].exchange) == "mx1.example.test."


def test_nxdomain_and_nodata_are_different_answers(fake: FakeDNS) -> None:
    resolver = fake.sync_resolver()
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("nope.example.test", "MX")
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("mx1.example.test", "MX")
    nodata = resolver.resolve("mx1.example.test", "MX", raise_on_no_answer=False).response
    assert nodata.rcode() == dns.rcode.NOERROR
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA
    assert [(q.name, q.rcode) for q in fake.queries] == [
        ("nope.example.test", "NXDOMAIN"),
        ("mx1.example.test", "NOERROR"),
        ("mx1.example.test", "NOERROR"),
    ]


def test_names_outside_the_fake_zones_are_refused_not_forwarded(fake: FakeDNS) -> None:
    with pytest.raises(dns.resolver.NoNameservers, match="REFUSED"):
        fake.sync_resolver().resolve("gmail.com", "MX")
    assert fake.queries[-1].rcode == "REFUSED"


def _big_txt(fake: FakeDNS) -> None:
    for i in range(12):
        fake.add_txt("big.example.test", f"record {i:02d} " + "x" * 90)


def test_an_answer_too_big_for_udp_is_truncated_and_retried_over_tcp(fake: FakeDNS) -> None:
    _big_txt(fake)
    host, port = fake.nameserver
    plain = dns.query.udp(dns.message.make_query("big.example.test", "TXT"), host, port=port)
    assert plain.flags & dns.flags.TC
    assert plain.answer == []
    fake.queries.clear()
    answer = fake.sync_resolver().resolve("big.example.test", "TXT")
    assert len(answer) == 12
    assert [(q.transport, q.truncated) for q in fake.queries] == [("udp", True), ("tcp", False)]


def test_an_edns_client_gets_up_to_its_payload_over_udp(fake: FakeDNS) -> None:
    _big_txt(fake)
    host, port = fake.nameserver
    query = dns.message.make_query("big.example.test", "TXT", use_edns=0, payload=4096)
    response = dns.query.udp(query, host, port=port)
    assert not response.flags & dns.flags.TC
    assert len(response.answer[0]) == 12
    small = dns.message.make_query("big.example.test", "TXT", use_edns=0, payload=1000)
    assert dns.query.udp(small, host, port=port).flags & dns.flags.TC


def test_additional_records_are_dropped_before_truncating(fake: FakeDNS) -> None:
    fake.add_aaaa("mx1.example.test", [f"::{i + 1}" for i in range(30)])
    host, port = fake.nameserver
    response = dns.query.udp(dns.message.make_query("example.test", "MX"), host, port=port)
    assert not response.flags & dns.flags.TC
    assert response.answer[0][0].exchange.to_text() == "mx1.example.test."
    assert response.additional == []


def _udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    return sock


def test_garbage_gets_formerr_and_short_packets_and_responses_get_nothing(
    fake: FakeDNS,
) -> None:
    good = dns.message.make_query("mx1.example.test", "A")
    response_packet = dns.message.make_response(good).to_wire()
    with _udp_socket() as sock:
        sock.sendto(b"\x12\x34" + b"\x01\x00" + b"\xff" * 20, fake.nameserver)
        reply = sock.recv(512)
        assert reply[:2] == b"\x12\x34"
        assert reply[3] & 0x0F == dns.rcode.FORMERR
        # Neither of these two gets a reply: the next datagram is the answer to `good`.
        sock.sendto(b"\x00\x01", fake.nameserver)
        sock.sendto(response_packet, fake.nameserver)
        sock.sendto(good.to_wire(), fake.nameserver)
        answer = dns.message.from_wire(sock.recv(512))
    assert answer.id == good.id
    assert [q.rcode for q in fake.queries] == ["FORMERR", "NOERROR"]


def test_the_query_log(fake: FakeDNS) -> None:
    resolver = fake.sync_resolver()
    resolver.resolve("EXAMPLE.test", "MX")
    resolver.resolve("mx1.example.test.", "A")
    first = fake.queries[0]
    assert first.name == "example.test"
    assert first.rdtype == "MX"
    assert first.transport == "udp"
    assert first.rcode == "NOERROR"
    assert first.answer == ("MX 10 mx1.example.test.",)
    assert first.client[0] == "127.0.0.1"
    assert fake.queries.names() == ["example.test", "mx1.example.test"]
    assert fake.queries.filter("mx1.example.test.", "a") == [fake.queries[1]]
    assert fake.queries.filter(transport="tcp") == []
    assert fake.queries.filter(rcode="noerror") == list(fake.queries)
    assert str(fake.queries).splitlines()[0] == (
        "example.test MX over udp: NOERROR -> MX 10 mx1.example.test."
    )
    fake.queries.clear()
    assert str(fake.queries) == "no DNS queries"


def test_reset_forgets_zones_faults_queries_and_lifetime(fake: FakeDNS) -> None:
    fake.fault("example.test", "servfail")
    fake.lifetime = 0.5
    fake.sync_resolver().resolve("mx1.example.test", "A")
    fake.reset()
    assert len(fake.zones) == 0
    assert fake.faults == []
    assert list(fake.queries) == []
    assert fake.lifetime == 5.0
    assert not fake.is_fake("example.test")


def test_stop_is_bounded_and_idempotent_with_a_tcp_client_connected() -> None:
    with FakeDNS() as fake:
        fake.add_a("mx1.example.test", "127.0.0.2")
        client = socket.create_connection(fake.nameserver)
    try:
        # The server dropped the idle connection when it stopped.
        client.settimeout(5)
        assert client.recv(10) == b""
    finally:
        client.close()
    fake.stop()
    assert not fake.running
    assert fake.errors == []


def test_nameserver_before_start_is_a_clear_error() -> None:
    fake = FakeDNS()
    with pytest.raises(EngineError, match="not started"):
        fake.nameserver  # noqa: B018


def test_records_can_be_added_before_start_and_survive_it() -> None:
    fake = FakeDNS()
    fake.add_a("mx1.example.test", "127.0.0.2")
    with fake:
        assert fake.sync_resolver().resolve("mx1.example.test", "A")[0].address == "127.0.0.2"


@pytest.mark.parametrize("lifetime", [0, -1, True, "soon", float("inf")])
def test_bad_lifetime_is_rejected(lifetime: object) -> None:
    with pytest.raises(OptionError, match=r"lifetime must be (a number of|more than 0) seconds"):
        FakeDNS(lifetime=lifetime)  # type: ignore[arg-type]
    fake = FakeDNS()
    with pytest.raises(OptionError, match="lifetime must be"):
        fake.lifetime = lifetime  # type: ignore[assignment]
    assert fake.lifetime == 5.0


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_serves_on_ipv6_loopback() -> None:
    with FakeDNS(host="::1") as fake:
        fake.add_aaaa("mx1.example.test", "::1")
        answer = fake.sync_resolver().resolve("mx1.example.test", "AAAA")
        assert answer[0].address == "::1"
        assert fake.nameserver[0] == "::1"
