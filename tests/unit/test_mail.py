"""The mail model: Reply, Message parsing (capped), Transaction, Mailbox and TransactionLog."""

from __future__ import annotations

import base64
import inspect
import re
import sys
from datetime import datetime, timedelta, timezone
from email import headerregistry

import pytest

from pytest_smtp import mail
from pytest_smtp.mail import (
    MAX_FIELD,
    MAX_HEADER_SECTION,
    MAX_STRUCTURED_FIELD,
    OUTCOMES,
    STAGES,
    Mailbox,
    MailboxError,
    Message,
    RecipientResult,
    Reply,
    SessionInfo,
    Transaction,
    TransactionLog,
)

SESSION = SessionInfo(id=1, peer=("127.0.0.1", 40000), server_hostname="mx.test")
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def make_message(
    raw: bytes = b"Subject: Hi\r\n\r\nHello\r\n",
    *,
    mail_from: str = "a@x.test",
    rcpt_tos: list[str] | None = None,
    transaction_id: int = 1,
) -> Message:
    return Message(
        raw=raw,
        mail_from=mail_from,
        rcpt_tos=["b@y.test"] if rcpt_tos is None else rcpt_tos,
        mail_options=["BODY=8BITMIME"],
        rcpt_options={"b@y.test": ["NOTIFY=NEVER"]},
        session=SESSION,
        server="127.0.0.1:2525",
        received_at=WHEN,
        transaction_id=transaction_id,
    )


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("latin-1")


# --------------------------------------------------------------------------------------------
# Reply


def test_reply_str_and_wire_lines() -> None:
    reply = Reply(550, "No such user", "5.1.1")
    assert str(reply) == "550 5.1.1 No such user"
    assert reply.wire_lines() == ["550 5.1.1 No such user"]
    multi = Reply(250, "mx.test\nPIPELINING\nSIZE 1000")
    assert str(multi) == "250 mx.test"
    assert multi.wire_lines() == ["250-mx.test", "250-PIPELINING", "250 SIZE 1000"]
    assert Reply(451, "a\nb", "4.3.0").wire_lines() == ["451-4.3.0 a", "451 4.3.0 b"]
    assert Reply(250).wire_lines() == ["250"]
    assert str(Reply(250)) == "250"
    assert str(Reply(250, enhanced="2.0.0")) == "250 2.0.0"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("250 OK", Reply(250, "OK")),
        ("550 5.1.1 No such user", Reply(550, "No such user", "5.1.1")),
        ("250", Reply(250)),
        ("421 4.4.2 ", Reply(421, "", "4.4.2")),
        ("250-mx.test\r\n250-SIZE 10\r\n250 OK\r\n", Reply(250, "mx.test\nSIZE 10\nOK")),
        ("451-4.3.0 first\n451 4.3.0 second", Reply(451, "first\nsecond", "4.3.0")),
        ("554 5.7.1: not an enhanced code", Reply(554, "5.7.1: not an enhanced code")),
    ],
)
def test_reply_parse(line: str, expected: Reply) -> None:
    assert Reply.parse(line) == expected


def test_reply_parse_round_trips_wire_lines() -> None:
    reply = Reply(550, "line one\nline two", "5.7.1")
    assert Reply.parse("\r\n".join(reply.wire_lines())) == reply


@pytest.mark.parametrize("line", ["hello", "", "25 OK", "250OK", "abc def"])
def test_reply_parse_rejects_non_replies(line: str) -> None:
    with pytest.raises(ValueError, match="SMTP reply"):
        Reply.parse(line)


def test_reply_parse_rejects_mixed_codes() -> None:
    with pytest.raises(ValueError, match="mixes codes 250 and 251"):
        Reply.parse("250-a\r\n251 b")


@pytest.mark.parametrize(
    ("code", "kind"),
    [(250, "positive"), (354, "intermediate"), (421, "transient"), (550, "permanent")],
)
def test_reply_kind(code: int, kind: str) -> None:
    assert Reply(code).kind == kind


@pytest.mark.parametrize("code", [199, 600, 0, 1000])
def test_reply_code_range(code: int) -> None:
    with pytest.raises(ValueError, match=r"200\.\.599"):
        Reply(code)


@pytest.mark.parametrize("code", [True, "250", 250.0])
def test_reply_code_type(code: object) -> None:
    with pytest.raises(TypeError, match=r"200\.\.599"):
        Reply(code)  # type: ignore[arg-type]


@pytest.mark.parametrize("enhanced", ["5.1", "3.1.1", "5.1.1.1", "x.1.1", "5.1234.1", " 5.1.1"])
def test_reply_enhanced_format(enhanced: str) -> None:
    with pytest.raises(ValueError, match="enhanced status must look like"):
        Reply(550, "x", enhanced)


