"""pytest hooks: ``--smtp-*`` options with ini twins, markers, report sections, assert text.

No engine logic lives here: this module reads settings and wires the fixtures in.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Generator
from typing import Any

import pytest

from .asserts import explain_compare
from .fixtures import SERVERS_KEY
from .smtp.options import OptionError, ServerOptions
from .smtp.tls import TLS_MODES

# The fixtures module is a plugin of its own, loaded with this one.
pytest_plugins = ["pytest_smtp.fixtures"]

TRANSCRIPT_MODES = ("on-failure", "always", "never")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One ``--smtp-NAME`` option and its ``smtp_NAME`` ini twin."""

    name: str
    help: str
    default: str | None
    parse: Callable[[str], Any]

    @property
    def flag(self) -> str:
        return "--smtp-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "smtp_" + self.name


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"must be a number of seconds, not {text!r}") from None
    if value <= 0:
        raise OptionError(f"must be more than 0 seconds, not {text!r}")
    return value


def _transcript(text: str) -> str:
    if text not in TRANSCRIPT_MODES:
        raise OptionError(f"must be one of {', '.join(TRANSCRIPT_MODES)}, not {text!r}")
    return text


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise OptionError(f"must be a whole number, not {text!r}") from None


def _server_option(name: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        options: dict[str, Any] = {name: text}
        return getattr(ServerOptions.build(None, **options), name)

    return parse


SETTINGS = (
    Setting(
        "host",
        "IP address the SMTP servers bind to (default 127.0.0.1; keep it on loopback)",
        None,
        _server_option("host"),
    ),
    Setting(
        "hostname", "name the SMTP server gives in its greeting", None, _server_option("hostname")
    ),
    Setting(
        "timeout", "default timeout of mailbox.wait_for() in seconds (default 5)", "5", _seconds
    ),
    Setting(
        "max_size",
        "largest message accepted, in bytes (K/M suffixes; 0 = no limit)",
        None,
        _server_option("max_size"),
    ),
    Setting(
        "tls",
        f"TLS mode of smtp_server: {', '.join(str(m) for m in TLS_MODES)}",
        None,
        _server_option("tls"),
    ),
    Setting(
        "auth_require_tls",
        "refuse AUTH before TLS (true/false; default true)",
        None,
        _server_option("auth_require_tls"),
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
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("smtp", "pytest_smtp: SMTP server, faults, fake DNS, POP3/IMAP")
    for setting in SETTINGS:
        group.addoption(
            setting.flag,
            dest=setting.ini,
            default=None,
            metavar=setting.name.upper(),
            help=setting.help,
        )
        parser.addini(setting.ini, setting.help, default=None)


@dataclasses.dataclass
class SMTPConfig:
    """The resolved settings (marker > CLI > ini > default), stored on ``config.stash``."""

    values: dict[str, Any]
    base_options: ServerOptions
    seed: int
    wait_timeout: float
    transcript: str
    save_dir: str | None


CONFIG_KEY = pytest.StashKey[SMTPConfig]()


def _resolve(config: pytest.Config) -> SMTPConfig:
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = config.getoption(setting.ini)
        source = setting.flag
        if raw is None:
            raw = config.getini(setting.ini) or None
            source = f"ini {setting.ini}"
        if raw is None:
            raw, source = setting.default, "default"
        if raw is None:
            continue
        try:
            values[setting.name] = setting.parse(str(raw))
        except OptionError as exc:
            raise pytest.UsageError(
                f"{setting.flag} / {setting.ini} (from {source}): {exc}"
            ) from None
    server_keys = {"host", "hostname", "max_size", "tls", "auth_require_tls"}
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
        wait_timeout=values.get("timeout", 5.0),
        transcript=values.get("transcript", "on-failure"),
        save_dir=values.get("save_dir"),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "smtp(**options): run the test against an SMTP server with these options "
        "(hostname, tls, require_tls, auth, auth_mechanisms, require_auth, auth_require_tls, "
        "max_size, max_recipients, smtputf8, dsn, timeout, strict_line_endings)",
    )
    config.addinivalue_line(
        "markers",
        "smtp_fault(stage, action='reject', *args, **matchers): add a fault rule to smtp_server "
        "for this test, e.g. smtp_fault('rcpt', 'reject', 550, match='bob@*')",
    )
    config.stash[CONFIG_KEY] = _resolve(config)


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
    report: pytest.TestReport = outcome.get_result()
    cfg = item.config.stash.get(CONFIG_KEY, None)
    if cfg is None or cfg.transcript == "never":
        return
    if not report.failed and not (cfg.transcript == "always" and report.when == "call"):
        return
    servers = item.stash.get(SERVERS_KEY, [])
    if not servers:
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
