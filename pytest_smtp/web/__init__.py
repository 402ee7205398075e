"""See the mail: the HTML report, and the live web view with its JSON API.

Needs the ``web`` extra (``pip install pytest-smtp-suite[web]``: aiohttp and Jinja2); without
it, importing this package raises an ImportError naming the extra.
"""

from __future__ import annotations

from .app import WebServer
from .records import MessageRecord, RecipientRecord, TestRecord, TransactionRecord
from .report import load_records, merge_reports, save_records, write_report

__all__ = [
    "MessageRecord",
    "RecipientRecord",
    "TestRecord",
    "TransactionRecord",
    "WebServer",
    "load_records",
    "merge_reports",
    "save_records",
    "write_report",
]
