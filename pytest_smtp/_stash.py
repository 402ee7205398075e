"""What the plugin's hooks and the fixtures share: the resolved settings and the stash keys.

Both :mod:`pytest_smtp.plugin` and :mod:`pytest_smtp.fixtures` import this module and neither
imports the other, so the two stay free of an import circle.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from .smtp.options import ServerOptions

__all__ = ["CONFIG_KEY", "SERVERS_KEY", "SMTPConfig"]


@dataclasses.dataclass
class SMTPConfig:
    """The resolved settings (marker > CLI > ini > default), stored on ``config.stash``."""

    values: dict[str, Any]
    base_options: ServerOptions
    seed: int
    wait_timeout: float
    transcript: str
    save_dir: str | None


#: The run's :class:`SMTPConfig`, on ``config.stash``.
CONFIG_KEY = pytest.StashKey[SMTPConfig]()

#: Servers a test used, on ``item.stash``, for the "Captured smtp" report section.
SERVERS_KEY = pytest.StashKey[list[Any]]()
