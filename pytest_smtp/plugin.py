"""pytest hooks: ``--smtp-*`` options with ini twins, markers, report sections, assert text.

No engine logic lives here: this module reads settings and wires the fixtures in.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Generator
from typing import Any

import pytest

from ._stash import CONFIG_KEY, SERVERS_KEY, SMTPConfig
from .asserts import explain_compare
from .smtp.options import (
    OptionError,
    ServerOptions,
    ini_key,
    marker_help,
    parse_bool,
    positive_seconds,
    run_flag,
)
from .web_plugin import configure as configure_web

# The fixtures module is a plugin of its own, loaded with this one.
pytest_plugins = ["pytest_smtp.fixtures"]

TRANSCRIPT_MODES = ("on-failure", "always", "never")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One ``--smtp-NAME`` option and its ``smtp_NAME`` ini twin.

    ``deprecated`` names an old ``--smtp-OLD`` / ``smtp_OLD`` pair that still works for this
    setting, with a :class:`pytest.PytestDeprecationWarning`.
    """

    name: str
    help: str
    default: str | None
    parse: Callable[[str], Any]
    server_option: bool = False
    deprecated: str | None = None
    switch: bool = False
    """A flag without a value (``--smtp-html-all``); its ini twin takes true/false."""

    @property
    def flag(self) -> str:
        return run_flag(self.name)

    @property
    def ini(self) -> str:
        return ini_key(self.name)

    @property
    def old_flag(self) -> str | None:
        return None if self.deprecated is None else run_flag(self.deprecated)

    @property
    def old_ini(self) -> str | None:
        return None if self.deprecated is None else ini_key(self.deprecated)


def _transcript(text: str) -> str:
    if text not in TRANSCRIPT_MODES:
        raise OptionError(f"must be one of {', '.join(TRANSCRIPT_MODES)}, not {text!r}")
    return text


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise OptionError(f"must be a whole number, not {text!r}") from None


def _remote_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise OptionError(
            f"must be the http:// URL `serve --http` printed, such as "
            f"http://127.0.0.1:8025/?token=TOKEN, not {text!r}"
        )
    return text


