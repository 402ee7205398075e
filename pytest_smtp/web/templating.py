"""The Jinja2 environment of the report and the web view (autoescaping on)."""

from __future__ import annotations

import functools

from ._extra import missing_extra

try:
    import jinja2
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise missing_extra(exc) from exc

__all__ = ["environment"]


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The shared environment, loading the package's ``templates/`` folder."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("pytest_smtp.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
