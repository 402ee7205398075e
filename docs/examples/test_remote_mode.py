"""How-to: remote mode, a server made on a `serve --http` instance (docs/how-to/remote-mode.md)."""

from __future__ import annotations

import smtplib

from pytest_smtp import SMTPServer
from pytest_smtp.remote import RemoteAPI, RemoteSMTPServer
from pytest_smtp.web import WebServer


def test_a_server_made_through_the_api_works_like_a_local_one():
    # What `python -m pytest_smtp serve --http 127.0.0.1:0 --token s3cret` runs:
    with SMTPServer() as smtp, WebServer(smtp, token="s3cret") as web:
        # What `pytest --smtp-remote=URL` does for smtp_server and each factory server:
        api = RemoteAPI(f"{web.url}?token=s3cret")
        with RemoteSMTPServer(api, hostname="mx.remote.test") as server:
            server.faults.reject("rcpt", 550, match="nobody@*")
            with smtplib.SMTP(server.host, server.port) as client:  # the app sends here
                client.sendmail(
                    "shop@example.test",
                    ["bob@example.test", "nobody@example.test"],
                    b"Subject: Welcome\r\n\r\nHello Bob\r\n",
                )
            (message,) = server.mailbox.wait_for(subject="Welcome")
            assert message.rcpt_tos == ["bob@example.test"]
            assert server.transactions.one().refused[0].reply.code == 550
            server.reset()  # what the fixture does before each test
            assert server.mailbox == []
