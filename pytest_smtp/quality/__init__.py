"""Is the mail right? Lint (:mod:`.lint`) and authentication verdicts (:mod:`.auth`).

:func:`lint` and :func:`assert_clean` need nothing beyond the standard library. The
authentication names (:func:`verify`, :func:`assert_authenticated`, the ``publish_*``
helpers, the verdict classes) need the ``auth`` extra (``pip install
'pytest-smtp-suite[auth]'``: dkimpy, pyspf, authres, dmarc, publicsuffixlist); they are
imported on first use, and without the extra that use raises an ImportError naming it.

This package never imports pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_smtp._lazy import lazy_getattr
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


# The names above are found before __getattr__ is asked, so only the auth names come here:
# imported on first use (they need the extra).
__getattr__ = lazy_getattr(__name__, dict.fromkeys(__all__, "pytest_smtp.quality.auth"), globals())
