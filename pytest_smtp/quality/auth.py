"""Authentication verdicts for a captured message, against the fake DNS: DKIM, SPF, DMARC, ARC.

:func:`verify` checks a :class:`~pytest_smtp.mail.Message` as a receiving MX would and returns
:class:`AuthResults`; :meth:`AuthResults.header` renders them as the
``Authentication-Results`` field an MX adds (RFC 8601). The verification is done by libraries,
never by code of ours: dkimpy (DKIM, RFC 6376, and ARC, RFC 8617), pyspf (SPF, RFC 7208),
dmarc (DMARC record parsing and policy, RFC 7489) with publicsuffixlist (organizational
domains) and authres (the header). Every DNS lookup they make goes to the :class:`FakeDNS`
given, never to the system resolver.

The publishing helpers put the records those checks read into a fake DNS:
:func:`publish_dkim_key` (makes an RSA key pair and returns the private key, PEM, for the
application under test to sign with), :func:`publish_spf` and :func:`publish_dmarc`.

Needs the ``auth`` extra: ``pip install pytest-smtp-suite[auth]``.

This module never imports pytest.
"""

from __future__ import annotations

import base64
import contextvars
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.resolver

from pytest_smtp.mail.session import Reply

try:
    import authres  # type: ignore[import-untyped]
    import authres.arc  # type: ignore[import-untyped]
    import authres.dmarc  # type: ignore[import-untyped]
    import dkim  # type: ignore[import-untyped]
    import dmarc  # type: ignore[import-untyped]
    import spf  # type: ignore[import-untyped]
    from publicsuffixlist import PublicSuffixList  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"pytest_smtp.quality.auth needs the 'auth' extra ({exc.name} is missing): "
        "pip install 'pytest-smtp-suite[auth]'"
    ) from exc

if TYPE_CHECKING:
    from ._inputs import CheckedMessage, TXTPublisher

__all__ = [
    "ARCVerdict",
    "AuthResults",
    "DKIMVerdict",
    "DMARCVerdict",
    "SPFVerdict",
    "publish_dkim_key",
    "publish_dmarc",
    "publish_spf",
    "verify",
]

_PSL = PublicSuffixList()
# dkimpy's text for an absent key record: "missing public key: b's1._domainkey.example.test.'"
_MISSING_KEY = re.compile(r"missing public key: (?:b')?(.*?)\.?'?$")


@dataclass(frozen=True)
class DKIMVerdict:
    """The verdict on one ``DKIM-Signature`` (RFC 6376 §6.1, results as in RFC 8601 §2.7.1).

    ``result``: ``pass``, ``fail`` (body hash mismatch, signature does not verify),
    ``permerror`` (key not found, bad signature or key record) or ``temperror`` (DNS timeout).
    """

    result: str
    reason: str
    domain: str | None = None
    selector: str | None = None

    def __str__(self) -> str:
        return f"dkim={self.result} (d={self.domain} s={self.selector}: {self.reason})"


@dataclass(frozen=True)
class SPFVerdict:
    """The SPF verdict on one identity (RFC 7208 §2.6): ``identity`` is ``"mailfrom"`` or
    ``"helo"``, ``domain`` the domain checked, ``client_ip`` the connecting address.

    ``result``: ``pass``, ``fail``, ``softfail``, ``neutral``, ``none``, ``permerror``,
    ``temperror``.
    """

    result: str
    reason: str
    identity: str
    domain: str | None
    client_ip: str

    def __str__(self) -> str:
        where = f"{self.identity} {self.domain} from {self.client_ip}"
        return f"spf={self.result} ({where}: {self.reason})"


