"""How-to: test your app's TLS and login (docs/how-to/tls-auth.md)."""

from __future__ import annotations

import smtplib
import ssl

import pytest
from sender import Outbox, send

from pytest_smtp import SMTPServer, TestCA

SUBMISSION = pytest.mark.smtp(tls="starttls", auth={"app": "s3cret"}, require_auth=True)


@SUBMISSION
def test_starttls_and_login(smtp_server: SMTPServer, smtp_tls: TestCA) -> None:
    outbox = Outbox(
        smtp_server.host,
        smtp_server.port,
        tls="starttls",
        context=smtp_tls.client_context(),  # trusts the session's test CA
        user="app",
        password="s3cret",
    )

    report = send(outbox, ["ann@example.test"], "Hi", "x")

    assert report.delivered == ["ann@example.test"]
    session = smtp_server.mailbox.one().session
    assert (session.tls, session.tls_mode) == (True, "starttls")
    assert session.tls_version in ("TLSv1.2", "TLSv1.3")
    assert (session.auth_user, session.auth_mechanism) == ("app", "CRAM-MD5")
    # The password never shows up in the transcript (or the report).
    assert not any("s3cret" in line for line in smtp_server.transcript)


@pytest.mark.smtp(tls="implicit", auth="any")
def test_implicit_tls_with_a_ca_file(smtp_server: SMTPServer, smtp_tls: TestCA) -> None:
    # Code that takes a CA bundle path (a setting, a requests-style "verify=") gets ca_file.
    context = ssl.create_default_context(cafile=str(smtp_tls.ca_file))
    outbox = Outbox(
        smtp_server.host, smtp_server.port, tls="implicit", context=context, user="u", password="p"
    )

    send(outbox, ["ann@example.test"], "Hi", "x")

    session = smtp_server.mailbox.one().session
    assert (session.tls_mode, session.auth_user) == ("implicit", "u")


@SUBMISSION
def test_an_app_using_the_system_trust_store(
    smtp_server: SMTPServer, smtp_tls: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The app calls ssl.create_default_context(); OpenSSL reads SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp_tls.ca_file))
    outbox = Outbox(
        smtp_server.host, smtp_server.port, tls="starttls", user="app", password="s3cret"
    )

    assert send(outbox, ["ann@example.test"], "Hi", "x").delivered == ["ann@example.test"]


@SUBMISSION
def test_an_untrusted_certificate_is_refused_by_the_client(
    smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    outbox = Outbox(
        smtp_server.host, smtp_server.port, tls="starttls", user="app", password="s3cret"
    )

    report = send(outbox, ["ann@example.test"], "Hi", "x")

    assert "CERTIFICATE_VERIFY_FAILED" in report.deferred["ann@example.test"]
    assert len(smtp_server.mailbox) == 0


@SUBMISSION
def test_a_wrong_password_bounces(smtp_server: SMTPServer, smtp_tls: TestCA) -> None:
    outbox = Outbox(
        smtp_server.host,
        smtp_server.port,
        tls="starttls",
        context=smtp_tls.client_context(),
        user="app",
        password="wrong",
    )

    report = send(outbox, ["ann@example.test"], "Hi", "x")

    assert report.bounced == {"ann@example.test": "535 5.7.8 Authentication credentials invalid"}


@SUBMISSION
def test_forgetting_starttls(smtp_server: SMTPServer) -> None:
    outbox = Outbox(smtp_server.host, smtp_server.port, user="app", password="s3cret")

    # AUTH is only offered after STARTTLS (auth_require_tls, RFC 4954): smtplib sees no AUTH.
    with pytest.raises(smtplib.SMTPNotSupportedError):
        send(outbox, ["ann@example.test"], "Hi", "x")

    # Without a login, MAIL FROM is refused: require_auth.
    outbox.user = None
    report = send(outbox, ["ann@example.test"], "Hi", "x")
    assert report.bounced == {"ann@example.test": "530 5.7.0 Authentication required"}


@pytest.mark.parametrize(
    "mechanism",
    [
        pytest.param(m, marks=pytest.mark.smtp(tls="implicit", auth="any", auth_mechanisms=[m]))
        for m in ("PLAIN", "LOGIN", "CRAM-MD5")
    ],
)
def test_each_mechanism(smtp_server: SMTPServer, smtp_tls: TestCA, mechanism: str) -> None:
    outbox = Outbox(
        smtp_server.host,
        smtp_server.port,
        tls="implicit",
        context=smtp_tls.client_context(),
        user="u",
        password="p",
    )

    send(outbox, ["ann@example.test"], "Hi", "x")

    assert smtp_server.mailbox.one().session.auth_mechanism == mechanism
