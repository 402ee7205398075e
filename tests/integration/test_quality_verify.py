"""verify() and assert_authenticated(): messages signed with dkimpy by the test, sent over
smtplib to a real SMTPServer, verified against a real FakeDNS (DKIM, SPF, DMARC, ARC) and
rendered by authres."""

from __future__ import annotations

import smtplib
import subprocess
import sys
from collections.abc import Iterator

import authres
import authres.arc
import authres.dmarc
import dkim
import pytest

from pytest_smtp import SMTPServer
from pytest_smtp.fakedns import FakeDNS
from pytest_smtp.mail import Message
from pytest_smtp.quality import assert_authenticated
from pytest_smtp.quality.auth import (
    AuthResults,
    publish_dkim_key,
    publish_dmarc,
    publish_spf,
    verify,
)

RAW = (
    b"From: Shop <shop@example.test>\r\n"
    b"To: ann@inbox.test\r\n"
    b"Subject: Your order\r\n"
    b"Date: Sun, 06 Dec 2026 04:41:57 +0000\r\n"
    b"Message-ID: <1@example.test>\r\n"
    b"\r\n"
    b"Thank you for your order.\r\n"
)


@pytest.fixture
def fake() -> Iterator[FakeDNS]:
    with FakeDNS() as server:
        yield server


@pytest.fixture
def mx() -> Iterator[SMTPServer]:
    with SMTPServer(timeout=5) as server:
        yield server


def key_for(fake: FakeDNS, domain: str, selector: str = "s1") -> bytes:
    return publish_dkim_key(fake, domain, selector, bits=1024)


def sign(raw: bytes, domain: str, key: bytes, selector: str = "s1") -> bytes:
    signature: bytes = dkim.sign(raw, selector.encode(), domain.encode(), key)
    return signature + raw


def send(
    mx: SMTPServer,
    data: bytes,
    mail_from: str = "bounce@example.test",
    helo: str = "mail.example.test",
) -> Message:
    before = len(mx.mailbox)
    with smtplib.SMTP(*mx.address) as client:
        client.ehlo(helo)
        client.sendmail(mail_from, ["ann@inbox.test"], data)
    return mx.mailbox.wait_for(count=before + 1)[-1]


def check(mx: SMTPServer, fake: FakeDNS, data: bytes, **kw: str) -> AuthResults:
    return verify(send(mx, data, **kw), fake)


def publish_all(fake: FakeDNS, dmarc: str = "v=DMARC1; p=reject") -> bytes:
    key = key_for(fake, "example.test")
    publish_spf(fake, "example.test", "v=spf1 ip4:127.0.0.0/8 -all")
    publish_dmarc(fake, "example.test", dmarc)
    return key


# -- DKIM ----------------------------------------------------------------------------------------
def test_signed_message_passes_everything(mx: SMTPServer, fake: FakeDNS) -> None:
    key = publish_all(fake)
    results = check(mx, fake, sign(RAW, "example.test", key))
    (verdict,) = results.dkim
    assert (verdict.result, verdict.domain, verdict.selector) == ("pass", "example.test", "s1")
    assert results.spf is not None and results.spf.result == "pass"
    assert results.dmarc.result == "pass"
    assert results.dmarc.dkim_aligned and results.dmarc.spf_aligned
    assert results.arc.result == "none" and results.arc.instances == 0
    assert results.dkim_result == "pass"


def test_body_changed_in_transit_fails_with_body_hash_mismatch(
    mx: SMTPServer, fake: FakeDNS
) -> None:
    key = publish_all(fake)
    signed = sign(RAW, "example.test", key).replace(b"Thank you", b"No thanks")
    (verdict,) = check(mx, fake, signed).dkim
    assert verdict.result == "fail"
    assert verdict.reason.startswith("body hash mismatch")


def test_header_changed_in_transit_fails(mx: SMTPServer, fake: FakeDNS) -> None:
    key = publish_all(fake)
    signed = sign(RAW, "example.test", key).replace(b"Your order", b"[list] Your order")
    (verdict,) = check(mx, fake, signed).dkim
    assert verdict.result == "fail"
    assert "signature did not verify" in verdict.reason


