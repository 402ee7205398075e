"""The server options: one schema, one name per concept.

Each :class:`ServerOptions` field carries its name, type, default, valid values and help
(:meth:`ServerOptions.schema`). Everything else is generated from it: the ``--smtp-NAME`` /
``smtp_NAME`` ini settings of the plugin, the ``smtp`` marker's help, the arguments of
``python -m pytest_smtp serve``, the options list of the ``SMTPServer`` docstring and the table
in ``docs/reference/options.md``. The same keyword means the same thing in all of them.
Validation lives here once; a bad value raises :class:`OptionError` (a ``ValueError``) naming
what would be right.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from .tls import TLSMode

__all__ = [
    "AUTH_MECHANISMS",
    "DEFAULT_AUTH_MECHANISMS",
    "OptionError",
    "OptionSpec",
    "ServerOptions",
    "TLSMode",
    "ini_key",
    "marker_help",
    "options_docstring",
    "options_table",
    "parse_bool",
    "positive_seconds",
    "run_flag",
]

#: Every mechanism the server implements.
AUTH_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2")
#: Offered when ``auth_mechanisms`` is not given.
DEFAULT_AUTH_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")


class OptionError(ValueError):
    """A server option has a bad name or value; the message says what would be right."""


def parse_bool(name: str, value: Any) -> bool:
    """Accept a bool or the usual ini spellings (``true/false/yes/no/on/off/1/0``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise OptionError(f"{name} must be true or false (or yes/no, on/off, 1/0), not {value!r}")


def _parse_size(name: str, value: Any, *, allow_none: bool) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        if allow_none:
            return None
        raise OptionError(f"{name} must be a whole number, not {value!r}")
    if isinstance(value, bool):
        raise OptionError(f"{name} must be a whole number, not {value!r}")
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip().upper()
        factor = 1
        for suffix, mult in (("KIB", 1024), ("MIB", 1024**2), ("K", 1024), ("M", 1024**2)):
            if text.endswith(suffix):
                text, factor = text[: -len(suffix)].strip(), mult
                break
        if not text.isdigit():
            raise OptionError(
                f"{name} must be a whole number of bytes (suffixes K/M allowed), not {value!r}"
            )
        number = int(text) * factor
    if number < 0:
        raise OptionError(f"{name} must be 0 or more, not {value!r}")
    return number


def _parse_max_size(name: str, value: Any) -> int | None:
    return _parse_size(name, value, allow_none=True) or None


def _parse_stored_auth(
    name: str, value: Any
) -> tuple[tuple[str, str], ...] | Literal["any"] | None:
    auth = _parse_auth(value)
    return tuple(sorted(auth.items())) if isinstance(auth, dict) else auth


def _parse_host(name: str, value: Any) -> str:
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise OptionError(
            f"{name} must be an IP address to bind, such as 127.0.0.1 or ::1, not {value!r}"
        ) from None


def _parse_port(name: str, value: Any) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) > 65535:
        raise OptionError(f"{name} must be a port number from 0 to 65535, not {value!r}")
    return int(text)


def _parse_count(name: str, value: Any) -> int:
    number = _parse_size(name, value, allow_none=False)
    if not number:
        raise OptionError(f"{name} must be 1 or more, not {value!r}")
    return number


