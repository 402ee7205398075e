"""Fault injection: a rule is stage x matcher x action, attached to one server.

Rules run on the engine's loop inside the connection that hit them: a delay or hang in one
session never slows another. Randomness is seeded (``FaultSet.seed``, from ``--smtp-seed``) and
each rule draws from its own generator, so a run can be replayed exactly.
"""

from __future__ import annotations

import collections
import dataclasses
import fnmatch
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from .mail import STAGES, Message, Reply, SessionInfo, Transaction
from .smtp.address import domain_of

__all__ = [
    "FaultContext",
    "FaultSet",
    "Rule",
    "Verdict",
    "default_reply",
]

Pattern: TypeAlias = "str | re.Pattern[str]"
Step: TypeAlias = "int | Reply | str"

# Stage -> (permanent, transient) default replies.
_DEFAULTS: dict[str, tuple[tuple[int, str, str], tuple[int, str, str]]] = {
    "connect": (
        (554, "5.3.2", "No SMTP service here"),
        (421, "4.3.2", "Service not available, closing"),
    ),
    "ehlo": (
        (550, "5.7.1", "HELO/EHLO rejected"),
        (421, "4.3.2", "Service not available, closing"),
    ),
    "starttls": (
        (554, "5.7.3", "TLS not possible"),
        (454, "4.7.0", "TLS not available due to temporary reason"),
    ),
    "auth": (
        (535, "5.7.8", "Authentication credentials invalid"),
        (454, "4.7.0", "Temporary authentication failure"),
    ),
    "mail": (
        (550, "5.7.1", "Sender rejected"),
        (451, "4.3.0", "Temporary failure, try again later"),
    ),
    "rcpt": ((550, "5.1.1", "No such user"), (451, "4.7.1", "Greylisted, try again later")),
    "data": (
        (554, "5.5.1", "Transaction failed"),
        (451, "4.3.0", "Temporary failure, try again later"),
    ),
    "eod": (
        (554, "5.7.1", "Message rejected"),
        (451, "4.3.0", "Temporary failure, try again later"),
    ),
    "quit": ((554, "5.3.0", "Error on QUIT"), (421, "4.3.0", "Closing")),
}

# Codes with a specific meaning of their own (RFC 5321 §4.2.3); any other code takes the
# stage's default status and text for its class.
_BY_CODE: dict[int, tuple[int, str, str]] = {
    421: (421, "4.3.2", "Service not available, closing transmission channel"),
    450: (450, "4.2.1", "Mailbox unavailable, try again later"),
    452: (452, "4.3.1", "Insufficient system storage"),
    551: (551, "5.1.6", "User not local"),
    552: (552, "5.2.2", "Mailbox full"),
    553: (553, "5.1.3", "Mailbox name not allowed"),
}


def _check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; valid stages: {', '.join(STAGES)}")
    return stage


def default_reply(
    stage: str, code: int, message: str | None = None, enhanced: str | None = None
) -> Reply:
    """The reply a fault sends at ``stage`` for ``code``, with sensible enhanced status and text."""
    _check_stage(stage)
    if not 400 <= code <= 599:
        raise ValueError(f"a fault reply code must be 4xx or 5xx, not {code}")
    permanent, transient = _DEFAULTS[stage]
    base = permanent if code >= 500 else transient
    if code != base[0] and code in _BY_CODE:
        base = _BY_CODE[code]
    return Reply(code, message if message is not None else base[2], enhanced or base[1])


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What a rule does at its stage. The connection carries it out."""

    reply: Reply | None = None
    drop: bool = False
    delay: float = 0.0
    hang: bool = False
    disconnect: bool = False
    disconnect_after: int | None = None
    throttle: float | None = None

    @property
    def terminal(self) -> bool:
        """True when no later rule should run (anything but a bare delay)."""
        return bool(
            self.reply
            or self.drop
            or self.hang
            or self.disconnect
            or self.disconnect_after is not None
            or self.throttle
        )


@dataclasses.dataclass
class FaultContext:
    """What a matcher or predicate sees at the moment a stage is reached."""

    stage: str
    session: SessionInfo
    transaction: Transaction | None
    address: str | None = None
    message: Message | None = None
    helo: str | None = None
    mechanism: str | None = None
    source_route: str | None = None
    """At ``rcpt``: the source route sent before the address (``@a,@b`` of
    ``<@a,@b:user@c>``), else None."""

    @property
    def sender(self) -> str | None:
        """The transaction's MAIL FROM address, once known."""
        if self.stage == "mail":
            return self.address
        return self.transaction.mail_from if self.transaction else None

    @property
    def recipients(self) -> list[str]:
        """The recipient being tried (at rcpt) or the accepted ones (data, eod)."""
        if self.stage == "rcpt":
            return [self.address] if self.address is not None else []
        return list(self.transaction.rcpt_tos) if self.transaction else []


