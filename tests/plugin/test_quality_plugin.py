"""The plugin side of issue 17: ``strict`` fails a test at teardown on lint errors of its mail;
``authenticate`` verifies on receipt against ``smtp_dns`` (marker, flag, ini, factory)."""

from __future__ import annotations

import pytest

# A message with two lint errors (bare LF line ends, no Date) and one warning (no Message-ID).
SENDERS = """
import smtplib

BAD = b"From: shop@example.test\\nTo: ann@inbox.test\\nSubject: hi\\n\\nbody\\n"
GOOD = (
    b"From: shop@example.test\\r\\nTo: ann@inbox.test\\r\\nSubject: hi\\r\\n"
    b"Date: Sun, 06 Dec 2026 09:00:00 +0000\\r\\nMessage-ID: <1@example.test>\\r\\n\\r\\nbody\\r\\n"
)

def send(server, data):
    with smtplib.SMTP(*server.address) as client:
        client.ehlo("mail.example.test")
        client.sendmail("shop@example.test", ["ann@inbox.test"], data)
"""


def _strict_tests(marker: str = "") -> str:
    return (
        SENDERS
        + f"""
import pytest

{marker}
def test_bad(smtp_server):
    send(smtp_server, BAD)

{marker}
def test_good(smtp_server):
    send(smtp_server, GOOD)
"""
    )


def test_strict_marker_fails_the_test_at_teardown_listing_the_errors(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(_strict_tests("@pytest.mark.smtp(strict=True)"))
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-rA")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_bad*",
            "*is strict (strict=True) and mail captured in this test has lint errors:",
            "*error bare-lf (RFC 5321 §2.3.8)*",
            "*error missing-date (RFC 5322 §3.6)*",
            "*@pytest.mark.smtp(strict=False)*",
            "*- Captured smtp lint <SMTPServer*",
        ]
    )
    # Only errors fail a test: the warning (missing-message-id) is not listed.
    assert "missing-message-id" not in result.stdout.str()


def test_without_strict_the_same_mail_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(_strict_tests())
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("args", "ini"),
    [
        (["--smtp-strict=true"], ""),
        ([], "smtp_strict = yes"),
        (["--smtp-strict=on"], "smtp_strict = false"),  # the command line beats the ini file
    ],
)
def test_strict_from_the_command_line_or_the_ini_file(
    pytester: pytest.Pytester, args: list[str], ini: str
) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(_strict_tests())
    result = pytester.runpytest_subprocess("-p", "no:randomly", *args)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_bad*", "*error bare-lf*"])


def test_the_marker_turns_strict_off_for_one_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(_strict_tests("@pytest.mark.smtp(strict=False)"))
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--smtp-strict=true")
    result.assert_outcomes(passed=2)


def test_strict_factory_servers_are_checked_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SENDERS
        + """
def test_factory(smtp_server_factory):
    send(smtp_server_factory(strict=True), BAD)
    send(smtp_server_factory(), BAD)
"""
    )
    # -rN: no short summary, which repeats the error text in full under CI=true.
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-rN")
    result.assert_outcomes(passed=1, errors=1)
    assert result.stdout.str().count("is strict (strict=True)") == 1  # only the strict server


def test_a_bad_strict_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(smtp_server):\n    pass\n")
    result = pytester.runpytest_subprocess("--smtp-strict=maybe")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--smtp-strict / smtp_strict*strict must be true or false*"])


AUTH_TESTS = (
    SENDERS
    + """
import dkim, pytest

@pytest.fixture
def signed(smtp_dns):
    smtp_dns.spf("example.test", "v=spf1 ip4:127.0.0.0/8 -all")
    smtp_dns.dmarc("example.test", "v=DMARC1; p=reject")
    key = smtp_dns.dkim_key("example.test")
    return dkim.sign(GOOD, b"s1", b"example.test", key) + GOOD

MARK

def test_verified_on_receipt(smtp_server, signed):
    send(smtp_server, signed)
    auth = smtp_server.mailbox.one().auth
    assert (auth.dkim_result, auth.spf.result, auth.dmarc.result) == ("pass", "pass", "pass")

MARK

def test_unsigned_mail(smtp_server, signed, smtp_dns):
    smtp_dns.add_zone("other.test")  # publishes nothing: no DMARC policy
    send(smtp_server, GOOD.replace(b"example.test", b"other.test"))
    assert smtp_server.mailbox.one().auth.dmarc.result == "none"
    send(smtp_server, GOOD)
    message = smtp_server.mailbox.wait_for(count=2)[1]
    assert message.auth.dkim_result == "none" and message.auth.dmarc.result == "pass"
"""
)


def test_authenticate_marker_verifies_against_smtp_dns(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(AUTH_TESTS.replace("MARK", "@pytest.mark.smtp(authenticate=True)"))
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize(("args", "ini"), [(["--smtp-authenticate=true"], ""), ([], "1")])
def test_authenticate_from_the_command_line_or_the_ini_file(
    pytester: pytest.Pytester, args: list[str], ini: str
) -> None:
    if ini:
        pytester.makeini(f"[pytest]\nsmtp_authenticate = {ini}\n")
    pytester.makepyfile(AUTH_TESTS.replace("MARK", ""))
    result = pytester.runpytest_subprocess("-p", "no:randomly", *args)
    result.assert_outcomes(passed=2)


def test_without_authenticate_message_auth_says_how(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(AUTH_TESTS.replace("MARK", ""))
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*AttributeError: message.auth: the server did not verify*"])


def test_factory_and_a_test_that_does_not_ask_for_smtp_dns(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SENDERS
        + """
def test_factory(smtp_server_factory):
    server = smtp_server_factory(authenticate=True)
    send(server, GOOD)
    # smtp_dns was brought in for the server: example.test is in no fake zone, so the
    # lookups are refused, as by an unreachable nameserver.
    assert server.mailbox.one().auth.spf.result == "temperror"
    plain = smtp_server_factory()
    send(plain, GOOD)
    assert not hasattr(plain.mailbox.one(), "auth")
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1)
