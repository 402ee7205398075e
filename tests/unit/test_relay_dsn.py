"""RFC 3464 reports: what build_dsn writes, parse_dsn reads back, and RFC 3461 parameters."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from email import message_from_bytes, policy

import pytest

from pytest_smtp.relay.dsn import (
    DSNRecipient,
    build_dsn,
    needs_smtputf8,
    parse_dsn,
    parse_notify,
    xtext_decode,
    xtext_encode,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
ORIGINAL = (
    b"From: alice@example.test\r\nTo: bob@other.test\r\nSubject: caf\xc3\xa9\r\n"
    b"\r\nline one\r\n.dot line\r\n"
)


def _failed(**kw: object) -> DSNRecipient:
    values: dict[str, object] = {
        "final_recipient": "bob@other.test",
        "action": "failed",
        "status": "5.1.1",
        "remote_mta": "mx.other.test",
        "diagnostic": "550 5.1.1 No such user",
        "last_attempt": NOW,
    }
    values.update(kw)
    return DSNRecipient(**values)  # type: ignore[arg-type]


def test_failure_report_structure_and_full_return() -> None:
    raw = build_dsn(
        reporting_mta="relay.example.test",
        sender="alice@example.test",
        original=ORIGINAL,
        recipients=[_failed(original_recipient="rfc822;bob+2Bx@other.test")],
        arrival=NOW,
        now=NOW,
        envid="ENV+2D1",
    )
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "delivery-status"
    assert parsed["To"] == "alice@example.test"
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["Subject"] == "Undelivered Mail Returned to Sender"
    parts = [p.get_content_type() for p in parsed.iter_parts()]
    # ASCII addresses: a plain RFC 3464 status part; the original's UTF-8 Subject makes the
    # returned message message/global (RFC 6533 §6.3).
    assert parts == ["text/plain", "message/delivery-status", "message/global"]
    report = parse_dsn(raw)
    assert report.reporting_mta == "relay.example.test"
    assert report.envid == "ENV-1"
    block = report.recipient("BOB@other.test")
    assert block.action == "failed"
    assert block.status == "5.1.1"
    assert block.remote_mta == "mx.other.test"
    assert block.diagnostic == "550 5.1.1 No such user"
    assert block.original_recipient == "rfc822;bob+x@other.test"
    assert report.returned_kind == "message"
    assert report.returned == ORIGINAL, "the original must come back byte for byte"
    assert b"Diagnostic-Code: smtp; 550 5.1.1 No such user\r\n" in raw
    assert b"Last-Attempt-Date: Wed, 01 May 2024 12:00:00 +0000\r\n" in raw


def test_ret_hdrs_returns_only_the_header_section() -> None:
    raw = build_dsn(
        reporting_mta="r.test",
        sender="a@x.test",
        original=ORIGINAL,
        recipients=[_failed()],
        arrival=NOW,
        now=NOW,
        ret="HDRS",
    )
    report = parse_dsn(raw)
    assert report.returned_kind == "headers"
    assert report.returned == ORIGINAL.split(b"\r\n\r\n")[0] + b"\r\n"
    assert b"line one" not in raw
    assert b"Content-Type: message/global-headers\r\n" in raw


ASCII_ORIGINAL = b"From: a@x.test\r\nTo: b@y.test\r\nSubject: hi\r\n\r\nBody\r\n"


def _build(original: bytes, recipients: list[DSNRecipient], **kw: str) -> bytes:
    kw.setdefault("sender", "a@x.test")
    return build_dsn(
        reporting_mta="r.test", original=original, recipients=recipients, arrival=NOW, now=NOW, **kw
    )


def test_ascii_report_keeps_the_rfc3464_types() -> None:
    raw = _build(ASCII_ORIGINAL, [_failed()])
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed.get_param("report-type") == "delivery-status"
    assert [p.get_content_type() for p in parsed.iter_parts()][1:] == [
        "message/delivery-status",
        "message/rfc822",
    ]
    assert not needs_smtputf8(raw)
    assert b"Final-Recipient: rfc822; bob@other.test\r\n" in raw


def test_utf8_addresses_make_a_global_report_that_round_trips() -> None:
    """RFC 6533: message/global-delivery-status, utf-8 address type, UTF-8 fields."""
    unicode = _failed(
        final_recipient="ünïcode@x.test",
        original_recipient="utf-8;" + xtext_encode("\\x{FC}n\\x{EF}code@x.test"),
        diagnostic="550 5.1.1 ünïcode@x.test: no such user",
    )
    raw = _build(
        ORIGINAL,
        [unicode, _failed(final_recipient="plain@x.test")],
        sender="ålice@x.test",
        envid=xtext_encode("envé"),
    )
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed.get_param("report-type") == "global-delivery-status"
    parts = [p.get_content_type() for p in parsed.iter_parts()]
    assert parts == ["text/plain", "message/global-delivery-status", "message/global"]
    assert needs_smtputf8(raw)
    assert "Final-Recipient: utf-8; ünïcode@x.test\r\n".encode() in raw
    assert "Original-Recipient: utf-8; ünïcode@x.test\r\n".encode() in raw
    assert b"Final-Recipient: rfc822; plain@x.test\r\n" in raw
    report = parse_dsn(raw)
    block = report.recipient("ünïcode@x.test")
    assert (block.action, block.status) == ("failed", "5.1.1")
    assert block.original_recipient == "utf-8;ünïcode@x.test"
    assert block.diagnostic == "550 5.1.1 ünïcode@x.test: no such user"
    assert report.envid == "envé"
    assert report.recipient("plain@x.test").status == "5.1.1"
    assert report.returned == ORIGINAL


def test_parse_reads_escaped_utf8_addresses_and_encoded_status_parts() -> None:
    """Another MTA may write utf-8 addresses as \\x{HEX} and base64 the status part."""
    status = (
        b"Reporting-MTA: dns; other.test\r\n\r\n"
        b"Final-Recipient: utf-8; j\\x{F6}rg@x.test\r\nAction: failed\r\n"
        b"Status: 5.1.1 (no such user)\r\nDiagnostic-Code: smtp; 550 5.1.1\r\n"
        b"  unknown\r\n"
    )
    raw = (
        b"Content-Type: multipart/report; report-type=global-delivery-status;\r\n"
        b' boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsorry\r\n'
        b"--b\r\nContent-Type: message/global-delivery-status\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(status).replace(b"\n", b"\r\n")
        + b"--b--\r\n"
    )
    report = parse_dsn(raw)
    assert report.reporting_mta == "other.test"
    block = report.recipient("jörg@x.test")
    assert (block.status, block.diagnostic) == ("5.1.1", "550 5.1.1 unknown")


def test_success_report_returns_headers_by_default() -> None:
    raw = build_dsn(
        reporting_mta="mx.test",
        sender="a@x.test",
        original=ORIGINAL,
        recipients=[DSNRecipient("bob@other.test", "delivered", "2.0.0")],
        arrival=NOW,
        now=NOW,
    )
    report = parse_dsn(raw)
    assert report.returned_kind == "headers"
    assert report.recipients[0].action == "delivered"
    assert message_from_bytes(raw)["Subject"] == "Successful Mail Delivery Report"


def test_delay_report_has_will_retry_until() -> None:
    raw = build_dsn(
        reporting_mta="r.test",
        sender="a@x.test",
        original=ORIGINAL,
        recipients=[_failed(action="delayed", status="4.7.1", will_retry_until=NOW)],
        arrival=NOW,
        now=NOW,
    )
    assert b"Will-Retry-Until: Wed, 01 May 2024 12:00:00 +0000" in raw
    assert parse_dsn(raw).recipients[0].action == "delayed"


def test_several_recipients() -> None:
    raw = build_dsn(
        reporting_mta="r.test",
        sender="a@x.test",
        original=ORIGINAL,
        recipients=[_failed(), _failed(final_recipient="carol@other.test", status="5.2.2")],
        arrival=NOW,
        now=NOW,
    )
    report = parse_dsn(raw)
    assert [r.final_recipient for r in report.recipients] == ["bob@other.test", "carol@other.test"]
    assert report.recipient("carol@other.test").status == "5.2.2"
    with pytest.raises(LookupError, match=r"carol@other\.test"):
        report.recipient("dave@other.test")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"action": "lost"}, "action must be one of"), ({"status": "550"}, "RFC 3463")],
)
def test_recipient_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _failed(**kwargs)


def test_build_needs_recipients() -> None:
    with pytest.raises(ValueError, match="at least one"):
        build_dsn(
            reporting_mta="r", sender="a@x", original=b"", recipients=[], arrival=NOW, now=NOW
        )


def test_parse_rejects_other_messages() -> None:
    with pytest.raises(ValueError, match="not a delivery status report"):
        parse_dsn(b"Subject: hi\r\n\r\nbody\r\n")


def test_xtext_round_trip() -> None:
    assert xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d"
    assert xtext_decode("a+2Bb+3Dc+20d") == "a+b=c d"
    assert xtext_decode(xtext_encode("jürgen@x.test")) == "jürgen@x.test"


def test_parse_notify() -> None:
    assert parse_notify(None) is None
    assert parse_notify("success,Failure") == {"SUCCESS", "FAILURE"}
    assert parse_notify("NEVER") == {"NEVER"}
    with pytest.raises(ValueError, match="NEVER or a list"):
        parse_notify("NEVER,SUCCESS")
