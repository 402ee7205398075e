"""Opt-in compatibility plugin: ``pytest -p pytest_smtp.compat``.

It gives the incumbents' fixture names on top of pytest_smtp's server, so an existing suite
runs unchanged while it moves over:

- ``smtpd``, as smtpdfix gives it (``hostname``, ``port``, ``messages``, ``config``,
  ``SMTPD_*`` environment variables);
- ``smtpserver``, as pytest-localserver gives it (``addr``, ``outbox``).

A bridge with a deprecation path: each use warns (:class:`SMTPCompatWarning`, a
``DeprecationWarning``) naming the ``smtp_*`` fixture to use instead; the objects carry the
real server as ``.server``. When smtpdfix or pytest-localserver is installed and active, its own
fixture is left in place and the plugin says so at startup (disable it with ``-p no:smtpd`` or
``-p no:localserver`` to use the bridge). See docs/how-to/migrate.md.
"""

from __future__ import annotations

import pytest

from .bridges import INCUMBENTS, SMTPCompatWarning

__all__ = ["INCUMBENTS", "SMTPCompatWarning", "active_incumbent"]


def active_incumbent(config: pytest.Config, fixture: str) -> str | None:
    """The name of the active plugin that already provides ``fixture``, or None."""
    plugin_name, package, _ = INCUMBENTS[fixture]
    manager = config.pluginmanager
    for name, plugin in manager.list_name_plugin():
        module = getattr(plugin, "__name__", "")
        if plugin is not None and (
            name == plugin_name or module == package or module.startswith(package + ".")
        ):
            return f"{name} ({module})"
    return None


def pytest_configure(config: pytest.Config) -> None:
    """Register the bridges whose fixture name no active plugin holds; say which are not."""
    from . import fixtures

    for fixture, module in (("smtpd", fixtures.smtpd_plugin), ("smtpserver", fixtures.localserver)):
        holder = active_incumbent(config, fixture)
        if holder is None:
            if not config.pluginmanager.is_registered(module):
                config.pluginmanager.register(module, f"pytest_smtp.compat.{fixture}")
            continue
        plugin_name = INCUMBENTS[fixture][0]
        config.issue_config_time_warning(
            SMTPCompatWarning(
                f"pytest_smtp.compat: {holder} is installed and active, so the `{fixture}` "
                f"fixture is its own, not pytest_smtp's bridge; run with -p no:{plugin_name} "
                f"to use the bridge, or move to {INCUMBENTS[fixture][2]}"
            ),
            stacklevel=2,
        )
