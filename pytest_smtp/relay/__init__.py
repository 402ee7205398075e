"""The relay chain: submission -> relay MTA (MX routing, queue, retries, bounces) -> MX -> mailbox.

``MailNetwork`` builds the hosts on a ``FakeDNS``; ``assert_delivered``, ``assert_bounced``,
``assert_deferred`` and ``assert_dropped`` check what happened to a recipient across the chain.
This package never imports pytest.
"""

from __future__ import annotations

from .asserts import assert_bounced, assert_deferred, assert_delivered, assert_dropped
from .chain import Event, Host, Journey, MailNetwork, distinct_loopback_available
from .dsn import DSNRecipient, DSNReport, build_dsn, parse_dsn
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
    "assert_dropped",
    "build_dsn",
    "distinct_loopback_available",
    "parse_dsn",
    "resolve_route",
]
