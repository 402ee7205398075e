"""The pytest surface, run in a separate pytest with pytester: options, ini, markers, reports."""

from __future__ import annotations

from pathlib import Path

import pytest

SEND = """
import smtplib

def send(server, to="bob@example.test", subject="Hi"):
    with smtplib.SMTP(*server.address) as client:
        text = f"From: alice@example.test\\r\\nTo: {to}\\r\\nSubject: {subject}\\r\\n\\r\\nbody"
        client.sendmail("alice@example.test", [to], text)
"""


def test_fixtures_are_listed_with_docstrings(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest("--fixtures")
    result.stdout.fnmatch_lines(
        [
            "*smtp_server*",
            "*A running*SMTPServer*",
            "*smtp_mailbox*",
            "*smtp_server_factory*",
            "*smtp_tls*",
        ]
    )


def test_smtp_server_is_reset_between_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
def test_one(smtp_server):
    send(smtp_server)
    assert len(smtp_server.mailbox) == 1

def test_two(smtp_server, smtp_mailbox):
    assert len(smtp_mailbox) == 0
    send(smtp_server)
    assert smtp_mailbox.one().subject == "Hi"

def test_same_server_object(smtp_server, request):
    assert smtp_server is request.getfixturevalue("smtp_server")
"""
    )
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=3)


def test_marker_options_give_a_server_with_those_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
import pytest, smtplib

@pytest.mark.smtp(max_size=100, hostname="mx.marked.test")
def test_marked(smtp_server):
    assert smtp_server.hostname == "mx.marked.test"
    with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPSenderRefused)):
        send(smtp_server, subject="x" * 500)

def test_unmarked(smtp_server):
    assert smtp_server.hostname != "mx.marked.test"
"""
    )
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=2)


NESTED_INNER = """
import pytest

@pytest.mark.smtp(hostname="inner.test")
def test_inner(smtp_server):
    assert smtp_server.hostname == "inner.test"
"""


def test_smtp_server_reads_its_own_tests_markers_around_a_nested_run(
    pytester: pytest.Pytester,
) -> None:
    """smtp_server finds its test without ``request`` (fixtures._running): a pytest run inside
    a test (pytester, in process) has tests of its own; around it, each smtp_server reads the
    markers of the test it was set up for, and the outer test keeps its own server."""
    pytester.makepyfile(
        SEND
        + f"""
import pytest

pytest_plugins = ["pytester"]
INNER = {NESTED_INNER!r}

@pytest.mark.smtp(hostname="outer.test")
def test_outer(smtp_server, pytester):
    pytester.makepyfile(test_inner=INNER)
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert smtp_server.hostname == "outer.test"
    send(smtp_server)
    assert smtp_server.mailbox.one().subject == "Hi"

@pytest.mark.smtp(hostname="late.test")
def test_fixture_requested_after_the_nested_run(request, pytester):
    pytester.makepyfile(test_inner=INNER)
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert request.getfixturevalue("smtp_server").hostname == "late.test"
"""
    )
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=2)