def positive_seconds(name: str, value: Any) -> float:
    """``value`` as a number of seconds more than 0 (text allowed), or :class:`OptionError`.

    The one check behind every timeout and lifetime setting of the package.
    """
    if isinstance(value, bool):
        raise OptionError(f"{name} must be a number of seconds, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OptionError(f"{name} must be a number of seconds, not {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise OptionError(f"{name} must be more than 0 seconds (and finite), not {value!r}")
    return number


def _parse_auth(value: Any) -> dict[str, str] | Literal["any"] | None:
    if value is None or value == "":
        return None
    if value == "any":
        return "any"
    if isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        value = dict(value)  # the stored form, from a base ServerOptions
    if isinstance(value, Mapping):
        table: dict[str, str] = {}
        for user, password in value.items():
            if not isinstance(user, str) or not isinstance(password, str):
                raise OptionError("auth must map user names (str) to passwords (str)")
            table[user] = password
        return table
    if isinstance(value, str):
        # CLI / ini form: "user:password,user2:password2"
        table = {}
        for item in value.split(","):
            user, sep, password = item.strip().partition(":")
            if not sep or not user:
                raise OptionError(
                    f"auth must be 'any', a {{user: password}} dict, or 'user:password,...' "
                    f"text; {item!r} has no 'user:password' form"
                )
            table[user] = password
        return table
    raise OptionError(
        f"auth must be None, 'any' or a {{user: password}} dict, not {type(value).__name__}"
    )


def _parse_mechanisms(name: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_AUTH_MECHANISMS
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    result = []
    for item in items:
        name = str(item).upper()
        if name not in AUTH_MECHANISMS:
            raise OptionError(
                f"auth_mechanisms: unknown mechanism {item!r}; valid: {', '.join(AUTH_MECHANISMS)}"
            )
        result.append(name)
    if not result:
        raise OptionError(f"auth_mechanisms must name one or more of {', '.join(AUTH_MECHANISMS)}")
    return tuple(dict.fromkeys(result))


def _parse_tls(name: str, value: Any) -> TLSMode | None:
    if value is None or (isinstance(value, str) and value.lower() in ("", "none", "off", "no")):
        return None
    if isinstance(value, str) and value.lower() in ("starttls", "implicit"):
        return value.lower()  # type: ignore[return-value]
    raise OptionError(f"tls must be None, 'starttls' or 'implicit', not {value!r}")


def _parse_hostname(name: str, value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in "\r\n\0 \t") or not text.isascii():
        raise OptionError(
            f"hostname must be a plain ASCII host name such as 'mx.test', not {value!r}"
        )
    return text


# The hooks an aiosmtpd handler may define (aiosmtpd.smtp.SMTP calls them the same way).
HANDLER_HOOKS = ("HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "AUTH")


_MECHANISM_NAME = re.compile(r"[A-Z0-9_-]+\Z")


def handler_mechanisms(handler: Any) -> dict[str, str]:
    """The AUTH mechanisms an aiosmtpd handler implements itself, by name: its
    ``async auth_NAME(server, args)`` methods (``auth_CRAM__MD5`` is ``CRAM-MD5``; aiosmtpd's
    ``@auth_mechanism("NAME")`` names one explicitly) -> the method's attribute name."""
    if handler is None:
        return {}
    found: dict[str, str] = {}
    for attribute in dir(handler):
        if not attribute.startswith("auth_") or not callable(getattr(handler, attribute, None)):
            continue
        method = getattr(handler, attribute)
        name = getattr(method, "__auth_mechanism_name__", None)
        if name is None:
            name = attribute[len("auth_") :].replace("__", "-")
        found[str(name).upper()] = attribute
    return found


def _parse_handler(name: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (str, bytes, int, float)):
        raise OptionError(
            f"handler must be an aiosmtpd-style handler object (with async handle_DATA, "
            f"handle_RCPT... methods), given from Python, not {value!r}"
        )
    for mechanism, attribute in handler_mechanisms(value).items():
        if not _MECHANISM_NAME.match(mechanism):
            raise OptionError(
                f"handler.{attribute} names the AUTH mechanism {mechanism!r}; a mechanism name "
                "is made of A-Z, 0-9, '_' and '-' (RFC 4422 §3.1)"
            )
        if not inspect.iscoroutinefunction(getattr(value, attribute)):
            raise OptionError(
                f"handler.{attribute} must be an async method "
                f"(async def {attribute}(self, server, args)), as aiosmtpd calls it"
            )
    for hook in (*HANDLER_HOOKS, "PROXY", "exception"):
        method = getattr(value, f"handle_{hook}", None)
        if method is not None and not inspect.iscoroutinefunction(method):
            raise OptionError(
                f"handler.handle_{hook} must be an async method (async def handle_{hook}"
                f"(self, server, session, envelope, ...)), as aiosmtpd awaits it; "
                f"{type(value).__name__}.handle_{hook} is not"
            )
    return value


def _parse_authenticator(name: str, value: Any) -> Any:
    if value is None:
        return None
    if not callable(value) or isinstance(value, type):
        raise OptionError(
            f"authenticator must be a function: aiosmtpd's authenticator(server, session, "
            f"envelope, mechanism, auth_data) or auth_callback(mechanism, login, password), "
            f"not {value!r}"
        )
    try:
        count = len(inspect.signature(value).parameters)
    except (TypeError, ValueError):
        count = -1
    if count not in (3, 5):
        raise OptionError(
            f"authenticator must take 5 arguments (server, session, envelope, mechanism, "
            f"auth_data: aiosmtpd's authenticator) or 3 (mechanism, login, password: its "
            f"auth_callback); {value!r} takes {count if count >= 0 else 'an unknown number'}"
        )
    return value


def run_flag(name: str) -> str:
    """The plugin's command-line flag of a run setting: ``max_size`` -> ``--smtp-max-size``."""
    return "--smtp-" + name.replace("_", "-")


def ini_key(name: str) -> str:
    """The ini key of a run setting: ``max_size`` -> ``smtp_max_size``."""
    return "smtp_" + name


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """One server option as the schema describes it: everything the generated places need."""

    name: str
    """The keyword, ``max_size``: the CLI argument is ``--max-size``."""
    default: Any
    """The value when the option is not given."""
    help: str
    """What the option does, one sentence or two."""
    valid: str
    """The values it accepts, in words (also the text forms, for the CLI and ini files)."""
    parse: Callable[[str, Any], Any] = dataclasses.field(repr=False, compare=False)
    """``parse(name, value) -> value``: validate and convert (text allowed), or ``OptionError``."""
    setting: bool = False
    """Also a run setting: ``--smtp-NAME`` and the ini key ``smtp_NAME`` give the base value."""
    python_only: bool = False
    """A Python object (a handler, a function): never text, so not a ``serve`` argument."""

    @property
    def plain_help(self) -> str:
        """Help and valid values for a terminal: ``help (valid; default X)``."""
        text = f"{self.help} ({self.valid}; default {self.default_text})"
        return text.replace("`", "")

    @property
    def default_text(self) -> str:
        """The default as it is written in Python."""
        if isinstance(self.default, tuple):
            return "(" + ", ".join(f'"{item}"' for item in self.default) + ")"
        if isinstance(self.default, str):
            return f'"{self.default}"'
        return repr(self.default)


_BOOL = "bool (text: `true/false`, `yes/no`, `on/off`, `1/0`)"


def _option(
    default: Any,
    parse: Callable[[str, Any], Any],
    help: str,
    valid: str,
    *,
    setting: bool = False,
    python_only: bool = False,
) -> Any:
    spec = {
        "help": help,
        "valid": valid,
        "parse": parse,
        "setting": setting,
        "python_only": python_only,
    }
    return dataclasses.field(default=default, metadata={"spec": spec})


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Validated options of an :class:`~pytest_smtp.SMTPServer` (hashable: fixtures cache on it).

    The fields are the schema (:meth:`schema`): build instances with :meth:`build`, which
    validates every value and accepts text as from the CLI or an ini file.
    """

    host: str = _option(
        "127.0.0.1",
        _parse_host,
        "address to bind (keep it on loopback)",
        "an IP address",
        setting=True,
    )
    port: int = _option(
        0,
        _parse_port,
        "port to bind (leave it at 0)",
        "a port number from 0 to 65535; `0` = chosen by the kernel",
    )
    hostname: str = _option(
        "smtp.pytest-smtp.test",
        _parse_hostname,
        "name in the greeting and EHLO reply, and in the TLS certificate",
        "a plain ASCII host name, no spaces",
        setting=True,
    )
    tls: TLSMode | None = _option(  # noqa: RUF009 -- a frozen field spec, built once
        None,
        _parse_tls,
        "offer STARTTLS, or TLS from the first byte",
        '`None`, `"starttls"`, `"implicit"` (text: `none`, `starttls`, `implicit`)',
        setting=True,
    )
    require_tls: bool = _option(
        False,
        parse_bool,
        "MAIL and AUTH before STARTTLS get `530 5.7.0 Must issue a STARTTLS command first`; "
        "needs `tls`",
        _BOOL,
    )
    auth: tuple[tuple[str, str], ...] | Literal["any"] | None = _option(
        None,
        _parse_stored_auth,
        "offer AUTH; check credentials, or accept any",
        '`None`, `"any"`, `{user: password}` (text form `"user:pw,user2:pw2"`)',
    )
    auth_mechanisms: tuple[str, ...] = _option(
        DEFAULT_AUTH_MECHANISMS,
        _parse_mechanisms,
        "mechanisms offered, in this order",
        "any of `PLAIN`, `LOGIN`, `CRAM-MD5`, `XOAUTH2` (a list, or text separated by "
        "spaces or commas)",
    )
    require_auth: bool = _option(
        False,
        parse_bool,
        "MAIL before AUTH gets `530 5.7.0 Authentication required`; needs `auth`",
        _BOOL,
    )
    auth_require_tls: bool = _option(
        True,
        parse_bool,
        "AUTH not offered before TLS; AUTH in the clear gets `538 5.7.11`. With `auth` and no "
        "`tls`, must be `False`",
        _BOOL,
        setting=True,
    )
    max_size: int | None = _option(
        33_554_432,
        _parse_max_size,
        "largest message accepted, advertised in `SIZE`; `MAIL ... SIZE=` over it or a larger "
        "message gets `552 5.3.4`",
        "bytes, a whole number ≥ 0 (suffix `K`/`KiB`/`M`/`MiB` allowed in text); `0` or `None` "
        "= no limit",
        setting=True,
    )
    max_recipients: int = _option(
        1000,
        _parse_count,
        "RCPT beyond it gets `452 4.5.3 Too many recipients`",
        "a whole number ≥ 1",
    )
    smtputf8: bool = _option(
        True,
        parse_bool,
        "advertise and accept `SMTPUTF8` (internationalised addresses)",
        _BOOL,
    )
    dsn: bool = _option(
        True,
        parse_bool,
        "advertise `DSN` and accept `RET ENVID NOTIFY ORCPT` as sent (RFC 3461); `False` models "
        "a hop without DSN: those parameters get `555 5.5.4`",
        _BOOL,
    )
    timeout: float = _option(
        300.0,
        positive_seconds,
        "idle timeout of a connection: `421 4.4.2` and close after that long without a byte "
        "from the client (a slow but flowing DATA upload is never cut off), checked every "
        "tenth of it (at most every second), so up to that much later. Not the wait timeout "
        "(`--smtp-wait-timeout`)",
        "seconds, a number > 0",
    )
    proxy_protocol: bool = _option(
        False,
        parse_bool,
        "expect a PROXY protocol header (HAProxy's, version 1 or 2) before the greeting, as "
        "behind a load balancer (Postfix's `smtpd_upstream_proxy_protocol = haproxy`): it is "
        "recorded as `session.proxy`; a connection that does not begin with a valid one gets "
        '`421 4.3.0` and is closed, as on Postfix. With `tls="implicit"` the header comes '
        "first, in the clear",
        _BOOL,
    )
    strict_line_endings: bool = _option(
        False,
        parse_bool,
        "bare CR or LF in the message gets `550 5.5.2`; when off, the message is accepted and "
        "the bare line endings are recorded in `message.defects`",
        _BOOL,
    )
    handler: Any = _option(  # noqa: RUF009 -- a frozen field spec, built once
        None,
        _parse_handler,
        "an aiosmtpd handler: its async `handle_HELO`/`EHLO`/`MAIL`/`RCPT`/`DATA`/`RSET`/`NOOP`/"
        "`QUIT`/`VRFY`/`AUTH` hooks are called with aiosmtpd `Session`/`Envelope` objects after "
        "the fault rules, and their replies sent (docs/how-to/migrate.md)",
        "`None` or an object, from Python only",
        python_only=True,
    )
    authenticator: Any = _option(  # noqa: RUF009 -- a frozen field spec, built once
        None,
        _parse_authenticator,
        "decides AUTH PLAIN/LOGIN credentials instead of `auth`, with aiosmtpd's conventions: "
        "`authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult` or "
        "`auth_callback(mechanism, login, password) -> bool`",
        "`None` or a function, from Python only",
        python_only=True,
    )

    @functools.cached_property
    def offers_auth(self) -> bool:
        """True when AUTH is configured: by ``auth``, by ``authenticator``, or by a handler's
        own ``auth_NAME`` mechanisms."""
        return bool(self.mechanisms)

    @functools.cached_property
    def mechanisms(self) -> tuple[str, ...]:
        """The AUTH mechanisms offered, in order: ``auth_mechanisms`` (when ``auth`` or
        ``authenticator`` is set), then the handler's own (:func:`handler_mechanisms`).
        Computed once: the options are frozen (and so is what a handler class offers)."""
        own: tuple[str, ...] = ()
        if self.auth is not None or self.authenticator is not None:
            own = self.auth_mechanisms
        return own + tuple(m for m in handler_mechanisms(self.handler) if m not in own)

    authenticate: bool = _option(
        False,
        parse_bool,
        "verify each accepted message as a receiving MX would, against the fake DNS (DKIM, SPF, "
        "DMARC, ARC): the verdicts on `message.auth`, an `Authentication-Results` field on the "
        "stored copies; needs the `auth` extra and `dns` (the fixtures give `smtp_dns`)",
        _BOOL,
        setting=True,
    )
    enforce_dmarc: bool = _option(
        False,
        parse_bool,
        "act on the sender's DMARC policy as a receiving MX does (implies `authenticate`): a "
        "message failing DMARC under `p=reject` gets `550 5.7.1` and is not accepted (a relay "
        "bounces it), under `p=quarantine` it is accepted and filed into each recipient's "
        "`Junk` folder",
        _BOOL,
        setting=True,
    )
    strict: bool = _option(
        False,
        parse_bool,
        "under pytest, a test fails at teardown when mail it captured has lint errors "
        "(`pytest_smtp.quality.lint`), listed in the failure and the report",
        _BOOL,
        setting=True,
    )

    @property
    def verifies(self) -> bool:
        """True when each accepted message is verified (``authenticate`` or
        ``enforce_dmarc``)."""
        return self.authenticate or self.enforce_dmarc

    @property
    def auth_table(self) -> dict[str, str] | Literal["any"] | None:
        """``auth`` as the user gave it: ``{user: password}``, ``"any"`` or ``None``."""
        if self.auth is None or self.auth == "any":
            return self.auth
        return dict(self.auth)

    @classmethod
    def schema(cls) -> tuple[OptionSpec, ...]:
        """Every option, in order, with its default, help, valid values and parser."""
        return tuple(
            OptionSpec(name=f.name, default=f.default, **f.metadata["spec"])
            for f in dataclasses.fields(cls)
        )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every option name."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def build(cls, base: ServerOptions | None = None, **options: Any) -> ServerOptions:
        """Validate ``options`` on top of ``base`` (values may be text, as from the CLI or an
        ini file); :class:`OptionError` names the option and what would be right."""
        valid = cls.names()
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise OptionError(
                f"unknown SMTP server option(s) {', '.join(map(repr, unknown))}; "
                f"valid options: {', '.join(valid)}"
            )
        start = base or cls()
        values = {
            spec.name: spec.parse(spec.name, options.get(spec.name, getattr(start, spec.name)))
            for spec in cls.schema()
        }
        result = cls(**values)
        if result.require_tls and result.tls is None:
            raise OptionError("require_tls=True needs tls='starttls' or tls='implicit'")
        if result.authenticator is not None:
            if result.auth is not None:
                raise OptionError(
                    "give auth (a table or 'any') or an authenticator function, not both"
                )
            if "CRAM-MD5" in result.auth_mechanisms:
                chosen = "auth_mechanisms" in options
                if chosen or result.auth_mechanisms != DEFAULT_AUTH_MECHANISMS:
                    raise OptionError(
                        "an authenticator checks a login and a password: CRAM-MD5 sends no "
                        "password; give auth_mechanisms=('PLAIN', 'LOGIN') (or XOAUTH2)"
                    )
                result = dataclasses.replace(result, auth_mechanisms=("PLAIN", "LOGIN"))
        if result.require_auth and not result.offers_auth:
            raise OptionError(
                "require_auth=True needs auth='any', an auth={user: password} table or an "
                "authenticator"
            )
        if result.auth_require_tls and result.offers_auth and result.tls is None:
            raise OptionError(
                "auth without TLS: AUTH is refused in the clear (auth_require_tls=True, as RFC "
                "4954 says); give tls='starttls' or tls='implicit', or auth_require_tls=False"
            )
        return result


def options_table() -> str:
    """The server options as a markdown table (the one in ``docs/reference/options.md``)."""
    lines = ["| option | default | valid values | meaning |", "|---|---|---|---|"]
    for spec in ServerOptions.schema():
        lines.append(f"| `{spec.name}` | `{spec.default_text}` | {spec.valid} | {spec.help} |")
    return "\n".join(lines) + "\n"


def options_docstring() -> str:
    """The server options as a reST list, for docstrings (``SMTPServer``'s)."""
    lines = []
    for spec in ServerOptions.schema():
        text = f"{spec.help} ({spec.valid}).".replace("`", "``")
        lines.append(f"- ``{spec.name}`` = ``{spec.default_text}``: {text}")
    return "\n".join(lines)


def marker_help() -> str:
    """The ``smtp`` marker's line in ``pytest --markers``."""
    return (
        "smtp(**options): run the test against an SMTP server with these options ("
        + ", ".join(ServerOptions.names())
        + "); see docs/reference/options.md"
    )
