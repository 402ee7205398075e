"""The HTML report: a self-contained folder showing each test's mail, fit for a CI artifact.

``write_report(directory, tests)`` renders :class:`~pytest_smtp.web.records.TestRecord` objects
into ``index.html`` (failed tests first) and one page per test. Pages load nothing from the
network and run no script; each HTML part is shown in a sandboxed ``<iframe>`` under a strict
Content-Security-Policy. Under pytest-xdist each worker calls :func:`save_records` and one
process calls :func:`merge_reports`, which reads every worker's records and writes one report.
"""

from __future__ import annotations

import collections
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .records import TestRecord, TransactionRecord, mark_transactions, session_lines
from .templating import environment
from .view import AttachmentView, MessageView, safe_filename

__all__ = ["REPORT_CSP", "load_records", "merge_reports", "save_records", "write_report"]

#: The policy of every report page: inline styles, nothing else (no script, no remote load).
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

#: Where :func:`save_records` puts each process's records, inside the report folder.
RECORDS_DIR = "records"


@dataclass
class _Entry:
    record: TestRecord
    slug: str
    href: str
    views: list[MessageView]
    outcomes: list[tuple[str, int]]
    lines: dict[str, dict[int, list[tuple[str, int | None]]]]


def _entry(index: int, record: TestRecord) -> _Entry:
    slug = f"{index:04d}-{safe_filename(record.nodeid, 'test')[:60]}"
    by_key: dict[tuple[str, int], TransactionRecord] = {
        (t.server, t.id): t for t in record.transactions
    }
    views = [
        MessageView.build(m.to_message(), by_key.get((m.server, m.id))) for m in record.messages
    ]
    lines: dict[str, dict[int, list[tuple[str, int | None]]]] = {}
    for server, transcript in record.transcript.items():
        per_session: dict[int, list[tuple[str, int | None]]] = {}
        for view in views:
            sid = view.message.session.id
            if view.server == server and sid not in per_session:
                txns = [
                    t for t in record.transactions if t.server == server and t.session.id == sid
                ]
                per_session[sid] = mark_transactions(session_lines(transcript, sid), txns)
        lines[server] = per_session
    for view in views:  # a message whose server left no transcript: show none, not fail
        lines.setdefault(view.server, {}).setdefault(view.message.session.id, [])
    counts = collections.Counter(t.outcome or "in progress" for t in record.transactions)
    return _Entry(record, slug, f"tests/{slug}.html", views, sorted(counts.items()), lines)


def _attachment_name(view: MessageView, attachment: AttachmentView) -> str:
    return f"{safe_filename(view.server, 'server')}-{view.id}-{attachment.filename}"


def write_report(directory: str | os.PathLike[str], tests: list[TestRecord]) -> Path:
    """Write the report of ``tests`` into ``directory`` (created); returns ``index.html``.

    Failed tests (``failed``/``error``) come first, then the others in the order given.
    Attachments and raw sources are written as files beside the pages, for download.
    """
    root = Path(directory)
    pages = root / "tests"
    files = pages / "files"
    files.mkdir(parents=True, exist_ok=True)
    ordered = sorted(tests, key=lambda r: not r.failed)
    entries = [_entry(i, record) for i, record in enumerate(ordered, 1)]
    env = environment()
    page = env.get_template("report_test.html")
    for entry in entries:
        for view in entry.views:
            stem = f"{safe_filename(view.server, 'server')}-{view.id}"
            (files / f"{entry.slug}-{stem}.eml").write_bytes(view.message.raw)
            for attachment in view.attachments:
                name = f"{entry.slug}-{_attachment_name(view, attachment)}"
                (files / name).write_bytes(attachment.payload)
        slug = entry.slug

        def raw_href(view: MessageView, slug: str = slug) -> str:
            return f"files/{slug}-{safe_filename(view.server, 'server')}-{view.id}.eml"

        def attachment_href(view: MessageView, a: AttachmentView, slug: str = slug) -> str:
            return f"files/{slug}-{_attachment_name(view, a)}"

        def message_href(t: TransactionRecord) -> str:
            return f"#message-{t.message_id}"

        html = page.render(
            page_csp=REPORT_CSP,
            entry=entry,
            raw_href=raw_href,
            attachment_href=attachment_href,
            message_href=message_href,
        )
        (root / entry.href).write_text(html, encoding="utf-8")
    index = root / "index.html"
    index.write_text(
        env.get_template("report_index.html").render(
            page_csp=REPORT_CSP,
            tests=entries,
            failed=sum(1 for e in entries if e.record.failed),
            generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        ),
        encoding="utf-8",
    )
    return index


def save_records(directory: str | os.PathLike[str], tests: list[TestRecord], name: str) -> Path:
    """Write ``tests`` as JSON to ``directory/records/<name>.json`` (one file per process,
    e.g. the xdist worker id) for :func:`merge_reports`; written atomically."""
    folder = Path(directory) / RECORDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{safe_filename(name, 'records')}.json"
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump([t.to_dict() for t in tests], out)
    os.replace(tmp, target)
    return target


def load_records(directory: str | os.PathLike[str]) -> list[TestRecord]:
    """Every record :func:`save_records` wrote under ``directory``, file by file in name
    order; ``ValueError`` naming the file that is not a records file."""
    records: list[TestRecord] = []
    for path in sorted((Path(directory) / RECORDS_DIR).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, list):
                raise ValueError("the top level is not a list")
            records.extend(TestRecord.from_dict(item) for item in data)
        except ValueError as exc:
            raise ValueError(f"{path} is not a pytest_smtp records file: {exc}") from None
    return records


def merge_reports(directory: str | os.PathLike[str]) -> Path:
    """Build one report in ``directory`` from the records every process saved there."""
    return write_report(directory, load_records(directory))
