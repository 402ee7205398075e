"""Assertions on mail quality: :func:`assert_clean` (lint) and :func:`assert_authenticated`.

Both raise :class:`AssertionError` whose text lists what was found instead. They hide their
own frames from pytest tracebacks (``__tracebackhide__``) but never import pytest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pytest_smtp.quality.lint import CODES, Finding, lint

if TYPE_CHECKING:
    import dns.resolver

    from pytest_smtp.fakedns import FakeDNS
    from pytest_smtp.mail import Message
    from pytest_smtp.quality.auth import AuthResults

__all__ = ["assert_authenticated", "assert_clean"]

_SEVERITIES = ("warning", "error")
#: The result words each method can have (RFC 8601 §2.7).
_RESULTS: dict[str, tuple[str, ...]] = {
    "dkim": ("pass", "fail", "none", "neutral", "policy", "permerror", "temperror"),
    "spf": ("pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"),
    "dmarc": ("pass", "fail", "none", "permerror", "temperror"),
    "arc": ("pass", "fail", "none"),
}


def assert_clean(
    message: Message, allow: Iterable[str] = (), *, severity: str = "warning"
) -> list[Finding]:
    """Assert that :func:`~pytest_smtp.quality.lint.lint` finds nothing wrong with ``message``.

    ``allow`` names finding codes to accept (``allow=("missing-message-id",)``); an unknown
    code is a ``ValueError``, so a typo cannot hide a finding. ``severity="error"`` accepts
    warnings. Returns every finding (the allowed ones too) when the assertion holds.
    """
    __tracebackhide__ = True
    allowed = _check_codes(allow)
    if severity not in _SEVERITIES:
        raise ValueError(f"severity must be 'warning' or 'error', not {severity!r}")
    findings = lint(message)
    minimum = _SEVERITIES.index(severity)
    bad = [
        f for f in findings if f.code not in allowed and _SEVERITIES.index(f.severity) >= minimum
    ]
    if bad:
        lines = "\n".join(f"  {f}" for f in bad)
        raise AssertionError(
            f"{message!r} is not clean: {len(bad)} finding(s)\n{lines}\n"
            f"(accept one with allow=({bad[0].code!r},))"
        )
    return findings


def _words(value: str | Iterable[str]) -> tuple[str, ...]:
    """One word or several: ``"pass"`` and ``("pass", "none")`` alike."""
    return (value,) if isinstance(value, str) else tuple(value)


def _check_codes(allow: Iterable[str]) -> frozenset[str]:
    codes = frozenset(_words(allow))
    unknown = sorted(codes - set(CODES))
    if unknown:
        raise ValueError(
            f"unknown lint code(s) {', '.join(map(repr, unknown))} in allow=; known codes: "
            + ", ".join(sorted(CODES))
        )
    return codes


def _expected(method: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    words = _words(value)
    bad = [w for w in words if w not in _RESULTS[method]]
    if bad or not words:
        raise ValueError(
            f"{method}= takes one of {', '.join(_RESULTS[method])} (or a tuple of them, or "
            f"None to skip), not {value!r}"
        )
    return words


def assert_authenticated(
    message: Message | AuthResults,
    dns_server: FakeDNS | dns.resolver.Resolver | None = None,
    *,
    dkim: str | Iterable[str] | None = "pass",
    spf: str | Iterable[str] | None = "pass",
    dmarc: str | Iterable[str] | None = "pass",
    arc: str | Iterable[str] | None = None,
    dkim_domain: str | None = None,
) -> AuthResults:
    """Assert the authentication verdicts of ``message``; returns the :class:`AuthResults`.

    ``message`` is a captured :class:`~pytest_smtp.mail.Message` (verified now against
    ``dns_server``, the fake DNS) or the :class:`AuthResults` of an earlier
    :func:`~pytest_smtp.quality.auth.verify`. Each expectation is a result word
    (``"pass"``, ``"fail"``, ``"softfail"``, ...), a tuple of acceptable words, or None to
    skip that method. ``dkim`` is met when any signature has the result (``"pass"``) or, for
    other words, when the first one does; ``dkim_domain`` further asks for a passing
    signature with that ``d=``. The failure text names each verdict that differs and why
    (body hash mismatch, key not found, not aligned, ...).
    """
    __tracebackhide__ = True
    from pytest_smtp.quality.auth import AuthResults, verify

    wanted = {
        "dkim": _expected("dkim", dkim),
        "spf": _expected("spf", spf),
        "dmarc": _expected("dmarc", dmarc),
        "arc": _expected("arc", arc),
    }
    if isinstance(message, AuthResults):
        results = message
        label = "the message"
    else:
        if dns_server is None:
            raise TypeError(
                "assert_authenticated(message, dns) needs the FakeDNS to verify against "
                "(or pass the AuthResults of verify())"
            )
        results = verify(message, dns_server)
        label = repr(message)
    got = {
        "dkim": (results.dkim_result, "; ".join(str(v) for v in results.dkim) or "no signature"),
        "spf": (
            results.spf.result if results.spf else "none",
            str(results.spf) if results.spf else "not checked",
        ),
        "dmarc": (results.dmarc.result, str(results.dmarc)),
        "arc": (results.arc.result, str(results.arc)),
    }
    problems = [
        f"  {method}: expected {' or '.join(words)}, got {got[method][0]}: {got[method][1]}"
        for method, words in wanted.items()
        if words is not None and got[method][0] not in words
    ]
    if dkim_domain is not None and not any(
        v.result == "pass" and (v.domain or "").lower() == dkim_domain.lower() for v in results.dkim
    ):
        signers = ", ".join(f"{v.domain}={v.result}" for v in results.dkim) or "none"
        problems.append(f"  dkim: no passing signature by d={dkim_domain} (signatures: {signers})")
    if problems:
        raise AssertionError(f"{label} is not authenticated as expected:\n" + "\n".join(problems))
    return results
