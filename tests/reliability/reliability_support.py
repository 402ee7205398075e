"""The Hypothesis profiles ``ci`` and ``deep`` of the reliability suite, and shared types.

Profiles: ``ci`` (the default) runs at least 10,000 generated SMTP steps per run with a fixed
seed; ``deep`` runs far more with a fresh seed. Choose with ``PYTEST_SMTP_PROFILE=deep`` (or
Hypothesis' own ``--hypothesis-profile=deep``); replay a failure with ``PYTEST_SMTP_SEED=<seed>``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from hypothesis import HealthCheck, settings

from pytest_smtp import SMTPServer

#: Generated runs x steps per run: the ci profile must give at least 10,000 steps.
CI_EXAMPLES = 300
CI_STEPS = 50

settings.register_profile(
    "ci",
    max_examples=CI_EXAMPLES,
    stateful_step_count=CI_STEPS,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "deep",
    max_examples=5_000,
    stateful_step_count=100,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def profile_name() -> str:
    """``ci`` unless ``PYTEST_SMTP_PROFILE`` or ``--hypothesis-profile`` asks for ``deep``."""
    name = os.environ.get("PYTEST_SMTP_PROFILE", "")
    if not name:
        current = getattr(settings, "_current_profile", None)
        name = current if current in ("ci", "deep") else "ci"
    if name not in ("ci", "deep"):
        raise ValueError(f"PYTEST_SMTP_PROFILE must be 'ci' or 'deep', not {name!r}")
    return name


#: ``server_for(**options)`` (the session fixture in conftest.py).
ServerFor = Callable[..., SMTPServer]
