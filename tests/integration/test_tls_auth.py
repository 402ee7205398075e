"""TLS (STARTTLS, implicit) and AUTH with real clients: smtplib, aiosmtplib and swaks."""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
import shutil
import smtplib
import socket
import ssl
import subprocess

import aiosmtplib
import pytest

from pytest_smtp import SMTPServer
from pytest_smtp.smtp.options import OptionError
from pytest_smtp.smtp.tls import default_ca

MSG = "From: a@x.test\r\nTo: b@y.test\r\nSubject: tls\r\n\r\nbody\r\n"
USERS = {"alice": "s3cret", "bob": "hunter2"}


def client_context() -> ssl.SSLContext:
    return default_ca().client_context()


def test_starttls_records_tls_facts() -> None:
    with (
        SMTPServer(tls="starttls", hostname="mail.test") as srv,
        smtplib.SMTP(*srv.address, timeout=5) as client,
    ):
        client.ehlo()
        assert client.has_extn("starttls")
        client.starttls(context=client_context())
        client.sendmail("a@x.test", ["b@y.test"], MSG)
        session = srv.mailbox.one().session
        assert session.tls and session.tls_mode == "starttls"
        assert session.tls_version in ("TLSv1.2", "TLSv1.3")
        assert session.tls_cipher


def test_implicit_tls() -> None:
    with (
        SMTPServer(tls="implicit") as srv,
        smtplib.SMTP_SSL(*srv.address, context=client_context(), timeout=5) as client,
    ):
        client.sendmail("a@x.test", ["b@y.test"], MSG)
        assert srv.mailbox.one().session.tls_mode == "implicit"


def test_certificate_covers_hostname_localhost_and_ip() -> None:
    # Also the regression test of an implicit-TLS race seen on Python 3.10 only (tox runs the
    # whole suite there): a ClientHello read before the SSL protocol was in place was lost.
    with SMTPServer(tls="implicit", hostname="mx.cert.test") as srv:
        for name in ("mx.cert.test", "localhost", "127.0.0.1"):
            with (
                socket.create_connection(srv.address, timeout=5) as raw,
                client_context().wrap_socket(raw, server_hostname=name) as tls,
            ):
                assert tls.recv(100).startswith(b"220 mx.cert.test")


def test_require_tls_refuses_mail_before_starttls() -> None:
    with (
        SMTPServer(tls="starttls", require_tls=True) as srv,
        smtplib.SMTP(*srv.address, timeout=5) as client,
    ):
        client.ehlo()
        code, text = client.mail("a@x.test")
        assert (code, text) == (530, b"5.7.0 Must issue a STARTTLS command first")
        client.starttls(context=client_context())
        client.sendmail("a@x.test", ["b@y.test"], MSG)
        assert len(srv.mailbox) == 1


def test_commands_pipelined_after_starttls_are_discarded() -> None:
    """CVE-2024-34083: plaintext injected after STARTTLS must not run after the upgrade."""
    with SMTPServer(tls="starttls") as srv:
        raw = socket.create_connection(srv.address, timeout=5)
        reader = raw.makefile("rb")
        reader.readline()
        raw.sendall(b"EHLO x.test\r\n")
        while not reader.readline().startswith(b"250 "):
            pass
        raw.sendall(b"STARTTLS\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@y.test>\r\n")
        assert reader.readline().startswith(b"220")
        tls = client_context().wrap_socket(raw, server_hostname="localhost")
        tls.sendall(b"EHLO x.test\r\n")
        data = b""
        while b"\r\n250 " not in data and not data.startswith(b"250 "):
            data += tls.recv(4096)
        tls.sendall(b"RCPT TO:<b@y.test>\r\n")
        assert tls.recv(4096).startswith(b"503")  # no MAIL survived the upgrade
        tls.close()
        assert all(t.mail_from != "evil@x.test" for t in srv.transactions)
        assert any("discarded" in line for line in srv.transcript)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_login_each_mechanism_after_starttls(mechanism: str) -> None:
    with (
        SMTPServer(tls="starttls", auth=USERS) as srv,
        smtplib.SMTP(*srv.address, timeout=5) as client,
    ):
        client.starttls(context=client_context())
        client.ehlo()
        client.user, client.password = "alice", "s3cret"
        code, _ = client.auth(
            mechanism, getattr(client, "auth_" + mechanism.lower().replace("-", "_"))
        )
        assert code == 235
        client.sendmail("a@x.test", ["b@y.test"], MSG)
        session = srv.mailbox.one().session
        assert (session.auth_mechanism, session.auth_user) == (mechanism, "alice")
        assert all("s3cret" not in line for line in srv.transcript)


