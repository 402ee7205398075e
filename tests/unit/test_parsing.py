"""The capped parser: size and cost caps, their defects, and legitimate mail parsed as before."""

from __future__ import annotations

import email.parser
import email.policy
import inspect
import sys
from email import headerregistry
from email.message import EmailMessage

import pytest

from pytest_smtp import parsing
from pytest_smtp.parsing import (
    MAX_COMMENT_DEPTH,
    MAX_PARSE_TOKENS,
    MAX_STRUCTURED_FIELD,
    MAX_WORD_TOKENS,
    parse_message,
)

WHAT = "comments, quoted strings, encoded words and RFC 2231 sections"


def stdlib(raw: bytes) -> EmailMessage:
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed


def with_field(field: bytes) -> bytes:
    return b"From: s@x.test\r\n" + field + b"\r\nSubject: hi\r\n\r\nbody\r\n"


def addresses(message: EmailMessage, name: str = "To") -> list[tuple[str, str]]:
    return [(a.display_name, a.addr_spec) for a in getattr(message[name], "addresses", ())]


def test_structured_field_list_matches_the_stdlib_registry() -> None:
    expected = {name for name in headerregistry._default_header_map if name != "subject"}  # type: ignore[attr-defined]
    assert expected == parsing.STRUCTURED_FIELDS


# -- legitimate mail: parsed exactly as the stdlib parses it ------------------------------------

LEGIT = (
    b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>\r\n"
    b"To: "
    + b",\r\n ".join(b'"L%d, F (t)" <f.l%d@ex.example> (d)' % (i, i) for i in range(100))
    + b"\r\n"
    b"Subject: =?utf-8?b?R3LDvMOfZQ==?= =?utf-8?q?aus_Berlin?= (and more)\r\n"
    b"Date: Mon, 2 Sep 2024 10:00:00 +0000 (UTC)\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XYZ"; charset="utf-8" (comment)\r\n'
    b"\r\n"
    b"--XYZ\r\n"
    b"Content-Type: application/pdf; name*0*=utf-8''r%C3%A9; name*1*=port.pdf\r\n"
    b"Content-Disposition: attachment;\r\n filename*0*=utf-8''r%C3%A9;\r\n filename*1=port.pdf\r\n"
    b"\r\n"
    b"JVBERi0xLjQ=\r\n"
    b"--XYZ--\r\n"
)


def test_legitimate_mail_parses_exactly_as_the_stdlib_does() -> None:
    ours, defects = parse_message(LEGIT)
    theirs = stdlib(LEGIT)
    assert len(addresses(ours)) == 100
    assert addresses(ours) == addresses(theirs)
    assert addresses(ours)[7] == ("L7, F (t)", "f.l7@ex.example")
    for name in ("From", "Subject", "Date", "MIME-Version", "Content-Type"):
        assert str(ours[name]) == str(theirs[name]), name
    assert (
        str(ours["Subject"]) == "Grüßeaus Berlin (and more)"
    )  # RFC 2047: the space between encoded words goes
    part = ours.get_payload()[0]  # type: ignore[index]
    assert part.get_filename() == "réport.pdf"
    assert part.get_param("name") == stdlib(LEGIT).get_payload()[0].get_param("name")  # type: ignore[index]
    assert defects == []


