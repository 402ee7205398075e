"""Is the mail right? Lint (:mod:`.lint`) and authentication verdicts (:mod:`.auth`).

:func:`lint` and :func:`assert_clean` need nothing beyond the standard library. The
authentication names (:func:`verify`, :func:`assert_authenticated`, the ``publish_*``
helpers, the verdict classes) need the ``auth`` extra (``pip install
'pytest-smtp-suite[auth]'``: dkimpy, pyspf, authres, dmarc, publicsuffixlist); they are
imported on first use, and without the extra that use raises an ImportError naming it.

This package never imports pytest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytest_smtp.quality.asserts import assert_authenticated, assert_clean
from pytest_smtp.quality.lint import CODES, Finding, Severity, lint

if TYPE_CHECKING:
    from pytest_smtp.quality.auth import (
        ARCVerdict,
        AuthResults,
        DKIMVerdict,
        DMARCVerdict,
        SPFVerdict,
        publish_dkim_key,
        publish_dmarc,
        publish_spf,
        verify,
    )

__all__ = [
    "CODES",
    "ARCVerdict",
    "AuthResults",
    "DKIMVerdict",
    "DMARCVerdict",
    "Finding",
    "SPFVerdict",
    "Severity",
    "assert_authenticated",
    "assert_clean",
    "lint",
    "publish_dkim_key",
    "publish_dmarc",
    "publish_spf",
    "verify",
]


def __getattr__(name: str) -> Any:
    if name in __all__:  # the auth names: imported on first use (they need the extra)
        return getattr(importlib.import_module("pytest_smtp.quality.auth"), name)
    raise AttributeError(f"module 'pytest_smtp.quality' has no attribute {name!r}")
