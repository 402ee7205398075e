"""The routes remote mode stands on: made servers, the records long poll, the token."""

from __future__ import annotations

import json
import smtplib
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_smtp import SMTPServer
from pytest_smtp.web import WebServer

TOKEN = "t0ken"


def call(web: WebServer, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    request = urllib.request.Request(web.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def web() -> Iterator[WebServer]:
    with SMTPServer(hostname="main.test") as smtp, WebServer(smtp, token=TOKEN) as served:
        yield served


def send(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("a@x.test", ["b@y.test"], f"Subject: {subject}\r\n\r\nhi")


def test_made_servers_have_their_own_data_and_stop(web: WebServer) -> None:
    status, made = call(web, "api/servers", "POST", {"hostname": "made.test"})
    assert status == 201 and made["hostname"] == "made.test" and made["host"] == "127.0.0.1"
    send(made["port"], "to the made one")
    _, mine = call(web, f"api/servers/{made['id']}/messages")
    _, main = call(web, "api/messages")
    assert [m["subject"] for m in mine["messages"]] == ["to the made one"]
    assert main["count"] == 0
    assert call(web, "api/servers")[1]["count"] == 1
    assert call(web, f"api/servers/{made['id']}", "DELETE")[0] == 200
    status, body = call(web, f"api/servers/{made['id']}/messages")
    assert status == 404 and body["error"].startswith(f"no server {made['id']} (servers: none")
    with pytest.raises(OSError):
        send(made["port"], "nobody listens")


def test_bad_server_options_name_the_option(web: WebServer) -> None:
    status, body = call(web, "api/servers", "POST", {"max_size": "huge"})
    assert status == 400 and body["error"].startswith("bad server options: max_size")
    status, body = call(web, "api/servers", "POST", {"port": 25})
    assert status == 400 and "'port' is chosen by serve" in body["error"]


def test_records_long_poll_answers_when_a_transaction_finishes(web: WebServer) -> None:
    _, made = call(web, "api/servers", "POST", {})
    base = f"api/servers/{made['id']}"
    answer: list[Any] = []
    poll = threading.Thread(target=lambda: answer.append(call(web, f"{base}/records?wait=60")))
    poll.start()
    send(made["port"], "long polled")
    poll.join(timeout=30)  # the poll ends with the transaction, not after its 60 s
    assert not poll.is_alive()
    status, data = answer[0]
    assert status == 200 and data["next"] == 1 and data["epoch"] == 0
    assert [t["outcome"] for t in data["transactions"]] == ["accepted"]
    assert data["messages"][0]["id"] == data["transactions"][0]["id"]
    # A reset starts a new epoch: a poll from the old one answers at once.
    assert call(web, f"{base}/reset", "POST", {})[1]["epoch"] == 1
    status, data = call(web, f"{base}/records?since=1&epoch=0&wait=60")
    assert (status, data["epoch"], data["transactions"]) == (200, 1, [])


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("wait=61", "wait must be a number of seconds from 0 to 60"),
        ("since=-1", "since must be a whole number"),
        ("after=3", "unknown parameter(s) after"),
    ],
)
def test_records_parameters_are_checked(web: WebServer, query: str, error: str) -> None:
    status, body = call(web, f"api/records?{query}")
    assert status == 400 and body["error"].startswith(error)


def test_without_the_token_nothing_is_answered(web: WebServer) -> None:
    for path in ("", "api/messages", "api/servers", "api/openapi.json"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(web.url + path, timeout=10)
        assert refused.value.code == 401
        assert "no token" in json.loads(refused.value.read())["error"]


def test_a_token_must_be_plain_text() -> None:
    with SMTPServer() as smtp, pytest.raises(ValueError, match="token must be printable"):
        WebServer(smtp, token="two words")


def test_a_seed_is_a_whole_number_on_reset_and_on_a_fault(web: WebServer) -> None:
    _, made = call(web, "api/servers", "POST", {})
    base = f"api/servers/{made['id']}"
    for path, body in (
        ("reset", {"seed": "7"}),
        ("reset", {"seed": True}),
        ("faults", {"stage": "rcpt", "seed": 1.5}),
    ):
        status, answer = call(web, f"{base}/{path}", "POST", body)
        assert status == 400 and answer["error"].startswith("seed must be a whole number")
    status, answer = call(web, f"{base}/reset", "POST", {"seed": "x", "colour": 1})
    assert status == 400 and answer["error"] == "unknown field(s) colour; valid: seed"
    assert call(web, f"{base}/reset", "POST", {"seed": 7})[0] == 200
    assert call(web, f"{base}/faults", "POST", {"stage": "rcpt", "seed": 8})[0] == 201