def test_reply_enhanced_class_must_match_code() -> None:
    with pytest.raises(ValueError, match=r"class 4 but reply code 550 is class 5.*550 5\.1\.1"):
        Reply(550, "x", "4.1.1")
    with pytest.raises(ValueError, match="class 2 but reply code 354"):
        Reply(354, "go ahead", "2.0.0")


def test_reply_text_must_not_carry_cr_or_nul() -> None:
    with pytest.raises(ValueError, match="CR or NUL"):
        Reply(250, "a\r\nb")
    with pytest.raises(ValueError, match="CR or NUL"):
        Reply(250, "a\0")


def test_reply_is_frozen_and_hashable() -> None:
    reply = Reply(250, "OK")
    with pytest.raises(AttributeError):
        reply.code = 251  # type: ignore[misc]
    assert {reply: 1}[Reply(250, "OK")] == 1


def test_recipient_result_accepted() -> None:
    assert RecipientResult("a@x", [], Reply(250, "OK")).accepted
    assert not RecipientResult("a@x", [], Reply(550, "no", "5.1.1")).accepted
    assert not RecipientResult("a@x", ["NOTIFY=NEVER"], Reply(451, "later")).accepted


# --------------------------------------------------------------------------------------------
# Message: envelope and plain attributes


def test_message_envelope_attributes() -> None:
    raw = b"Subject: Hi\r\n\r\nHello\r\n"
    message = make_message(raw)
    assert message.raw is raw
    assert message.as_eml() is raw
    assert message.size == len(raw)
    assert message.mail_from == "a@x.test"
    assert message.rcpt_tos == ["b@y.test"]
    assert message.mail_options == ["BODY=8BITMIME"]
    assert message.rcpt_options == {"b@y.test": ["NOTIFY=NEVER"]}
    assert message.session is SESSION
    assert message.server == "127.0.0.1:2525"
    assert message.received_at == WHEN
    assert message.transaction_id == 1
    assert message.defects == []
    assert message.parse_defects == []


def test_message_received_at_is_utc_and_must_be_aware() -> None:
    plus_two = timezone(timedelta(hours=2))
    message = Message(
        raw=b"\r\n",
        mail_from="",
        rcpt_tos=["b@y"],
        mail_options=[],
        rcpt_options={},
        session=SESSION,
        server="127.0.0.1:1",
        received_at=datetime(2026, 1, 1, 12, 0, tzinfo=plus_two),
        transaction_id=2,
        defects=["bare LF in DATA at line 3"],
    )
    assert message.received_at.tzinfo == timezone.utc
    assert message.received_at.hour == 10
    assert message.defects == ["bare LF in DATA at line 3"]
    with pytest.raises(ValueError, match="timezone-aware"):
        Message(
            raw=b"",
            mail_from="",
            rcpt_tos=[],
            mail_options=[],
            rcpt_options={},
            session=SESSION,
            server="s",
            received_at=datetime(2026, 1, 1),
            transaction_id=3,
        )


def test_message_raw_must_be_bytes() -> None:
    with pytest.raises(TypeError, match="raw must be bytes, got str"):
        make_message("Subject: x\r\n\r\n")  # type: ignore[arg-type]


def test_message_does_not_share_the_engines_lists() -> None:
    rcpts = ["b@y.test"]
    message = make_message(rcpt_tos=rcpts)
    rcpts.append("c@y.test")
    assert message.rcpt_tos == ["b@y.test"]


def test_message_repr() -> None:
    message = make_message(b"Subject: Hi\r\n\r\nHello\r\n")
    assert repr(message) == "<Message from='a@x.test' to=['b@y.test'] subject='Hi' size=22>"
    no_subject = make_message(b"\r\nbody", mail_from="")
    assert repr(no_subject) == "<Message from='' to=['b@y.test'] subject=None size=6>"


# --------------------------------------------------------------------------------------------
# Message: headers


HEADERS = crlf(
    "Received: from b.test by c.test; Fri, 2 Jan 2026 03:04:05 +0000\n"
    "Received: from a.test by b.test; Fri, 2 Jan 2026 03:04:04 +0000\n"
    "From: =?utf-8?q?J=C3=BCrgen?= <jurgen@x.test>\n"
    'To: "Doe, Jane" <jane@y.test>, bob@y.test,\n'
    " Team: carol@y.test, Dan <dan@y.test>;\n"
    "Cc: =?iso-8859-1?q?Ren=E9?= <rene@z.test>\n"
    "Subject: =?utf-8?b?R3LDvMOfZQ==?= and\n"
    " =?iso-8859-1?q?caf=E9?=\n"
    "X-Tag: one\n"
    "x-tag: two\n"
    "\n"
    "body\n"
)


