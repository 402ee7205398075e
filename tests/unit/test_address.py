"""RFC 5321 path and parameter syntax."""

from __future__ import annotations

import pytest

from pytest_smtp.smtp.address import (
    EnvelopeSyntaxError,
    check_auth_param,
    parse_params,
    parse_path,
)


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
        # RFC 5321 §4.1.2 A-d-l: every hop of a source route is "@" Domain.
        ("<@:user@d.test>", 501, "5.1.3"),
        ("<@r.test,:user@d.test>", 501, "5.1.3"),
        ("<@r.test,,@s.test:user@d.test>", 501, "5.1.3"),
        ("<@r.test,s.test:user@d.test>", 501, "5.1.3"),
        ("<@r_1.test:user@d.test>", 501, "5.1.3"),
    ],
)
def test_invalid_recipient_paths(text: str, code: int, enhanced: str) -> None:
    with pytest.raises(EnvelopeSyntaxError) as info:
        parse_path(text, utf8=False, sender=False)
    assert (info.value.code, info.value.enhanced) == (code, enhanced)


# The limits at their edges, for the plain <dot-atom@domain> path parse_path takes in one match
# as for any other: a 64-octet local part and a 256-octet path pass, one more octet does not.
_DOMAIN_250 = ".".join(["d" * 62] * 4)[:245] + ".test"


@pytest.mark.parametrize("utf8", [False, True])
def test_plain_paths_keep_the_length_limits(utf8: bool) -> None:
    local = "l" * 64
    assert parse_path(f"<{local}@b.test>  SIZE=1 ", utf8=utf8, sender=False).rest == "SIZE=1"
    with pytest.raises(EnvelopeSyntaxError, match="Local part longer than 64"):
        parse_path(f"<{local}x@b.test>", utf8=utf8, sender=False)
    path = f"<abc@{_DOMAIN_250}>"
    assert len(path) == 256
    assert parse_path(path, utf8=utf8, sender=False).address == path[1:-1]
    with pytest.raises(EnvelopeSyntaxError, match="Path longer than 256"):
        parse_path(f"<abcd@{_DOMAIN_250}>", utf8=utf8, sender=False)


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


@pytest.mark.parametrize(
    "value", ["<>", "+3C+3E", "a@x.test", "e+3Dmc2@example.com", '"a+20b"@x.test']
)
def test_auth_param_accepts_null_or_a_mailbox_in_xtext(value: str) -> None:
    check_auth_param(value)  # RFC 4954 §5: no exception


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (None, "needs a value"),
        ("nobody", "neither <> nor a mailbox"),
        ("a+zz@x.test", "needs a value"),  # not xtext: + must be followed by two HEX digits
        ("a+3d@x.test", "needs a value"),  # xtext HEXDIG is upper case
        ("<a@x.test>", "neither <> nor a mailbox"),
    ],
)
def test_auth_param_refuses_anything_else(value: str | None, why: str) -> None:
    with pytest.raises(EnvelopeSyntaxError, match=why) as info:
        check_auth_param(value)
    assert (info.value.code, info.value.enhanced) == (501, "5.5.4")
