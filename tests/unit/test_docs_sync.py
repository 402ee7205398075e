"""Docs pages quote example files exactly: a block starting `# file: PATH` equals that file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n# file: (?P<path>\S+)\n(?P<body>.*?)```", re.S)


def _quotes() -> list[tuple[str, str, str]]:
    found = []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for match in BLOCK.finditer(page.read_text()):
            found.append((str(page.relative_to(ROOT)), match["path"], match["body"]))
    return found


def test_docs_quote_at_least_the_tutorial() -> None:
    assert any(page == "docs/tutorial.md" for page, _, _ in _quotes())


@pytest.mark.parametrize(("page", "path", "body"), _quotes(), ids=lambda v: str(v)[:40])
def test_quoted_example_matches_file(page: str, path: str, body: str) -> None:
    target = ROOT / path
    assert target.is_file(), f"{page} quotes {path}, which does not exist"
    assert body.strip("\n") == target.read_text().strip("\n"), (
        f"{page} quotes {path} but the text differs: update the page from the file"
    )