def test_bad_marker_option_is_a_usage_error_naming_valid_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.smtp(tls="sometimes")
def test_bad(smtp_server):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-q")
    result.stdout.fnmatch_lines(["*tls must be None, 'starttls' or 'implicit'*"])
    assert result.ret != 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--smtp-transcript=sometimes"], "*--smtp-transcript*on-failure, always, never*"),
        (["--smtp-timeout=-1"], "*--smtp-timeout*more than 0 seconds*"),
        (["--smtp-max-size=lots"], "*--smtp-max-size*whole number*"),
        (["--smtp-tls=maybe"], "*--smtp-tls*'starttls' or 'implicit'*"),
        (["--smtp-seed=abc"], "*--smtp-seed*whole number*"),
    ],
)
def test_bad_option_values_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_ini_twin_and_cli_precedence(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
[pytest]
smtp_hostname = ini.test
smtp_max_size = 2K
smtp_timeout = 7
"""
    )
    pytester.makepyfile(
        """
import pytest

def test_settings(smtp_server, request):
    expected = request.config.getoption("smtp_hostname") or "ini.test"
    assert smtp_server.hostname == expected
    assert smtp_server.options.max_size == 2048
    assert smtp_server.mailbox.default_timeout == 7

@pytest.mark.smtp(hostname="marker.test")
def test_marker_beats_cli(smtp_server):
    assert smtp_server.hostname == "marker.test"
"""
    )
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=2)
    pytester.runpytest_subprocess("-q", "--smtp-hostname=cli.test").assert_outcomes(passed=2)


def test_report_header_shows_seed_and_settings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("-v", "--smtp-seed=1234")
    result.stdout.fnmatch_lines(["smtp: seed=1234 (replay with --smtp-seed=1234), host=127.0.0.1*"])


def test_transcript_section_on_failure_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
def test_fails(smtp_server):
    send(smtp_server)
    assert len(smtp_server.mailbox) == 2

def test_passes(smtp_server):
    send(smtp_server, subject="passing")
"""
    )
    result = pytester.runpytest_subprocess("-rA")
    result.assert_outcomes(passed=1, failed=1)
    # smtplib writes "mail FROM:" up to Python 3.12 and "mail from:" from 3.13.
    result.stdout.re_match_lines(
        ["(?i).*Captured smtp call", "(?i).*C: mail from:<alice@example.test>"]
    )
    assert "passing" not in result.stdout.str()


def test_transcript_always_and_never(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SEND + "\ndef test_ok(smtp_server):\n    send(smtp_server)\n")
    always = pytester.runpytest_subprocess("-rA", "--smtp-transcript=always")
    always.stdout.fnmatch_lines(["*Captured smtp call*"])
    pytester.makepyfile(SEND + "\ndef test_ok(smtp_server):\n    send(smtp_server)\n    assert 0\n")
    never = pytester.runpytest_subprocess("--smtp-transcript=never")
    assert "Captured smtp" not in never.stdout.str()


def test_save_dir_writes_eml_files(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(
        SEND
        + """
import pytest

@pytest.mark.parametrize("n", [1, 2])
def test_send(smtp_server, n):
    send(smtp_server, subject=f"saved {n}")
"""
    )
    out = tmp_path / "mail"
    pytester.runpytest_subprocess(f"--smtp-save-dir={out}").assert_outcomes(passed=2)
    files = sorted(out.rglob("*.eml"))
    assert len(files) == 2
    assert all("[" not in f.parent.name and "/" not in f.parent.name for f in files)
    assert b"Subject: saved 1" in files[0].read_bytes()


def test_assertion_failure_shows_captured_messages(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
def test_compare(smtp_server):
    send(smtp_server, subject="Welcome")
    send(smtp_server, to="carol@example.test", subject="Invoice")
    assert list(smtp_server.mailbox) == []
"""
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "Welcome" in text and "Invoice" in text
    assert "object at 0x" not in text


def test_factory_gives_separate_servers_stopped_after_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
import socket

PORTS = []

def test_factory(smtp_server_factory):
    a = smtp_server_factory(hostname="a.test")
    b = smtp_server_factory(max_recipients=1)
    assert a.port != b.port
    send(a)
    assert len(a.mailbox) == 1 and len(b.mailbox) == 0
    PORTS.append(a.port)

def test_stopped():
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", PORTS[0])) != 0
"""
    )
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=2)


def test_smtp_fault_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
import pytest, smtplib

@pytest.mark.smtp_fault("rcpt", "reject", 550, match="bob@*", message="No such user here")
def test_rejected(smtp_server):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        send(smtp_server)
    assert info.value.recipients["bob@example.test"][0] == 550
    assert smtp_server.transactions[0].outcome == "rejected"

def test_rules_cleared(smtp_server):
    send(smtp_server)
    assert len(smtp_server.mailbox) == 1