def test_auth_over_implicit_tls() -> None:
    with (
        SMTPServer(tls="implicit", auth=USERS) as srv,
        smtplib.SMTP_SSL(*srv.address, context=client_context(), timeout=5) as client,
    ):
        client.login("bob", "hunter2")
        client.sendmail("a@x.test", ["b@y.test"], MSG)
        assert srv.mailbox.one().session.auth_user == "bob"


def test_wrong_password_is_535() -> None:
    with (
        SMTPServer(tls="implicit", auth=USERS) as srv,
        smtplib.SMTP_SSL(*srv.address, context=client_context(), timeout=5) as client,
    ):
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.login("alice", "wrong")
        assert info.value.smtp_code == 535
        assert info.value.smtp_error.startswith(b"5.7.8")
        # smtplib tries each offered mechanism: every failed attempt is on record
        attempts = srv.transactions.filter(stage="auth")
        assert attempts and all(t.outcome == "rejected" for t in attempts)
        assert all("wrong" not in line for line in srv.transcript)


def test_auth_any_accepts_any_credentials() -> None:
    with (
        SMTPServer(tls="implicit", auth="any") as srv,
        smtplib.SMTP_SSL(*srv.address, context=client_context(), timeout=5) as client,
    ):
        client.login("whoever", "whatever")
        client.sendmail("a@x.test", ["b@y.test"], MSG)
        assert srv.mailbox.one().session.auth_user == "whoever"


def test_auth_in_the_clear_is_538_by_default() -> None:
    with (
        SMTPServer(tls="starttls", auth=USERS) as srv,
        smtplib.SMTP(*srv.address, timeout=5) as client,
    ):
        client.ehlo()
        assert not client.has_extn("auth")
        code, text = client.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice\0s3cret").decode())
        assert (code, text[:6]) == (538, b"5.7.11")


def test_auth_without_tls_when_allowed() -> None:
    with (
        SMTPServer(auth=USERS, auth_require_tls=False) as srv,
        smtplib.SMTP(*srv.address, timeout=5) as client,
    ):
        client.login("alice", "s3cret")
        client.sendmail("a@x.test", ["b@y.test"], MSG)
        assert srv.mailbox.one().session.auth_user == "alice"


def test_auth_without_tls_setting_is_a_clear_error() -> None:
    with pytest.raises(OptionError, match="auth_require_tls=False"):
        SMTPServer(auth=USERS)


def test_require_auth_refuses_mail_before_login() -> None:
    with (
        SMTPServer(auth=USERS, auth_require_tls=False, require_auth=True) as srv,
        smtplib.SMTP(*srv.address, timeout=5) as client,
    ):
        client.ehlo()
        assert client.mail("a@x.test") == (530, b"5.7.0 Authentication required")
        assert srv.transactions[0].outcome == "rejected"


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("AUTH PLAIN !!!notbase64", 501),
        ("AUTH PLAIN " + base64.b64encode(b"no-nuls").decode(), 501),
        ("AUTH NTLM", 504),
        ("AUTH", 501),
    ],
)
def test_malformed_auth_exchanges(command: str, code: int) -> None:
    with (
        SMTPServer(auth=USERS, auth_require_tls=False) as srv,
        smtplib.SMTP(*srv.address, timeout=5) as client,
    ):
        client.ehlo()
        verb, _, arg = command.partition(" ")
        assert client.docmd(verb, arg)[0] == code


