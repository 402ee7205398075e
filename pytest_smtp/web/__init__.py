"""See the mail: the HTML report, and the live web view with its JSON API.

Needs the ``web`` extra (``pip install pytest-smtp-suite[web]``: aiohttp and Jinja2); importing
a module that needs a missing one raises an ImportError naming the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "WebServer": "pytest_smtp.web.app",
    "write_report": "pytest_smtp.web.report",
    "merge_reports": "pytest_smtp.web.report",
    "save_records": "pytest_smtp.web.report",
    "load_records": "pytest_smtp.web.report",
    "TestRecord": "pytest_smtp.web.records",
    "MessageRecord": "pytest_smtp.web.records",
    "TransactionRecord": "pytest_smtp.web.records",
    "SessionRecord": "pytest_smtp.web.records",
    "RecipientRecord": "pytest_smtp.web.records",
}

__all__ = [
    "MessageRecord",
    "RecipientRecord",
    "SessionRecord",
    "TestRecord",
    "TransactionRecord",
    "WebServer",
    "load_records",
    "merge_reports",
    "save_records",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_smtp.web' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .app import WebServer
    from .records import (
        MessageRecord,
        RecipientRecord,
        SessionRecord,
        TestRecord,
        TransactionRecord,
    )
    from .report import load_records, merge_reports, save_records, write_report
