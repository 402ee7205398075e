"""Strict teardown: an internal server error fails the test that owns the server."""

from __future__ import annotations

import pytest


def test_rule_exception_answers_451_and_fails_the_test_at_teardown(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
import smtplib, pytest

def boom(ctx):
    raise RuntimeError("rule exploded")

def test_owner(smtp_server):
    smtp_server.faults.reject("rcpt", predicate=boom)
    with smtplib.SMTP(*smtp_server.address) as client:
        client.ehlo()
        client.mail("a@x.test")
        code, text = client.rcpt("b@y.test")
        assert (code, text[:5]) == (451, b"4.3.0")
        # the envelope was reset: the next transaction starts clean
        assert client.mail("c@x.test")[0] == 250
    txn = smtp_server.transactions[0]
    assert txn.outcome == "deferred" and "rule exploded" in (txn.error or "")

def test_next_test_is_clean(smtp_server):
    assert smtp_server.errors == []
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_owner*", "*rule exploded*"])


def test_stopped_factory_servers_never_hang_the_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import socket

def test_leave_a_client_mid_data(smtp_server_factory):
    server = smtp_server_factory()
    s = socket.create_connection(server.address)
    s.recv(1024)
    s.sendall(b"EHLO x\\r\\nMAIL FROM:<a@x.test>\\r\\nRCPT TO:<b@y.test>\\r\\nDATA\\r\\npartial")
    # the test ends with the client still connected mid-DATA
"""
    )
    result = pytester.runpytest_subprocess("--timeout=10")
    result.assert_outcomes(passed=1)
