"""How-to: Django's mail.outbox / pytest-django's mailoutbox -> a real SMTP server
(docs/how-to/migrate.md)."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

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
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST=smtp_server.host,
        EMAIL_PORT=smtp_server.port,
        EMAIL_USE_TLS=False,
    ):
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
