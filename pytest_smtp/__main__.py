"""``python -m pytest_smtp``: see :mod:`pytest_smtp.cli`."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
