"""The one message for a missing ``web`` extra."""

from __future__ import annotations

__all__ = ["missing_extra"]


def missing_extra(exc: ImportError) -> ImportError:
    """An ImportError naming the extra that brings the missing module."""
    name = exc.name or str(exc)
    return ImportError(
        f"pytest_smtp's web view and HTML report need {name!r}, which is not installed: "
        "pip install pytest-smtp-suite[web]"
    )