def test_headers_are_decoded() -> None:
    message = make_message(HEADERS)
    assert message.subject == "Grüße and café"
    assert message.from_ == "Jürgen <jurgen@x.test>"
    assert message.to == ["jane@y.test", "bob@y.test", "carol@y.test", "dan@y.test"]
    assert message.cc == ["rene@z.test"]
    assert message.headers["Cc"] == "René <rene@z.test>"
    assert message.parse_defects == []


def test_headers_view_is_case_insensitive_and_read_only() -> None:
    headers = make_message(HEADERS).headers
    assert headers["subject"] == headers["SUBJECT"] == "Grüße and café"
    assert headers["X-Missing"] is None
    assert headers.get("X-Missing", "default") == "default"
    assert headers.get_all("X-TAG") == ["one", "two"]
    assert headers.get_all("X-Missing") == []
    assert "x-tag" in headers
    assert "X-Missing" not in headers
    assert 3 not in headers
    assert headers.keys() == [
        "Received",
        "Received",
        "From",
        "To",
        "Cc",
        "Subject",
        "X-Tag",
        "x-tag",
    ]
    assert list(headers) == headers.keys()
    assert len(headers) == 8
    assert ("X-Tag", "one") in headers.items()
    assert not hasattr(headers, "__setitem__")
    with pytest.raises(TypeError, match="header names are str"):
        headers.get_all(1)  # type: ignore[arg-type]


def test_received_is_top_first() -> None:
    message = make_message(HEADERS)
    assert message.received == [
        "from b.test by c.test; Fri, 2 Jan 2026 03:04:05 +0000",
        "from a.test by b.test; Fri, 2 Jan 2026 03:04:04 +0000",
    ]


def test_missing_headers() -> None:
    message = make_message(b"\r\njust a body\r\n")
    assert message.subject is None
    assert message.from_ is None
    assert message.to == []
    assert message.cc == []
    assert message.received == []
    assert message.text == "just a body\n"
    assert message.html is None
    assert message.attachments == []


def test_to_uses_the_header_parser_not_getaddresses() -> None:
    # CVE-2023-27043: email.utils.getaddresses/parseaddr misread such headers on 3.11/3.12.
    message = make_message(b'To: "alice@example.org" <bob@example.org>\r\n\r\n')
    assert message.to == ["bob@example.org"]
    source = inspect.getsource(mail)
    assert "getaddresses" not in source
    assert "parseaddr" not in source


def test_to_and_headers_differ_from_envelope() -> None:
    message = make_message(b"To: list@y.test\r\n\r\nx", rcpt_tos=["bcc-only@z.test", "list@y.test"])
    assert message.to == ["list@y.test"]
    assert message.rcpt_tos == ["bcc-only@z.test", "list@y.test"]


def test_returned_lists_are_copies() -> None:
    message = make_message(HEADERS)
    message.to.append("evil@x")
    assert "evil@x" not in message.to


# --------------------------------------------------------------------------------------------
# Message: bodies and attachments


def test_quoted_printable_text_body() -> None:
    raw = crlf(
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "Caf=C3=A9 au lait, a very long line that is soft=\n"
        " wrapped\n"
        "second line\n"
    )
    message = make_message(raw)
    assert message.text == "Café au lait, a very long line that is soft wrapped\nsecond line\n"
    assert message.html is None


def test_base64_html_body() -> None:
    html = "<p>Grüße</p>\r\n"
    encoded = base64.encodebytes(html.encode("utf-8")).decode("ascii")
    raw = crlf(
        f"Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n{encoded}"
    )
    message = make_message(raw)
    assert message.html == "<p>Grüße</p>\n"
    assert message.text is None


def test_latin1_charset_is_decoded() -> None:
    raw = (
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        b"Fran\xe7ais \xe9t\xe9\r\n"
    )
    assert make_message(raw).text == "Français été\n"


def test_unknown_charset_falls_back_without_raising() -> None:
    raw = b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nplain ascii\r\n"
    assert make_message(raw).text == "plain ascii\n"


