"""Is the mail right? Lint (:mod:`.lint`) and authentication verdicts (:mod:`.auth`).

:func:`lint` needs nothing beyond the standard library. The authentication checks need the
``auth`` extra (``pip install pytest-smtp-suite[auth]``: dkimpy, pyspf, authres, dmarc,
publicsuffixlist); :mod:`pytest_smtp.quality.auth` raises an ImportError naming the extra when
it is missing.

This package never imports pytest.
"""

from __future__ import annotations

from pytest_smtp.quality.lint import CODES, Finding, Severity, lint

__all__ = ["CODES", "Finding", "Severity", "lint"]