"""
    )
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=2)


def test_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(smtp_server): pass")
    result = pytester.runpytest_subprocess("-p", "no:smtp")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'smtp_server' not found*"])


def test_xdist_workers_get_their_own_servers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
import pytest

@pytest.mark.parametrize("n", range(8))
def test_send(smtp_server, n):
    send(smtp_server, subject=f"n{n}")
    assert [m.subject for m in smtp_server.mailbox] == [f"n{n}"]
"""
    )
    pytester.runpytest_subprocess("-n", "2", "-q").assert_outcomes(passed=8)


def test_xdist_workers_use_the_seed_in_the_header(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.parametrize("n", range(4))
def test_seed(smtp_server, n, request):
    print("SEED", smtp_server.faults.seed)
"""
    )
    result = pytester.runpytest_subprocess("-n", "2", "-rP")
    result.assert_outcomes(passed=4)
    header = next(line for line in result.outlines if line.startswith("smtp: seed="))
    seed = header.split("=")[1].split()[0]
    seeds = {line.split()[1] for line in result.outlines if line.startswith("SEED ")}
    assert seeds == {seed}


def test_async_test_with_aiosmtplib(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import aiosmtplib, pytest
from email.message import EmailMessage

@pytest.mark.asyncio
async def test_async(smtp_server):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@x.test", "b@y.test", "async"
    msg.set_content("hello")
    await aiosmtplib.send(msg, hostname=smtp_server.host, port=smtp_server.port)
    [got] = await smtp_server.mailbox.wait_for_async(subject="async", timeout=5)
    assert got.text.strip() == "hello"

@pytest.mark.anyio
async def test_anyio(smtp_server):
    await aiosmtplib.send("Subject: any\\r\\n\\r\\nx", sender="a@x.test", recipients=["b@y.test"],
                          hostname=smtp_server.host, port=smtp_server.port)
    assert smtp_server.mailbox.one().subject == "any"

@pytest.fixture
def anyio_backend():
    return "asyncio"
"""
    )
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=2)


def test_retrieval_transcript_in_failure_report_with_password_masked(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        SEND
        + """
import imaplib

def test_read(smtp_server, smtp_imap):
    send(smtp_server, subject="read me")
    client = imaplib.IMAP4(smtp_imap.host, smtp_imap.port)
    client.login("bob@example.test", "sekrit-pw")
    client.select("INBOX")
    client.logout()
    assert False, "show the report"
"""
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    section = result.stdout.str().split("Captured smtp call", 1)[1]
    assert "SELECT INBOX" in section
    assert "LOGIN" in section
    assert "sekrit-pw" not in section


def test_readers_greet_with_the_smtp_servers_name_and_ca(pytester: pytest.Pytester) -> None:
    """smtp_pop3/smtp_imap (and their factories) present the hostname and CA of the SMTP
    server they read for, so a marked server's name reaches the recipient's program too."""
    pytester.makepyfile(
        """
import imaplib, poplib, pytest

@pytest.mark.smtp(hostname="mx.marked.test")
def test_marked(smtp_server, smtp_imap, smtp_pop3, smtp_imap_factory):
    with imaplib.IMAP4(smtp_imap.host, smtp_imap.port) as client:
        assert b"mx.marked.test" in client.welcome
    pop = poplib.POP3(smtp_pop3.host, smtp_pop3.port)
    assert b"mx.marked.test" in pop.getwelcome()
    pop.quit()
    other = smtp_imap_factory(tls="implicit")
    assert other.hostname == "mx.marked.test" and other.ca is smtp_server.ca
    with imaplib.IMAP4_SSL(
        other.host, other.port, ssl_context=smtp_server.ca.client_context()
    ) as client:
        assert b"mx.marked.test" in client.welcome

def test_unmarked(smtp_server, smtp_imap):
    assert smtp_imap.hostname == smtp_server.hostname != "mx.marked.test"
"""
    )
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=2)
