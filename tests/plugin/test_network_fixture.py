"""The mail network fixture, and its deprecated old name."""

from __future__ import annotations

import pytest


def test_smtp_mail_network_and_its_old_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.filterwarnings("error::DeprecationWarning")
def test_new(smtp_mail_network):
    network = smtp_mail_network("example.test")
    assert network.submission.name == "smtp.example.test"

@pytest.mark.filterwarnings("error::DeprecationWarning")
def test_old_warns(smtp_relay_chain):
    pass

def test_old_is_the_same_builder(smtp_relay_chain, smtp_mail_network):
    assert smtp_relay_chain is smtp_mail_network
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at setup of test_old_warns*", "*smtp_relay_chain fixture is deprecated*"]
    )
