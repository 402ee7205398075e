"""A failing assertion helper points at the test's line, not into the helper's source."""

from __future__ import annotations

import pytest

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def test_failing_assert_sent_report_shows_the_test_not_the_helper(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
from pytest_smtp import assert_sent

def test_nothing_sent(smtp_server):
    assert_sent(smtp_server, to="nobody@example.test")
"""
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '>       assert_sent(smtp_server, to="nobody@example.test")',
            "E       AssertionError: assert_sent: expected exactly 1 message matching*",
        ]
    )
    text = result.stdout.str()
    assert "def assert_sent" not in text
    assert "_mailbox_of(" not in text and "asserts.py" not in text


def test_failing_relay_helper_report_shows_the_test_not_the_helper(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
from pytest_smtp import assert_queued

def test_nothing_queued(smtp_mail_network):
    network = smtp_mail_network(domain=None)
    assert_queued(network, "bob@example.test")
"""
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '>       assert_queued(network, "bob@example.test")',
            "E       AssertionError: expected <bob@example.test> to be deferred*",
        ]
    )
    assert "def assert_queued" not in result.stdout.str()


def test_old_relay_names_warn_and_keep_working(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
import pytest
from pytest_smtp.relay import assert_deferred, assert_dropped

def test_old_names(smtp_mail_network):
    network = smtp_mail_network(domain=None)
    with pytest.warns(DeprecationWarning, match="use pytest_smtp.relay.assert_queued"):
        with pytest.raises(AssertionError, match="to be deferred"):
            assert_deferred(network, "bob@example.test")
    with pytest.warns(DeprecationWarning, match="use pytest_smtp.relay.assert_discarded"):
        with pytest.raises(AssertionError, match="to be dropped"):
            assert_dropped(network, "bob@example.test")
"""
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
