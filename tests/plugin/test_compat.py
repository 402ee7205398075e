"""``-p pytest_smtp.compat``: the incumbents' fixtures (smtpdfix's ``smtpd``, pytest-localserver's
``smtpserver``) running their typical test code on pytest_smtp's server, with the deprecation
warning; and no clash when the real plugin is installed."""

from __future__ import annotations

import pytest

# The real smtpdfix and pytest-localserver plugins (the bench extra installs them) stay out:
# these runs are about the bridge's own fixtures. Blocking an absent plugin is harmless.
INI = (
    "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    "addopts = -p no:smtpd -p no:localserver\n"
)

# The smtpdfix README's tests, as users write them.
SMTPDFIX_TESTS = """
import os
import smtplib
from email.mime.text import MIMEText


def test_sendmessage(smtpd):
    msg = MIMEText("Hello, world")
    msg["Subject"] = "Foo"
    msg["From"] = "from.addr@example.org"
    msg["To"] = "to.addr@example.org"
    with smtplib.SMTP(smtpd.hostname, smtpd.port) as client:
        client.send_message(msg)
    assert len(smtpd.messages) == 1
    [message] = smtpd.messages
    assert message["Subject"] == "Foo"
    assert message["X-MailFrom"] == "from.addr@example.org"
    assert message["X-RcptTo"] == "to.addr@example.org"
    assert smtpd.server.mailbox.one().subject == "Foo"


def test_custom_login(smtpd):
    smtpd.config.login_username = "foo"
    smtpd.config.login_password = "bar"
    smtpd.config.use_starttls = True
    with smtplib.SMTP(smtpd.hostname, smtpd.port) as client:
        client.starttls()
        client.login("foo", "bar")
        client.sendmail("a@example.org", ["b@example.org"], "Subject: s\\r\\n\\r\\nbody")
    assert len(smtpd.messages) == 1


def test_environment(smtpd):
    assert smtpd.config.use_starttls and smtpd.config.enforce_auth
    with smtplib.SMTP(smtpd.hostname, smtpd.port) as client:
        client.starttls()
        client.ehlo()
        code, _ = client.mail("a@example.org")
        assert code == 530  # enforce_auth: authentication first
        client.rset()
        client.login(os.environ["SMTPD_LOGIN_NAME"], "pw")
        client.sendmail("a@example.org", ["b@example.org"], "Subject: s\\r\\n\\r\\nbody")
    assert smtpd.messages[0]["X-RcptTo"] == "b@example.org"
"""

# pytest-localserver's documented use.
LOCALSERVER_TESTS = """
import smtplib


def test_outbox(smtpserver):
    host, port = smtpserver.addr
    with smtplib.SMTP(host, port) as client:
        client.sendmail("alice@example.test", ["bob@example.test", "carol@example.test"],
                        "Subject: Hello\\r\\n\\r\\nHi")
    assert len(smtpserver.outbox) == 1
    message = smtpserver.outbox[0]
    assert message["Subject"] == "Hello"
    assert message.details.mailfrom == "alice@example.test"
    assert message.details.rcpttos == ["bob@example.test", "carol@example.test"]


def test_is_the_smtp_server(smtpserver, smtp_server):
    assert smtpserver.addr == smtp_server.address and smtpserver.server is smtp_server
"""


def test_smtpdfix_tests_run_unchanged(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_smtpdfix_style=SMTPDFIX_TESTS)
    monkeypatch.setenv("SMTPD_LOGIN_NAME", "envuser")
    monkeypatch.setenv("SMTPD_LOGIN_PASSWORD", "pw")
    first = pytester.runpytest_subprocess(
        "-p", "pytest_smtp.compat", "-p", "no:randomly", "-k", "not environment"
    )
    first.assert_outcomes(passed=2, deselected=1)
    first.stdout.fnmatch_lines(
        ["*SMTPCompatWarning: the `smtpd` fixture comes from pytest_smtp.compat*use smtp_server*"]
    )
    monkeypatch.setenv("SMTPD_USE_STARTTLS", "yes")
    monkeypatch.setenv("SMTPD_ENFORCE_AUTH", "1")
    pytester.runpytest_subprocess("-p", "pytest_smtp.compat", "-k", "environment").assert_outcomes(
        passed=1, deselected=2
    )


def test_localserver_tests_run_unchanged(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_localserver_style=LOCALSERVER_TESTS)
    result = pytester.runpytest_subprocess("-p", "pytest_smtp.compat")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*the `smtpserver` fixture comes from pytest_smtp.compat*"])


def test_without_the_plugin_the_names_do_not_exist(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_localserver_style=LOCALSERVER_TESTS)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*fixture 'smtpserver' not found*"])


def test_a_bad_smtpd_environment_is_a_clear_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile("def test_it(smtpd):\n    pass\n")
    monkeypatch.setenv("SMTPD_USE_STARTTLS", "perhaps")
    result = pytester.runpytest_subprocess("-p", "pytest_smtp.compat")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*SMTPD_USE_STARTTLS must be true or false*"])


@pytest.mark.parametrize(
    ("package", "fixture", "plugin"),
    [("smtpdfix", "smtpd", "smtpd"), ("pytest_localserver", "smtpserver", "localserver")],
)
def test_an_installed_incumbent_keeps_its_fixture_and_we_say_so(
    pytester: pytest.Pytester, package: str, fixture: str, plugin: str
) -> None:
    """A stand-in for the real package (the bench extra installs it): its plugin module
    provides the fixture; the bridge steps aside and says so at startup."""
    pytester.makeini(INI)
    pkg = pytester.mkpydir(package)
    (pkg / "plugin.py").write_text(
        f"import pytest\n\n@pytest.fixture\ndef {fixture}():\n    return 'the real {package}'\n"
    )
    pytester.makepyfile(f"def test_it({fixture}):\n    assert {fixture} == 'the real {package}'\n")
    result = pytester.runpytest_subprocess(
        "-p", f"{package}.plugin", "-p", "pytest_smtp.compat", "-W", "default"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f"*pytest_smtp.compat: {package}.plugin ({package}.plugin) is installed and active, "
            f"so the `{fixture}` fixture is its own*-p no:{plugin}*"
        ]
    )


def test_marker_and_factory_take_a_handler(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
import smtplib
import pytest


class Rejecting:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.endswith("@blocked.test"):
            return "550 5.7.1 Blocked"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.mark.smtp(handler=Rejecting())
def test_marker(smtp_server):
    with smtplib.SMTP(*smtp_server.address) as client:
        to = ["b@ok.test", "c@blocked.test"]
        refused = client.sendmail("a@x.test", to, "Subject: s\\r\\n\\r\\nx")
    assert refused == {"c@blocked.test": (550, b"5.7.1 Blocked")}
    assert smtp_server.mailbox.one().rcpt_tos == ["b@ok.test"]


def test_factory(smtp_server_factory):
    server = smtp_server_factory(handler=Rejecting())
    with smtplib.SMTP(*server.address) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("a@x.test", ["c@blocked.test"], "Subject: s\\r\\n\\r\\nx")
    assert server.transactions[-1].recipients[0].reply.code == 550


@pytest.mark.smtp(handler="mymodule:Handler")
def test_text_handler(smtp_server):
    pass
"""
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*handler must be an aiosmtpd-style handler object*"])
