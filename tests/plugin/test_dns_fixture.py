"""The smtp_dns fixture, run in a pytester session: patched per test, restored after, xdist."""

from __future__ import annotations

import pytest

USES_THE_FIXTURE = """
import socket

import dns.resolver


def test_fixture_gives_a_patched_empty_fake(smtp_dns):
    assert len(smtp_dns.zones) == 0
    host, port = smtp_dns.nameserver
    assert host == "127.0.0.1" and port > 0
    smtp_dns.add_mx("example.test", "mx1.example.test", 10)
    smtp_dns.add_a("mx1.example.test", "127.0.0.2")
    assert str(dns.resolver.resolve("example.test", "MX")[0].exchange) == "mx1.example.test."
    assert socket.gethostbyname("mx1.example.test") == "127.0.0.2"
    assert smtp_dns.queries.names() == ["example.test", "mx1.example.test"]


def test_the_next_test_starts_empty(smtp_dns):
    assert len(smtp_dns.zones) == 0
    assert list(smtp_dns.queries) == []
    assert smtp_dns.faults == []
"""

RESTORED_AFTER_FAILURE = """
import socket

import dns.asyncresolver
import dns.resolver

ORIGINAL = (
    socket.getaddrinfo,
    socket.gethostbyname,
    dns.resolver.default_resolver,
    dns.asyncresolver.default_resolver,
    dns.resolver.BaseResolver.read_resolv_conf,
)


def _current():
    return (
        socket.getaddrinfo,
        socket.gethostbyname,
        dns.resolver.default_resolver,
        dns.asyncresolver.default_resolver,
        dns.resolver.BaseResolver.read_resolv_conf,
    )


def test_1_fails_while_patched(smtp_dns):
    smtp_dns.add_a("mx1.example.test", "127.0.0.2")
    smtp_dns.fault("example.test", "MX", "servfail")
    assert _current() != ORIGINAL
    assert socket.gethostbyname("mx1.example.test") == "127.0.0.9", "failing on purpose"


def test_2_nothing_leaked():
    assert _current() == ORIGINAL


def test_3_fresh_fake_after_a_failure(smtp_dns):
    assert len(smtp_dns.zones) == 0
    assert smtp_dns.faults == []
"""

XDIST = """
import socket

import pytest


@pytest.mark.parametrize("n", range(6))
def test_each_worker_has_its_own_fake(smtp_dns, n):
    smtp_dns.add_a(f"host{n}.example.test", f"127.0.0.{n + 2}")
    assert socket.gethostbyname(f"host{n}.example.test") == f"127.0.0.{n + 2}"
    assert len(smtp_dns.queries) == 1
"""


def test_smtp_dns_fixture_works(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USES_THE_FIXTURE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_patch_is_restored_after_a_failing_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(RESTORED_AFTER_FAILURE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*failing on purpose*"])


def test_smtp_dns_under_xdist(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(XDIST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=6)
