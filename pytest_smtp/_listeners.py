"""One listener registry for everything that announces changes: the mail logs
(:meth:`Mailbox.add_listener <pytest_smtp.mail.Mailbox.add_listener>`) and the store
(:meth:`MailStore.subscribe <pytest_smtp.store.MailStore.subscribe>`).

A listener that raises never disturbs the others nor the change that called it: its traceback
is kept in :attr:`Listeners.errors`. This module never imports pytest.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Listeners"]

_E = TypeVar("_E")


class Listeners(Generic[_E]):
    """Callables run with each event, in the thread that emits it; thread-safe to change."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self._fns: tuple[Callable[[_E], None], ...] = ()
        #: Tracebacks of listeners that raised, oldest first.
        self.errors: list[str] = []

    def add(self, fn: Callable[[_E], None], method: str) -> Callable[[], None]:
        """Register ``fn``; returns a function that removes it (calling it twice is harmless).

        ``method`` names the public method for the error when ``fn`` is not callable.
        """
        if not callable(fn):
            raise TypeError(f"{method}() takes a callable, got {type(fn).__name__}")
        with self._lock:
            self._fns = (*self._fns, fn)

        def remove() -> None:
            with self._lock:
                fns = list(self._fns)
                if fn in fns:
                    fns.remove(fn)
                self._fns = tuple(fns)

        return remove

    def __bool__(self) -> bool:
        """True when any listener is registered (an emitter can skip building its event)."""
        return bool(self._fns)

    def emit(self, event: _E) -> None:
        """Call every listener with ``event``; a raising one is recorded in :attr:`errors`."""
        for fn in self._fns:
            try:
                fn(event)
            except Exception:
                self.errors.append(
                    f"{self._what} listener {fn!r} failed on {event!r}\n{traceback.format_exc()}"
                )
