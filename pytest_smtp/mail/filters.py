"""Filters: what :class:`~pytest_smtp.mail.Mailbox` and :class:`~pytest_smtp.mail.TransactionLog`
(and the ``assert_*`` helpers) match on, built once and able to say why an item did not match.

A :class:`MessageFilter` or :class:`TransactionFilter` holds criteria that must all hold.
Filters combine: ``a & b`` (both), ``a | b`` (either), ``~a`` (not). ``f.matches(item)`` (or
``f(item)``) tests an item; ``f.explain(item)`` names the first criterion that failed and the
actual value, or returns ``None`` when the item matches.

Envelope or headers: ``rcpt=`` and ``mail_from=`` match the SMTP envelope (``RCPT TO`` /
``MAIL FROM``, :attr:`Message.rcpt_tos <pytest_smtp.mail.Message.rcpt_tos>`,
:attr:`Message.mail_from <pytest_smtp.mail.Message.mail_from>`); ``header_to=`` and
``header_from=`` match the addresses written in the ``To`` and ``From`` header fields
(:attr:`Message.to <pytest_smtp.mail.Message.to>`). ``to=`` and ``from_=`` are accepted as the
older spellings of ``rcpt=`` and ``mail_from=`` (the envelope); giving both spellings of one
criterion is a :class:`TypeError`.

This module never imports pytest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypedDict, TypeVar

from pytest_smtp.mail.message import Message, short_repr
from pytest_smtp.mail.transaction import OUTCOMES, STAGES, Outcome, Stage, Transaction

if TYPE_CHECKING:
    import sys

    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

__all__ = ["Filter", "MessageFilter", "TransactionFilter"]

_T = TypeVar("_T")
#: An exact ``str`` or a compiled pattern searched in the text.
TextMatch: TypeAlias = "str | re.Pattern[str]"
#: ``(name, value)`` or ``{name: value}``: header fields and what their decoded value must be.
HeaderMatch: TypeAlias = "tuple[str, TextMatch] | Mapping[str, TextMatch]"


class MessageCriteria(TypedDict, total=False):
    """The keywords of :class:`MessageFilter`, as every message lookup and assertion takes them."""

    rcpt: str | None
    mail_from: str | None
    header_to: str | None
    header_from: str | None
    subject: TextMatch | None
    contains: str | None
    header: HeaderMatch | None
    predicate: Callable[[Message], bool] | None
    to: str | None
    from_: str | None


class TransactionCriteria(TypedDict, total=False):
    """The keywords of :class:`TransactionFilter`, as every transaction lookup takes them."""

    outcome: Outcome | None
    stage: Stage | None
    rcpt: str | None
    mail_from: str | None
    code: int | None
    predicate: Callable[[Transaction], bool] | None
    from_: str | None


@dataclass(frozen=True)
class _Criterion(Generic[_T]):
    name: str
    wanted: object
    test: Callable[[_T], bool]
    actual: Callable[[_T], object]

    def shown(self) -> str:
        if self.name == "predicate":
            name = getattr(self.wanted, "__qualname__", type(self.wanted).__name__)
            return f"predicate={name}"
        return f"{self.name}={short_repr(self.wanted, 80)}"


class Filter(Generic[_T]):
    """Criteria on a :class:`~pytest_smtp.mail.Message` or a
    :class:`~pytest_smtp.mail.Transaction`, all of which must hold.

    Build one with :class:`MessageFilter` or :class:`TransactionFilter`; combine with ``&``,
    ``|`` and ``~``. ``str(f)`` is the text failure messages show (``subject='Hi', rcpt=...``).
    """

    #: What the filter applies to: ``"message"`` or ``"transaction"``.
    kind: str = "item"

    def __init__(self, criteria: Sequence[_Criterion[_T]] = ()) -> None:
        self._criteria = tuple(criteria)

    def matches(self, item: _T) -> bool:
        """True when every criterion holds for ``item``."""
        return all(c.test(item) for c in self._criteria)

    def __call__(self, item: _T) -> bool:
        return self.matches(item)

    def explain(self, item: _T) -> str | None:
        """Why ``item`` does not match: the first criterion that failed and the actual value
        (e.g. ``"subject: wanted 'Hi', got 'Hello'"``); ``None`` when it matches.
        """
        for criterion in self._criteria:
            if not criterion.test(item):
                if criterion.name == "predicate":
                    return f"{criterion.shown()} returned False"
                return (
                    f"{criterion.name}: wanted {short_repr(criterion.wanted, 80)}, got "
                    f"{short_repr(criterion.actual(item), 80)}"
                )
        return None

    def __str__(self) -> str:
        return ", ".join(c.shown() for c in self._criteria) or "(no filters)"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self}>"

    def _check_kind(self, other: Filter[Any], op: str) -> None:
        if other.kind != self.kind:
            raise TypeError(
                f"cannot combine a {self.kind} filter with a {other.kind} filter using {op!r}"
            )

    def __and__(self, other: Filter[_T]) -> Filter[_T]:
        if not isinstance(other, Filter):
            return NotImplemented
        self._check_kind(other, "&")
        return _AllOf(self.kind, (self, other))

    def __or__(self, other: Filter[_T]) -> Filter[_T]:
        if not isinstance(other, Filter):
            return NotImplemented
        self._check_kind(other, "|")
        return _AnyOf(self.kind, (self, other))

    def __invert__(self) -> Filter[_T]:
        return _Not(self.kind, self)


class _AllOf(Filter[_T]):
    def __init__(self, kind: str, parts: tuple[Filter[_T], ...]) -> None:
        super().__init__()
        self.kind = kind
        self._parts = parts

    def matches(self, item: _T) -> bool:
        return all(p.matches(item) for p in self._parts)

    def explain(self, item: _T) -> str | None:
        for part in self._parts:
            why = part.explain(item)
            if why is not None:
                return why
        return None

    def __str__(self) -> str:
        return " & ".join(f"({p})" for p in self._parts)


class _AnyOf(Filter[_T]):
    def __init__(self, kind: str, parts: tuple[Filter[_T], ...]) -> None:
        super().__init__()
        self.kind = kind
        self._parts = parts

    def matches(self, item: _T) -> bool:
        return any(p.matches(item) for p in self._parts)

    def explain(self, item: _T) -> str | None:
        reasons = [p.explain(item) for p in self._parts]
        if any(why is None for why in reasons):
            return None
        return "none of: " + "; or ".join(str(why) for why in reasons)

    def __str__(self) -> str:
        return " | ".join(f"({p})" for p in self._parts)


class _Not(Filter[_T]):
    def __init__(self, kind: str, inner: Filter[_T]) -> None:
        super().__init__()
        self.kind = kind
        self._inner = inner

    def matches(self, item: _T) -> bool:
        return not self._inner.matches(item)

    def explain(self, item: _T) -> str | None:
        if self._inner.matches(item):
            return f"matched ({self._inner}), wanted it not to"
        return None

    def __str__(self) -> str:
        return f"~({self._inner})"


# --------------------------------------------------------------------------------------------
# Argument checks


def _check_str(name: str, value: object, hint: str = "") -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name}= takes a str, got {type(value).__name__} {value!r}{hint}")
    return value


def _check_text_match(name: str, value: object) -> TextMatch:
    if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
        return value
    if isinstance(value, str):
        return value
    raise TypeError(f"{name}= takes a str or a compiled str pattern, got {value!r}")


def _text_matches(expected: TextMatch, actual: str | None) -> bool:
    if actual is None:
        return False
    if isinstance(expected, re.Pattern):
        return expected.search(actual) is not None
    return actual == expected


def _check_sender(name: str, value: object) -> str:
    wanted = _check_str(name, value)
    if wanted == "<>":
        raise ValueError(f"the null sender is written {name}='' (not '<>')")
    return wanted


def _check_header_filter(header: object) -> list[tuple[str, TextMatch]]:
    pairs: list[tuple[object, object]]
    if isinstance(header, tuple) and len(header) == 2:
        pairs = [(header[0], header[1])]
    elif isinstance(header, Mapping):
        pairs = list(header.items())
    else:
        raise TypeError(
            f"header= takes a (name, value) tuple or a dict name -> value, got {header!r}"
        )
    return [(_check_str("header name", n), _check_text_match("header value", v)) for n, v in pairs]


def _check_choice(name: str, value: object, valid: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"{name}={value!r} is not one of: {', '.join(valid)}")
    return value


def _check_code(code: object) -> int:
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"code= takes an int reply code such as 550, got {code!r}")
    return code


def _check_keywords(cls: type, given: Mapping[str, object], valid: frozenset[str]) -> None:
    unknown = sorted(set(given) - valid)
    if unknown:
        raise TypeError(
            f"{cls.__name__}() got an unexpected keyword argument {unknown[0]!r} "
            f"(valid: {', '.join(sorted(valid))})"
        )


def _spelling(criteria: Mapping[str, Any], name: str, old_name: str) -> tuple[Any, str]:
    """The value of a criterion with two spellings (``rcpt=`` / ``to=``) and the spelling
    used; both is an error.
    """
    value, old = criteria.get(name), criteria.get(old_name)
    if value is not None and old is not None:
        raise TypeError(f"{name}= and {old_name}= are the same criterion; give one of them")
    return (value, name) if old is None else (old, old_name)


def _address_criterion(
    name: str,
    wanted: str,
    addresses: Callable[[_T], Sequence[str]],
    actual: Callable[[_T], object] | None = None,
) -> _Criterion[_T]:
    """``wanted`` is one of ``addresses(item)``, compared case-insensitively."""
    folded = wanted.casefold()
    return _Criterion(
        name,
        wanted,
        lambda item: any(a.casefold() == folded for a in addresses(item)),
        addresses if actual is None else actual,
    )


def _add_predicate(found: list[_Criterion[_T]], predicate: object, what: str) -> None:
    if predicate is None:
        return
    if not callable(predicate):
        raise TypeError(f"predicate= takes a callable({what}) -> bool, got {predicate!r}")
    found.append(_Criterion("predicate", predicate, predicate, lambda item: None))


def _any_code(t: Transaction, wanted: int) -> bool:
    return (t.reply is not None and t.reply.code == wanted) or any(
        r.reply.code == wanted for r in t.recipients
    )


def _codes(t: Transaction) -> dict[str, object]:
    return {
        "reply": None if t.reply is None else t.reply.code,
        "recipients": [r.reply.code for r in t.recipients],
    }


# --------------------------------------------------------------------------------------------
# The two filters


class MessageFilter(Filter[Message]):
    """Criteria on a captured :class:`~pytest_smtp.mail.Message`; all given ones must hold.

    - ``rcpt``: an envelope recipient (``RCPT TO``), exact, case-insensitive;
    - ``mail_from``: the envelope sender (``MAIL FROM``), case-insensitive; ``""`` is the null
      sender;
    - ``header_to``: an address of the ``To`` header field, case-insensitive;
    - ``header_from``: the address of the ``From`` header field, case-insensitive;
    - ``subject``: the exact decoded subject, or a compiled pattern searched in it;
    - ``contains``: a substring of the decoded text or HTML body;
    - ``header``: ``(name, value)`` or ``{name: value}``; exact decoded value or a pattern;
    - ``predicate``: ``callable(Message) -> bool``;
    - ``to`` / ``from_``: the older spellings of ``rcpt`` / ``mail_from`` (the envelope).
    """

    kind = "message"

    def __init__(self, **criteria: Unpack[MessageCriteria]) -> None:
        _check_keywords(type(self), criteria, MessageCriteria.__optional_keys__)
        found: list[_Criterion[Message]] = []
        add = found.append
        rcpt, rcpt_name = _spelling(criteria, "rcpt", "to")
        if rcpt is not None:
            hint = " (one address; combine filters with & or use predicate= for more)"
            _check_str(rcpt_name, rcpt, hint)
            add(_address_criterion(rcpt_name, rcpt, lambda m: m.rcpt_tos))
        sender, sender_name = _spelling(criteria, "mail_from", "from_")
        if sender is not None:
            _check_sender(sender_name, sender)
            add(
                _address_criterion(
                    sender_name, sender, lambda m: [m.mail_from], lambda m: m.mail_from
                )
            )
        header_to = criteria.get("header_to")
        if header_to is not None:
            _check_str("header_to", header_to)
            add(_address_criterion("header_to", header_to, lambda m: m.to))
        header_from = criteria.get("header_from")
        if header_from is not None:
            _check_str("header_from", header_from)
            add(
                _address_criterion(
                    "header_from", header_from, lambda m: m._addresses("From"), lambda m: m.from_
                )
            )
        subject = criteria.get("subject")
        if subject is not None:
            wanted_subject = _check_text_match("subject", subject)
            add(
                _Criterion(
                    "subject",
                    subject,
                    lambda m: _text_matches(wanted_subject, m.subject),
                    lambda m: m.subject,
                )
            )
        contains = criteria.get("contains")
        if contains is not None:
            needle = _check_str("contains", contains)
            add(
                _Criterion(
                    "contains",
                    contains,
                    lambda m: needle in (m.text or "") or needle in (m.html or ""),
                    lambda m: m.text if m.text is not None else m.html,
                )
            )
        header = criteria.get("header")
        if header is not None:
            for field_name, value in _check_header_filter(header):
                add(_header_criterion(field_name, value))
        _add_predicate(found, criteria.get("predicate"), "Message")
        super().__init__(found)


def _header_criterion(name: str, value: TextMatch) -> _Criterion[Message]:
    return _Criterion(
        f"header {name}",
        value,
        lambda m: any(_text_matches(value, got) for got in m.headers.get_all(name)),
        lambda m: m.headers.get_all(name) or None,
    )


class TransactionFilter(Filter[Transaction]):
    """Criteria on a :class:`~pytest_smtp.mail.Transaction`; all given ones must hold.

    - ``outcome``: one of :data:`~pytest_smtp.mail.OUTCOMES`;
    - ``stage``: one of :data:`~pytest_smtp.mail.STAGES`;
    - ``rcpt``: any recipient tried, accepted or not, case-insensitive;
    - ``mail_from``: the envelope sender, case-insensitive (``""``: the null sender);
    - ``code``: the deciding reply's code or any recipient's reply code;
    - ``predicate``: ``callable(Transaction) -> bool``;
    - ``from_``: the older spelling of ``mail_from``.
    """

    kind = "transaction"

    def __init__(self, **criteria: Unpack[TransactionCriteria]) -> None:
        _check_keywords(type(self), criteria, TransactionCriteria.__optional_keys__)
        found: list[_Criterion[Transaction]] = []
        add = found.append
        outcome = criteria.get("outcome")
        if outcome is not None:
            wanted_outcome = _check_choice("outcome", outcome, OUTCOMES)
            add(
                _Criterion(
                    "outcome", outcome, lambda t: t.outcome == wanted_outcome, lambda t: t.outcome
                )
            )
        stage = criteria.get("stage")
        if stage is not None:
            wanted_stage = _check_choice("stage", stage, STAGES)
            add(_Criterion("stage", stage, lambda t: t.stage == wanted_stage, lambda t: t.stage))
        rcpt = criteria.get("rcpt")
        if rcpt is not None:
            _check_str("rcpt", rcpt)
            add(_address_criterion("rcpt", rcpt, lambda t: [r.address for r in t.recipients]))
        sender, sender_name = _spelling(criteria, "mail_from", "from_")
        if sender is not None:
            _check_sender(sender_name, sender)
            add(
                _address_criterion(
                    sender_name,
                    sender,
                    lambda t: [] if t.mail_from is None else [t.mail_from],
                    lambda t: t.mail_from,
                )
            )
        code = criteria.get("code")
        if code is not None:
            wanted_code = _check_code(code)
            add(_Criterion("code", code, lambda t: _any_code(t, wanted_code), _codes))
        _add_predicate(found, criteria.get("predicate"), "Transaction")
        super().__init__(found)


def message_filter(
    match: Filter[Message] | None, **criteria: Unpack[MessageCriteria]
) -> Filter[Message]:
    """``match`` and the keyword criteria as one filter (what every message lookup takes)."""
    return _combine(match, MessageFilter(**criteria), "message")


def transaction_filter(match: Filter[Transaction] | None, **criteria: Any) -> Filter[Transaction]:
    """``match`` and the keyword criteria as one filter (what every transaction lookup takes)."""
    return _combine(match, TransactionFilter(**criteria), "transaction")


def _combine(match: object, built: Filter[_T], kind: str) -> Filter[_T]:
    if match is None:
        return built
    if not isinstance(match, Filter) or match.kind != kind:
        what = "MessageFilter" if kind == "message" else "TransactionFilter"
        raise TypeError(f"match= takes a {what} (or a combination of them), got {match!r}")
    if not built._criteria:
        return match
    return match & built
