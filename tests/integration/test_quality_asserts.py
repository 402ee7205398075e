"""assert_authenticated() over real sockets and the fake DNS; the auth extra's ImportError."""

from __future__ import annotations

import smtplib
import subprocess
import sys
from collections.abc import Iterator

import dkim
import pytest

from pytest_smtp import SMTPServer
from pytest_smtp.fakedns import FakeDNS
from pytest_smtp.mail import Message
from pytest_smtp.quality import (
    assert_authenticated,
    publish_dkim_key,
    publish_dmarc,
    publish_spf,
    verify,
)

RAW = (
    b"From: Shop <shop@example.test>\r\nTo: ann@inbox.test\r\nSubject: Order\r\n"
    b"Date: Sun, 06 Dec 2026 04:41:57 +0000\r\nMessage-ID: <1@example.test>\r\n\r\nThanks\r\n"
)


@pytest.fixture
def fake() -> Iterator[FakeDNS]:
    with FakeDNS() as server:
        yield server


@pytest.fixture
def key(fake: FakeDNS) -> bytes:
    publish_spf(fake, "example.test", "v=spf1 ip4:127.0.0.0/8 -all")
    publish_dmarc(fake, "example.test", "v=DMARC1; p=reject")
    return publish_dkim_key(fake, "example.test", bits=1024)


def deliver(data: bytes, mail_from: str = "bounce@example.test") -> Message:
    with SMTPServer(timeout=5) as mx:
        with smtplib.SMTP(*mx.address) as client:
            client.ehlo("mail.example.test")
            client.sendmail(mail_from, ["ann@inbox.test"], data)
        return mx.mailbox.wait_for()[0]


def signed(key: bytes, raw: bytes = RAW) -> bytes:
    return bytes(dkim.sign(raw, b"s1", b"example.test", key)) + raw


def test_authenticated_message_passes_and_returns_results(fake: FakeDNS, key: bytes) -> None:
    message = deliver(signed(key))
    results = assert_authenticated(message, fake, dkim_domain="example.test")
    assert results.dmarc.result == "pass"
    assert assert_authenticated(results) is results


def test_failure_text_says_why(fake: FakeDNS, key: bytes) -> None:
    message = deliver(signed(key).replace(b"Thanks", b"Thanks!"), mail_from="x@elsewhere.test")
    with pytest.raises(AssertionError) as info:
        assert_authenticated(message, fake)
    text = str(info.value)
    assert "is not authenticated as expected" in text
    assert "dkim: expected pass, got fail: dkim=fail (d=example.test s=s1: body hash mismatch" in (
        text
    )
    # elsewhere.test is in no fake zone: the fake DNS refuses it, as an unreachable DNS would.
    assert "spf: expected pass, got temperror" in text and "REFUSED" in text
    assert "dmarc: expected pass, got fail" in text
    assert "p=reject" in text


def test_expectations_take_other_words_tuples_and_none(fake: FakeDNS, key: bytes) -> None:
    fake.remove("example.test", "TXT")
    publish_spf(fake, "example.test", "v=spf1 ~all")
    message = deliver(signed(key))
    results = assert_authenticated(message, fake, spf="softfail", arc="none")
    assert_authenticated(results, spf=("pass", "softfail"))
    assert_authenticated(results, spf=None, dmarc=None)
    with pytest.raises(AssertionError, match="spf: expected pass, got softfail"):
        assert_authenticated(results)


def test_dkim_domain_names_the_signers_found(fake: FakeDNS, key: bytes) -> None:
    results = verify(deliver(signed(key)), fake)
    with pytest.raises(AssertionError, match=r"no passing signature by d=esp\.test .*example"):
        assert_authenticated(results, dkim_domain="esp.test")


def test_bad_expectation_or_missing_dns_is_a_clear_error(fake: FakeDNS, key: bytes) -> None:
    message = deliver(signed(key))
    with pytest.raises(ValueError, match="spf= takes one of pass, fail, softfail"):
        assert_authenticated(message, fake, spf="ok")
    with pytest.raises(TypeError, match="needs the FakeDNS"):
        assert_authenticated(message)


def test_missing_extra_is_an_import_error_naming_it() -> None:
    code = (
        "import sys; sys.modules['dkim'] = None\n"
        "try:\n"
        "    import pytest_smtp.quality.auth\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "needs the 'auth' extra (dkim is missing)" in out
    assert "pip install 'pytest-smtp-suite[auth]'" in out