def test_wrong_key_fails(mx: SMTPServer, fake: FakeDNS) -> None:
    publish_all(fake)
    other = key_for(fake, "elsewhere.test")  # a real key, but not example.test's
    (verdict,) = check(mx, fake, sign(RAW, "example.test", other)).dkim
    assert verdict.result == "fail"


def test_missing_key_record_is_permerror_naming_the_record(mx: SMTPServer, fake: FakeDNS) -> None:
    key = publish_all(fake)
    (verdict,) = check(mx, fake, sign(RAW, "example.test", key, selector="bygone")).dkim
    assert verdict.result == "permerror"
    assert verdict.reason == "key not found: bygone._domainkey.example.test"


def test_dns_failure_for_the_key_is_temperror(mx: SMTPServer, fake: FakeDNS) -> None:
    key = publish_all(fake)
    fake.fault("s1._domainkey.example.test", "TXT", "servfail")
    (verdict,) = check(mx, fake, sign(RAW, "example.test", key)).dkim
    assert verdict.result == "temperror"


def test_unsigned_message_has_no_dkim_verdict(mx: SMTPServer, fake: FakeDNS) -> None:
    publish_all(fake)
    results = check(mx, fake, RAW)
    assert results.dkim == []
    assert results.dkim_result == "none"


def test_every_signature_is_verified(mx: SMTPServer, fake: FakeDNS) -> None:
    key = publish_all(fake)
    esp = key_for(fake, "esp.test", "k2")
    data = sign(sign(RAW, "example.test", key), "esp.test", esp, selector="k2")
    results = check(mx, fake, data)
    assert [(v.domain, v.result) for v in results.dkim] == [
        ("esp.test", "pass"),
        ("example.test", "pass"),
    ]


# -- SPF -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("v=spf1 ip4:127.0.0.0/8 -all", "pass"),
        ("v=spf1 ip4:192.0.2.0/24 -all", "fail"),
        ("v=spf1 ip4:192.0.2.0/24 ~all", "softfail"),
        ("v=spf1 ?all", "neutral"),
        ("v=spf1 a:mail.example.test -all", "pass"),
        ("v=spf1 include:nowhere.example.test -all", "permerror"),
        (None, "none"),
    ],
)
def test_spf_for_the_client_address(
    mx: SMTPServer, fake: FakeDNS, record: str | None, expected: str
) -> None:
    fake.add_a("mail.example.test", "127.0.0.1")
    if record is not None:
        publish_spf(fake, "example.test", record)
    results = check(mx, fake, RAW)
    assert results.spf is not None
    assert (results.spf.result, results.spf.identity, results.spf.domain) == (
        expected,
        "mailfrom",
        "example.test",
    )
    assert results.spf.client_ip == "127.0.0.1"


def test_spf_helo_identity_and_null_sender(mx: SMTPServer, fake: FakeDNS) -> None:
    publish_spf(fake, "mail.example.test", "v=spf1 ip4:127.0.0.1 -all")
    publish_spf(fake, "example.test", "v=spf1 -all")
    results = check(mx, fake, RAW, mail_from="")
    assert results.spf is not None and results.spf_helo is not None
    assert results.spf == results.spf_helo
    assert (results.spf.result, results.spf.identity) == ("pass", "helo")
    results = check(mx, fake, RAW)
    assert results.spf is not None and results.spf_helo is not None
    assert (results.spf.result, results.spf_helo.result) == ("fail", "pass")


def test_spf_record_that_is_not_spf_is_refused(fake: FakeDNS) -> None:
    with pytest.raises(ValueError, match="v=spf1"):
        publish_spf(fake, "example.test", "ip4:127.0.0.1 -all")


# -- DMARC ---------------------------------------------------------------------------------------
def test_dmarc_none_without_record(mx: SMTPServer, fake: FakeDNS) -> None:
    key = key_for(fake, "example.test")
    results = check(mx, fake, sign(RAW, "example.test", key))
    assert results.dmarc.result == "none"
    assert "no DMARC record at _dmarc.example.test" in results.dmarc.reason


