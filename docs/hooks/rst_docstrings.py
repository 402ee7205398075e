"""Griffe extension for the documentation site: the package's docstrings, as Markdown.

The docstrings of ``pytest_smtp`` are written for ``help()`` and ``pytest --fixtures``, in the
reStructuredText habits of Python code: ``double backquotes``, ``:class:`Name``` roles and
``Example::`` literal blocks. mkdocstrings renders docstrings as Markdown, so this extension
rewrites each docstring once the package is loaded:

- ``code`` becomes a Markdown code span;
- a role (``:class:``, ``:meth:``, ``:func:``, ``:attr:``, ``:data:``, ``:mod:``, ...) becomes a
  cross-reference to the object, resolved the way Python would resolve the name where the
  docstring stands (members, then the module's names and imports). It is an *optional*
  reference: a name the site does not document (a private helper) is shown as code, not as a
  broken link;
- ``text::`` and the indented block after it become ``text:`` and a fenced Python block;
- a module attribute documented by ``#:`` comment lines above it (the Sphinx convention for
  constants) gets them as its docstring;
- a dataclass field declared through a private helper (``host: str = _option("127.0.0.1",
  ...)``, the option schema of ``smtp/options.py``) shows its default, as ``help()`` does;
- an attribute set in ``__init__`` (``self.raw = raw``) is shown without the right-hand side,
  which is how the constructor fills it in, not what the attribute is;
- a docstring completed at import time (``SMTPServer`` lists its options from the schema) is
  taken from the imported object, so the site shows what ``help()`` shows.

mkdocs.yml loads it (``extensions:`` of the Python handler); it is not part of the package.
"""

from __future__ import annotations

import html
import importlib
import inspect
import re
import textwrap
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?P<role>[a-z]+):`(?P<text>[^`]+)`")
LITERAL = re.compile(r"``(?P<code>.+?)``")
PLACEHOLDER = re.compile(r"\{[a-z_]+\}")
CALLABLE_ROLES = {"func", "meth"}


class RstDocstrings(griffe.Extension):
    """Rewrite the reStructuredText habits of every docstring of a package into Markdown."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            if obj.is_class and "dataclass" in obj.labels:
                _field_defaults(obj)  # type: ignore[arg-type]
            if obj.is_attribute and obj.labels & {"instance-attribute", "class-attribute"} == {
                "instance-attribute"
            }:
                obj.value = None  # type: ignore[union-attr]
            if obj.docstring is None and obj.is_attribute:
                obj.docstring = _comment_docstring(obj)
            if obj.docstring is None:
                continue
            text = _runtime_docstring(obj) or obj.docstring.value
            obj.docstring.value = to_markdown(text, obj)


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    """Every object defined in ``obj`` (aliases are rewritten where they are defined)."""
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found.extend(_walk(member))  # type: ignore[arg-type]
    return found


def _field_defaults(cls: griffe.Class) -> None:
    """``x: T = _helper(default, ...)`` -> ``x: T = default``, in the field and ``__init__``."""
    init = cls.members.get("__init__")
    params = init.parameters if isinstance(init, griffe.Function) else None
    for member in cls.members.values():
        value = getattr(member, "value", None)
        if not (member.is_attribute and isinstance(value, griffe.ExprCall)):
            continue
        if not str(value.function).startswith("_") or not value.arguments:
            continue
        default = value.arguments[0]
        if isinstance(default, griffe.ExprKeyword):
            continue
        member.value = default  # type: ignore[union-attr]
        if params is not None and member.name in params:
            params[member.name].default = default


def _comment_docstring(obj: griffe.Object) -> griffe.Docstring | None:
    """The ``#:`` comment lines right above an attribute, as its docstring."""
    if obj.lineno is None:
        return None
    filepath = obj.filepath
    if isinstance(filepath, list) or filepath not in obj.lines_collection:
        return None
    lines = obj.lines_collection[filepath]
    comment: list[str] = []
    row = obj.lineno - 2
    while row >= 0 and lines[row].lstrip().startswith("#:"):
        comment.insert(0, lines[row].lstrip()[2:].strip())
        row -= 1
    if not comment:
        return None
    return griffe.Docstring("\n".join(comment), lineno=row + 2, parent=obj)


def _runtime_docstring(obj: griffe.Object) -> str | None:
    """The docstring of the imported object, when the source's has a ``{placeholder}``."""
    if obj.docstring is None or not PLACEHOLDER.search(obj.docstring.value):
        return None
    module = obj.module.path
    try:
        value: Any = importlib.import_module(module)
        for part in obj.path[len(module) + 1 :].split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError):
        return None
    doc = inspect.getdoc(value)
    return doc if doc and not PLACEHOLDER.search(doc) else None


def to_markdown(text: str, obj: griffe.Object) -> str:
    """``text`` (a docstring of ``obj``) with roles, literals and literal blocks as Markdown."""
    lines = _literal_blocks(text.splitlines())
    out: list[str] = []
    fenced = False
    for line in lines:
        if line.lstrip().startswith("```"):
            fenced = not fenced
        out.append(line if fenced else _inline(line, obj))
    return "\n".join(out)


def _inline(line: str, obj: griffe.Object) -> str:
    line = ROLE.sub(lambda m: _role(m["role"], m["text"], obj), line)
    return LITERAL.sub(lambda m: _code(m["code"]), line)


def _code(code: str) -> str:
    return f"`` {code} ``" if "`" in code else f"`{code}`"


def _role(role: str, text: str, obj: griffe.Object) -> str:
    explicit = re.fullmatch(r"(?P<title>.+?)\s*<(?P<target>[^>]+)>", text)
    target = explicit["target"] if explicit else text
    short = target.startswith("~")
    target = target.lstrip("~.")
    if explicit:
        title = explicit["title"]
    else:
        title = target.rsplit(".", 1)[-1] if short else target
        if role in CALLABLE_ROLES:
            title += "()"
    identifier = _resolve(target, obj)
    if identifier is None:
        return _code(title)
    return (
        f'<autoref identifier="{html.escape(identifier)}" optional>'
        f"<code>{html.escape(title)}</code></autoref>"
    )


def _resolve(target: str, obj: griffe.Object) -> str | None:
    """The full path ``target`` names where ``obj``'s docstring stands, if it names anything."""
    if target.split(".", 1)[0] == obj.package.name:
        return target
    scope: griffe.Object | None = obj if (obj.is_class or obj.is_module) else obj.parent
    head, _, rest = target.partition(".")
    while scope is not None:
        try:
            path = scope.resolve(head)
        except griffe.NameResolutionError:
            scope = scope.parent
            continue
        return f"{path}.{rest}" if rest else path
    return None


def _literal_blocks(lines: list[str]) -> list[str]:
    """``text::`` + an indented block -> ``text:`` + a fenced Python block."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.rstrip().endswith("::"):
            out.append(line)
            continue
        stripped = line.rstrip()[:-2].rstrip()
        if stripped.strip():
            out.append(stripped + ":")
        indent = len(line) - len(line.lstrip())
        block: list[str] = []
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            block.pop()
        body = textwrap.dedent("\n".join(block)).strip("\n")
        fence_indent = " " * indent
        out.extend(["", f"{fence_indent}```python"])
        out.extend(fence_indent + row if row else "" for row in body.splitlines())
        out.extend([f"{fence_indent}```", ""])
    return out
