"""Deprecated module name: the mail network lives in :mod:`pytest_smtp.relay.network`.

``from pytest_smtp.relay.chain import MailNetwork`` (and ``Journey``, ``Event``, ``Host``,
``distinct_loopback_available``) still works with a :class:`DeprecationWarning`; import them
from :mod:`pytest_smtp.relay` (or :mod:`pytest_smtp`) instead.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__all__ = ["Event", "Host", "Journey", "MailNetwork", "distinct_loopback_available"]  # noqa: F822

_HOMES = {
    "Event": "pytest_smtp.relay.journey",
    "Journey": "pytest_smtp.relay.journey",
    "Host": "pytest_smtp.relay.host",
    "MailNetwork": "pytest_smtp.relay.network",
    "distinct_loopback_available": "pytest_smtp.relay.network",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"pytest_smtp.relay.chain is deprecated: import {name} from pytest_smtp.relay",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(home), name)