def _matches(pattern: Pattern, value: str) -> bool:
    if isinstance(pattern, re.Pattern):
        return pattern.search(value) is not None
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


@dataclasses.dataclass
class Rule:
    """One fault rule. Build them with the :class:`FaultSet` methods rather than by hand.

    Matchers (all given ones must hold): ``match`` (glob or regex on the recipient at ``rcpt``,
    ``data`` and ``eod`` — any accepted recipient — and on the sender at ``mail``), ``sender``,
    ``rcpt``, ``domain`` (of the matched address), ``predicate(ctx)``. Counting: ``nth`` (fire
    only on the nth matching occurrence, 1-based, or any of several), ``times`` (fire at most N
    times, then stop), ``probability`` (seeded).
    """

    stage: str
    steps: list[Verdict]
    match: Pattern | None = None
    sender: Pattern | None = None
    rcpt: Pattern | None = None
    domain: Pattern | None = None
    predicate: Callable[[FaultContext], bool] | None = None
    nth: frozenset[int] | None = None
    times: int | None = None
    probability: float | None = None
    cycle: bool = False
    script: bool = False
    """True for :meth:`FaultSet.sequence` rules: spent after the last step unless ``cycle``."""
    name: str = ""
    seen: int = 0
    """How many times the matchers held at this stage."""
    hits: int = 0
    """How many times the rule fired."""
    rng: random.Random = dataclasses.field(default_factory=random.Random, repr=False)

    def _target_addresses(self, ctx: FaultContext) -> list[str]:
        if ctx.stage == "mail":
            return [ctx.address] if ctx.address is not None else []
        return ctx.recipients

    def matches(self, ctx: FaultContext) -> bool:
        """True when every matcher holds for ``ctx`` (counting and chance not included)."""
        if ctx.stage != self.stage:
            return False
        if self.match is not None:
            targets = self._target_addresses(ctx)
            if not any(_matches(self.match, a) for a in targets):
                return False
        if self.sender is not None:
            sender = ctx.sender
            if sender is None or not _matches(self.sender, sender):
                return False
        if self.rcpt is not None and not any(_matches(self.rcpt, a) for a in ctx.recipients):
            return False
        if self.domain is not None:
            targets = self._target_addresses(ctx)
            if not any(_matches(self.domain, domain_of(a)) for a in targets):
                return False
        return not (self.predicate is not None and not self.predicate(ctx))

    def decide(self, ctx: FaultContext) -> Verdict | None:
        """Count this occurrence and return the verdict if the rule fires."""
        if not self.matches(ctx):
            return None
        self.seen += 1
        if self.nth is not None and self.seen not in self.nth:
            return None
        if self.times is not None and self.hits >= self.times:
            return None
        if self.probability is not None and self.rng.random() >= self.probability:
            return None
        if not self.steps:
            return None
        if self.cycle or (len(self.steps) == 1 and not self.script):
            step = self.steps[self.hits % len(self.steps)]
        elif self.hits < len(self.steps):
            step = self.steps[self.hits]
        else:
            return None
        self.hits += 1
        return step


