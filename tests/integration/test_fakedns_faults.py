"""Injected DNS faults, over real sockets: servfail, refused, nxdomain, timeout, delay, truncate."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest

from pytest_smtp.fakedns import FAULT_ACTIONS, FakeDNS


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


def _ask(
    fake: FakeDNS, name: str, rdtype: str, *, tcp: bool = False, timeout: float = 5
) -> dns.message.Message:
    host, port = fake.nameserver
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(query, host, port=port, timeout=timeout)
    return dns.query.udp(query, host, port=port, timeout=timeout)


@pytest.mark.parametrize(
    ("action", "rcode"), [("servfail", dns.rcode.SERVFAIL), ("refused", dns.rcode.REFUSED)]
)
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_error_rcodes(fake: FakeDNS, action: str, rcode: dns.rcode.Rcode, tcp: bool) -> None:
    fake.fault("example.test", "MX", action)
    assert _ask(fake, "example.test", "MX", tcp=tcp).rcode() == rcode
    assert _ask(fake, "mx1.example.test", "A", tcp=tcp).rcode() == dns.rcode.NOERROR
    assert fake.queries[0].rcode == action.upper()
    assert fake.queries[0].fault == action


def test_servfail_makes_the_resolver_give_up(fake: FakeDNS) -> None:
    fake.fault("example.test", "MX", "servfail")
    with pytest.raises(dns.resolver.NoNameservers, match="SERVFAIL"):
        fake.sync_resolver().resolve("example.test", "MX")


def test_nxdomain_fault_hides_an_existing_name_with_the_soa(fake: FakeDNS) -> None:
    fake.fault("mx1.example.test", "nxdomain")
    response = _ask(fake, "mx1.example.test", "A")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.flags & dns.flags.AA
    assert response.authority[0].rdtype == dns.rdatatype.SOA
    with pytest.raises(dns.resolver.NXDOMAIN):
        fake.sync_resolver().resolve("mx1.example.test", "A")


def test_nxdomain_fault_for_a_name_outside_the_zones(fake: FakeDNS) -> None:
    fake.fault("gmail.com", "MX", "nxdomain")
    response = _ask(fake, "gmail.com", "MX")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority == []


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_timeout_sends_no_reply(fake: FakeDNS, tcp: bool) -> None:
    fake.fault("example.test", "MX", "timeout")
    with pytest.raises(dns.exception.Timeout):
        _ask(fake, "example.test", "MX", tcp=tcp, timeout=0.3)
    assert fake.queries[0].rcode == "TIMEOUT"
    assert fake.queries[0].fault == "timeout"


def test_timeout_makes_the_resolver_hit_its_lifetime(fake: FakeDNS) -> None:
    fake.fault("example.test", "MX", "timeout")
    fake.lifetime = 0.4
    started = time.monotonic()
    with pytest.raises(dns.resolver.LifetimeTimeout):
        fake.sync_resolver().resolve("example.test", "MX")
    # Lower bound: the resolver waited; upper: 10x the lifetime, so a loaded CI host passes.
    assert 0.3 < time.monotonic() - started < 10 * fake.lifetime
    assert all(q.rcode == "TIMEOUT" for q in fake.queries)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_delay_answers_normally_after_the_delay(fake: FakeDNS, tcp: bool) -> None:
    fake.fault("example.test", "MX", "delay", seconds=0.25)
    started = time.monotonic()
    response = _ask(fake, "example.test", "MX", tcp=tcp)
    assert time.monotonic() - started >= 0.25
    assert response.answer[0][0].exchange.to_text() == "mx1.example.test."
    _ask(fake, "mx1.example.test", "A", tcp=tcp)
    assert [(q.name, q.fault) for q in fake.queries] == [
        ("example.test", "delay"),
        ("mx1.example.test", None),
    ]


def test_truncate_sets_tc_over_udp_and_the_resolver_retries_over_tcp(fake: FakeDNS) -> None:
    fake.fault("example.test", "MX", "truncate")
    udp = _ask(fake, "example.test", "MX")
    assert udp.flags & dns.flags.TC
    assert udp.answer == []
    tcp = _ask(fake, "example.test", "MX", tcp=True)
    assert not tcp.flags & dns.flags.TC
    assert tcp.answer
    fake.queries.clear()
    answer = fake.sync_resolver().resolve("example.test", "MX")
    assert str(answer[0].exchange) == "mx1.example.test."
    assert [(q.transport, q.truncated, q.fault) for q in fake.queries] == [
        ("udp", True, "truncate"),
        ("tcp", False, None),
    ]


def test_times_limits_a_fault_to_the_next_queries(fake: FakeDNS) -> None:
    fault = fake.fault("example.test", "MX", "servfail", times=2)
    rcodes = [_ask(fake, "example.test", "MX").rcode() for _ in range(3)]
    assert rcodes == [dns.rcode.SERVFAIL, dns.rcode.SERVFAIL, dns.rcode.NOERROR]
    assert fault.hits == 2
    assert fault.spent


def test_faults_apply_in_the_order_added_so_they_script_a_sequence(fake: FakeDNS) -> None:
    fake.fault("example.test", "MX", "servfail", times=1)
    fake.fault("example.test", "MX", "refused", times=1)
    rcodes = [_ask(fake, "example.test", "MX").rcode() for _ in range(3)]
    assert rcodes == [dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.NOERROR]


def test_a_fault_without_a_type_hits_every_type(fake: FakeDNS) -> None:
    fake.fault("mx1.example.test", "servfail")
    assert _ask(fake, "mx1.example.test", "A").rcode() == dns.rcode.SERVFAIL
    assert _ask(fake, "mx1.example.test", "AAAA").rcode() == dns.rcode.SERVFAIL
    assert _ask(fake, "example.test", "MX").rcode() == dns.rcode.NOERROR


def test_wildcard_fault_names(fake: FakeDNS) -> None:
    fake.fault("*.example.test", "A", "refused")
    assert _ask(fake, "mx1.example.test", "A").rcode() == dns.rcode.REFUSED
    assert _ask(fake, "example.test", "A").rcode() == dns.rcode.NOERROR  # not below itself
    fake.clear_faults()
    fake.fault("*", "servfail")
    assert _ask(fake, "example.test", "MX").rcode() == dns.rcode.SERVFAIL
    assert _ask(fake, "anything.example.org", "TXT").rcode() == dns.rcode.SERVFAIL


def test_fault_names_are_case_and_dot_insensitive(fake: FakeDNS) -> None:
    fake.fault("EXAMPLE.test.", "mx", "servfail")
    assert _ask(fake, "example.TEST", "MX").rcode() == dns.rcode.SERVFAIL
    assert fake.faults[0].name == "example.test"
    assert fake.faults[0].rdtype == "MX"


def test_clear_faults(fake: FakeDNS) -> None:
    fake.fault("example.test", "servfail")
    fake.clear_faults()
    assert fake.faults == []
    assert _ask(fake, "example.test", "MX").rcode() == dns.rcode.NOERROR


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("example.test", "MX"), {}, "fault() needs an action: one of servfail"),
        (("example.test", "MX", "explode"), {}, "unknown fault action 'explode'"),
        (("example.test", "delay"), {}, "a delay fault needs seconds > 0"),
        (("example.test", "delay"), {"seconds": 0}, "a delay fault needs seconds > 0"),
        (("example.test", "servfail"), {"seconds": 1}, "seconds= applies only to the 'delay'"),
        (("example.test", "servfail"), {"times": 0}, "times must be a positive int"),
        (("example.test", "BOGUS", "servfail"), {}, "unknown DNS record type 'BOGUS'"),
        (("bad..name", "servfail"), {}, "not a valid DNS name"),
    ],
)
def test_bad_fault_arguments_say_what_is_valid(
    fake: FakeDNS, args: tuple[str, ...], kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        fake.fault(*args, **kwargs)  # type: ignore[arg-type]
    assert fake.faults == []


def test_every_action_is_documented_in_fault_actions() -> None:
    assert FAULT_ACTIONS == ("servfail", "refused", "nxdomain", "timeout", "delay", "truncate")
