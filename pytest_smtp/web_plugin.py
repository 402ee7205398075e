"""pytest glue of the web package: ``--smtp-html`` (the report) and ``--smtp-remote``.

Registered by :mod:`pytest_smtp.plugin` from ``pytest_configure``; imports
:mod:`pytest_smtp.web` only when one of the two settings is given, so a run without them does
not need the ``web`` extra.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._stash import SERVERS_KEY, SMTPConfig

if TYPE_CHECKING:
    from .web.records import TestRecord

__all__ = ["HtmlReportPlugin", "configure"]

#: The record a test's setup or call made, waiting for its teardown (on ``item.stash``).
RECORD_KEY = pytest.StashKey["TestRecord"]()


def _need_web(flag: str) -> None:
    try:
        import pytest_smtp.web  # noqa: F401
    except ImportError as exc:
        raise pytest.UsageError(f"{flag}: {exc}") from None


def configure(config: pytest.Config, cfg: SMTPConfig) -> None:
    """Register the report plugin when ``--smtp-html`` is set; check remote mode's needs."""
    if cfg.values.get("remote"):
        _need_web("--smtp-remote")
    directory = cfg.values.get("html")
    if directory:
        _need_web("--smtp-html")
        plugin = HtmlReportPlugin(
            config, Path(config.invocation_params.dir, directory), cfg.values.get("html_all", False)
        )
        config.pluginmanager.register(plugin, "pytest_smtp-html-report")


def _smtp_servers(item: pytest.Item) -> list[Any]:
    """The SMTP servers (local or remote) the test used, without its POP3/IMAP servers."""
    servers = item.stash.get(SERVERS_KEY, [])
    return [s for s in servers if hasattr(s, "transactions") and hasattr(s, "mailbox")]


class HtmlReportPlugin:
    """Collects a :class:`~pytest_smtp.web.TestRecord` per reported test and writes the report.

    Each process (an xdist worker, or the only one) saves its records under ``DIR/records``;
    the controller merges them into ``DIR/index.html`` at the end of the session.
    """

    def __init__(self, config: pytest.Config, directory: Path, keep_all: bool) -> None:
        self.directory = directory
        self.keep_all = keep_all
        self.records: list[TestRecord] = []
        self.worker: str | None = getattr(config, "workerinput", {}).get("workerid")
        self.index: Path | None = None
        #: pytest-html is active: its rows get a link to this report (see _link_from_pytest_html).
        self.html_config = config if config.pluginmanager.hasplugin("html") else None
        self.error: str | None = None
        if self.worker is None:
            # A new run: no records or pages of an earlier one.
            shutil.rmtree(directory / "records", ignore_errors=True)
            shutil.rmtree(directory / "tests", ignore_errors=True)

    def _record(self, item: pytest.Item, report: pytest.TestReport, outcome: str) -> TestRecord:
        from .web.records import TestRecord

        record = TestRecord(
            item.nodeid,
            outcome,
            report.duration,
            longrepr=str(report.longrepr) if report.failed else "",
        )
        for server in _smtp_servers(item):
            record.add_server(server)
        return record

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, None]:
        """Copy the servers' mail at setup (when it failed) and call: before any reset."""
        result = yield
        report: pytest.TestReport = result.get_result()
        if report.when == "setup" and not report.passed:
            outcome = "error" if report.failed else "skipped"
            item.stash[RECORD_KEY] = self._record(item, report, outcome)
        elif report.when == "call":
            item.stash[RECORD_KEY] = self._record(item, report, report.outcome)
        elif report.when == "teardown":
            record = item.stash.get(RECORD_KEY, None)
            if record is None:
                if not report.failed:
                    return
                record = self._record(item, report, "error")
            elif report.failed:
                if not record.failed:
                    record.outcome = "error"
                record.longrepr = "\n\n".join(
                    text for text in (record.longrepr, str(report.longrepr)) if text
                )
            if record.failed or self.keep_all:
                self.records.append(record)
                self._link_from_pytest_html(report, record)

    def _index_href(self, config: pytest.Config) -> str:
        """This report's ``index.html`` relative to pytest-html's report (``--html``)."""
        htmlpath = getattr(config.option, "htmlpath", None) or "."
        base = Path(config.invocation_params.dir, htmlpath).parent
        return Path(os.path.relpath(self.directory / "index.html", base)).as_posix()

    def _link_from_pytest_html(self, report: pytest.TestReport, record: TestRecord) -> None:
        """pytest-html (``--html``): a "mail" link in the test's row, to its row of this
        report. The extra travels with the report, so it works under xdist too."""
        if self.html_config is None or not getattr(self.html_config.option, "htmlpath", None):
            return
        from pytest_html import extras  # type: ignore[import-untyped]

        href = f"{self._index_href(self.html_config)}#{record.anchor}"
        link = extras.url(href, name="mail")
        setattr(report, "extras", [*getattr(report, "extras", []), link])  # noqa: B010

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Save this process's records; the controller merges every process's into one report."""
        from .web.report import merge_reports, save_records

        save_records(self.directory, self.records, self.worker or "controller")
        if self.worker is None:
            try:
                self.index = merge_reports(self.directory)
            except (OSError, ValueError) as exc:
                self.error = f"{type(exc).__name__}: {exc}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Print where the report is (or why it could not be written)."""
        if self.error is not None:
            terminalreporter.write_line(f"smtp html report: NOT written: {self.error}", red=True)
        elif self.index is not None:
            terminalreporter.write_line(f"smtp html report: {self.index}")

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: Any
    ) -> None:
        """pytest-html: a link to this report above its results table."""
        from html import escape

        href = self._index_href(session.config)
        postfix.append(
            f'<p class="pytest-smtp">The mail of the tests (pytest_smtp): '
            f'<a href="{escape(href)}">{escape(href)}</a></p>'
        )
