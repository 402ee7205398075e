"""How-to: move from an aiosmtpd Controller and handler (docs/how-to/migrate.md)."""

from __future__ import annotations

import smtplib
from typing import Any

import pytest
from aiosmtpd.smtp import Envelope, Session

from pytest_smtp import SMTPServer


class Handler:
    """An aiosmtpd handler, unchanged: it refuses one domain and counts messages."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.endswith("@blocked.test"):
            return "550 5.7.1 Domain blocked"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.count += 1
        return "250 Message accepted for delivery"


# aiosmtpd:  controller = Controller(Handler(), hostname="127.0.0.1", port=8025)
#            controller.start(); ...; controller.stop()
def test_the_handler_outside_pytest_fixtures() -> None:
    handler = Handler()
    # Any free port, stopped at the end of the block.
    with SMTPServer(handler=handler) as server, smtplib.SMTP(*server.address) as client:
        refused = client.sendmail(
            "a@example.test", ["b@example.test", "c@blocked.test"], "Subject: Hi\r\n\r\nx"
        )

    assert refused == {"c@blocked.test": (550, b"5.7.1 Domain blocked")}
    assert handler.count == 1
    assert server.mailbox.one().rcpt_tos == ["b@example.test"]  # what the handler accepted


BLOCKING = Handler()


@pytest.mark.smtp(handler=BLOCKING)  # or smtp_server_factory(handler=...)
def test_the_handler_with_faults_on_top(smtp_server: SMTPServer) -> None:
    smtp_server.faults.defer("rcpt", match="b@example.test", times=1)  # runs before the handler
    with smtplib.SMTP(*smtp_server.address) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("a@example.test", ["b@example.test"], "Subject: Hi\r\n\r\nx")
        client.sendmail("a@example.test", ["b@example.test"], "Subject: Hi\r\n\r\nx")

    assert [t.outcome for t in smtp_server.transactions] == ["deferred", "accepted"]