def test_auth_cancelled_with_star() -> None:
    with (
        SMTPServer(auth=USERS, auth_require_tls=False) as srv,
        smtplib.SMTP(*srv.address, timeout=5) as client,
    ):
        client.ehlo()
        assert client.docmd("AUTH", "LOGIN")[0] == 334
        assert client.docmd("*")[0] == 501


def test_xoauth2_when_enabled() -> None:
    with SMTPServer(
        auth={"alice": "token-1"}, auth_require_tls=False, auth_mechanisms=["XOAUTH2", "PLAIN"]
    ) as srv:
        with smtplib.SMTP(*srv.address, timeout=5) as client:
            client.ehlo()
            assert "XOAUTH2" in client.esmtp_features["auth"]
            good = base64.b64encode(b"user=alice\x01auth=Bearer token-1\x01\x01").decode()
            assert client.docmd("AUTH", "XOAUTH2 " + good)[0] == 235
        with smtplib.SMTP(*srv.address, timeout=5) as client:
            client.ehlo()
            bad = base64.b64encode(b"user=alice\x01auth=Bearer nope\x01\x01").decode()
            assert client.docmd("AUTH", "XOAUTH2 " + bad)[0] == 334
            assert client.docmd("")[0] == 535


def test_cram_md5_digest_is_checked() -> None:
    with (
        SMTPServer(auth=USERS, auth_require_tls=False) as srv,
        smtplib.SMTP(*srv.address, timeout=5) as client,
    ):
        client.ehlo()
        code, challenge = client.docmd("AUTH", "CRAM-MD5")
        assert code == 334
        nonce = base64.b64decode(challenge)
        digest = hmac.new(b"not-the-password", nonce, "md5").hexdigest()
        assert client.docmd(base64.b64encode(f"alice {digest}".encode()).decode())[0] == 535


def test_aiosmtplib_start_tls_and_use_tls() -> None:
    async def main() -> None:
        with SMTPServer(tls="starttls", auth=USERS) as srv:
            await aiosmtplib.send(
                MSG,
                sender="a@x.test",
                recipients=["b@y.test"],
                hostname=srv.host,
                port=srv.port,
                start_tls=True,
                tls_context=client_context(),
                username="alice",
                password="s3cret",
            )
            assert srv.mailbox.one().session.auth_user == "alice"
        with SMTPServer(tls="implicit") as srv:
            await aiosmtplib.send(
                MSG,
                sender="a@x.test",
                recipients=["b@y.test"],
                hostname=srv.host,
                port=srv.port,
                use_tls=True,
                tls_context=client_context(),
            )
            assert srv.mailbox.one().session.tls_mode == "implicit"

    asyncio.run(main())


def _swaks() -> str:
    path = shutil.which("swaks")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(
                "swaks is not installed: .ci/run (./run.sh) must install the Debian package"
            )
        pytest.skip("swaks not installed (./run.sh installs it)")
    return path


@pytest.mark.external
@pytest.mark.parametrize(
    ("tls_flag", "mode", "mechanism"),
    [
        ("--tls", "starttls", "PLAIN"),
        ("--tlsc", "implicit", "LOGIN"),
        ("--tls", "starttls", "CRAM-MD5"),
    ],
)
def test_swaks_as_an_independent_client(tls_flag: str, mode: str, mechanism: str) -> None:
    swaks = _swaks()
    with SMTPServer(tls=mode, auth=USERS) as srv:
        result = subprocess.run(
            [
                swaks,
                "--server",
                srv.host,
                "--port",
                str(srv.port),
                tls_flag,
                "--tls-verify",
                "--tls-ca-path",
                str(srv.ca.ca_file),
                "--tls-sni",
                "localhost",
                "--auth",
                mechanism,
                "--auth-user",
                "alice",
                "--auth-password",
                "s3cret",
                "--from",
                "a@x.test",
                "--to",
                "b@y.test",
                "--header",
                "Subject: swaks",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        message = srv.mailbox.one()
        assert message.subject == "swaks"
        assert (message.session.tls_mode, message.session.auth_mechanism) == (mode, mechanism)
