"""pytest_smtp: test software that sends, relays or receives email, with real sockets on loopback."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
