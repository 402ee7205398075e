"""How-to: simulate DNS failures (docs/how-to/dns-failures.md)."""

from __future__ import annotations

import dns.exception
import dns.resolver
import pytest


# The code under test: look up MX records, retrying temporary failures once.
class TemporaryDNSError(Exception):
    """Try again later (SMTP would answer 4xx)."""


def lookup_mx(domain: str, lifetime: float = 5.0) -> list[str]:
    for attempt in range(2):
        try:
            answer = dns.resolver.resolve(domain, "MX", lifetime=lifetime)
        except (dns.resolver.NoNameservers, dns.exception.Timeout):
            if attempt == 1:
                raise TemporaryDNSError(domain) from None
        else:
            return [str(r.exchange).rstrip(".") for r in answer]
    raise AssertionError("unreachable")


@pytest.fixture
def zone(smtp_dns):
    smtp_dns.add_mx("example.test", "mx1.example.test")
    return smtp_dns


def test_one_servfail_is_retried(zone):
    zone.fault("example.test", "MX", "servfail", times=1)
    assert lookup_mx("example.test") == ["mx1.example.test"]
    assert [q.rcode for q in zone.queries] == ["SERVFAIL", "NOERROR"]


def test_persistent_servfail_is_a_temporary_error(zone):
    zone.fault("example.test", "MX", "servfail")
    with pytest.raises(TemporaryDNSError):
        lookup_mx("example.test")


def test_a_nameserver_that_never_answers(zone):
    zone.fault("example.test", "MX", "timeout")
    with pytest.raises(TemporaryDNSError):
        lookup_mx("example.test", lifetime=0.2)
    assert {q.rcode for q in zone.queries} == {"TIMEOUT"}


def test_a_slow_answer_still_arrives(zone):
    zone.fault("example.test", "MX", "delay", seconds=0.1)
    assert lookup_mx("example.test") == ["mx1.example.test"]


def test_truncated_udp_answer_is_retried_over_tcp(zone):
    zone.fault("example.test", "MX", "truncate")
    assert lookup_mx("example.test") == ["mx1.example.test"]
    assert [(q.transport, q.truncated) for q in zone.queries] == [("udp", True), ("tcp", False)]
