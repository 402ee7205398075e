"""pytest_smtp.sasl: the one credential check and SASL PLAIN decoder of SMTP, POP3 and IMAP."""

from __future__ import annotations

import base64

import pytest

from pytest_smtp import sasl
from pytest_smtp.retrieval import common, imap, pop3
from pytest_smtp.sasl import (
    AuthSyntaxError,
    b64decode_strict,
    check_password,
    decode_plain,
    parse_plain,
    password_for,
    utf8_text,
)
from pytest_smtp.smtp import auth


def plain(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def test_sasl_plain_decoding() -> None:
    assert decode_plain(plain("u", "p w", "z")) == ("z", "u", "p w")
    with pytest.raises(ValueError, match="base64"):
        decode_plain("***")
    with pytest.raises(ValueError, match="authzid NUL authcid NUL password"):
        decode_plain(base64.b64encode(b"only\0two").decode())
    with pytest.raises(ValueError, match="empty user name"):
        decode_plain(plain("", "p"))
    with pytest.raises(AuthSyntaxError, match="the SASL PLAIN response is not UTF-8"):
        parse_plain(b"\0bob\0\xff")
    assert decode_plain(" " + plain("bob", "") + "\r\n") == ("", "bob", "")


def test_b64decode_strict_refuses_what_lenient_base64_would_skip() -> None:
    assert b64decode_strict(b"Ym9i") == b"bob"
    assert b64decode_strict("Ym9i") == b"bob"
    for bad in ("Ym9", "Ym9i!", "é"):
        with pytest.raises(AuthSyntaxError, match="not valid base64"):
            b64decode_strict(bad)


def test_utf8_text_names_the_field() -> None:
    assert utf8_text("é".encode(), "the user name") == "é"
    with pytest.raises(AuthSyntaxError, match=r"^the password is not UTF-8$"):
        utf8_text(b"\xc3", "the password")


def test_credentials_mean_the_same_for_every_server() -> None:
    table = {"bob": "s3cret"}
    assert check_password(table, "bob", "s3cret")
    assert not check_password(table, "bob", "S3cret")
    assert not check_password(table, "Bob", "s3cret")  # looked up exactly as given
    assert not check_password(table, "carol", "")
    assert check_password("any", "anyone", "")
    assert not check_password(None, "bob", "s3cret")  # None: no credentials configured
    assert not check_password({}, "bob", "")
    assert password_for(table, "bob") == "s3cret"
    assert password_for(table, "carol") is None
    assert password_for("any", "bob") is None
    assert password_for(None, "bob") is None


def test_one_implementation_is_used_by_smtp_pop3_and_imap() -> None:
    # The SMTP mechanisms re-export the shared names rather than define their own.
    assert auth.check_password is sasl.check_password
    assert auth.AuthSyntaxError is sasl.AuthSyntaxError
    assert auth.b64decode_strict is sasl.b64decode_strict
    assert pop3.decode_plain is imap.decode_plain is sasl.decode_plain
    assert common.check_password is sasl.check_password
    for module in (common, pop3, imap):
        for stale in ("check_credentials", "decode_sasl_plain", "lookup_password", "validate_auth"):
            assert not hasattr(module, stale), f"{module.__name__}.{stale} is a second copy"
