"""How-to: an HTML report of the mail of some tests (docs/how-to/html-report.md)."""

from __future__ import annotations

import smtplib

from pytest_smtp import SMTPServer
from pytest_smtp.web import TestRecord, merge_reports, save_records, write_report


def test_write_a_report(tmp_path):
    with SMTPServer() as server:
        with smtplib.SMTP(*server.address) as client:
            client.sendmail(
                "shop@example.test",
                ["bob@example.test"],
                b"Subject: Welcome\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>Bob</b></p>\r\n",
            )
        server.mailbox.wait_for(1)
        record = TestRecord("test_signup.py::test_welcome", "failed", duration=0.2)
        record.add_server(server)  # copies messages, transactions and transcript

    index = write_report(tmp_path / "mail-report", [record])
    assert index.name == "index.html"
    assert "test_signup.py::test_welcome" in index.read_text()

    # Several processes (xdist workers): each saves its records, one merges them.
    save_records(tmp_path / "merged", [record], "gw0")
    save_records(tmp_path / "merged", [TestRecord("test_other.py::test_x", "passed")], "gw1")
    merged = merge_reports(tmp_path / "merged").read_text()
    assert merged.index("test_welcome") < merged.index("test_x")  # failed tests first
