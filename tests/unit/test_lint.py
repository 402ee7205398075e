"""lint(): a clean message has no findings; each defect yields exactly its code. assert_clean()."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from pytest_smtp.mail import Message, SessionInfo
from pytest_smtp.quality import assert_clean
from pytest_smtp.quality.lint import CODES, Finding, lint

HEAD = (
    b"Date: Sun, 06 Dec 2026 04:41:57 +0000\r\n"
    b"From: Shop <shop@example.test>\r\n"
    b"To: ann@example.test\r\n"
    b"Message-ID: <1@example.test>\r\n"
    b"Subject: Your order\r\n"
)


def make(
    raw: bytes, *, options: tuple[str, ...] = (), helo: str | None = "client.example.test"
) -> Message:
    session = SessionInfo(
        id=1, peer=("127.0.0.1", 40000), server_hostname="mx.test", helo=helo, esmtp=True
    )
    return Message(
        raw=raw,
        mail_from="shop@example.test",
        rcpt_tos=["ann@example.test"],
        mail_options=list(options),
        rcpt_options={},
        session=session,
        server="127.0.0.1:25",
        received_at=datetime(2026, 12, 6, tzinfo=timezone.utc),
        transaction_id=1,
    )


def codes(message: Message) -> list[str]:
    return [finding.code for finding in lint(message)]


def multipart(inner: bytes, boundary: bytes = b"b1") -> bytes:
    return (
        HEAD
        + b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="'
        + boundary
        + b'"\r\n\r\n'
        + inner
    )


PLAIN = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nHello\r\n"
CLEAN_MULTIPART = multipart(
    b"preamble\r\n--b1\r\n" + PLAIN + b"--b1\r\nContent-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>Gr=C3=BC=C3=9Fe</p>=\r\n\r\n"
    b"--b1--\r\nepilogue\r\n"
)


@pytest.mark.parametrize(
    "raw",
    [
        HEAD + b"\r\nHello\r\n",
        CLEAN_MULTIPART,
        HEAD + b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
        b"\r\nR3LDvMOfZQ==\r\n",
    ],
    ids=["plain", "multipart", "base64"],
)
def test_clean_message_has_no_findings(raw: bytes) -> None:
    assert lint(make(raw)) == []


def test_clean_8bit_with_8bitmime_and_smtputf8() -> None:
    raw = HEAD.replace(b"Your order", "Grüße".encode()) + (
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + "Grüße\r\n".encode()
    )
    assert lint(make(raw, options=("BODY=8BITMIME", "SMTPUTF8"))) == []


# (id, raw, mail options, helo, expected code)
CASES: list[tuple[str, bytes, tuple[str, ...], str | None, str]] = [
    ("bare-cr", HEAD + b"\r\nHello\rworld\r\n", (), None, "bare-cr"),
    ("bare-lf", HEAD + b"\r\nHello\nworld\r\n", (), None, "bare-lf"),
    ("long-line", HEAD + b"\r\n" + b"x" * 999 + b"\r\n", (), None, "line-too-long"),
    (
        "no-date",
        HEAD.replace(b"Date: Sun, 06 Dec 2026 04:41:57 +0000\r\n", b"") + b"\r\nx\r\n",
        (),
        None,
        "missing-date",
    ),
    (
        "two-dates",
        b"Date: Mon, 07 Dec 2026 00:00:00 +0000\r\n" + HEAD + b"\r\nx\r\n",
        (),
        None,
        "duplicate-date",
    ),
    (
        "no-from",
        HEAD.replace(b"From: Shop <shop@example.test>\r\n", b"") + b"\r\nx\r\n",
        (),
        None,
        "missing-from",
    ),
    ("two-from", HEAD + b"From: other@example.test\r\n\r\nx\r\n", (), None, "duplicate-from"),
    (
        "no-message-id",
        HEAD.replace(b"Message-ID: <1@example.test>\r\n", b"") + b"\r\nx\r\n",
        (),
        None,
        "missing-message-id",
    ),
    (
        "two-message-ids",
        HEAD + b"Message-ID: <2@example.test>\r\n\r\nx\r\n",
        (),
        None,
        "duplicate-message-id",
    ),
    (
        "from-list",
        HEAD.replace(
            b"From: Shop <shop@example.test>",
            b'From: "Shop, Inc" <shop@example.test>, b@example.test',
        )
        + b"\r\nx\r\n",
        (),
        None,
        "from-without-sender",
    ),
    (
        "8bit-body",
        HEAD + b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + "Grüße\r\n".encode(),
        (),
        None,
        "8bit-without-8bitmime",
    ),
    (
        "utf8-header",
        HEAD.replace(b"Your order", "Grüße".encode()) + b"\r\nx\r\n",
        ("BODY=8BITMIME",),
        None,
        "non-ascii-header",
    ),
    (
        "no-boundary",
        HEAD + b"Content-Type: multipart/mixed\r\n\r\n--b1\r\n\r\nx\r\n--b1--\r\n",
        (),
        None,
        "mime-boundary-missing",
    ),
    (
        "boundary-absent",
        multipart(b"--other\r\n" + PLAIN + b"--other--\r\n"),
        (),
        None,
        "mime-boundary-missing",
    ),
    ("unclosed", multipart(b"--b1\r\n" + PLAIN), (), None, "mime-boundary-unclosed"),
    (
        "reused",
        multipart(
            b"--b1\r\nContent-Type: multipart/mixed; boundary=b1x\r\n\r\n--b1x\r\n"
            + PLAIN
            + b"--b1x--\r\n--b1--\r\n"
        ),
        (),
        None,
        "mime-boundary-reused",
    ),
    (
        "cte-unknown",
        HEAD + b"Content-Transfer-Encoding: uuencode\r\n\r\nx\r\n",
        (),
        None,
        "cte-unknown",
    ),
    (
        "7bit-with-8bit",
        HEAD + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + "Grüße\r\n".encode(),
        ("BODY=8BITMIME",),
        None,
        "cte-mismatch",
    ),
    (
        "bad-base64",
        HEAD + b"Content-Transfer-Encoding: base64\r\n\r\nnot base64!\r\n",
        (),
        None,
        "cte-mismatch",
    ),
    (
        "bad-qp",
        HEAD + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n50% =ZZ off\r\n",
        (),
        None,
        "cte-mismatch",
    ),
    (
        "long-qp",
        HEAD + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + b"q" * 80 + b"\r\n",
        (),
        None,
        "cte-mismatch",
    ),
    (
        "base64-multipart",
        multipart(b"--b1\r\n" + PLAIN + b"--b1--\r\n").replace(
            b"MIME-Version: 1.0\r\n", b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n"
        ),
        (),
        None,
        "cte-mismatch",
    ),
    (
        "no-charset",
        HEAD
        + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + "Grüße\r\n".encode(),
        ("BODY=8BITMIME",),
        None,
        "text-8bit-no-charset",
    ),
    (
        "no-charset-qp",
        HEAD + b"Content-Type: text/plain\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\n",
        (),
        None,
        "text-8bit-no-charset",
    ),
    ("helo-underscore", HEAD + b"\r\nx\r\n", (), "my_host", "helo-invalid"),
    ("helo-bare-ip", HEAD + b"\r\nx\r\n", (), "192.0.2.1", "helo-invalid"),
    ("helo-bad-literal", HEAD + b"\r\nx\r\n", (), "[192.0.2.999]", "helo-invalid"),
    ("helo-bad-ipv6", HEAD + b"\r\nx\r\n", (), "[IPv6:zz::1]", "helo-invalid"),
    ("header-no-colon", HEAD + b"This is not a header\r\n\r\nx\r\n", (), None, "header-malformed"),
    ("orphan-fold", b" folded\r\n" + HEAD + b"\r\nx\r\n", (), None, "header-fold-orphan"),
    (
        "blank-fold",
        HEAD.replace(b"Subject: Your order", b"Subject: Your\r\n   \r\n order") + b"\r\nx\r\n",
        (),
        None,
        "header-fold-blank",
    ),
]


@pytest.mark.parametrize(
    ("raw", "options", "helo", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_defect_yields_exactly_its_code(
    raw: bytes, options: tuple[str, ...], helo: str | None, code: str
) -> None:
    message = make(raw, options=options, helo=helo or "client.example.test")
    findings = lint(message)
    assert [f.code for f in findings] == [code], findings
    finding = findings[0]
    assert (finding.severity, finding.rfc) == CODES[code]
    assert finding.where and finding.text


def test_every_code_has_a_case() -> None:
    assert {c[-1] for c in CASES} == set(CODES)


@pytest.mark.parametrize(
    "helo", ["localhost", "mail.example.test", "[127.0.0.1]", "[IPv6:::1]", "[x-tag:abc]"]
)
def test_valid_helo_forms(helo: str) -> None:
    assert codes(make(HEAD + b"\r\nx\r\n", helo=helo)) == []


def test_finding_text_names_count_and_first_line() -> None:
    raw = HEAD + b"\r\none\ntwo\nthree\r\n"
    (finding,) = lint(make(raw))
    assert finding.where == "line 7"
    assert finding.text.startswith("2 LF without CR (first at line 7)")
    assert str(finding) == (
        "error bare-lf (RFC 5321 §2.3.8) at line 7: 2 LF without CR (first at line 7); "
        "every line must end with CRLF"
    )


def test_nested_part_is_named_by_its_path() -> None:
    raw = multipart(
        b"--b1\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n--inner\r\n"
        + PLAIN
        + b"--inner\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + "ü\r\n".encode()
        + b"--inner--\r\n--b1--\r\n"
    )
    findings = lint(make(raw, options=("BODY=8BITMIME",)))
    assert [(f.code, f.where) for f in findings] == [
        ("text-8bit-no-charset", "part 1.2 (text/plain)")
    ]


def test_several_defects_are_all_reported() -> None:
    raw = b"Subject: x\r\n\r\nbody\nline\r\n"
    assert set(codes(make(raw, helo="bad_helo"))) == {
        "bare-lf",
        "helo-invalid",
        "missing-date",
        "missing-from",
        "missing-message-id",
    }


def test_bare_cr_in_a_header_is_only_bare_cr() -> None:
    raw = HEAD.replace(b"Your order", b"Your\rorder") + b"\r\nx\r\n"
    assert codes(make(raw)) == ["bare-cr"]


def test_a_defect_on_many_lines_is_one_finding_with_a_count() -> None:
    raw = HEAD + b"no colon here\r\n" * 1000 + b"\r\nx\r\n"
    (finding,) = lint(make(raw))
    assert (finding.code, finding.where) == ("header-malformed", "line 6")
    assert finding.text.startswith("1000 line(s): ")


def test_many_continuation_lines_are_joined_once() -> None:
    # 200 000 folded lines: joined once (linear), not appended one by one (quadratic).
    raw = HEAD + b"X-Long: start\r\n" + b" more\r\n" * 200_000 + b"\r\nx\r\n"
    assert lint(make(raw)) == []


def test_finding_is_a_value() -> None:
    finding = Finding("bare-cr", "error", "RFC 5322 §2.3", "line 1", "x")
    assert finding == Finding("bare-cr", "error", "RFC 5322 §2.3", "line 1", "x")
    assert hash(finding) == hash(Finding("bare-cr", "error", "RFC 5322 §2.3", "line 1", "x"))


def test_linear_time_on_a_large_crafted_header() -> None:
    # A From of 200 000 commas and quotes is linear here (the email package's address parser
    # is not); the bound is only that it completes, the figure lives in no assertion.
    raw = HEAD.replace(b"From: Shop <shop@example.test>", b"From: " + b'"a",' * 50_000)
    raw += b"\r\nx\r\n"
    assert "from-without-sender" in codes(make(raw))


def test_assert_clean_clean_message_passes_and_returns_no_findings() -> None:
    assert assert_clean(make(HEAD + b"\r\nHello\r\n")) == []


def test_assert_clean_failure_lists_every_finding_and_how_to_allow() -> None:
    message = make(b"Subject: x\r\n\r\nbody\nline\r\n")
    with pytest.raises(AssertionError) as info:
        assert_clean(message)
    text = str(info.value)
    assert "is not clean: 4 finding(s)" in text
    assert "error bare-lf (RFC 5321 §2.3.8) at line 3" in text
    assert "error missing-date (RFC 5322 §3.6)" in text
    assert "warning missing-message-id" in text
    assert "allow=('bare-lf',)" in text


def test_assert_clean_allow_accepts_named_codes_and_returns_them() -> None:
    message = make(HEAD.replace(b"Message-ID: <1@example.test>\r\n", b"") + b"\r\nx\r\n")
    findings = assert_clean(message, allow=("missing-message-id",))
    assert [f.code for f in findings] == ["missing-message-id"]
    assert assert_clean(message, allow="missing-message-id") == findings


def test_assert_clean_severity_error_accepts_warnings_only() -> None:
    no_id = make(HEAD.replace(b"Message-ID: <1@example.test>\r\n", b"") + b"\r\nx\r\n")
    assert [f.code for f in assert_clean(no_id, severity="error")] == ["missing-message-id"]
    with pytest.raises(AssertionError, match="bare-cr"):
        assert_clean(make(HEAD + b"\r\na\rb\r\n"), severity="error")


def test_assert_clean_unknown_code_or_severity_is_a_clear_error() -> None:
    message = make(HEAD + b"\r\nx\r\n")
    with pytest.raises(ValueError, match=r"unknown lint code\(s\) 'bare-crlf'.*known codes: "):
        assert_clean(message, allow=("bare-crlf",))
    with pytest.raises(ValueError, match="severity must be 'warning' or 'error'"):
        assert_clean(message, severity="fatal")
