"""--smtp-html / --smtp-html-all: a pytest run writes one report, with and without xdist."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

SUITE = """
import smtplib

def send(server, subject, to="bob@example.test"):
    text = (
        f"From: shop@example.test\\r\\nTo: {to}\\r\\nSubject: {subject}\\r\\n"
        "Content-Type: text/plain\\r\\n\\r\\nYour code is 4711.\\r\\n"
    )
    with smtplib.SMTP(*server.address) as client:
        client.sendmail("shop@example.test", [to], text)

def test_a_passes(smtp_server):
    send(smtp_server, "Passing mail")
    assert smtp_server.mailbox.one().subject == "Passing mail"

def test_b_fails(smtp_server):
    send(smtp_server, "Broken welcome")
    assert smtp_server.mailbox.one().subject == "Welcome"

def test_c_factory_fails(smtp_server_factory):
    server = smtp_server_factory(hostname="mx.factory.test")
    send(server, "From the factory", to="carol@example.test")
    assert False, "factory test fails on purpose"

def test_d_passes_too(smtp_server):
    send(smtp_server, "Another passing mail")
"""


def _index(report: Path) -> str:
    return (report / "index.html").read_text(encoding="utf-8")


def _test_pages(report: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in (report / "tests").glob("*.html")}


def _check_failed_only(report: Path) -> None:
    index = _index(report)
    assert "test_b_fails" in index and "test_c_factory_fails" in index
    assert "test_a_passes" not in index and "test_d_passes_too" not in index
    pages = _test_pages(report)
    assert len(pages) == 2
    by_test = {
        test: text
        for text in pages.values()
        for test in ("test_b_fails", "test_c_factory_fails")
        if f"::{test}" in text
    }
    assert "Broken welcome" in by_test["test_b_fails"]
    factory_page = by_test["test_c_factory_fails"]
    assert "From the factory" in factory_page and "carol@example.test" in factory_page
    assert "factory test fails on purpose" in factory_page  # pytest's failure text
    # The raw source was written beside the pages, byte for byte what was sent.
    eml = [p.read_bytes() for p in (report / "tests" / "files").glob("*.eml")]
    assert any(b"Subject: Broken welcome" in raw for raw in eml)


@pytest.mark.parametrize("xdist", [False, True], ids=["single", "xdist"])
def test_report_holds_the_failed_tests_and_their_mail(
    pytester: pytest.Pytester, xdist: bool
) -> None:
    pytester.makepyfile(SUITE)
    args = ["--smtp-html=mailreport", "-p", "no:randomly"] + (["-n", "2"] if xdist else [])
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=2, failed=2)
    report = pytester.path / "mailreport"
    result.stdout.fnmatch_lines([f"smtp html report: {report / 'index.html'}"])
    _check_failed_only(report)
    records = sorted(p.name for p in (report / "records").glob("*.json"))
    if xdist:
        assert records == ["controller.json", "gw0.json", "gw1.json"]
    else:
        assert records == ["controller.json"]


def test_all_lists_every_test_failed_first(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    pytester.makeini("[pytest]\nsmtp_html = from-ini\nsmtp_html_all = true\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-n", "2")
    result.assert_outcomes(passed=2, failed=2)
    index = _index(pytester.path / "from-ini")
    names = ("test_a_passes", "test_b_fails", "test_c_factory_fails", "test_d_passes_too")
    where = {name: index.find(f"::{name}") for name in names}
    assert -1 not in where.values(), where
    assert max(where["test_b_fails"], where["test_c_factory_fails"]) < min(
        where["test_a_passes"], where["test_d_passes_too"]
    )
    assert len(_test_pages(pytester.path / "from-ini")) == 4


def test_a_teardown_error_is_reported_as_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SUITE.split("def test_a_passes")[0]
        + """
import pytest

@pytest.fixture
def breaks_at_teardown():
    yield
    raise RuntimeError("teardown broke")

def test_passes_then_breaks(smtp_server, breaks_at_teardown):
    send(smtp_server, "Before the teardown")
"""
    )
    result = pytester.runpytest_subprocess("--smtp-html=out")
    result.assert_outcomes(passed=1, errors=1)
    pages = _test_pages(pytester.path / "out")
    (page,) = pages.values()
    assert "Before the teardown" in page and "teardown broke" in page
    assert "error" in _index(pytester.path / "out")


def test_a_new_run_replaces_the_old_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    pytester.runpytest_subprocess("--smtp-html=out", "--smtp-html-all")
    assert len(_test_pages(pytester.path / "out")) == 4
    pytester.runpytest_subprocess("--smtp-html=out", "-k", "test_b")
    assert len(_test_pages(pytester.path / "out")) == 1


def test_bad_html_all_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nsmtp_html_all = maybe\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--smtp-html-all / smtp_html_all (from ini smtp_html_all)*"])


@pytest.mark.skipif(
    importlib.util.find_spec("pytest_html") is None, reason="pytest-html is not installed"
)
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_pytest_html_report_links_to_the_mail_report(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest_subprocess(
        "--smtp-html=mail", "--html=reports/tests.html", "-p", "no:cacheprovider", *workers
    )
    result.assert_outcomes(passed=2, failed=2)
    page = (pytester.path / "reports" / "tests.html").read_text(encoding="utf-8")
    assert 'href="../mail/index.html"' in page
    index = _index(pytester.path / "mail")
    # Each failed test's row links to its own row of the mail report (pytest-html keeps its
    # rows as JSON in the page, so the link is escaped there); the passing tests have none.
    rows = re.findall(r'<tr class="test" id="(test-[0-9a-f]{12})">', index)
    assert len(rows) == 2
    links = re.findall(r"\.\./mail/index\.html#(test-[0-9a-f]{12})", page)
    assert sorted(set(links)) == sorted(rows)