PDF = b"%PDF-1.4\n\x00\x01\x02binary\xff"
MULTIPART = crlf(
    "From: a@x.test\n"
    "To: b@y.test\n"
    "Subject: =?utf-8?q?Report_f=C3=BCr_Q1?=\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="outer"\n'
    "\n"
    "preamble\n"
    "--outer\n"
    'Content-Type: multipart/alternative; boundary="inner"\n'
    "\n"
    "--inner\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "Hi, the report is attached. =E2=82=AC 5\n"
    "--inner\n"
    "Content-Type: text/html; charset=utf-8\n"
    "\n"
    "<p>Hi, the report is attached.</p>\n"
    "--inner--\n"
    "--outer\n"
    "Content-Type: application/pdf\n"
    'Content-Disposition: attachment; filename="q1.pdf"\n'
    "Content-Transfer-Encoding: base64\n"
    "\n"
    f"{base64.encodebytes(PDF).decode('ascii')}"
    "--outer\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Disposition: attachment; filename*=utf-8''notes%C3%BC.txt\n"
    "\n"
    "attached text, not the body\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "Subject: forwarded\n"
    "\n"
    "inner body\n"
    "--outer--\n"
)


def test_multipart_text_html_and_attachments() -> None:
    message = make_message(MULTIPART)
    assert message.subject == "Report für Q1"
    assert message.text == "Hi, the report is attached. € 5"
    assert message.html == "<p>Hi, the report is attached.</p>"
    attachments = message.attachments
    assert [(a.filename, a.content_type) for a in attachments] == [
        ("q1.pdf", "application/pdf"),
        ("notesü.txt", "text/plain"),
        (None, "message/rfc822"),
    ]
    assert attachments[0].payload == PDF
    assert attachments[0].size == len(PDF)
    assert attachments[1].payload == b"attached text, not the body"
    assert attachments[2].payload == b"Subject: forwarded\r\n\r\ninner body"
    assert repr(attachments[0]) == f"<Attachment 'q1.pdf' application/pdf {len(PDF)} bytes>"
    assert message.parse_defects == []


def test_email_is_parsed_once_with_policy_default_semantics() -> None:
    message = make_message(MULTIPART)
    parsed = message.email
    assert parsed is message.email
    assert parsed.get_content_type() == "multipart/mixed"
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None
    assert "report is attached" in body.get_content()


def test_mime_nesting_too_deep_for_the_parser_leaves_the_body_whole() -> None:
    depth = 150
    parts = [f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(depth)]
    closing = "".join(f"\n--b{i}--\n" for i in reversed(range(depth)))
    raw = crlf("Subject: deep\n" + "".join(parts) + "Content-Type: text/plain\n\ndeep\n" + closing)
    assert make_message(raw).text == "deep\n"
    message = make_message(raw)
    # The parser recurses per MIME level; a lower limit stands in for a deeper crafted message.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 100)
    try:
        parsed = message.email
    finally:
        sys.setrecursionlimit(limit)
    assert parsed["Subject"] == "deep"
    assert message.subject == "deep"
    assert message.text is None
    assert "MIME parts nested too deeply to parse; the body is left as one part" in (
        message.parse_defects
    )


# --------------------------------------------------------------------------------------------
# Message: capped parsing of crafted headers


CRAFTED = {
    "encoded words": b"Subject: " + b"=?utf-8?q?a?= " * 2400 + b"\r\n",
    "comments in To": b"To: " + b"(a)" * 11000 + b"\r\n",
    "quotes in To": b"To: " + b'"' * 32768 + b"\r\n",
    "nested comments": b"To: a@b " + b"(" * 5000 + b")" * 5000 + b"\r\n",
    "rfc2231 params": b"Content-Type: text/plain; " + b"a*0*=x; " * 4096 + b"\r\n",
}
# What each crafted field leaves in parse_defects: the length cut, then (for the structured
# fields) the cost cap that kept it as unstructured text instead of parsing it.
COSTLY = "comments, quoted strings, encoded words and RFC 2231 sections"
CRAFTED_DEFECTS = {
    "encoded words": ["header 'Subject' of 33600 characters truncated to 8189 (limit 8192)"],
    "comments in To": [
        "header 'To' of 33000 characters truncated to 4096 (limit 4096)",
        f"header 'To' has 1366 {COSTLY} (limit 256); kept as unstructured text",
    ],
    "quotes in To": [
        "header 'To' of 32768 characters truncated to 4096 (limit 4096)",
        f"header 'To' has 2048 {COSTLY} (limit 256); kept as unstructured text",
    ],
    "nested comments": [
        "header 'To' of 10004 characters truncated to 4096 (limit 4096)",
        "header 'To' has comments nested 4092 deep (limit 32); kept as unstructured text",
    ],
    "rfc2231 params": [
        "header 'Content-Type' of 32780 characters truncated to 4091 (limit 4096)",
        f"header 'Content-Type' has 1020 {COSTLY} (limit 256); kept as unstructured text",
    ],
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_headers_are_cut_and_kept_as_text(name: str) -> None:
    raw = b"From: s@x.test\r\n" + CRAFTED[name] + b"Subject: hi\r\n\r\nbody\r\n"
    message = make_message(raw)
    field = CRAFTED[name].partition(b":")[0].decode()
    value = message.headers[field]
    assert value is not None
    original = CRAFTED[name].partition(b": ")[2].decode().strip()
    if field == "Subject":
        assert value == "a" * len(value)  # decoded, all of the kept part
    else:
        assert original.startswith(value)  # kept as text, cut at the length cap
    assert message.to == []  # no addresses parsed out of crafted text
    assert message.text == "body\n"
    assert message.from_ == "s@x.test"
    assert message.email.get_content_type() == "text/plain"
    if field != "Subject":
        assert message.subject == "hi"
    assert message.parse_defects == CRAFTED_DEFECTS[name]


def test_nested_comments_never_raise_recursion_error_from_message() -> None:
    raw = b"To: a@b " + b"(" * 3000 + b")" * 3000 + b"\r\nSubject: deep\r\n\r\nx"
    message = make_message(raw)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 60)
    try:
        to, subject, value = message.to, message.subject, message.headers["To"]
    finally:
        sys.setrecursionlimit(limit)
    assert (to, subject) == ([], "deep")
    assert value is not None and value.startswith("a@b (((")
    assert "kept as unstructured text" in message.parse_defects[-1]


