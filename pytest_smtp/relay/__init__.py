"""The mail network: submission, relay and MX hosts (MX routing, queue, retries, bounces).

``MailNetwork`` (``network.py``) builds the hosts (``host.py``) on a ``FakeDNS``; each
recipient's ``Journey`` (``journey.py``) records its way hop by hop. ``assert_delivered``,
``assert_bounced``, ``assert_queued`` and ``assert_discarded`` check what happened to a
recipient across the network (``assert_deferred`` and ``assert_dropped`` are their deprecated
old names here). This package never imports pytest.
"""

from __future__ import annotations

from .asserts import (
    assert_bounced,
    assert_deferred,
    assert_delivered,
    assert_discarded,
    assert_dropped,
    assert_queued,
)
from .dsn import DSNRecipient, DSNReport, build_dsn, parse_dsn
from .host import Host
from .journey import Event, Journey
from .network import MailNetwork, distinct_loopback_available
from .queue import RetryPolicy, VirtualClock
from .routing import Exchange, Route, RoutingError, resolve_route

__all__ = [
    "DSNRecipient",
    "DSNReport",
    "Event",
    "Exchange",
    "Host",
    "Journey",
    "MailNetwork",
    "RetryPolicy",
    "Route",
    "RoutingError",
    "VirtualClock",
    "assert_bounced",
    "assert_deferred",
    "assert_delivered",
    "assert_discarded",
    "assert_dropped",
    "assert_queued",
    "build_dsn",
    "distinct_loopback_available",
    "parse_dsn",
    "resolve_route",
]
