"""The package has no import circle: each module's imports, read from its source, form no cycle.

Every import counts (top level, in functions, relative ones). Those under ``if TYPE_CHECKING:``
never run, but a circle of names is still a circle for a reader: the second test counts them too.
A circle is named module by module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_smtp

PACKAGE_DIR = Path(pytest_smtp.__file__).parent


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _imports(tree: ast.AST, typing: bool = False) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: TYPE_CHECKING blocks (not their else) skipped,
    unless ``typing``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if not typing and isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path, typing: bool = False) -> dict[str, set[str]]:
    """``{module: modules of the same package it imports}`` for the package at ``root``;
    ``typing``: imports under ``if TYPE_CHECKING:`` count too."""
    files = {_module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path)), typing):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base_parts = package.split(".")
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                    base = ".".join([*base_parts, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in files else base)
            for target in targets:
                # "import a.b.c" runs a.b.c: the deepest module of ours that the name reaches.
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected group of modules, as ``[a, b, ..., a]``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def strongconnect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                strongconnect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return [_circle_in(graph, set(group)) for group in groups]


def _circle_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest circle through the group's first module, staying inside the group."""
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & group):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no circle through {start} in {sorted(group)}")  # pragma: no cover


def test_the_package_has_no_import_circle() -> None:
    cycles = find_cycles(import_graph(PACKAGE_DIR))
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_package_has_no_circle_of_type_names_either() -> None:
    """``Message.lint()`` calls quality and quality reads messages: the checks name what they
    read as protocols (``quality/_inputs.py``), so not even the type imports go round."""
    cycles = find_cycles(import_graph(PACKAGE_DIR, typing=True))
    assert not cycles, "import circles (with TYPE_CHECKING imports):\n" + "\n".join(
        " -> ".join(c) for c in cycles
    )


def test_the_graph_sees_the_package_imports() -> None:
    graph = import_graph(PACKAGE_DIR)
    # A relative import, a function-level import and an absolute one, as the source has them.
    assert "pytest_smtp.smtp.protocol" in graph["pytest_smtp.smtp.server"]
    assert "pytest_smtp.fakedns" in graph["pytest_smtp.fixtures"]
    assert "pytest_smtp.fakedns.patch" in graph["pytest_smtp.fakedns.server"]


def _write(root: Path, files: dict[str, str]) -> Path:
    package = root / "pkg"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return package


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (  # relative, one level
            {"__init__.py": "", "a.py": "from . import b\n", "b.py": "from .a import x\n"},
            [["pkg.a", "pkg.b", "pkg.a"]],
        ),
        (  # inside a function, absolute, through a subpackage
            {
                "__init__.py": "",
                "a.py": "def f():\n    import pkg.sub.c\n",
                "sub/__init__.py": "",
                "sub/c.py": "from ..a import f\n",
            },
            [["pkg.a", "pkg.sub.c", "pkg.a"]],
        ),
        (  # under TYPE_CHECKING: never runs, no circle
            {
                "__init__.py": "",
                "a.py": "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from . import b\n",
                "b.py": "from . import a\n",
            },
            [],
        ),
        (  # the else branch of TYPE_CHECKING runs
            {
                "__init__.py": "",
                "a.py": "import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n"
                "    from .b import y\n",
                "b.py": "from .a import z\n",
            },
            [["pkg.a", "pkg.b", "pkg.a"]],
        ),
    ],
)
def test_the_checker_finds_and_names_circles(
    tmp_path: Path, files: dict[str, str], expected: list[list[str]]
) -> None:
    assert find_cycles(import_graph(_write(tmp_path, files))) == expected


def test_the_typing_graph_counts_type_checking_imports(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n",
            "b.py": "from . import a\n",
        },
    )
    assert find_cycles(import_graph(package)) == []
    assert find_cycles(import_graph(package, typing=True)) == [["pkg.a", "pkg.b", "pkg.a"]]


# -- exports ---------------------------------------------------------------------------------
#: Modules whose ``__all__`` is the package's public API; internal modules (protocol parsers,
#: the MTA's pieces, the engine's plumbing) are not listed.
PUBLIC_MODULES = (
    "pytest_smtp.asserts",
    "pytest_smtp.faults",
    "pytest_smtp.mail",
    "pytest_smtp.store",
    "pytest_smtp.retrieval",
    "pytest_smtp.fakedns",
    "pytest_smtp.relay",
    "pytest_smtp.relay.postfix",
    "pytest_smtp.web",
    "pytest_smtp.smtp.server",
    "pytest_smtp.smtp.owner",
    "pytest_smtp.smtp.tls",
)
#: Public in their module, and deliberately not at the top: another meaning there.
NOT_AT_TOP = {
    ("pytest_smtp.relay", "assert_deferred"),  # deprecated: assert_queued
    ("pytest_smtp.relay", "assert_dropped"),  # deprecated: assert_discarded
    ("pytest_smtp.fakedns", "Fault"),  # a DNS fault; pytest_smtp.FaultSet is the SMTP one
    ("pytest_smtp.fakedns", "FAULT_ACTIONS"),
}


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_is_importable_from_the_package(module_name: str) -> None:
    import importlib

    module = importlib.import_module(module_name)
    missing = []
    for name in module.__all__:
        if (module_name, name) in NOT_AT_TOP:
            continue
        if getattr(pytest_smtp, name, None) is not getattr(module, name):
            missing.append(name)
    assert not missing, f"not exported from pytest_smtp (or another object): {missing}"
    assert set(module.__all__) - {n for m, n in NOT_AT_TOP if m == module_name} <= set(
        pytest_smtp.__all__
    )


def test_from_pytest_smtp_import_the_relay_helpers() -> None:
    from pytest_smtp import assert_delivered, assert_discarded, assert_queued
    from pytest_smtp.relay import asserts

    assert (assert_delivered, assert_queued, assert_discarded) == (
        asserts.assert_delivered,
        asserts.assert_queued,
        asserts.assert_discarded,
    )


def test_every_name_in_all_resolves() -> None:
    for name in pytest_smtp.__all__:
        assert getattr(pytest_smtp, name) is not None or name == "__version__"
