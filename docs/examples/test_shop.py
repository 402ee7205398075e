"""The example suite: testing a shop's email the way a user of pytest_smtp would."""

from __future__ import annotations

import smtplib
import threading

import pytest
from shop import MailConfig, newsletter, notify_async, send_order_confirmation, send_welcome

from pytest_smtp import SMTPServer, assert_rejected, assert_sent


def test_welcome_mail(mail_config: MailConfig, smtp_server: SMTPServer) -> None:
    send_welcome(mail_config, "ada@example.test", "Ada")

    message = smtp_server.mailbox.one(to="ada@example.test")
    assert message.subject == "Welcome, Ada!"
    assert message.from_ == "Example Shop <shop@example.test>"
    assert "https://shop.example.test/confirm" in (message.text or "")
    assert message.html is not None and "<a href=" in message.html


def test_order_confirmation_has_invoice_and_bcc(
    mail_config: MailConfig, smtp_server: SMTPServer
) -> None:
    send_order_confirmation(mail_config, "ada@example.test", 1042, b"%PDF-1.4 fake")

    message = assert_sent(smtp_server, subject="Order #1042 confirmed")
    # The envelope has the Bcc recipient; the headers do not.
    assert message.rcpt_tos == ["ada@example.test", "accounting@example.test"]
    assert message.to == ["ada@example.test"]
    [invoice] = message.attachments
    assert (invoice.filename, invoice.content_type) == ("invoice-1042.pdf", "application/pdf")
    assert invoice.payload == b"%PDF-1.4 fake"


@pytest.mark.smtp_fault("rcpt", "reject", 550, match="gone@*", message="Mailbox unavailable")
def test_newsletter_reports_refused_recipients(
    mail_config: MailConfig, smtp_server: SMTPServer
) -> None:
    refused = newsletter(
        mail_config, ["a@example.test", "gone@example.test", "b@example.test"], "News"
    )

    assert refused == ["gone@example.test"]
    assert smtp_server.mailbox.one().rcpt_tos == ["a@example.test", "b@example.test"]
    assert_rejected(smtp_server, rcpt="gone@example.test", code=550, stage="rcpt")


def test_greylisting_is_retried(mail_config: MailConfig, smtp_server: SMTPServer) -> None:
    smtp_server.faults.sequence("rcpt", [451, 451])  # greylist twice, then accept
    mail_config.retries = 2

    send_welcome(mail_config, "ada@example.test", "Ada")

    assert len(smtp_server.mailbox) == 1
    assert [t.outcome for t in smtp_server.transactions] == ["deferred", "deferred", "accepted"]


def test_a_permanent_failure_is_not_retried(
    mail_config: MailConfig, smtp_server: SMTPServer
) -> None:
    smtp_server.faults.reject("mail", 550, "Sender blocked")
    mail_config.retries = 3

    with pytest.raises(smtplib.SMTPSenderRefused):
        send_welcome(mail_config, "ada@example.test", "Ada")
    assert len(smtp_server.transactions) == 1


def test_mail_sent_from_a_background_thread(
    mail_config: MailConfig, smtp_server: SMTPServer
) -> None:
    worker = threading.Thread(target=send_welcome, args=(mail_config, "bg@example.test", "Bg"))
    worker.start()

    [message] = smtp_server.mailbox.wait_for(to="bg@example.test", timeout=10)

    assert message.subject == "Welcome, Bg!"
    worker.join()


@pytest.mark.asyncio
async def test_async_notification(mail_config: MailConfig, smtp_server: SMTPServer) -> None:
    await notify_async(mail_config, "ada@example.test", "Your parcel has shipped")

    [message] = await smtp_server.mailbox.wait_for_async(subject="Notification", timeout=5)
    assert "parcel has shipped" in (message.text or "")
