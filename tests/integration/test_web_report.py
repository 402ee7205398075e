"""The HTML report: records from real servers, a JSON round trip per worker, one merged report."""

from __future__ import annotations

import email.policy
import html as html_lib
import json
import re
import smtplib
from email.message import EmailMessage
from pathlib import Path

import pytest

from pytest_smtp import SMTPServer
from pytest_smtp.web import TestRecord, load_records, merge_reports, save_records
from pytest_smtp.web.report import REPORT_CSP, write_report
from pytest_smtp.web.view import FRAME_CSP

HOSTILE_HTML = (
    '<p id="greeting">Hello <b>Bob</b></p>'
    "<script>document.title = 'PWNED'</script>"
    '<img src="http://192.0.2.1/track.png">'
    '<img src="cid:logo@shop">'
)


def hostile_mail() -> bytes:
    msg = EmailMessage()
    msg["Subject"] = "=?utf-8?q?Gr=C3=BC=C3=9Fe?= from the shop"
    msg["From"] = "shop@example.test"
    msg["To"] = "bob@example.test"
    msg.set_content("Hello Bob (text)\n")
    msg.add_alternative(HOSTILE_HTML, subtype="html")
    msg.get_payload()[1].add_related(b"PNGDATA", "image", "png", cid="<logo@shop>")
    msg.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="../../data.csv")
    return msg.as_bytes(policy=email.policy.SMTP)


def record_of(nodeid: str, outcome: str, reject: bool) -> TestRecord:
    with SMTPServer() as server:
        if reject:
            server.faults.defer("rcpt", match="later@*")
        with smtplib.SMTP(*server.address, timeout=10) as client:
            client.sendmail("shop@example.test", ["bob@example.test"], hostile_mail())
            if reject:
                with pytest.raises(smtplib.SMTPRecipientsRefused):
                    client.sendmail("shop@example.test", ["later@example.test"], b"x")
        server.transactions.wait_for(2 if reject else 1, predicate=lambda t: not t.in_progress)
        return TestRecord(nodeid, outcome, 0.25, longrepr="AssertionError: boom").add_server(server)


def test_records_survive_json_and_merge_into_one_report(tmp_path: Path) -> None:
    passed = record_of("tests/test_a.py::test_ok", "passed", reject=False)
    failed = record_of("tests/test_b.py::test_greylisted", "failed", reject=True)
    save_records(tmp_path, [passed], "gw0")
    save_records(tmp_path, [failed], "gw1")
    assert load_records(tmp_path) == [passed, failed]

    index = merge_reports(tmp_path)
    html = index.read_text()
    assert f'content="{REPORT_CSP}"'.replace("'", "&#39;") in html
    assert "<script" not in html
    first_failed = html.index("test_greylisted")
    assert first_failed < html.index("test_ok"), "failed tests come first"
    pages = sorted((tmp_path / "tests").glob("*.html"))
    assert len(pages) == 2
    page = pages[0].read_text()
    assert "tests/test_b.py::test_greylisted" in page and "AssertionError: boom" in page
    assert "Grüße from the shop" in page
    # The HTML part is in a sandboxed frame under the frame policy, cid: image inlined.
    frame = re.search(r'<iframe class="html-part" sandbox="" [^>]*srcdoc="([^"]*)"', page)
    assert frame is not None
    srcdoc = frame.group(1)
    assert FRAME_CSP.replace("'", "&#39;") in srcdoc
    assert "data:image/png;base64,UE5HREFUQQ==" in srcdoc and "cid:logo@shop" not in srcdoc
    assert "<script" not in page.replace(srcdoc, "")
    # What lint says of the message: no Date is an error, the long QP line too.
    assert "<code>missing-date</code> (RFC 5322 §3.6)" in page
    assert "<code>cte-mismatch</code>" in page
    # The deferred transaction is shown as such, with its reply.
    assert 'class="txn txn-deferred"' in page and "451 4.7.1" in page
    # The transcript marks the message's transaction.
    marked = [
        html_lib.unescape(line)
        for line in re.findall(r'<mark class="line" data-txn="\d+">([^<]*)</mark>', page)
    ]
    # smtplib writes "mail FROM:" up to Python 3.12 and "mail from:" from 3.13.
    assert marked[0].lower().startswith("c: mail from:<shop@example.test>")
    assert marked[-1].startswith("S: 250 2.0.0 OK: queued as")
    # Downloads: the raw source and the attachment under a name that stays in its folder.
    files = {p.name: p.read_bytes() for p in (tmp_path / "tests" / "files").iterdir()}
    assert failed.messages[0].raw in files.values()
    csv = [name for name in files if name.startswith("0001-") and name.endswith("data.csv")]
    assert len(csv) == 1 and ".." not in csv[0] and files[csv[0]] == b"a,b\n1,2\n"
    assert f'href="files/{csv[0]}"' in page


def test_a_report_of_only_passed_tests_and_no_mail(tmp_path: Path) -> None:
    index = write_report(tmp_path / "out", [TestRecord("t.py::test_quiet", "passed", 0.01)])
    assert "t.py::test_quiet" in index.read_text()
    assert "No transaction." in next((tmp_path / "out" / "tests").glob("*.html")).read_text()


def test_a_damaged_records_file_is_named(tmp_path: Path) -> None:
    good = TestRecord("t.py::test_x", "passed").to_dict()
    save_records(tmp_path, [TestRecord("t.py::test_x", "passed")], "gw0")
    (tmp_path / "records" / "gw2.json").write_text(json.dumps({"not": "a list"}))
    with pytest.raises(ValueError, match=r"gw2\.json is not a pytest_smtp records file"):
        merge_reports(tmp_path)
    bad = {**good, "messages": [{"id": 1}]}
    with pytest.raises(ValueError, match="not a TestRecord dict"):
        TestRecord.from_dict(bad)
