"""Assertions about a recipient's fate across a :class:`~pytest_smtp.relay.MailNetwork`.

Each helper looks at the journeys to one recipient (optionally only messages with a given
``subject``), passes when one of them matches and returns it; otherwise it raises
``AssertionError`` listing every journey of that recipient hop by hop (or, when none exists,
every journey in the network). Like every assertion helper of the package, each sets
``__tracebackhide__``: pytest's report points at the test's line, not into the helper.

The relay's names differ from the capturing server's on purpose: ``pytest_smtp.assert_deferred``
(a 4xx reply to the client, waits) is not :func:`assert_queued` (a journey waiting in a relay's
queue for a retry), and ``pytest_smtp.assert_dropped`` (the server under test dropped a
message after its 250) is not :func:`assert_discarded` (a host of the network did). The old
relay names ``assert_deferred``/``assert_dropped`` still work here with a
:class:`DeprecationWarning`. This module never imports pytest.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ParamSpec

if TYPE_CHECKING:
    from .journey import Journey
    from .network import MailNetwork

P = ParamSpec("P")

__all__ = [
    "assert_bounced",
    "assert_deferred",
    "assert_delivered",
    "assert_discarded",
    "assert_dropped",
    "assert_queued",
]


def _status_matches(wanted: str, actual: str | None) -> bool:
    """``"5.1.1"`` matches exactly; ``"5"`` or ``"5.1"`` matches a class or subject prefix."""
    if actual is None:
        return False
    return actual == wanted or actual.startswith(wanted + ".")


def _candidates(network: MailNetwork, rcpt: str, subject: str | None) -> list[Journey]:
    journeys = network.journeys(rcpt)
    if subject is not None:
        journeys = [j for j in journeys if j.subject == subject]
    return journeys


def _fail(network: MailNetwork, rcpt: str, wanted: str, subject: str | None) -> AssertionError:
    journeys = network.journeys(rcpt)
    lines = [f"expected <{rcpt}> to be {wanted}"]
    if subject is not None:
        lines[0] += f" (subject={subject!r})"
    if journeys:
        lines.append(f"journeys of <{rcpt}> ({len(journeys)}):")
        lines.extend(f"  {line}" for j in journeys for line in j.describe().splitlines())
    else:
        others = network.journeys()
        lines.append(f"no message for <{rcpt}> entered the network; all journeys ({len(others)}):")
        lines.extend(f"  {line}" for j in others for line in j.describe().splitlines())
        if not others:
            lines.append("  (none: did the code under test send, and was run_until_idle() called?)")
    return AssertionError("\n".join(lines))


def _names(via: Sequence[str]) -> list[str]:
    if isinstance(via, str):
        raise TypeError(f"via must be a list of host names such as ['smtp.x', 'mx.x'], not {via!r}")
    return [v.lower().rstrip(".") for v in via]


def _expect(
    network: MailNetwork,
    rcpt: str,
    subject: str | None,
    status: str,
    wanted: str,
    fits: Callable[[Journey], bool],
) -> Journey:
    """The first journey to ``rcpt`` (with ``subject``) of ``status`` that ``fits``; otherwise
    the failure that lists what the network did with ``rcpt``."""
    __tracebackhide__ = True
    for journey in _candidates(network, rcpt, subject):
        if journey.status == status and fits(journey):
            return journey
    raise _fail(network, rcpt, wanted, subject)


def assert_delivered(
    network: MailNetwork,
    rcpt: str,
    *,
    via: Sequence[str] | None = None,
    subject: str | None = None,
) -> Journey:
    """``rcpt`` got the message in its mailbox; with ``via``, through exactly those hosts
    (every host that accepted it, first hop to final MX, in order)."""
    __tracebackhide__ = True
    hops = _names(via) if via is not None else None
    wanted = "delivered" + (f" via {' -> '.join(hops)}" if hops is not None else "")
    return _expect(
        network, rcpt, subject, "delivered", wanted, lambda j: hops is None or j.hops == hops
    )


def assert_bounced(
    network: MailNetwork,
    rcpt: str,
    *,
    status: str | None = None,
    subject: str | None = None,
    dsn: bool | None = None,
) -> Journey:
    """The message to ``rcpt`` was given up on, with the enhanced ``status`` (``"5.1.1"``, or a
    prefix such as ``"5.1"``); ``dsn=True``: a failure DSN reached the sender's mailbox,
    ``dsn=False``: none was generated (null sender, ``NOTIFY=NEVER``)."""
    __tracebackhide__ = True
    wanted = "bounced" + (f" with status {status}" if status else "")
    if dsn is not None:
        wanted += ", with a DSN delivered to the sender" if dsn else ", without a DSN"

    def fits(journey: Journey) -> bool:
        if status is not None and not _status_matches(status, journey.status_code):
            return False
        if dsn is True and journey.dsn is None:
            return False
        return not (dsn is False and journey.dsn_raw is not None)

    return _expect(network, rcpt, subject, "bounced", wanted, fits)


def assert_queued(
    network: MailNetwork,
    rcpt: str,
    *,
    status: str | None = None,
    subject: str | None = None,
) -> Journey:
    """The message to ``rcpt`` waits in a relay's queue for a retry (journey status
    ``"deferred"``; ``status``: the last transient failure's enhanced status, or a prefix).
    No waiting: call ``network.run_until_idle()`` first."""
    __tracebackhide__ = True
    wanted = "deferred" + (f" with status {status}" if status else "")
    return _expect(
        network,
        rcpt,
        subject,
        "deferred",
        wanted,
        lambda j: status is None or _status_matches(status, j.status_code),
    )


def assert_discarded(
    network: MailNetwork,
    rcpt: str,
    *,
    at: str | None = None,
    subject: str | None = None,
) -> Journey:
    """A host of the network accepted the message to ``rcpt`` (250) and discarded it (journey
    status ``"dropped"``); ``at``: that host."""
    __tracebackhide__ = True
    wanted = "dropped" + (f" at {at}" if at else "")
    host = at.lower().rstrip(".") if at is not None else None
    return _expect(
        network, rcpt, subject, "dropped", wanted, lambda j: host is None or j.host == host
    )


def _deprecated_alias(new: Callable[P, Journey], old: str) -> Callable[P, Journey]:
    """``new`` under its old relay name, warning :class:`DeprecationWarning` at each call."""

    @functools.wraps(new)
    def alias(*args: P.args, **kwargs: P.kwargs) -> Journey:
        __tracebackhide__ = True
        warnings.warn(
            f"pytest_smtp.relay.{old} is deprecated: use pytest_smtp.relay.{new.__name__} (same "
            f"arguments). pytest_smtp.{old} is the capturing server's helper, with another "
            "meaning.",
            DeprecationWarning,
            stacklevel=2,
        )
        return new(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = f"Deprecated name of :func:`{new.__name__}` (warns DeprecationWarning)."
    return alias


assert_deferred = _deprecated_alias(assert_queued, "assert_deferred")
assert_dropped = _deprecated_alias(assert_discarded, "assert_dropped")