@dataclass(frozen=True)
class DMARCVerdict:
    """The DMARC verdict (RFC 7489 §6.6): ``result`` is ``pass``, ``fail``, ``none`` (no
    policy published), ``permerror`` (bad record, several From domains) or ``temperror``.

    ``policy`` is the published ``p=`` (or ``sp=`` for a subdomain), ``disposition`` what the
    policy asks for this message (``none``, ``quarantine``, ``reject``); ``dkim_aligned`` and
    ``spf_aligned`` tell which identifier passed and aligned with ``from_domain``. ``pct``
    is not sampled: the disposition is the policy's, every time.
    """

    result: str
    reason: str
    from_domain: str | None = None
    policy: str | None = None
    disposition: str = "none"
    dkim_aligned: bool = False
    spf_aligned: bool = False

    def __str__(self) -> str:
        return (
            f"dmarc={self.result} (header.from={self.from_domain} p={self.policy}: {self.reason})"
        )

    def refusal(self) -> Reply | None:
        """What a receiving MX that enforces DMARC answers at the end of DATA: ``550 5.7.1``
        when the message fails and the policy says ``reject``; ``None`` (accept) otherwise."""
        if self.result != "fail" or self.disposition != "reject":
            return None
        return Reply(
            550,
            f"Unauthenticated email from {self.from_domain} is not accepted due to its DMARC "
            f"policy (p={self.policy}: {self.reason})",
            "5.7.1",
        )


@dataclass(frozen=True)
class ARCVerdict:
    """The ARC chain verdict (RFC 8617 §5.2): ``pass``, ``fail`` or ``none`` (no ARC sets);
    ``instances`` is the number of ARC sets on the message."""

    result: str
    reason: str
    instances: int = 0

    def __str__(self) -> str:
        return f"arc={self.result} ({self.instances} set(s): {self.reason})"


@dataclass(frozen=True)
class AuthResults:
    """Every verdict on one message: ``dkim`` (one per signature, top first), ``spf`` (the
    MAIL FROM identity, or HELO for the null sender), ``spf_helo``, ``dmarc`` and ``arc``."""

    dkim: list[DKIMVerdict] = field(default_factory=list)
    spf: SPFVerdict | None = None
    spf_helo: SPFVerdict | None = None
    dmarc: DMARCVerdict = field(default_factory=lambda: DMARCVerdict("none", "not checked"))
    arc: ARCVerdict = field(default_factory=lambda: ARCVerdict("none", "not checked"))

    @property
    def dkim_result(self) -> str:
        """One word for DKIM: ``pass`` when any signature passes, else the first signature's
        result, ``none`` when unsigned."""
        if any(v.result == "pass" for v in self.dkim):
            return "pass"
        return self.dkim[0].result if self.dkim else "none"

    def __str__(self) -> str:
        parts = [str(v) for v in self.dkim] or ["dkim=none (no signature)"]
        parts += [str(v) for v in (self.spf, self.dmarc, self.arc) if v is not None]
        return "; ".join(parts)

    def header(self, authserv_id: str) -> str:
        """The ``Authentication-Results: ...`` field (no line end) an MX named
        ``authserv_id`` adds for these verdicts (RFC 8601), built by authres."""
        results: list[Any] = []
        for v in self.dkim:
            results.append(
                authres.DKIMAuthenticationResult(
                    result=v.result,
                    reason=None if v.result == "pass" else _reason(v.reason),
                    header_d=v.domain,
                    header_s=v.selector,
                )
            )
        if not self.dkim:
            results.append(authres.DKIMAuthenticationResult(result="none"))
        if self.spf is not None:
            results.append(
                authres.SPFAuthenticationResult(
                    result=self.spf.result,
                    reason=_reason(self.spf.reason),
                    smtp_mailfrom=self.spf.domain if self.spf.identity == "mailfrom" else None,
                    smtp_helo=self.spf.domain if self.spf.identity == "helo" else None,
                )
            )
        results.append(
            authres.dmarc.DMARCAuthenticationResult(
                result=self.dmarc.result,
                reason=_reason(self.dmarc.reason),
                header_from=self.dmarc.from_domain,
                policy=self.dmarc.disposition if self.dmarc.result == "fail" else None,
            )
        )
        if self.arc.instances:
            results.append(
                authres.arc.ARCAuthenticationResult(
                    result=self.arc.result, reason=_reason(self.arc.reason)
                )
            )
        header = authres.AuthenticationResultsHeader(authserv_id=authserv_id, results=results)
        return str(header)

    def stamp(self, data: bytes, authserv_id: str) -> bytes:
        """``data`` as a receiving MX named ``authserv_id`` files it: this :meth:`header` at
        the top (below a final delivery's ``Return-Path:``, RFC 5321 §4.4), folded at spaces
        to 78-character lines where it can be; and without the ``Authentication-Results``
        fields that already claim ``authserv_id``, which a sender could have forged (RFC 8601
        §5: an MTA must delete them)."""
        lines: list[str] = []
        for word in self.header(authserv_id).split(" "):
            if lines and len(lines[-1]) + 1 + len(word) <= 78:
                lines[-1] += " " + word
            else:
                lines.append(word if not lines else " " + word)  # unfolds to the same text
        folded = ("\r\n".join(lines) + "\r\n").encode("ascii", "replace")
        data = _drop_results_of(data, authserv_id)
        top = 0
        if data[:12].lower() == b"return-path:":
            top = data.find(b"\n") + 1 or len(data)
        return data[:top] + folded + data[top:]


