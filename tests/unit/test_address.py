"""RFC 5321 path and parameter syntax."""

from __future__ import annotations

import pytest

from pytest_smtp.smtp.address import EnvelopeSyntaxError, parse_params, parse_path


@pytest.mark.parametrize(
    ("text", "address", "rest"),
    [
        ("<a@b.test>", "a@b.test", ""),
        (" <a@b.test> SIZE=10", "a@b.test", "SIZE=10"),
        ("<>", "", ""),
        ('<"john doe"@b.test>', '"john doe"@b.test', ""),
        ('<"a>b"@c.test> X=1', '"a>b"@c.test', "X=1"),
        ("<@relay.test,@r2.test:user@d.test>", "user@d.test", ""),
        ("<user@[127.0.0.1]>", "user@[127.0.0.1]", ""),
        ("<user@[IPv6:::1]>", "user@[IPv6:::1]", ""),
        ("<Postmaster>", "Postmaster", ""),
    ],
)
def test_valid_paths(text: str, address: str, rest: str) -> None:
    path = parse_path(text, utf8=False, sender=True)
    assert (path.address, path.rest) == (address, rest)


@pytest.mark.parametrize(
    ("text", "code", "enhanced"),
    [
        ("a@b.test", 501, "5.5.4"),
        ("<a@b.test", 501, "5.5.4"),
        ("<a@b.test>X", 501, "5.5.4"),
        ("<a\x00b@c.test>", 501, "5.5.2"),
        ("<a\rb@c.test>", 501, "5.5.2"),
        ("<a..b@c.test>", 501, "5.1.3"),
        ("<nodomain>", 501, "5.1.3"),
        ("<a@-bad-.test>", 501, "5.1.3"),
        ("<a@[999.1.1.1]>", 501, "5.1.3"),
        ("<" + "x" * 65 + "@b.test>", 501, "5.1.3"),
        ("<>", 501, "5.1.3"),
        ("<ü@b.test>", 553, "5.6.7"),
    ],
)
def test_invalid_recipient_paths(text: str, code: int, enhanced: str) -> None:
    with pytest.raises(EnvelopeSyntaxError) as info:
        parse_path(text, utf8=False, sender=False)
    assert (info.value.code, info.value.enhanced) == (code, enhanced)


def test_utf8_addresses_need_smtputf8() -> None:
    assert parse_path("<ü@bücher.test>", utf8=True, sender=False).address == "ü@bücher.test"


def test_params_keep_values_as_sent_and_refuse_repeats() -> None:
    assert parse_params("size=10 ret=hdrs SMTPUTF8") == [
        ("SIZE", "10"),
        ("RET", "hdrs"),
        ("SMTPUTF8", None),
    ]
    with pytest.raises(EnvelopeSyntaxError, match="given twice"):
        parse_params("SIZE=1 size=2")
    with pytest.raises(EnvelopeSyntaxError, match="Bad value"):
        parse_params("ENVID=a=b")
