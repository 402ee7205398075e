"""How-to: Django's mail.outbox / pytest-django's mailoutbox -> a real SMTP server
(docs/how-to/migrate.md)."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import django
import pytest
from django.conf import settings
from django.core import mail
from django.test.utils import override_settings

from pytest_smtp import SMTPServer, assert_rejected

if not settings.configured:
    settings.configure()  # a Django project has its settings module instead


@pytest.fixture
def django_smtp(smtp_server: SMTPServer) -> Iterator[SMTPServer]:
    """Django's real SMTP backend, pointed at the capturing server (not the locmem outbox)."""
    backend = "django.core.mail.backends.smtp.EmailBackend"
    address: dict[str, object] = {
        "host": smtp_server.host,
        "port": smtp_server.port,
        "use_tls": False,
    }
    overrides: dict[str, object]
    if django.VERSION >= (6, 1):  # the MAILERS setting replaces the EMAIL_* ones
        overrides = {"MAILERS": {"default": {"BACKEND": backend, "OPTIONS": address}}}
    else:
        overrides = {f"EMAIL_{key.upper()}": value for key, value in address.items()}
        overrides["EMAIL_BACKEND"] = backend
    with override_settings(**overrides):
        yield smtp_server


def test_send_mail(django_smtp: SMTPServer) -> None:
    mail.send_mail("Welcome", "Hello Ann", "shop@example.test", ["ann@example.test"])

    message = django_smtp.mailbox.one()  # mailoutbox[0]
    assert message.subject == "Welcome"
    assert message.rcpt_tos == ["ann@example.test"]  # the envelope, not just the To: header


def test_what_you_gain_a_refusal(django_smtp: SMTPServer) -> None:
    django_smtp.faults.reject("rcpt", 550, "No such user", match="ghost@example.test")

    with pytest.raises(smtplib.SMTPRecipientsRefused):
        mail.send_mail("Hi", "x", "shop@example.test", ["ghost@example.test"])

    assert_rejected(django_smtp, rcpt="ghost@example.test", code=550, stage="rcpt")
