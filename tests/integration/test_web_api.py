"""The JSON API of WebServer over real HTTP (urllib), fed by real smtplib sends."""

from __future__ import annotations

import email.policy
import http.client
import json
import smtplib
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import dns.resolver
import pytest

from pytest_smtp import FakeDNS, SMTPServer
from pytest_smtp.quality import lint
from pytest_smtp.web import WebServer
from pytest_smtp.web.app import routes_of
from pytest_smtp.web.openapi import OPENAPI


def call(
    web: WebServer, path: str, method: str = "GET", body: Any = None, ctype: str = "json"
) -> tuple[int, Any, http.client.HTTPMessage]:
    data = None
    headers = {}
    if body is not None:
        data = json.dumps(body).encode() if ctype == "json" else str(body).encode()
        headers["Content-Type"] = "application/json" if ctype == "json" else "text/plain"
    request = urllib.request.Request(web.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, info = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, raw, info = exc.code, exc.read(), exc.headers
    if info.get_content_type() == "application/json":
        return status, json.loads(raw), info
    return status, raw, info


def welcome(subject: str = "Welcome aboard", to: str = "bob@example.test") -> bytes:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = "Shop <shop@example.test>"
    msg["To"] = to
    msg.set_content("Your code is 4711.\n")
    msg.add_alternative("<p>Your code is <b>4711</b></p>", subtype="html")
    msg.add_attachment(
        b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="invoice.pdf"
    )
    return msg.as_bytes()


@pytest.fixture
def servers() -> Iterator[tuple[SMTPServer, WebServer]]:
    with SMTPServer() as smtp, WebServer(smtp) as web:
        yield smtp, web


def send(smtp: SMTPServer, raw: bytes, to: list[str], sender: str = "shop@example.test") -> None:
    with smtplib.SMTP(*smtp.address, timeout=10) as client:
        client.sendmail(sender, to, raw)


def test_openapi_documents_every_route_and_nothing_else(
    servers: tuple[SMTPServer, WebServer],
) -> None:
    _, web = servers
    status, served, _ = call(web, "api/openapi.json")
    assert status == 200
    assert served == json.loads(json.dumps(OPENAPI))
    routes = {(m.lower(), p) for m, p in routes_of(web.build_app())}
    documented = {(m, p) for p, ops in served["paths"].items() for m in ops}
    assert routes == documented
    for path, ops in served["paths"].items():
        for op in ops.values():
            names = {ref["$ref"].rsplit("/", 1)[1] for ref in op.get("parameters", [])}
            assert names <= set(served["components"]["parameters"]), path
            in_path = {part[1:-1] for part in path.split("/") if part.startswith("{")}
            assert in_path <= names, f"{path} does not document {in_path - names}"


def test_list_search_and_get_messages(servers: tuple[SMTPServer, WebServer]) -> None:
    smtp, web = servers
    send(smtp, welcome(), ["bob@example.test"])
    send(smtp, welcome("Password reset", "carol@example.test"), ["carol@example.test"])
    smtp.mailbox.wait_for(2)

    status, listing, _ = call(web, "api/messages")
    assert status == 200 and listing["count"] == 2
    assert [m["subject"] for m in listing["messages"]] == ["Welcome aboard", "Password reset"]
    by_subject = {m["subject"]: m["id"] for m in listing["messages"]}

    def subjects(query: str) -> list[str]:
        status, found, _ = call(web, "api/messages?" + query)
        assert status == 200, found
        return [m["subject"] for m in found["messages"]]

    assert subjects("subject=RESET") == ["Password reset"]
    assert subjects("to=carol") == ["Password reset"]
    assert subjects("from=shop@") == ["Welcome aboard", "Password reset"]
    assert subjects("text=4711") == ["Welcome aboard", "Password reset"]
    assert subjects("text=nowhere") == []
    assert subjects("outcome=rejected") == []
    assert subjects("outcome=accepted&to=bob") == ["Welcome aboard"]

    status, detail, _ = call(web, f"api/messages/{by_subject['Welcome aboard']}")
    assert status == 200
    assert detail["envelope"]["rcpt_tos"] == ["bob@example.test"]
    assert detail["text"] == "Your code is 4711.\n"
    assert "<b>4711</b>" in detail["html"]
    assert ["Subject", "Welcome aboard"] in detail["headers"]
    assert detail["session"]["helo"] is not None and detail["session"]["esmtp"] is True
    assert detail["attachments"] == [
        {
            "index": 0,
            "filename": "invoice.pdf",
            "content_type": "application/pdf",
            "size": 13,
            "url": f"/api/messages/{detail['id']}/attachments/0",
        }
    ]


def test_lint_findings_in_the_api_and_on_the_page(servers: tuple[SMTPServer, WebServer]) -> None:
    smtp, web = servers
    send(smtp, welcome(), ["bob@example.test"])  # no Date, no Message-ID
    clean = EmailMessage()
    clean["Subject"] = "Clean"
    clean["From"] = "shop@example.test"
    clean["To"] = "bob@example.test"
    clean["Date"] = formatdate()
    clean["Message-ID"] = make_msgid(domain="example.test")
    clean.set_content("All well.\n")
    send(smtp, clean.as_bytes(policy=email.policy.SMTP), ["bob@example.test"])
    smtp.mailbox.wait_for(2)
    untidy, tidy = smtp.mailbox

    _, detail, _ = call(web, f"api/messages/{untidy.transaction_id}")
    codes = [finding["code"] for finding in detail["lint"]]
    assert codes == [finding.code for finding in lint(untidy)]
    assert {"missing-date", "missing-message-id"} <= set(codes)
    assert set(detail["lint"][0]) == {"code", "severity", "rfc", "where", "text"}
    _, detail, _ = call(web, f"api/messages/{tidy.transaction_id}")
    assert detail["lint"] == []

    _, page, _ = call(web, f"messages/{untidy.transaction_id}")
    text = page.decode()
    assert '<li class="finding finding-error"><span class="severity">error</span> ' in text
    assert "<code>missing-date</code> (RFC 5322 §3.6)" in text
    _, page, _ = call(web, f"messages/{tidy.transaction_id}")
    assert 'class="lint-clean"' in page.decode() and 'class="finding' not in page.decode()


def test_raw_source_and_attachment_download(servers: tuple[SMTPServer, WebServer]) -> None:
    smtp, web = servers
    raw = welcome()
    send(smtp, raw, ["bob@example.test"])
    message = smtp.mailbox.wait_for(1)[0]
    status, body, headers = call(web, f"api/messages/{message.transaction_id}/raw")
    assert status == 200 and body == message.raw
    assert headers.get_content_type() == "message/rfc822"
    status, body, headers = call(web, f"api/messages/{message.transaction_id}/attachments/0")
    assert status == 200 and body == b"%PDF-1.4 fake"
    assert 'filename="invoice.pdf"' in headers["Content-Disposition"]
    assert headers["Content-Security-Policy"].startswith("sandbox")


def test_faults_through_the_api_reject_and_show_as_rejected(
    servers: tuple[SMTPServer, WebServer],
) -> None:
    smtp, web = servers
    status, rule, _ = call(
        web,
        "api/faults",
        "POST",
        {"stage": "rcpt", "action": "reject", "code": 550, "message": "no", "match": "bad@*"},
    )
    assert status == 201 and rule["steps"] == ["550 5.1.1 no"]
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(smtp, welcome(), ["bad@example.test"])
    smtp.transactions.wait_for(1, outcome="rejected")
    status, found, _ = call(web, "api/transactions?outcome=rejected")
    assert status == 200 and found["count"] == 1
    txn = found["transactions"][0]
    assert txn["has_message"] is False
    assert txn["recipients"] == [
        {"address": "bad@example.test", "accepted": False, "reply": "550 5.1.1 no"}
    ]
    status, detail, _ = call(web, f"api/transactions/{txn['id']}")
    # smtplib writes "rcpt TO:" up to Python 3.12 and "rcpt to:" from 3.13.
    transcript = [line.lower() for line in detail["transcript"]]
    assert status == 200 and "c: rcpt to:<bad@example.test>" in transcript
    status, faults, _ = call(web, "api/faults")
    assert faults["rules"][0]["hits"] == 1
    assert call(web, "api/faults", "DELETE")[1] == {"status": 200, "deleted": 1}
    send(smtp, welcome(), ["bad@example.test"])
    smtp.mailbox.wait_for(1)


def test_sessions_and_transcript(servers: tuple[SMTPServer, WebServer]) -> None:
    smtp, web = servers
    send(smtp, welcome(), ["bob@example.test"])
    smtp.mailbox.wait_for(1)
    status, sessions, _ = call(web, "api/sessions")
    assert status == 200 and sessions["count"] == 1
    session = sessions["sessions"][0]
    assert session["peer"].startswith("127.0.0.1:") and session["tls"] is False
    status, transcript, _ = call(web, f"api/transcript?session={session['id']}")
    assert transcript["lines"][0].startswith("S: 220 ")
    assert "C: data" in transcript["lines"]
    assert call(web, "api/transcript")[1]["lines"] == smtp.transcript


def test_errors_are_json_and_name_what_was_wrong(servers: tuple[SMTPServer, WebServer]) -> None:
    smtp, web = servers
    cases = [
        ("api/messages?outcome=lost", "GET", None, 400, "outcome must be one of accepted"),
        ("api/messages?colour=red", "GET", None, 400, "unknown search parameter(s) colour"),
        ("api/messages/abc", "GET", None, 400, "id must be a number, not 'abc'"),
        ("api/messages/99", "GET", None, 404, "no transaction 99"),
        ("api/nothing", "GET", None, 404, "no route GET /api/nothing"),
        ("api/sessions", "DELETE", None, 405, "DELETE is not allowed on /api/sessions"),
        ("api/faults", "POST", {"action": "reject"}, 400, "a fault needs 'stage'"),
        ("api/faults", "POST", {"stage": "rcpt", "action": "boom"}, 400, "unknown fault action"),
        ("api/faults", "POST", {"stage": "rcpt", "code": 250}, 400, "needs a 5xx code"),
        ("api/faults", "POST", {"stage": "rcpt", "colour": 1}, 400, "unknown matcher(s) colour"),
        ("api/dns/zones", "POST", {"text": "x"}, 404, "no FakeDNS"),
        ("api/maildrops/nobody@example.test", "GET", None, 404, "no maildrop for"),
    ]
    for path, method, body, code, words in cases:
        status, error, headers = call(web, path, method, body)
        assert headers.get_content_type() == "application/json", path
        assert (status, error["status"]) == (code, code), (path, error)
        assert words in error["error"], (path, error)
    request = urllib.request.Request(
        web.url + "api/faults",
        data=b"{not json",
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert "the body must be a JSON object" in json.loads(info.value.read())["error"]
    assert smtp.errors == [] and web.errors == []


def test_delete_hides_one_and_clear_empties_the_server(
    servers: tuple[SMTPServer, WebServer],
) -> None:
    smtp, web = servers
    send(smtp, welcome("one"), ["bob@example.test"])
    send(smtp, welcome("two"), ["bob@example.test"])
    first, _ = smtp.mailbox.wait_for(2)
    assert call(web, f"api/messages/{first.transaction_id}", "DELETE")[0] == 200
    assert [m["subject"] for m in call(web, "api/messages")[1]["messages"]] == ["two"]
    assert call(web, f"api/messages/{first.transaction_id}")[0] == 404
    assert call(web, "api/messages", "DELETE")[1] == {"status": 200, "deleted": 1}
    assert len(smtp.mailbox) == 0 and len(smtp.transactions) == 0
    assert call(web, "api/transactions")[1]["count"] == 0


def test_event_stream_announces_each_finished_transaction(
    servers: tuple[SMTPServer, WebServer],
) -> None:
    smtp, web = servers
    conn = http.client.HTTPConnection(*web.address, timeout=10)
    conn.request("GET", "/api/events")
    response = conn.getresponse()
    assert response.getheader("Content-Type") == "text/event-stream"

    def next_event() -> tuple[str, str]:
        name = data = ""
        while True:
            line = response.fp.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and name:
                return name, data

    assert next_event()[0] == "hello"
    send(smtp, welcome(), ["bob@example.test"])
    name, data = next_event()
    message = smtp.mailbox.wait_for(1)[0]
    assert (name, json.loads(data)) == (
        "transaction",
        {"type": "transaction", "id": message.transaction_id, "outcome": "accepted"},
    )
    call(web, "api/messages", "DELETE")
    assert next_event()[0] == "clear"
    conn.close()


def test_dns_zone_load_answers_real_queries() -> None:
    with SMTPServer() as smtp, FakeDNS() as fake, WebServer(smtp, dns=fake) as web:
        zone = "$ORIGIN shop.test.\n@ 300 IN MX 10 mx.shop.test.\nmx 300 IN A 192.0.2.7\n"
        status, body, _ = call(web, "api/dns/zones", "POST", zone, ctype="text")
        assert status == 201, body
        resolver = fake.sync_resolver()
        answer = resolver.resolve("shop.test", "MX")
        assert [str(r.exchange) for r in answer] == ["mx.shop.test."]
        status, body, _ = call(
            web, "api/dns/zones", "POST", {"text": "www 300 IN A 192.0.2.8", "origin": "shop.test."}
        )
        assert status == 201, body
        assert [r.address for r in resolver.resolve("www.shop.test", "A")] == ["192.0.2.8"]
        status, error, _ = call(web, "api/dns/zones", "POST", "@ IN BOGUS x", ctype="text")
        assert status == 400 and "zone" in error["error"]
        with pytest.raises(dns.resolver.NXDOMAIN):
            resolver.resolve("nothing.shop.test", "A")


def test_maildrop_of_a_recipient(servers: tuple[SMTPServer, WebServer]) -> None:
    smtp, web = servers
    send(smtp, welcome(), ["bob@example.test", "carol@example.test"])
    smtp.mailbox.wait_for(1)
    assert call(web, "api/maildrops")[1] == {
        "addresses": ["bob@example.test", "carol@example.test"]
    }
    status, drop, _ = call(web, "api/maildrops/carol@example.test")
    assert status == 200 and [m["subject"] for m in drop["folders"]["INBOX"]] == ["Welcome aboard"]
    uid = drop["folders"]["INBOX"][0]["uid"]
    status, raw, _ = call(web, f"api/maildrops/carol@example.test/INBOX/{uid}")
    assert status == 200 and raw == smtp.store.maildrop("carol@example.test").inbox.get(uid).raw
    assert call(web, "api/maildrops/carol@example.test/Trash/1")[0] == 404


def test_missing_extra_names_it() -> None:
    code = (
        "import sys; sys.modules['aiohttp'] = None\n"
        "try:\n    import pytest_smtp.web.app\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "'aiohttp'" in out and "pip install pytest-smtp-suite[web]" in out