@pytest.mark.parametrize("policy", ["none", "quarantine", "reject"])
def test_dmarc_fail_carries_the_policy_disposition(
    mx: SMTPServer, fake: FakeDNS, policy: str
) -> None:
    publish_dmarc(fake, "example.test", f"v=DMARC1; p={policy}")
    publish_spf(fake, "example.test", "v=spf1 -all")
    results = check(mx, fake, RAW)
    assert (results.dmarc.result, results.dmarc.policy, results.dmarc.disposition) == (
        "fail",
        policy,
        policy,
    )
    assert "dkim did not pass" in results.dmarc.reason


def test_dmarc_misaligned_from_fails_although_dkim_and_spf_pass(
    mx: SMTPServer, fake: FakeDNS
) -> None:
    publish_dmarc(fake, "example.test", "v=DMARC1; p=reject")
    esp = key_for(fake, "esp.test")
    publish_spf(fake, "esp.test", "v=spf1 ip4:127.0.0.1 -all")
    results = check(mx, fake, sign(RAW, "esp.test", esp), mail_from="bounce@esp.test")
    assert results.dkim_result == "pass"
    assert results.spf is not None and results.spf.result == "pass"
    assert (results.dmarc.result, results.dmarc.disposition) == ("fail", "reject")
    assert "dkim passed for esp.test, not aligned with example.test" in results.dmarc.reason
    assert "spf passed for esp.test, not aligned with example.test" in results.dmarc.reason


def test_dmarc_relaxed_alignment_accepts_a_subdomain_strict_does_not(
    mx: SMTPServer, fake: FakeDNS
) -> None:
    key = key_for(fake, "mail.example.test")
    publish_dmarc(fake, "example.test", "v=DMARC1; p=reject")
    data = sign(RAW, "mail.example.test", key)
    relaxed = check(mx, fake, data, mail_from="x@nowhere.test")
    assert (relaxed.dmarc.result, relaxed.dmarc.dkim_aligned) == ("pass", True)
    fake.remove("_dmarc.example.test")
    publish_dmarc(fake, "example.test", "v=DMARC1; p=reject; adkim=s")
    strict = check(mx, fake, data, mail_from="x@nowhere.test")
    assert (strict.dmarc.result, strict.dmarc.dkim_aligned) == ("fail", False)


def test_dmarc_subdomain_uses_the_organizational_record_and_sp(
    mx: SMTPServer, fake: FakeDNS
) -> None:
    publish_dmarc(fake, "example.test", "v=DMARC1; p=reject; sp=quarantine")
    data = RAW.replace(b"shop@example.test", b"shop@news.example.test")
    results = check(mx, fake, data, mail_from="x@nowhere.test")
    assert results.dmarc.from_domain == "news.example.test"
    assert (results.dmarc.result, results.dmarc.policy, results.dmarc.disposition) == (
        "fail",
        "quarantine",
        "quarantine",
    )


def test_bad_dmarc_record_is_refused_when_published_and_permerror_when_found(
    mx: SMTPServer, fake: FakeDNS
) -> None:
    with pytest.raises(ValueError, match="bad DMARC record"):
        publish_dmarc(fake, "example.test", "v=DMARC1; adkim=s")
    fake.add_txt("_dmarc.example.test", "v=DMARC1; adkim=s")
    results = check(mx, fake, RAW)
    assert results.dmarc.result == "permerror"


# -- ARC and the Authentication-Results header ---------------------------------------------------
def test_authentication_results_header_round_trips_through_authres(
    mx: SMTPServer, fake: FakeDNS
) -> None:
    key = publish_all(fake)
    data = sign(RAW, "example.test", key).replace(b"Thank you", b"No thanks")
    header = check(mx, fake, data).header("mx.inbox.test")
    parsed = authres.FeatureContext(authres.dmarc, authres.arc).parse(header)
    assert parsed.authserv_id == "mx.inbox.test"
    by_method = {r.method: r for r in parsed.results}
    assert by_method["dkim"].result == "fail"
    assert by_method["dkim"].header_d == "example.test"
    assert by_method["dkim"].reason.startswith("body hash mismatch")
    assert by_method["spf"].result == "pass"
    assert by_method["spf"].smtp_mailfrom == "example.test"
    assert by_method["spf"].reason == "sender SPF authorized"
    assert by_method["dmarc"].result == "pass"
    assert by_method["dmarc"].header_from == "example.test"