def test_over_long_field_is_truncated_with_a_defect() -> None:
    subject = "word " * 4000
    message = make_message(f"Subject: {subject}\r\n\r\nx".encode())
    assert message.subject is not None
    assert len(message.subject) <= MAX_FIELD
    assert subject.startswith(message.subject)
    assert message.parse_defects == [
        f"header 'Subject' of {len(subject)} characters truncated to "
        f"{len(message.subject)} (limit {MAX_FIELD})"
    ]


def test_address_field_is_cut_between_addresses() -> None:
    addresses = [f"user{i}@y.test" for i in range(600)]
    message = make_message(("To: " + ", ".join(addresses) + "\r\n\r\nx").encode())
    kept = message.to
    assert 0 < len(kept) < len(addresses)
    assert kept == addresses[: len(kept)]
    assert len(", ".join(kept)) <= MAX_STRUCTURED_FIELD
    assert "header 'To'" in message.parse_defects[0]


def test_deeply_nested_comments_do_not_escape() -> None:
    # The stdlib recurses once per comment level (RecursionError on CPython 3.11).
    message = make_message(b"To: a@b " + b"(" * 1200 + b")" * 1200 + b"\r\n\r\nx")
    assert isinstance(message.to, list)
    value = message.headers["To"]
    assert value is not None
    assert value.startswith("a@b (")
    assert message.text == "x"


def test_parser_crash_falls_back_to_text(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(cls: object, value: str, kwds: dict[str, object]) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(headerregistry.AddressHeader, "parse", classmethod(crash))
    message = make_message(b"To: Jane <jane@y.test>,\r\n  bob@y.test\r\nSubject: ok\r\n\r\nx")
    assert message.to == []
    assert message.headers["To"] == "Jane <jane@y.test>,  bob@y.test"
    assert message.subject == "ok"
    assert message.parse_defects == [
        "header 'To' could not be parsed (RecursionError); kept as text"
    ]


def test_header_section_cap_drops_fields_but_keeps_mime_structure() -> None:
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 900) for i in range(100))
    raw = (
        b"Subject: kept\r\n"
        + filler
        + b"X-Late: dropped\r\n"
        + b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        + b"\r\n"
        + b"caf\xe9\r\n"
    )
    message = make_message(raw)
    assert message.subject == "kept"
    assert message.headers["X-Late"] is None
    assert message.text == "café\n"
    assert message.email.get_content_charset() == "iso-8859-1"
    assert len(message.parse_defects) == 1
    assert f"over the {MAX_HEADER_SECTION}-byte limit" in message.parse_defects[0]


def test_huge_single_field_in_a_huge_section_is_truncated_not_lost() -> None:
    raw = b"Subject: " + b"s " * 100_000 + b"\r\n\r\nbody\r\n"
    message = make_message(raw)
    assert message.subject is not None
    assert message.subject.startswith("s s s")
    assert message.text == "body\n"


def test_large_body_is_parsed_in_full() -> None:
    body = b"0123456789abcdef" * 200_000  # 3.2 MB, longer than one feed chunk
    message = make_message(b"Subject: big\r\n\r\n" + body)
    assert message.text is not None
    assert len(message.text) == len(body)


# --------------------------------------------------------------------------------------------
# Transaction


