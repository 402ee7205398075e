"""The filters of :class:`~pytest_smtp.mail.Mailbox` and :class:`~pytest_smtp.mail.TransactionLog`.

This module never imports pytest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeAlias

from pytest_smtp.mail.message import Message, _short
from pytest_smtp.mail.transaction import OUTCOMES, STAGES, Transaction

_TextMatch: TypeAlias = "str | re.Pattern[str]"


def _describe_filters(pairs: list[tuple[str, object]]) -> str:
    parts: list[str] = []
    for name, value in pairs:
        if name == "predicate":
            shown = getattr(value, "__qualname__", type(value).__name__)
        else:
            shown = _short(value, 80)
        parts.append(f"{name}={shown}")
    return ", ".join(parts) if parts else "(no filters)"


def _check_str(name: str, value: object, hint: str = "") -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name}= takes a str, got {type(value).__name__} {value!r}{hint}")
    return value


def _text_matches(expected: _TextMatch, actual: str | None) -> bool:
    if actual is None:
        return False
    if isinstance(expected, re.Pattern):
        return expected.search(actual) is not None
    return actual == expected


def _check_text_match(name: str, value: object) -> _TextMatch:
    if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
        return value
    if isinstance(value, str):
        return value
    raise TypeError(f"{name}= takes a str or a compiled str pattern, got {value!r}")


def _message_matcher(
    to: str | None,
    from_: str | None,
    subject: _TextMatch | None,
    contains: str | None,
    header: tuple[str, _TextMatch] | Mapping[str, _TextMatch] | None,
    predicate: Callable[[Message], bool] | None,
) -> tuple[Callable[[Message], bool], str]:
    checks: list[Callable[[Message], bool]] = []
    shown: list[tuple[str, object]] = []
    if to is not None:
        wanted_to = _check_str("to", to, " (one address; call again or use predicate= for more)")
        folded_to = wanted_to.casefold()
        checks.append(lambda m: any(r.casefold() == folded_to for r in m.rcpt_tos))
        shown.append(("to", to))
    if from_ is not None:
        wanted_from = _check_str("from_", from_)
        if wanted_from == "<>":
            raise ValueError("the null sender is written from_='' (not '<>')")
        folded_from = wanted_from.casefold()
        checks.append(lambda m: m.mail_from.casefold() == folded_from)
        shown.append(("from_", from_))
    if subject is not None:
        wanted_subject = _check_text_match("subject", subject)
        checks.append(lambda m: _text_matches(wanted_subject, m.subject))
        shown.append(("subject", subject))
    if contains is not None:
        needle = _check_str("contains", contains)
        checks.append(lambda m: needle in (m.text or "") or needle in (m.html or ""))
        shown.append(("contains", contains))
    if header is not None:
        wanted_headers = _check_header_filter(header)
        checks.append(
            lambda m: all(
                any(_text_matches(value, got) for got in m.headers.get_all(name))
                for name, value in wanted_headers
            )
        )
        shown.append(("header", header))
    if predicate is not None:
        if not callable(predicate):
            raise TypeError(f"predicate= takes a callable(Message) -> bool, got {predicate!r}")
        checks.append(predicate)
        shown.append(("predicate", predicate))
    return (lambda m: all(check(m) for check in checks)), _describe_filters(shown)


def _check_header_filter(header: object) -> list[tuple[str, _TextMatch]]:
    pairs: list[tuple[object, object]]
    if isinstance(header, tuple):
        if len(header) != 2:
            raise TypeError(
                f"header= takes a (name, value) tuple or a dict name -> value, got {header!r}"
            )
        pairs = [(header[0], header[1])]
    elif isinstance(header, Mapping):
        pairs = list(header.items())
    else:
        raise TypeError(
            f"header= takes a (name, value) tuple or a dict name -> value, got {header!r}"
        )
    return [(_check_str("header name", n), _check_text_match("header value", v)) for n, v in pairs]


def _transaction_matcher(
    outcome: str | None,
    stage: str | None,
    rcpt: str | None,
    from_: str | None,
    code: int | None,
    predicate: Callable[[Transaction], bool] | None,
) -> tuple[Callable[[Transaction], bool], str]:
    checks: list[Callable[[Transaction], bool]] = []
    shown: list[tuple[str, object]] = []
    if outcome is not None:
        wanted_outcome = _check_choice("outcome", outcome, OUTCOMES)
        checks.append(lambda t: t.outcome == wanted_outcome)
        shown.append(("outcome", outcome))
    if stage is not None:
        wanted_stage = _check_choice("stage", stage, STAGES)
        checks.append(lambda t: t.stage == wanted_stage)
        shown.append(("stage", stage))
    if rcpt is not None:
        folded_rcpt = _check_str("rcpt", rcpt).casefold()
        checks.append(lambda t: any(r.address.casefold() == folded_rcpt for r in t.recipients))
        shown.append(("rcpt", rcpt))
    if from_ is not None:
        wanted_from = _check_str("from_", from_)
        if wanted_from == "<>":
            raise ValueError("the null sender is written from_='' (not '<>')")
        folded_from = wanted_from.casefold()
        checks.append(lambda t: t.mail_from is not None and t.mail_from.casefold() == folded_from)
        shown.append(("from_", from_))
    if code is not None:
        wanted_code = _check_code(code)
        checks.append(
            lambda t: (
                (t.reply is not None and t.reply.code == wanted_code)
                or any(r.reply.code == wanted_code for r in t.recipients)
            )
        )
        shown.append(("code", code))
    if predicate is not None:
        if not callable(predicate):
            raise TypeError(f"predicate= takes a callable(Transaction) -> bool, got {predicate!r}")
        checks.append(predicate)
        shown.append(("predicate", predicate))
    return (lambda t: all(check(t) for check in checks)), _describe_filters(shown)


def _check_choice(name: str, value: object, valid: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"{name}={value!r} is not one of: {', '.join(valid)}")
    return value


def _check_code(code: object) -> int:
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"code= takes an int reply code such as 550, got {code!r}")
    return code