def test_a_field_at_the_caps_is_still_parsed() -> None:
    word = "(c)" * MAX_WORD_TOKENS
    words = [f"u{i}@x.test {word}" for i in range(MAX_PARSE_TOKENS // MAX_WORD_TOKENS)]
    raw = with_field(("To: " + ", ".join(words)).encode())
    ours, defects = parse_message(raw)
    assert addresses(ours) == addresses(stdlib(raw))
    assert len(addresses(ours)) == MAX_PARSE_TOKENS // MAX_WORD_TOKENS
    assert defects == []


# -- crafted fields: cut before the stdlib sees them, with a defect naming field and limit ------


@pytest.mark.parametrize(
    ("field", "defect"),
    [
        (
            b"To: " + b"(a) " * (MAX_PARSE_TOKENS + 1) + b"a@b.test",
            f"header 'To' has {MAX_PARSE_TOKENS + 1} {WHAT} (limit {MAX_PARSE_TOKENS})",
        ),
        (
            b"Cc: " + b'"q"' * 1000,
            f"header 'Cc' has 1000 {WHAT} (limit {MAX_PARSE_TOKENS})",
        ),
        (
            b"To: a@b.test " + b"(x)" * (MAX_WORD_TOKENS + 1),
            f"header 'To' has {MAX_WORD_TOKENS + 1} {WHAT} in one word (limit {MAX_WORD_TOKENS})",
        ),
        (
            b"To: a@b.test " + b"(" * 40 + b")" * 40,
            f"header 'To' has comments nested 40 deep (limit {MAX_COMMENT_DEPTH})",
        ),
        (
            b"Content-Type: text/plain; " + b"a*0*=x; " * 300,
            f"header 'Content-Type' has 600 {WHAT} (limit {MAX_PARSE_TOKENS})",
        ),
        (
            b"Reply-To: " + b"=?utf-8?q?a?=" * 100 + b" <a@b.test>",
            f"header 'Reply-To' has 100 {WHAT} in one word (limit {MAX_WORD_TOKENS})",
        ),
    ],
    ids=["comments", "quoted strings", "one word", "nesting", "rfc2231", "encoded words"],
)
def test_a_costly_field_is_kept_as_unstructured_text(field: bytes, defect: str) -> None:
    message, defects = parse_message(with_field(field))
    name, _, value = field.decode().partition(": ")
    header = message[name]
    assert isinstance(header, headerregistry.UnstructuredHeader)
    assert not hasattr(header, "addresses")
    if "=?" not in value:
        assert str(header) == value  # the text is kept, not lost
    assert defects == [defect + "; kept as unstructured text"]
    assert str(message["Subject"]) == "hi"
    assert message.get_content().splitlines() == ["body"]


def test_crafted_content_type_still_gives_the_type_and_reads_the_body() -> None:
    raw = b"Content-Type: text/html; " + b"(a)" * 500 + b"\r\n\r\n<p>x</p>\r\n"
    message, defects = parse_message(raw)
    assert message.get_content_type() == "text/html"
    assert message.get_content().splitlines() == ["<p>x</p>"]
    assert defects == [
        f"header 'Content-Type' has 500 {WHAT} (limit {MAX_PARSE_TOKENS}); "
        "kept as unstructured text"
    ]


def test_the_caps_apply_inside_mime_parts() -> None:
    raw = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain; " + b'"' * 2000 + b"\r\n\r\ninner\r\n--b--\r\n"
    )
    message, defects = parse_message(raw)
    part = message.get_payload()[0]  # type: ignore[index]
    assert part.get_content_type() == "text/plain"
    assert defects == [
        f"header 'Content-Type' has 1000 {WHAT} (limit {MAX_PARSE_TOKENS}); "
        "kept as unstructured text"
    ]


def test_an_over_long_structured_field_is_cut_and_the_rest_is_costed() -> None:
    raw = with_field(b"To: a@b.test " + b"(" * 3000 + b")" * 3000)
    message, defects = parse_message(raw)
    assert str(message["To"]).startswith("a@b.test (((")
    assert defects[0].startswith("header 'To' of 6009 characters truncated to ")
    assert defects[0].endswith(f"(limit {MAX_STRUCTURED_FIELD})")
    assert defects[1].startswith("header 'To' has comments nested ")


def test_no_recursion_error_escapes_even_on_a_deep_stack() -> None:
    raw = with_field(b"To: a@b.test " + b"(" * 3000 + b")" * 3000)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 60)
    try:
        message, defects = parse_message(raw)
        value = str(message["To"])
    finally:
        sys.setrecursionlimit(limit)
    assert value.startswith("a@b.test (")
    assert any("nested" in line for line in defects)


def test_defects_go_to_the_list_given_and_grow_as_fields_are_read() -> None:
    mine = ["earlier"]
    message, defects = parse_message(with_field(b"Cc: " + b"(a)" * 300), mine)
    assert defects is mine
    assert mine == ["earlier"]  # Cc not read yet
    assert str(message["Cc"]) == "(a)" * 300
    assert mine[1].startswith("header 'Cc' has 300 ")
    str(message["Cc"])
    assert len(mine) == 2  # each defect is listed once