def test_arc_chain_of_a_forwarder_passes_where_dkim_breaks(fake: FakeDNS) -> None:
    key = publish_all(fake)
    forwarder_key = key_for(fake, "list.test", "arc")
    publish_spf(fake, "list.test", "v=spf1 ip4:127.0.0.0/8 -all")
    with SMTPServer(timeout=5) as list_mx, SMTPServer(timeout=5) as final_mx:
        # 1. The app signs and sends to the mailing list's MX, which verifies it.
        arrived = send(list_mx, sign(RAW, "example.test", key))
        first = verify(arrived, fake)
        assert first.dkim_result == "pass"
        # 2. The list rewrites the Subject (breaking DKIM), records what it saw, seals.
        rewritten = arrived.raw.replace(b"Subject: Your", b"Subject: [list] Your")
        stamped = first.header("list.test").encode() + b"\r\n" + rewritten
        seal = b"".join(dkim.arc_sign(stamped, b"arc", b"list.test", forwarder_key, b"list.test"))
        # 3. The final MX: DKIM and DMARC fail, the ARC chain vouches for the first hop.
        final = verify(send(final_mx, seal + stamped, mail_from="list@list.test"), fake)
        assert final.dkim_result == "fail"
        assert final.dmarc.result == "fail"
        assert (final.arc.result, final.arc.instances) == ("pass", 1)
        # 4. A tampered sealed message breaks the chain.
        tampered = (seal + stamped).replace(b"[list]", b"[spam]")
        broken = verify(send(final_mx, tampered, mail_from="list@list.test"), fake)
        assert broken.arc.result == "fail"
        assert "arc=fail" in broken.header("mx.inbox.test")


# -- assert_authenticated -------------------------------------------------------------------------
def test_authenticated_message_passes_and_returns_results(mx: SMTPServer, fake: FakeDNS) -> None:
    key = publish_all(fake)
    message = send(mx, sign(RAW, "example.test", key))
    results = assert_authenticated(message, fake, dkim_domain="example.test")
    assert results.dmarc.result == "pass"
    assert assert_authenticated(results) is results


def test_failure_text_says_why(mx: SMTPServer, fake: FakeDNS) -> None:
    key = publish_all(fake)
    message = send(
        mx, sign(RAW, "example.test", key).replace(b"Thank", b"THANK"), mail_from="x@elsewhere.test"
    )
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


def test_expectations_take_other_words_tuples_and_none(mx: SMTPServer, fake: FakeDNS) -> None:
    key = publish_all(fake)
    fake.remove("example.test", "TXT")
    publish_spf(fake, "example.test", "v=spf1 ~all")
    message = send(mx, sign(RAW, "example.test", key))
    results = assert_authenticated(message, fake, spf="softfail", arc="none")
    assert_authenticated(results, spf=("pass", "softfail"))
    assert_authenticated(results, spf=None, dmarc=None)
    with pytest.raises(AssertionError, match="spf: expected pass, got softfail"):
        assert_authenticated(results)


def test_dkim_domain_names_the_signers_found(mx: SMTPServer, fake: FakeDNS) -> None:
    key = publish_all(fake)
    results = verify(send(mx, sign(RAW, "example.test", key)), fake)
    with pytest.raises(AssertionError, match=r"no passing signature by d=esp\.test .*example"):
        assert_authenticated(results, dkim_domain="esp.test")


def test_bad_expectation_or_missing_dns_is_a_clear_error(mx: SMTPServer, fake: FakeDNS) -> None:
    key = publish_all(fake)
    message = send(mx, sign(RAW, "example.test", key))
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


def test_verify_needs_a_dns(mx: SMTPServer) -> None:
    message = send(mx, RAW)
    with pytest.raises(TypeError, match="needs the FakeDNS"):
        verify(message, "127.0.0.1")  # type: ignore[arg-type]