def test_transaction_defaults_and_finish() -> None:
    t = Transaction(id=3, session=SESSION)
    assert t.id == 3
    assert t.session is SESSION
    assert t.mail_from is None
    assert t.mail_options == []
    assert t.recipients == []
    assert t.outcome is None
    assert t.in_progress
    assert t.stage == "mail"
    assert t.reply is None
    assert t.message is None
    assert t.transcript == []
    assert t.started_at.tzinfo == timezone.utc
    assert t.ended_at is None
    assert t.error is None
    assert Transaction(id=4, session=SESSION).recipients is not t.recipients

    t.mail_from = "a@x"
    t.recipients.append(RecipientResult("b@y", [], Reply(250, "OK", "2.1.5")))
    t.recipients.append(RecipientResult("bob@y", [], Reply(550, "No such user", "5.1.1")))
    assert t.rcpt_tos == ["b@y"]
    assert [r.address for r in t.refused] == ["bob@y"]
    message = make_message()
    t.finish("accepted", "eod", Reply(250, "OK"), message)
    assert t.outcome == "accepted"
    assert not t.in_progress
    assert t.stage == "eod"
    assert t.message is message
    assert t.ended_at is not None
    assert t.ended_at >= t.started_at


def test_transaction_finish_validates() -> None:
    t = Transaction(id=1, session=SESSION)
    with pytest.raises(ValueError, match="outcome 'ok' is not one of: accepted, rejected"):
        t.finish("ok", "eod", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stage 'body' is not one of: connect, ehlo"):
        t.finish("accepted", "body", None)  # type: ignore[arg-type]
    t.finish("aborted", "data", None, error="Traceback ...")
    assert t.error == "Traceback ..."
    with pytest.raises(RuntimeError, match="already finished as aborted"):
        t.finish("accepted", "eod", Reply(250))


def test_transaction_repr() -> None:
    t = Transaction(id=3, session=SESSION)
    t.mail_from = "a@x"
    t.recipients.append(RecipientResult("b@y", [], Reply(550, "No such user", "5.1.1")))
    assert (
        repr(t)
        == "<Transaction #3 in progress at mail from='a@x' to=['b@y (550 5.1.1 No such user)']>"
    )
    t.finish("rejected", "rcpt", Reply(550, "No such user", "5.1.1"))
    assert repr(t) == (
        "<Transaction #3 rejected at rcpt: 550 5.1.1 No such user from='a@x' "
        "to=['b@y (550 5.1.1 No such user)']>"
    )


def test_outcomes_and_stages() -> None:
    assert OUTCOMES == ("accepted", "rejected", "deferred", "dropped", "aborted")
    assert STAGES == ("connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "eod", "quit")


# --------------------------------------------------------------------------------------------
# Mailbox: list protocol, listeners


def test_mailbox_list_protocol() -> None:
    mailbox = Mailbox()
    assert len(mailbox) == 0
    assert not mailbox
    assert mailbox == []
    assert repr(mailbox) == "<Mailbox 0 messages>"
    first, second = make_message(), make_message(b"Subject: Two\r\n\r\n", transaction_id=2)
    mailbox._append(first)
    mailbox._append(second)
    assert len(mailbox) == 2
    assert mailbox
    assert mailbox[0] is first
    assert mailbox[-1] is second
    assert mailbox[0:1] == [first]
    assert list(mailbox) == [first, second]
    assert mailbox == [first, second]
    assert mailbox == (first, second)
    assert mailbox != [second, first]
    assert mailbox != "something else"
    assert mailbox == mailbox
    assert mailbox != Mailbox()
    assert {mailbox: 1}[mailbox] == 1
    assert first in mailbox
    assert mailbox.index(second) == 1
    assert repr(mailbox) == (
        "<Mailbox 2 messages: [0] from='a@x.test' to=['b@y.test'] subject='Hi' size=22; "
        "[1] from='a@x.test' to=['b@y.test'] subject='Two' size=16>"
    )
    with pytest.raises(IndexError):
        mailbox[5]


def test_mailbox_iterates_over_a_snapshot() -> None:
    mailbox = Mailbox()
    mailbox._append(make_message())
    seen = []
    for message in mailbox:
        seen.append(message)
        mailbox._append(make_message())
    assert len(seen) == 1
    assert len(mailbox) == 2


def test_mailbox_repr_is_bounded() -> None:
    mailbox = Mailbox()
    for i in range(8):
        mailbox._append(make_message(transaction_id=i))
    text = repr(mailbox)
    assert text.startswith("<Mailbox 8 messages: [0] ")
    assert "[4] " in text
    assert "[5] " not in text
    assert text.endswith("; … 3 more>")


def test_mailbox_clear() -> None:
    mailbox = Mailbox()
    mailbox._append(make_message())
    mailbox.listener_errors.append("old")
    mailbox.clear()
    assert len(mailbox) == 0
    assert mailbox.listener_errors == []


def test_listeners_run_after_append_and_errors_are_kept() -> None:
    mailbox = Mailbox()
    calls: list[tuple[str, Message, int]] = []

    def good(message: Message) -> None:
        calls.append(("good", message, len(mailbox)))

    def bad(message: Message) -> None:
        raise RuntimeError("listener exploded")

    remove_good = mailbox.add_listener(good)
    remove_bad = mailbox.add_listener(bad)
    message = make_message()
    mailbox._append(message)
    assert calls == [("good", message, 1)]
    assert len(mailbox.listener_errors) == 1
    assert "RuntimeError: listener exploded" in mailbox.listener_errors[0]
    remove_good()
    remove_good()  # removing twice is harmless
    remove_bad()
    mailbox._append(make_message())
    assert len(calls) == 1
    assert len(mailbox.listener_errors) == 1
    with pytest.raises(TypeError, match="takes a callable"):
        mailbox.add_listener("not callable")  # type: ignore[arg-type]


def test_default_timeout_is_validated() -> None:
    mailbox = Mailbox(default_timeout=2.5)
    assert mailbox.default_timeout == 2.5
    mailbox.default_timeout = 1
    assert mailbox.default_timeout == 1.0
    with pytest.raises(ValueError, match="default_timeout must be a finite number"):
        mailbox.default_timeout = -1
    with pytest.raises(TypeError, match="default_timeout must be a number"):
        Mailbox(default_timeout="5")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Mailbox: filters and one()


@pytest.fixture
def filled() -> Mailbox:
    mailbox = Mailbox()
    mailbox._append(
        make_message(
            crlf("Subject: Welcome Alice\nX-Kind: signup\nX-Kind: vip\n\nHello Alice, welcome.\n"),
            rcpt_tos=["Alice@Example.org"],
            transaction_id=1,
        )
    )
    mailbox._append(
        make_message(
            crlf(
                "Subject: =?utf-8?q?R=C3=A9sum=C3=A9?=\n"
                "Content-Type: text/html; charset=utf-8\n"
                "X-Kind: report\n\n<b>Weekly report</b>\n"
            ),
            rcpt_tos=["bob@example.org", "alice@example.org"],
            transaction_id=2,
        )
    )
    mailbox._append(
        make_message(
            crlf("Subject: Bounce\n\nDelivery failed\n"),
            mail_from="",
            rcpt_tos=["alicia@example.org"],
            transaction_id=3,
        )
    )
    return mailbox


def ids(messages: list[Message]) -> list[int]:
    return [m.transaction_id for m in messages]


def test_filter_to_is_exact_and_case_insensitive(filled: Mailbox) -> None:
    assert ids(filled.filter(to="alice@example.org")) == [1, 2]
    assert ids(filled.filter(to="ALICE@EXAMPLE.ORG")) == [1, 2]
    assert ids(filled.filter(to="alice")) == []
    assert ids(filled.filter(to="lice@example.org")) == []


def test_filter_from(filled: Mailbox) -> None:
    assert ids(filled.filter(from_="")) == [3]
    assert ids(filled.filter(from_="A@X.test")) == [1, 2]
    with pytest.raises(ValueError, match="from_=''"):
        filled.filter(from_="<>")


def test_filter_subject(filled: Mailbox) -> None:
    assert ids(filled.filter(subject="Résumé")) == [2]
    assert ids(filled.filter(subject="Welcome")) == []
    assert ids(filled.filter(subject=re.compile("^Welcome"))) == [1]
    assert ids(filled.filter(subject=re.compile("(?i)bounce|résumé"))) == [2, 3]


def test_filter_contains_searches_text_and_html(filled: Mailbox) -> None:
    assert ids(filled.filter(contains="welcome.")) == [1]
    assert ids(filled.filter(contains="Weekly report")) == [2]
    assert ids(filled.filter(contains="nowhere")) == []


def test_filter_header(filled: Mailbox) -> None:
    assert ids(filled.filter(header=("X-Kind", "vip"))) == [1]
    assert ids(filled.filter(header=("x-kind", "report"))) == [2]
    assert ids(filled.filter(header={"X-Kind": "signup", "Subject": "Welcome Alice"})) == [1]
    assert ids(filled.filter(header={"X-Kind": re.compile("^(vip|report)$")})) == [1, 2]
    assert ids(filled.filter(header=("X-Missing", "x"))) == []


def test_filter_predicate_and_combination(filled: Mailbox) -> None:
    assert ids(filled.filter(predicate=lambda m: len(m.rcpt_tos) > 1)) == [2]
    assert ids(filled.filter(to="alice@example.org", subject=re.compile("Rés"))) == [2]
    assert ids(filled.filter()) == [1, 2, 3]


def test_filter_rejects_bad_arguments(filled: Mailbox) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'too'"):
        filled.filter(too="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="to= takes a str, got list"):
        filled.filter(to=["a@x"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="subject= takes a str or a compiled str pattern"):
        filled.filter(subject=re.compile(b"x"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"header= takes a \(name, value\) tuple"):
        filled.filter(header=("X-Kind",))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"header= takes a \(name, value\) tuple"):
        filled.filter(header="X-Kind: vip")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="predicate= takes a callable"):
        filled.filter(predicate=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="positional"):
        filled.filter("a@x")  # type: ignore[call-arg]


def test_one(filled: Mailbox) -> None:
    assert filled.one(from_="").transaction_id == 3


def test_one_with_no_match_lists_what_was_captured(filled: Mailbox) -> None:
    with pytest.raises(MailboxError) as info:
        filled.one(to="carol@example.org", subject="Hi")
    text = str(info.value)
    assert text.startswith(
        "expected exactly one message matching to='carol@example.org', subject='Hi', found 0."
    )
    assert "3 messages captured:" in text
    assert "  [0] from='a@x.test' to=['Alice@Example.org'] subject='Welcome Alice'" in text
    assert "  [2] from='' to=['alicia@example.org'] subject='Bounce'" in text
    assert "0x" not in text
    assert isinstance(info.value, AssertionError)
    assert isinstance(info.value, LookupError)


def test_one_with_several_matches_says_which(filled: Mailbox) -> None:
    with pytest.raises(MailboxError, match=r"found 2 \(at \[0\], \[1\]\)"):
        filled.one(to="alice@example.org")


def test_one_on_an_empty_mailbox() -> None:
    with pytest.raises(MailboxError, match=r"matching \(no filters\), found 0\.\nno messages"):
        Mailbox().one()


def test_predicate_is_named_in_errors(filled: Mailbox) -> None:
    def is_urgent(message: Message) -> bool:
        return False

    with pytest.raises(MailboxError, match="matching predicate=test_predicate_is_named"):
        filled.one(predicate=is_urgent)


# --------------------------------------------------------------------------------------------
# TransactionLog filters


def make_transaction(
    tid: int,
    outcome: str | None,
    stage: str,
    reply: Reply | None,
    recipients: list[tuple[str, int]],
    mail_from: str | None = "a@x",
) -> Transaction:
    t = Transaction(id=tid, session=SESSION)
    t.mail_from = mail_from
    for address, code in recipients:
        t.recipients.append(RecipientResult(address, [], Reply(code)))
    if outcome is not None:
        t.finish(outcome, stage, reply)  # type: ignore[arg-type]
    return t


@pytest.fixture
def log() -> TransactionLog:
    log = TransactionLog()
    log._append(make_transaction(1, "accepted", "eod", Reply(250), [("b@y", 250), ("bob@y", 550)]))
    log._append(make_transaction(2, "rejected", "mail", Reply(553), [], mail_from="spam@x"))
    log._append(make_transaction(3, "deferred", "rcpt", Reply(451), [("c@y", 451)]))
    log._append(make_transaction(4, None, "data", None, [("d@y", 250)], mail_from=""))
    return log


def tids(transactions: list[Transaction]) -> list[int]:
    return [t.id for t in transactions]


def test_log_filters(log: TransactionLog) -> None:
    assert tids(log.filter(outcome="rejected")) == [2]
    assert tids(log.filter(stage="rcpt")) == [3]
    assert tids(log.filter(rcpt="BOB@y")) == [1]
    assert tids(log.filter(from_="spam@x")) == [2]
    assert tids(log.filter(from_="")) == [4]
    assert tids(log.filter(code=550)) == [1]
    assert tids(log.filter(code=451)) == [3]
    assert tids(log.filter(code=250, rcpt="d@y")) == [4]
    assert tids(log.filter(predicate=lambda t: t.in_progress)) == [4]
    assert log.one(outcome="deferred").id == 3
    assert repr(log).startswith("<TransactionLog 4 transactions: [0] #1 accepted at eod: 250 ")


def test_log_filters_validate(log: TransactionLog) -> None:
    with pytest.raises(ValueError, match="outcome='bounced' is not one of: accepted, rejected"):
        log.filter(outcome="bounced")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stage='body' is not one of: connect, ehlo"):
        log.filter(stage="body")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="code= takes an int reply code"):
        log.filter(code="550")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword argument 'to'"):
        log.filter(to="x")  # type: ignore[call-arg]
    with pytest.raises(MailboxError, match="expected exactly one transaction matching code=250"):
        log.one(code=250)
