"""A fake DNS: zones served by a real nameserver on loopback, faults, and patching.

``FakeDNS`` is the nameserver (UDP and TCP on one ephemeral port, on the engine's loop);
``Zone`` and ``ZoneSet`` hold the records; ``FakeDNS.patch()`` points dnspython and
``socket.getaddrinfo`` at it for the fake names only. By convention fake zones use reserved
names (``.test``, ``.example``, ``.invalid``) so they can never shadow a real domain.

This package never imports pytest.
"""

from __future__ import annotations

from pytest_smtp.fakedns.server import FAULT_ACTIONS, FakeDNS, Fault, Query, QueryLog
from pytest_smtp.fakedns.zone import DEFAULT_TTL, Resolution, Zone, ZoneSet

__all__ = [
    "DEFAULT_TTL",
    "FAULT_ACTIONS",
    "FakeDNS",
    "Fault",
    "Query",
    "QueryLog",
    "Resolution",
    "Zone",
    "ZoneSet",
]
