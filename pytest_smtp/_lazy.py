"""Names a package imports only when first used (a PEP 562 module ``__getattr__``).

``import pytest_smtp`` (done by pytest for the plugin entry point) stays cheap, a run that never
touches DNS or IMAP never imports them, and names that need an extra fail only when used.
This module imports nothing of the package, so any module may use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(
    package: str, exports: Mapping[str, str], namespace: MutableMapping[str, Any]
) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``__getattr__ = lazy_getattr(__name__,
    {"Name": "package.module"}, globals())``.

    Each name of ``exports`` is imported from its module on first use and kept in ``namespace``
    (the package's ``globals()``), so the next use is a plain attribute. Any other name is the
    usual ``AttributeError``.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
