"""Byte-level forwarding helpers: line endings, trace headers, hop count, verdict kinds."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from pytest_smtp.mail import Reply
from pytest_smtp.relay.mta import (
    RecipientVerdict,
    count_received,
    normalize_line_endings,
    received_header,
    return_path_header,
)

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"a\nb\rc\r\nd", b"a\r\nb\r\nc\r\nd\r\n"),
        (b"x\n.\ny", b"x\r\n.\r\ny\r\n"),
        (b"x\r.\r\n", b"x\r\n.\r\n"),
        (b"\r\r\n\n", b"\r\n\r\n\r\n"),
        (b"", b""),
    ],
)
def test_normalize_line_endings(raw: bytes, expected: bytes) -> None:
    assert normalize_line_endings(raw) == expected


def test_count_received_only_in_the_header_section() -> None:
    raw = (
        b"Received: from a\r\n\tby b; date\r\nreceived : from c\r\nSubject: x\r\n\r\n"
        b"Received: in the body\r\n"
    )
    assert count_received(raw) == 2


def test_received_header_shape() -> None:
    header = received_header(
        helo="client.test",
        peer_ip="127.0.0.3",
        by="relay.test",
        protocol="ESMTPSA",
        queue_id="Q1",
        recipient="bob@x.test",
        when=WHEN,
        tls="TLSv1.3",
    ).decode()
    assert header == (
        "Received: from client.test ([127.0.0.3])\r\n\t(TLSv1.3)\r\n"
        "\tby relay.test (pytest_smtp relay) with ESMTPSA id Q1\r\n"
        "\tfor <bob@x.test>; Wed, 01 May 2024 12:00:00 +0000\r\n"
    )
    several = received_header(
        helo=None,
        peer_ip="127.0.0.1",
        by="r.test",
        protocol="SMTP",
        queue_id="Q2",
        recipient=None,
        when=WHEN,
    ).decode()
    assert "for <" not in several and "from unknown" in several
    assert several.endswith("id Q2;\r\n\tWed, 01 May 2024 12:00:00 +0000\r\n")


def test_return_path() -> None:
    assert return_path_header("") == b"Return-Path: <>\r\n"
    assert return_path_header("a@x.test") == b"Return-Path: <a@x.test>\r\n"


@pytest.mark.parametrize(
    ("reply", "kind", "status"),
    [
        (Reply(250, "OK", "2.0.0"), "delivered", "2.0.0"),
        (Reply(451, "later"), "deferred", "4.0.0"),
        (Reply(550, "no", "5.1.1"), "bounced", "5.1.1"),
        (Reply(554, "no"), "bounced", "5.0.0"),
    ],
)
def test_verdict_kind(reply: Reply, kind: str, status: str) -> None:
    verdict = RecipientVerdict("b@x.test", reply, "rcpt")
    assert (verdict.kind, verdict.status) == (kind, status)
