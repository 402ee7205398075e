"""The report and the live page in a real browser (headless chromium via Selenium)."""

from __future__ import annotations

import email.policy
import http.server
import smtplib
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from pytest_smtp import SMTPServer
from pytest_smtp.web import TestRecord, WebServer, write_report

pytestmark = pytest.mark.external

WAIT = 20.0


class Tracker(http.server.ThreadingHTTPServer):
    """A real HTTP server on loopback that records every path a browser asks it for."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        tracker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                tracker.hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/track.png"


@pytest.fixture
def tracker() -> Iterator[Tracker]:
    server = Tracker()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def hostile(subject: str, image_url: str) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = "shop@example.test"
    msg["To"] = "bob@example.test"
    msg.set_content("Hello Bob, in plain text.\n")
    msg.add_alternative(
        '<p id="greeting">Hello <b>Bob</b></p>'
        "<script>document.getElementById('greeting').textContent = 'PWNED';</script>"
        f'<img id="remote" src="{image_url}">',
        subtype="html",
    )
    msg.add_attachment(
        b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="invoice.pdf"
    )
    return msg.as_bytes(policy=email.policy.SMTP)


def send(server: SMTPServer, raw: bytes) -> None:
    with smtplib.SMTP(*server.address, timeout=10) as client:
        client.sendmail("shop@example.test", ["bob@example.test"], raw)


def check_message_view(browser: Any, tracker: Tracker) -> None:
    """The open page shows the HTML part (its script not run), the attachment, the
    transcript with the transaction marked and the raw source."""
    raw = browser.find_element(By.CSS_SELECTOR, "pre.raw-source").text
    assert "Subject: Your order" in raw
    marked = browser.find_elements(By.CSS_SELECTOR, "pre.transcript mark")
    # smtplib writes "mail FROM:" up to Python 3.12 and "mail from:" from 3.13.
    assert marked and marked[0].text.lower().startswith("c: mail from:<shop@example.test>")
    link = browser.find_element(By.CSS_SELECTOR, "a.attachment")
    assert link.text == "invoice.pdf" and link.get_attribute("download") == "invoice.pdf"
    assert (
        "Hello Bob, in plain text." in browser.find_element(By.CSS_SELECTOR, "pre.text-part").text
    )
    frame = browser.find_element(By.CSS_SELECTOR, "iframe.html-part")
    assert frame.get_attribute("sandbox") == ""
    browser.switch_to.frame(frame)
    try:
        assert browser.find_element(By.ID, "greeting").text == "Hello Bob"  # script did not run
        # The remote image was blocked by the frame's policy: never even asked for.
        assert browser.find_element(By.ID, "remote").get_property("complete") is True
        assert tracker.hits == []
    finally:
        browser.switch_to.default_content()


def test_report_shows_the_message_and_runs_none_of_its_script(
    browser: Any, tmp_path: Path, tracker: Tracker
) -> None:
    with SMTPServer() as server:
        send(server, hostile("Your order", tracker.url))
        server.mailbox.wait_for(1)
        record = TestRecord("t.py::test_order_mail", "failed", 0.1).add_server(server)
    index = write_report(tmp_path / "report", [record])
    browser.get(index.as_uri())
    browser.find_element(By.LINK_TEXT, "t.py::test_order_mail").click()
    WebDriverWait(browser, WAIT).until(lambda b: b.find_elements(By.CSS_SELECTOR, "h2.subject"))
    assert browser.find_element(By.CSS_SELECTOR, "h2.subject").text == "Your order"
    check_message_view(browser, tracker)


def test_live_page_shows_a_new_message_without_reload(browser: Any, tracker: Tracker) -> None:
    with SMTPServer() as server, WebServer(server) as web:
        browser.get(web.url)
        WebDriverWait(browser, WAIT).until(
            lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "1"
        )
        browser.execute_script("window.sameDocument = 'yes';")
        send(server, hostile("Your order", tracker.url))
        link = WebDriverWait(browser, WAIT).until(
            lambda b: b.find_elements(By.LINK_TEXT, "Your order")
        )[0]
        assert browser.execute_script("return window.sameDocument") == "yes"  # no reload
        # Search narrows the list; a search that matches nothing empties it.
        box = browser.find_element(By.NAME, "subject")
        box.send_keys("nothing like it")
        WebDriverWait(browser, WAIT).until(
            lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-rendered") == "0"
        )
        box.clear()
        box.send_keys("order")
        link = WebDriverWait(browser, WAIT).until(
            lambda b: b.find_elements(By.LINK_TEXT, "Your order")
        )[0]
        link.click()
        WebDriverWait(browser, WAIT).until(lambda b: b.find_elements(By.CSS_SELECTOR, "h2.subject"))
        check_message_view(browser, tracker)
        assert web.errors == []


def test_live_list_of_1000_messages_renders(browser: Any) -> None:
    """Benchmark: how long the browser takes to fetch and render a 1,000-row list (printed)."""
    with SMTPServer() as server, WebServer(server) as web:
        with smtplib.SMTP(*server.address, timeout=30) as client:
            for i in range(1000):
                client.sendmail(
                    "shop@example.test",
                    ["bob@example.test"],
                    f"Subject: message {i}\r\nFrom: shop@example.test\r\n\r\nbody {i}\r\n".encode(),
                )
        server.mailbox.wait_for(1000, timeout=60)
        started = time.perf_counter()
        browser.get(web.url)
        WebDriverWait(browser, 60).until(
            lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-rendered") == "1000"
        )
        wall = time.perf_counter() - started
        in_page = float(browser.find_element(By.TAG_NAME, "body").get_attribute("data-render-ms"))
        rows = browser.find_elements(By.CSS_SELECTOR, "#rows tr")
        assert len(rows) == 1000
        assert rows[-1].find_element(By.CSS_SELECTOR, "td.subject a").text == "message 999"
        print(
            f"\nlive list, 1000 messages: fetch+render {in_page:.0f} ms in the page, "
            f"{wall * 1000:.0f} ms from navigation to last row"
        )