def _server_option(name: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        options: dict[str, Any] = {name: text}
        return getattr(ServerOptions.build(None, **options), name)

    return parse


SETTINGS = (
    # The server options that are also run settings: name, help and parser from the schema.
    *(
        Setting(spec.name, spec.plain_help, None, _server_option(spec.name), server_option=True)
        for spec in ServerOptions.schema()
        if spec.setting
    ),
    Setting(
        "wait_timeout",
        "default timeout in seconds of mailbox.wait_for(), transactions.wait_for() and the "
        "waiting assert_* helpers (default 5; not the server's idle timeout)",
        "5",
        lambda text: positive_seconds("wait_timeout", text),
        deprecated="timeout",
    ),
    Setting(
        "transcript",
        "when to add the SMTP dialogue to the report: " + "|".join(TRANSCRIPT_MODES),
        "on-failure",
        _transcript,
    ),
    Setting(
        "save_dir", "save every captured message as a .eml file under DIR, per test", None, str
    ),
    Setting(
        "seed", "seed for probabilistic fault rules (drawn and printed when not given)", None, _seed
    ),
    Setting(
        "html",
        "write an HTML report of the tests' mail into DIR (failed tests; needs the web extra)",
        None,
        str,
    ),
    Setting(
        "html_all",
        "put every test in the --smtp-html report, not only the failed ones",
        None,
        lambda text: parse_bool("html_all", text),
        switch=True,
    ),
    Setting(
        "remote",
        "make smtp_server and factory servers on a `python -m pytest_smtp serve --http` "
        "instance at URL (http://HOST:PORT/?token=TOKEN) instead of locally",
        None,
        _remote_url,
    ),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("smtp", "pytest_smtp: SMTP server, faults, fake DNS, POP3/IMAP")
    for setting in SETTINGS:
        if setting.switch:
            group.addoption(
                setting.flag,
                dest=setting.ini,
                action="store_const",
                const="true",
                help=setting.help,
            )
        else:
            group.addoption(
                setting.flag,
                dest=setting.ini,
                default=None,
                metavar=setting.name.upper(),
                help=setting.help,
            )
        parser.addini(setting.ini, setting.help, default=None)
        if setting.old_flag is not None and setting.old_ini is not None:
            note = f"deprecated alias of {setting.flag} / {setting.ini}"
            group.addoption(
                setting.old_flag, dest=setting.old_ini, default=None, metavar="SECONDS", help=note
            )
            parser.addini(setting.old_ini, note, default=None)


def _raw_value(config: pytest.Config, setting: Setting) -> tuple[str | None, str]:
    """The setting's text and where it came from: new flag, old flag, new ini, old ini."""
    places: list[tuple[str, bool, str]] = [(setting.ini, True, setting.flag)]
    if setting.old_ini is not None and setting.old_flag is not None:
        places.append((setting.old_ini, True, setting.old_flag))
    places.append((setting.ini, False, f"ini {setting.ini}"))
    if setting.old_ini is not None:
        places.append((setting.old_ini, False, f"ini {setting.old_ini}"))
    for dest, is_flag, source in places:
        raw = config.getoption(dest) if is_flag else (config.getini(dest) or None)
        if raw is None:
            continue
        if dest == setting.old_ini:
            config.issue_config_time_warning(
                pytest.PytestDeprecationWarning(
                    f"{source} is deprecated: use {setting.flag} / ini {setting.ini} (the wait "
                    f"default). The name 'timeout' means the server's idle timeout everywhere "
                    f"else (@pytest.mark.smtp(timeout=...))."
                ),
                stacklevel=2,
            )
        return str(raw), source
    return setting.default, "default"


def _resolve(config: pytest.Config) -> SMTPConfig:
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw, source = _raw_value(config, setting)
        if raw is None:
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except OptionError as exc:
            raise pytest.UsageError(
                f"{setting.flag} / {setting.ini} (from {source}): {exc}"
            ) from None
    server_keys = {s.name for s in SETTINGS if s.server_option}
    try:
        base = ServerOptions.build(**{k: v for k, v in values.items() if k in server_keys})
    except OptionError as exc:
        raise pytest.UsageError(f"pytest_smtp settings: {exc}") from None
    seed = values.get("seed")
    if seed is None:
        # Under xdist the controller draws the seed and hands it to every worker, so the seed
        # in the report header is the one the rules used.
        workerinput = getattr(config, "workerinput", {})
        seed = workerinput.get("smtp_seed")
    if seed is None:
        seed = random.SystemRandom().randrange(2**32)
    return SMTPConfig(
        values=values,
        base_options=base,
        seed=seed,
        wait_timeout=values.get("wait_timeout", 5.0),
        transcript=values.get("transcript", "on-failure"),
        save_dir=values.get("save_dir"),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", marker_help())
    config.addinivalue_line(
        "markers",
        "smtp_fault(stage, action='reject', *args, **matchers): add a fault rule to smtp_server "
        "for this test, e.g. smtp_fault('rcpt', 'reject', 550, match='bob@*')",
    )
    config.stash[CONFIG_KEY] = _resolve(config)
    configure_web(config, config.stash[CONFIG_KEY])


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: send the controller's fault seed to each worker."""
    cfg = node.config.stash.get(CONFIG_KEY, None)
    if cfg is not None:
        node.workerinput["smtp_seed"] = cfg.seed


def pytest_report_header(config: pytest.Config) -> list[str]:
    cfg = config.stash.get(CONFIG_KEY, None)
    if cfg is None:
        return []
    line = f"smtp: seed={cfg.seed} (replay with --smtp-seed={cfg.seed})"
    if config.get_verbosity() > 0:
        opts = cfg.base_options
        line += (
            f", host={opts.host} hostname={opts.hostname} tls={opts.tls} "
            f"max_size={opts.max_size} wait-timeout={cfg.wait_timeout} "
            f"transcript={cfg.transcript} save-dir={cfg.save_dir}"
        )
    return [line]


def pytest_assertrepr_compare(
    config: pytest.Config, op: str, left: object, right: object
) -> list[str] | None:
    return explain_compare(op, left, right)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    # Cheapest tests first: this runs three times for every test of the session.
    servers = item.stash.get(SERVERS_KEY, None)
    if not servers:
        return
    report: pytest.TestReport = outcome.get_result()
    cfg = item.config.stash.get(CONFIG_KEY, None)
    if cfg is None or cfg.transcript == "never":
        return
    if not report.failed and not (cfg.transcript == "always" and report.when == "call"):
        return
    lines: list[str] = []
    for server in servers:
        transcript = server.transcript
        if transcript:
            lines.append(f"--- {server!r}")
            lines.extend(transcript)
    if not lines:
        return
    if report.failed:
        lines.append(f"(fault seed {cfg.seed}: replay with --smtp-seed={cfg.seed})")
    report.sections.append((f"Captured smtp {report.when}", "\n".join(lines)))


__all__ = ["CONFIG_KEY", "SETTINGS", "SMTPConfig"]