def _drop_results_of(data: bytes, authserv_id: str) -> bytes:
    """``data`` without the header fields ``Authentication-Results: <authserv_id>; ...``.

    One linear pass over the header section (a field is its line and the continuation lines
    that start with a space or tab); the body is never looked at.
    """
    end = data.find(b"\r\n\r\n")
    head_end = len(data) if end < 0 else end + 2
    if b"authentication-results" not in data[:head_end].lower():
        return data
    wanted = authserv_id.lower().encode("ascii", "replace")
    fields: list[list[bytes]] = []
    start = 0
    while start < head_end:
        stop = data.find(b"\n", start, head_end)
        stop = head_end if stop < 0 else stop + 1
        line = data[start:stop]
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1].append(line)  # a continuation line of the field above
        else:
            fields.append([line])
        start = stop
    kept: list[bytes] = []
    for group in fields:
        name, colon, value = b"".join(group).partition(b":")
        first = value.split(b";", 1)[0].split()
        own = (
            colon
            and name.strip().lower() == b"authentication-results"
            and first
            and first[0].lower() == wanted
        )
        if not own:
            kept.extend(group)
    return b"".join(kept) + data[head_end:]


def _reason(text: str) -> str:
    """``text`` for a ``reason=`` value (RFC 8601 §2.2): one line; no ``@``, which authres
    would take for an address and leave unquoted."""
    return " ".join(text.replace("@", " at ").split())


# -- DNS ---------------------------------------------------------------------------------------
_Resolver = dns.resolver.Resolver
_SPF_RESOLVER: contextvars.ContextVar[_Resolver | None] = contextvars.ContextVar(
    "pytest_smtp_spf_resolver", default=None
)
_SPF_ORIGINAL: Callable[..., Any] = spf.DNSLookup


def _spf_lookup(name: str, qtype: str, tcpfallback: bool = True, timeout: float = 30) -> Any:
    """pyspf's lookup hook: inside :func:`verify` it asks the fake DNS, elsewhere pyspf's own."""
    resolver = _SPF_RESOLVER.get()
    if resolver is None:
        return _SPF_ORIGINAL(name, qtype, tcpfallback, timeout)
    answers: list[tuple[tuple[str, str], Any]] = []
    try:
        for rdata in resolver.resolve(name, qtype, search=False):
            if qtype in ("A", "AAAA"):
                value: Any = rdata.address
            elif qtype == "MX":
                value = (rdata.preference, rdata.exchange)
            elif qtype == "PTR":
                value = rdata.target.to_text(True)
            else:
                value = rdata.strings
            answers.append(((name, qtype), value))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        pass
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        raise spf.TempError(f"DNS {exc}") from exc
    return answers


spf.DNSLookup = _spf_lookup


def _txt(resolver: _Resolver, name: str) -> list[str]:
    """The TXT records at ``name`` (each joined), [] when there are none."""
    try:
        answer = resolver.resolve(name, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]


