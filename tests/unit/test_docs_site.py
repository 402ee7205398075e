"""The documentation site's sources: every public name documented, every page in the nav.

`./run.sh docs` builds the site with warnings as errors, but it cannot know that a new export
has no API entry or that a new page was left out of a hand-written nav: these tests do.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

import pytest_smtp

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
API_PAGES = DOCS / "reference" / "api"
HOOK = DOCS / "hooks" / "rst_docstrings.py"
DIRECTIVE = re.compile(r"^::: pytest_smtp\.(?P<name>\S+)\s*$", re.M)


def _documented() -> dict[str, list[str]]:
    """Name -> the API pages with a ``::: pytest_smtp.NAME`` directive for it."""
    found: dict[str, list[str]] = {}
    for page in sorted(API_PAGES.glob("*.md")):
        for match in DIRECTIVE.finditer(page.read_text()):
            found.setdefault(match["name"], []).append(page.name)
    return found


def _nav_pages() -> list[str]:
    """The .md paths listed under ``nav:`` in mkdocs.yml (relative to docs/)."""
    text = (ROOT / "mkdocs.yml").read_text()
    nav = re.search(r"^nav:\n(?P<body>(?:[ \t]+.*\n|\n)*)", text, re.M)
    assert nav is not None, "mkdocs.yml has no nav: section"
    return re.findall(r"^\s*-\s+(?:[^:\n]+:\s+)?([\w./-]+\.md)\s*$", nav["body"], re.M)


def test_every_public_name_has_an_api_entry() -> None:
    documented = _documented()
    missing = [name for name in pytest_smtp.__all__ if name not in documented]
    assert not missing, (
        f"names in pytest_smtp.__all__ without a '::: pytest_smtp.NAME' entry in "
        f"docs/reference/api/*.md: {missing}"
    )


def test_api_entries_name_public_names_once() -> None:
    documented = _documented()
    unknown = sorted(set(documented) - set(pytest_smtp.__all__))
    assert not unknown, f"API pages document names pytest_smtp does not export: {unknown}"
    twice = {name: pages for name, pages in documented.items() if len(pages) > 1}
    assert not twice, f"names documented more than once (one anchor per name): {twice}"


def test_nav_lists_every_page() -> None:
    nav = _nav_pages()
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert "reference/api/index.md" in nav  # the parser read the nested sections too
    missing = [page for page in pages if page not in nav]
    assert not missing, f"pages under docs/ missing from the nav in mkdocs.yml: {missing}"
    absent = [page for page in nav if not (DOCS / page).is_file()]
    assert not absent, f"nav entries in mkdocs.yml with no page: {absent}"
    twice = sorted({page for page in nav if nav.count(page) > 1})
    assert not twice, f"pages listed more than once in the nav: {twice}"


def test_docstrings_become_markdown_with_links() -> None:
    """The site's griffe extension: roles, ``literals`` and ``::`` blocks as Markdown."""
    if os.environ.get("CI") and importlib.util.find_spec("griffe") is None:
        pytest.fail("CI runs ./run.sh docs before the suite: griffe (the docs extra) is missing")
    griffe = pytest.importorskip("griffe", reason="the docs extra (./run.sh docs installs it)")
    spec = importlib.util.spec_from_file_location("rst_docstrings", HOOK)
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    code = "class SMTPServer:\n    def reset(self) -> None: ...\n"
    module = griffe.visit("pytest_smtp", filepath=Path("pytest_smtp/__init__.py"), code=code)
    server = module["SMTPServer"]
    text = hook.to_markdown(
        "Uses :class:`~pytest_smtp.FakeDNS`, :meth:`reset` and :class:`Nowhere`; ``a`b``.\n"
        "Example::\n\n    with SMTPServer() as s:\n        pass\n\nAfter.",
        server,
    )
    assert text.splitlines() == [
        'Uses <autoref identifier="pytest_smtp.FakeDNS" optional><code>FakeDNS</code></autoref>,'
        ' <autoref identifier="pytest_smtp.SMTPServer.reset" optional>'
        "<code>reset()</code></autoref> and `Nowhere`; `` a`b ``.",
        "Example:",
        "",
        "```python",
        "with SMTPServer() as s:",
        "    pass",
        "```",
        "",
        "After.",
    ]