class FaultSet:
    """The fault rules of one server: ``server.faults``. Cleared by ``server.reset()``.

    Every method adds a rule and returns it (so a test can read ``rule.hits`` afterwards).
    Common keyword arguments: ``match``, ``sender``, ``rcpt``, ``domain``, ``predicate``,
    ``nth``, ``times``, ``probability`` — see :class:`Rule`.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self.active = False
        """True when any rule is set (the connection skips the hook otherwise). An attribute,
        kept by :meth:`add` and :meth:`clear`: it is read at every stage of every dialogue."""
        self.seed: int = seed if seed is not None else random.SystemRandom().randrange(2**32)
        """The seed for probabilistic rules; set it before adding rules to replay a run."""

    @property
    def rules(self) -> list[Rule]:
        """A snapshot of the rules, in the order they are tried."""
        with self._lock:
            return list(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()
            self.active = False

    def add(self, rule: Rule) -> Rule:
        """Add a prepared :class:`Rule`; its generator is seeded from :attr:`seed`."""
        _check_stage(rule.stage)
        with self._lock:
            rule.rng.seed(f"{self.seed}:{len(self._rules)}")
            self._rules.append(rule)
            self.active = True
        return rule

    def _rule(self, stage: str, steps: list[Verdict], **matchers: Any) -> Rule:
        nth = matchers.pop("nth", None)
        if nth is not None:
            nth = frozenset([nth] if isinstance(nth, int) else nth)
            if not nth or min(nth) < 1:
                raise ValueError("nth counts from 1: give a positive int or a set of them")
        times = matchers.get("times")
        if times is not None and times < 1:
            raise ValueError(f"times must be 1 or more, not {times}")
        probability = matchers.get("probability")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be between 0 and 1, not {probability}")
        allowed = {
            "match",
            "sender",
            "rcpt",
            "domain",
            "predicate",
            "times",
            "probability",
            "name",
            "cycle",
            "script",
        }
        unknown = set(matchers) - allowed
        if unknown:
            raise TypeError(
                f"unknown matcher(s) {', '.join(sorted(unknown))}; "
                f"valid: nth, {', '.join(sorted(allowed))}"
            )
        return self.add(Rule(stage=_check_stage(stage), steps=steps, nth=nth, **matchers))

    # -- the actions -----------------------------------------------------------------------
    def reply(
        self,
        stage: str,
        code: int,
        message: str | None = None,
        *,
        enhanced: str | None = None,
        **matchers: Any,
    ) -> Rule:
        """Answer ``code`` (4xx/5xx) at ``stage``; multi-line text with ``\\n``."""
        return self._rule(
            stage, [Verdict(reply=default_reply(stage, code, message, enhanced))], **matchers
        )

    def reject(
        self,
        stage: str,
        code: int = 0,
        message: str | None = None,
        *,
        enhanced: str | None = None,
        **matchers: Any,
    ) -> Rule:
        """A permanent failure (5xx; the stage's usual code by default, e.g. 550 5.1.1 at rcpt)."""
        code = self._class_code(stage, code, permanent=True)
        return self.reply(stage, code, message, enhanced=enhanced, **matchers)

    def defer(
        self,
        stage: str,
        code: int = 0,
        message: str | None = None,
        *,
        enhanced: str | None = None,
        **matchers: Any,
    ) -> Rule:
        """A transient failure (4xx; e.g. 451 4.7.1 greylisting at rcpt by default)."""
        code = self._class_code(stage, code, permanent=False)
        return self.reply(stage, code, message, enhanced=enhanced, **matchers)

    @staticmethod
    def _class_code(stage: str, code: int, *, permanent: bool) -> int:
        """``code``, or the stage's default, checked to be of the wanted class (5xx or 4xx)."""
        code = code or _DEFAULTS[_check_stage(stage)][0 if permanent else 1][0]
        if code // 100 != (5 if permanent else 4):
            wanted, other = ("5xx", "defer() for 4xx") if permanent else ("4xx", "reject() for 5xx")
            verb = "reject" if permanent else "defer"
            raise ValueError(f"{verb}() needs a {wanted} code, not {code}; use {other}")
        return code

    def drop(self, **matchers: Any) -> Rule:
        """Answer 250 after DATA but keep the message out of the mailbox (outcome ``dropped``)."""
        return self._rule("eod", [Verdict(drop=True)], **matchers)

    def delay(self, stage: str, seconds: float, **matchers: Any) -> Rule:
        """Wait ``seconds`` before handling the stage normally (other sessions keep going)."""
        if seconds < 0:
            raise ValueError(f"delay needs 0 or more seconds, not {seconds}")
        return self._rule(stage, [Verdict(delay=seconds)], **matchers)

    def disconnect(self, stage: str, *, after_bytes: int | None = None, **matchers: Any) -> Rule:
        """Close the connection without a reply; at ``data`` optionally after ``after_bytes``
        octets of the message have arrived (a client vanishing mid-upload looks the same)."""
        if after_bytes is not None:
            if stage != "data":
                raise ValueError("after_bytes only makes sense at stage 'data'")
            return self._rule(stage, [Verdict(disconnect_after=max(1, after_bytes))], **matchers)
        return self._rule(stage, [Verdict(disconnect=True)], **matchers)

    def hang(self, stage: str, **matchers: Any) -> Rule:
        """Never answer at ``stage``, until the client gives up or the server stops."""
        return self._rule(stage, [Verdict(hang=True)], **matchers)

    def throttle(self, bytes_per_second: float, **matchers: Any) -> Rule:
        """Read the message body at most this fast (stage ``data``)."""
        if bytes_per_second <= 0:
            raise ValueError("throttle needs a positive number of bytes per second")
        return self._rule("data", [Verdict(throttle=float(bytes_per_second))], **matchers)

    def sequence(self, stage: str, steps: Sequence[Step], **matchers: Any) -> Rule:
        """A script, one step per occurrence: codes (``451``), :class:`Reply` objects, or
        ``"accept"``, ``"drop"``, ``"disconnect"``, ``"hang"``. After the last step the rule is
        spent (``cycle=True`` starts over). ``[451, 451, "accept"]`` is greylisting."""
        verdicts = [self._step(stage, step) for step in steps]
        if not verdicts:
            raise ValueError("sequence needs at least one step")
        return self._rule(stage, verdicts, script=True, **matchers)

    def _step(self, stage: str, step: Step) -> Verdict:
        if isinstance(step, Reply):
            return Verdict(reply=step)
        if isinstance(step, int) and not isinstance(step, bool):
            return Verdict(reply=default_reply(stage, step))
        if step == "accept":
            return Verdict()
        if step == "drop":
            if stage != "eod":
                raise ValueError("'drop' is a step of stage 'eod' only")
            return Verdict(drop=True)
        if step == "disconnect":
            return Verdict(disconnect=True)
        if step == "hang":
            return Verdict(hang=True)
        raise ValueError(
            f"bad sequence step {step!r}: use a 4xx/5xx code, a Reply, or one of "
            "'accept', 'drop', 'disconnect', 'hang'"
        )

    def rate_limit(
        self, max_messages: int, per_seconds: float, *, stage: str = "mail", **matchers: Any
    ) -> Rule:
        """``421 4.7.0`` (and close) once more than ``max_messages`` reach ``stage`` within
        ``per_seconds`` (a sliding window on the engine's clock)."""
        if max_messages < 0 or per_seconds <= 0:
            raise ValueError("rate_limit needs max_messages >= 0 and per_seconds > 0")
        reply = Reply(
            421,
            f"Rate limit exceeded: more than {max_messages} messages in {per_seconds:g} s",
            "4.7.0",
        )
        window: collections.deque[float] = collections.deque()
        predicate = matchers.pop("predicate", None)

        def over_limit(ctx: FaultContext) -> bool:
            if predicate is not None and not predicate(ctx):
                return False
            now = time.monotonic()
            while window and now - window[0] >= per_seconds:
                window.popleft()
            window.append(now)
            return len(window) > max_messages

        return self._rule(
            stage, [Verdict(reply=reply)], predicate=over_limit, cycle=True, **matchers
        )

    # -- evaluation (engine loop) ----------------------------------------------------------
    async def evaluate(
        self,
        stage: str,
        session: SessionInfo | None,
        transaction: Transaction | None = None,
        **context: Any,
    ) -> Verdict | None:
        """The verdict for ``stage`` of ``session`` (and the open ``transaction``, if any):
        bare delays add up, the first other rule wins. ``context`` fills the rest of
        :class:`FaultContext` (``address``, ``message``, ``helo``, ``mechanism``)."""
        if session is None:
            raise ValueError(f"evaluate({stage!r}) needs the connection's SessionInfo, not None")
        if not self._rules:
            return None  # no rule: no context to build, no snapshot of the rules to take
        ctx = FaultContext(stage=stage, session=session, transaction=transaction, **context)
        delay = 0.0
        for rule in self.rules:
            verdict = rule.decide(ctx)
            if verdict is None:
                continue
            if verdict.terminal:
                if delay:
                    return dataclasses.replace(verdict, delay=verdict.delay + delay)
                return verdict
            delay += verdict.delay
            if verdict == Verdict():
                break  # an "accept" step: no later rule applies to this occurrence
        return Verdict(delay=delay) if delay else None

    def from_marker(self, stage: str, action: str = "reject", *args: Any, **kwargs: Any) -> Rule:
        """Add a rule from the ``smtp_fault`` marker's arguments: ``(stage, action, ...)``."""
        actions: dict[str, Callable[..., Rule]] = {
            "reject": lambda *a, **k: self.reject(stage, *a, **k),
            "defer": lambda *a, **k: self.defer(stage, *a, **k),
            "reply": lambda *a, **k: self.reply(stage, *a, **k),
            "drop": lambda *a, **k: self.drop(*a, **k),
            "delay": lambda *a, **k: self.delay(stage, *a, **k),
            "disconnect": lambda *a, **k: self.disconnect(stage, *a, **k),
            "hang": lambda *a, **k: self.hang(stage, *a, **k),
            "throttle": lambda *a, **k: self.throttle(*a, **k),
            "sequence": lambda *a, **k: self.sequence(stage, *a, **k),
            "rate_limit": lambda *a, **k: self.rate_limit(*a, stage=stage, **k),
        }
        if action not in actions:
            raise ValueError(f"unknown fault action {action!r}; valid: {', '.join(actions)}")
        fixed_stage = {"drop": "eod", "throttle": "data"}.get(action)
        if fixed_stage is not None and stage != fixed_stage:
            raise ValueError(f"{action!r} happens at stage {fixed_stage!r}, not {stage!r}")
        return actions[action](*args, **kwargs)