def _dkim_dnsfunc(resolver: _Resolver) -> Callable[..., bytes | None]:
    def lookup(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        try:
            records = _txt(resolver, text)
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise dkim.DnsTimeoutError(f"{text}: {exc}") from exc
        return records[0].encode("utf-8") if records else None

    return lookup


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.errors.append(record.getMessage())


def _logger() -> tuple[logging.Logger, _Recorder]:
    logger = logging.Logger("pytest_smtp.quality.auth")  # private: not in the logging tree
    recorder = _Recorder()
    logger.addHandler(recorder)
    return logger, recorder


# -- DKIM --------------------------------------------------------------------------------------
def _dkim(raw: bytes, resolver: _Resolver) -> list[DKIMVerdict]:
    logger, recorder = _logger()
    try:
        checker = dkim.DKIM(raw, logger=logger)
    except dkim.DKIMException as exc:
        return [DKIMVerdict("permerror", f"message cannot be read: {exc}")]
    count = sum(1 for name, _ in checker.headers if name.lower() == b"dkim-signature")
    dnsfunc = _dkim_dnsfunc(resolver)
    verdicts: list[DKIMVerdict] = []
    for index in range(count):
        recorder.errors.clear()
        checker.domain = checker.selector = None
        try:
            ok = checker.verify(idx=index, dnsfunc=dnsfunc)
        except dkim.DKIMException as exc:
            text = str(exc)
            if text.startswith("body hash mismatch"):
                text, result = "body hash mismatch (the body changed after signing)", "fail"
            else:
                result = "permerror"
            verdicts.append(DKIMVerdict(result, text, *_ds(checker)))
            continue
        if ok:
            verdicts.append(DKIMVerdict("pass", "signature verified", *_ds(checker)))
        elif recorder.errors:
            text = recorder.errors[-1]
            if text.startswith("DnsTimeoutError"):
                verdicts.append(DKIMVerdict("temperror", text, *_ds(checker)))
            elif text.startswith("missing public key"):
                name = _MISSING_KEY.sub(r"\1", text)
                verdicts.append(DKIMVerdict("permerror", f"key not found: {name}", *_ds(checker)))
            else:
                verdicts.append(DKIMVerdict("permerror", f"bad key: {text}", *_ds(checker)))
        else:
            verdicts.append(
                DKIMVerdict(
                    "fail",
                    "signature did not verify (a signed header changed, or the key does not "
                    "match the one that signed)",
                    *_ds(checker),
                )
            )
    return verdicts


def _ds(checker: Any) -> tuple[str | None, str | None]:
    def text(value: bytes | None) -> str | None:
        return value.decode("ascii", "replace") if value else None

    return text(checker.domain), text(checker.selector)


# -- SPF ---------------------------------------------------------------------------------------
def _spf(ip: str, sender: str, helo: str | None, identity: str) -> SPFVerdict:
    host = helo or ""
    if identity == "helo":
        domain: str | None = host or None
        if not host or host.startswith("["):
            return SPFVerdict("none", "HELO is not a domain", "helo", domain, ip)
        query = spf.query(i=ip, s="", h=host, querytime=10)
    else:
        domain = sender.rpartition("@")[2] or None
        query = spf.query(i=ip, s=sender, h=host, querytime=10)
    result, _code, explanation = query.check()
    return SPFVerdict(result, explanation, identity, domain, ip)


# -- DMARC -------------------------------------------------------------------------------------
class _OrgDomains:
    """The organizational-domain lookup the dmarc package asks for (its ``psl`` object)."""

    def get_public_suffix(self, domain: str) -> str:
        return _org_domain(domain)


def _org_domain(domain: str) -> str:
    return str(_PSL.privatesuffix(domain.lower()) or domain.lower())


def _dmarc_record(resolver: _Resolver, domain: str) -> tuple[str | None, str | None, str]:
    """``(record, org_domain_if_fallback, note)``: the policy that applies to ``domain``."""
    candidates: list[tuple[str, str | None]] = [(domain, None)]
    org = _org_domain(domain)
    if org != domain:
        candidates.append((org, org))
    for name, fallback in candidates:
        records = [r for r in _txt(resolver, f"_dmarc.{name}") if r.startswith("v=DMARC1")]
        if len(records) == 1:
            return records[0], fallback, f"_dmarc.{name}"
        if len(records) > 1:
            return None, None, f"_dmarc.{name} has {len(records)} DMARC records (none applies)"
    return (
        None,
        None,
        f"no DMARC record at _dmarc.{domain}" + (f" nor _dmarc.{org}" if org != domain else ""),
    )


def _dmarc(
    message: CheckedMessage,
    resolver: _Resolver,
    dkims: list[DKIMVerdict],
    spf_verdict: SPFVerdict | None,
) -> DMARCVerdict:
    authors = [
        address.addr_spec
        for header in message.email.get_all("From") or []
        for address in getattr(header, "addresses", ())
    ]
    domains = {a.rpartition("@")[2].lower() for a in authors if "@" in a}
    if len(domains) != 1:
        return DMARCVerdict(
            "permerror",
            f"From must name exactly one domain, found {sorted(domains) or 'none'}",
        )
    (from_domain,) = domains
    try:
        record, org, where = _dmarc_record(resolver, from_domain)
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        return DMARCVerdict("temperror", f"DMARC lookup failed: {exc}", from_domain)
    if record is None:
        return DMARCVerdict("none", where, from_domain)
    try:
        evaluation = dmarc.DMARCPolicy(
            record=record, domain=from_domain, org_domain=org, publicsuffix=_OrgDomains()
        )
    except dmarc.RecordSyntaxError as exc:
        return DMARCVerdict("permerror", f"bad DMARC record at {where} {record!r}: {exc}")
    results: list[Any] = []
    if spf_verdict is not None and spf_verdict.domain:
        results.append(dmarc.SPF(spf_verdict.domain, _enum(dmarc.SPFResult, spf_verdict.result)))
    for verdict in dkims:
        if verdict.domain:
            results.append(dmarc.DKIM(verdict.domain, _enum(dmarc.DKIMResult, verdict.result)))
    try:
        evaluation.verify(auth_results=results)
    except dmarc.PolicyError:
        pass
    outcome = evaluation.result
    policy = evaluation.policy
    applied = policy.sp if org and policy.sp.value != "unspecified" else policy.p
    dkim_ok = outcome.dkim.value == "pass"
    spf_ok = outcome.spf.value == "pass"
    reasons = [
        _alignment("dkim", [v.domain for v in dkims if v.result == "pass"], dkim_ok, from_domain),
        _alignment(
            "spf",
            [spf_verdict.domain] if spf_verdict and spf_verdict.result == "pass" else [],
            spf_ok,
            from_domain,
        ),
    ]
    return DMARCVerdict(
        outcome.result.value,
        "; ".join(reasons),
        from_domain,
        applied.value,
        outcome.disposition.value,
        dkim_ok,
        spf_ok,
    )


def _enum(kind: Any, value: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        return kind("none")


def _alignment(method: str, passed: list[str | None], aligned: bool, from_domain: str) -> str:
    if aligned:
        return f"{method} pass, aligned with {from_domain}"
    if not passed:
        return f"{method} did not pass"
    shown = ", ".join(str(d) for d in passed)
    return f"{method} passed for {shown}, not aligned with {from_domain}"


# -- ARC ---------------------------------------------------------------------------------------
def _arc(raw: bytes, resolver: _Resolver) -> ARCVerdict:
    logger, _ = _logger()
    cv, results, reason = dkim.arc_verify(raw, logger=logger, dnsfunc=_dkim_dnsfunc(resolver))
    if cv == dkim.CV_None and not results:
        return ARCVerdict("none", str(reason), 0)
    result = "pass" if cv == dkim.CV_Pass else "fail"
    instances = max((int(r.get("instance", 0)) for r in results), default=0)
    return ARCVerdict(result, str(reason), instances or len(results))


# -- entry points ------------------------------------------------------------------------------
def _resolver_for(dns_server: TXTPublisher | _Resolver) -> _Resolver:
    if isinstance(dns_server, dns.resolver.Resolver):
        return dns_server
    if callable(getattr(dns_server, "sync_resolver", None)):
        return dns_server.sync_resolver()
    raise TypeError(
        "verify() needs the FakeDNS to ask (or a dns.resolver.Resolver pointed at it), "
        f"not {type(dns_server).__name__}"
    )


def verify(message: CheckedMessage, dns_server: TXTPublisher | _Resolver) -> AuthResults:
    """Verify ``message`` as a receiving MX would, asking ``dns_server`` (a :class:`FakeDNS`).

    DKIM: every signature (dkimpy). SPF: the client IP of the message's session against the
    MAIL FROM domain (the HELO name for the null sender) and, separately, the HELO name
    (pyspf). DMARC: the policy of the From domain (or its organizational domain) applied to
    the DKIM and SPF results, with identifier alignment (dmarc). ARC: the chain, when present
    (dkimpy). Runs in the calling thread; blocking DNS lookups to the fake server only.
    """
    resolver = _resolver_for(dns_server)
    raw = message.raw
    ip = message.session.peer[0]
    helo = message.session.helo
    token = _SPF_RESOLVER.set(resolver)
    try:
        helo_verdict = _spf(ip, "", helo, "helo")
        if message.mail_from:
            mail_verdict = _spf(ip, message.mail_from, helo, "mailfrom")
        else:
            mail_verdict = helo_verdict
    finally:
        _SPF_RESOLVER.reset(token)
    dkims = _dkim(raw, resolver)
    return AuthResults(
        dkim=dkims,
        spf=mail_verdict,
        spf_helo=helo_verdict,
        dmarc=_dmarc(message, resolver, dkims, mail_verdict),
        arc=_arc(raw, resolver),
    )


# -- publishing ----------------------------------------------------------------------------------
def publish_dkim_key(
    dns_server: TXTPublisher, domain: str, selector: str = "s1", *, bits: int = 2048
) -> bytes:
    """Make an RSA key pair, publish its public half at ``selector._domainkey.domain`` and
    return the private key (PEM, PKCS#8) for the application under test to sign with::

        key = publish_dkim_key(dns, "example.test")
        signature = dkim.sign(raw, b"s1", b"example.test", key)
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if not isinstance(bits, int) or isinstance(bits, bool) or not 1024 <= bits <= 4096:
        raise ValueError(f"bits must be an int from 1024 to 4096 (RFC 8301), not {bits!r}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    dns_server.add_txt(
        f"{selector}._domainkey.{domain}",
        f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}",
    )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def publish_spf(dns_server: TXTPublisher, domain: str, record: str) -> None:
    """Publish the SPF policy ``record`` (``"v=spf1 ip4:127.0.0.0/8 -all"``) for ``domain``."""
    if not isinstance(record, str) or not (record == "v=spf1" or record.startswith("v=spf1 ")):
        raise ValueError(f"an SPF record starts with 'v=spf1 ' (RFC 7208 §4.5), not {record!r}")
    dns_server.add_txt(domain, record)


def publish_dmarc(dns_server: TXTPublisher, domain: str, record: str) -> None:
    """Publish the DMARC policy ``record`` (``"v=DMARC1; p=reject"``) at ``_dmarc.domain``.

    The record is parsed first (by the dmarc package), so a malformed one is a ``ValueError``
    here rather than a ``permerror`` later.
    """
    if not isinstance(record, str):
        raise ValueError(f"record must be a str such as 'v=DMARC1; p=reject', not {record!r}")
    try:
        dmarc.DMARCPolicy(record=record, domain=domain)
    except dmarc.RecordSyntaxError as exc:
        raise ValueError(
            f"bad DMARC record {record!r}: {exc}; it starts 'v=DMARC1; p=none|quarantine|reject'"
        ) from exc
    dns_server.add_txt(f"_dmarc.{domain}", record)
