"""How-to: the live web view and its JSON API (docs/how-to/web-view.md)."""

from __future__ import annotations

import json
import smtplib
import urllib.request

from pytest_smtp import SMTPServer
from pytest_smtp.web import WebServer


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_look_at_the_mail_in_a_browser_or_through_the_api():
    with SMTPServer() as smtp, WebServer(smtp) as web:
        # web.url is the page (open it in a browser); the API lives under web.url + "api/".
        with smtplib.SMTP(*smtp.address) as client:
            client.sendmail(
                "shop@example.test",
                ["bob@example.test"],
                b"Subject: Welcome\r\nFrom: shop@example.test\r\n\r\nHello Bob\r\n",
            )
        smtp.mailbox.wait_for(1)

        found = get_json(web.url + "api/messages?subject=welcome")
        assert [m["subject"] for m in found["messages"]] == ["Welcome"]

        message = get_json(web.url + f"api/messages/{found['messages'][0]['id']}")
        assert message["text"] == "Hello Bob\n"
        assert message["envelope"]["rcpt_tos"] == ["bob@example.test"]

        # Faults, like server.faults.reject("rcpt", match="bad@*"), over HTTP:
        request = urllib.request.Request(
            web.url + "api/faults",
            data=json.dumps({"stage": "rcpt", "action": "reject", "match": "bad@*"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
        assert len(smtp.faults) == 1
