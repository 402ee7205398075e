"""``python -m pytest_smtp serve --http``: the web view and API beside the SMTP server."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

from web_serve import serve_http


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, info = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, raw, info = exc.code, exc.read(), exc.headers
    body = json.loads(raw) if info.get_content_type() == "application/json" else raw
    return status, body, info


def test_serve_http_shows_the_mail_to_the_token_holder_only() -> None:
    with serve_http("--hostname", "web.cli.test") as serve:
        with smtplib.SMTP("127.0.0.1", serve.smtp_port, timeout=10) as client:
            client.sendmail("a@x.test", ["b@y.test"], "Subject: seen on the web\r\n\r\nhi")
        assert serve.proc.stdout is not None
        assert "accepted at eod" in serve.proc.stdout.readline()

        status, body, _ = get(serve.url + "api/messages")
        assert status == 401 and "no token" in body["error"]
        status, body, _ = get(serve.url + "api/messages", {"Authorization": "Bearer wrong"})
        assert status == 401 and "a wrong token" in body["error"]

        bearer = {"Authorization": f"Bearer {serve.token}"}
        status, body, _ = get(serve.url + "api/messages", bearer)
        assert status == 200 and [m["subject"] for m in body["messages"]] == ["seen on the web"]

        # The printed page URL carries the token and leaves it in a cookie for the page's
        # own requests (its script and event stream cannot send a header).
        status, page, info = get(f"{serve.url}?token={serve.token}")
        assert status == 200 and b"web.cli.test" in page
        cookie = info["Set-Cookie"]
        assert cookie.startswith(f"pytest_smtp_token={serve.token};") and "HttpOnly" in cookie
        status, body, _ = get(
            serve.url + "api/sessions", {"Cookie": f"pytest_smtp_token={serve.token}"}
        )
        assert status == 200 and body["sessions"][0]["helo"]


def _main(*args: str, block_aiohttp: bool = False) -> subprocess.CompletedProcess[str]:
    code = (
        ("import sys; sys.modules['aiohttp'] = None\n" if block_aiohttp else "import sys\n")
        + "from pytest_smtp.cli import main\n"
        + f"sys.exit(main({list(args)!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_serve_http_without_the_extra_names_it() -> None:
    done = _main("serve", "--http", "127.0.0.1:0", block_aiohttp=True)
    assert done.returncode == 2
    assert "serve --http" in done.stderr and "pip install pytest-smtp-suite[web]" in done.stderr


def test_bad_http_address_and_lone_token_are_clear_errors() -> None:
    done = _main("serve", "--http", "localhost:8025")
    assert done.returncode == 2
    assert "expected HOST:PORT with an IP address, such as 127.0.0.1:8025" in done.stderr
    done = _main("serve", "--token", "abc")
    assert done.returncode == 2 and "--token goes with --http HOST:PORT" in done.stderr
