"""The server options: one schema, one name per concept.

The same keyword means the same thing in ``SMTPServer(...)``, the ``smtp`` marker, the factory
fixture and the ``--smtp-NAME`` / ``smtp_NAME`` ini settings. Validation lives here once; a bad
value raises :class:`OptionError` (a ``ValueError``) naming what would be right.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

__all__ = [
    "AUTH_MECHANISMS",
    "DEFAULT_AUTH_MECHANISMS",
    "OptionError",
    "ServerOptions",
    "parse_bool",
]

#: Every mechanism the server implements.
AUTH_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2")
#: Offered when ``auth_mechanisms`` is not given.
DEFAULT_AUTH_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")

TLSMode = Literal["starttls", "implicit"]


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


def _parse_count(name: str, value: Any) -> int:
    number = _parse_size(name, value, allow_none=False)
    if not number:
        raise OptionError(f"{name} must be 1 or more, not {value!r}")
    return number


def _parse_float(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OptionError(f"{name} must be a number of seconds, not {value!r}") from None
    if not number > 0:
        raise OptionError(f"{name} must be more than 0 seconds, not {value!r}")
    return number


def _parse_auth(value: Any) -> dict[str, str] | Literal["any"] | None:
    if value is None or value == "":
        return None
    if value == "any":
        return "any"
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


def _parse_mechanisms(value: Any) -> tuple[str, ...]:
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


def _parse_tls(value: Any) -> TLSMode | None:
    if value is None or (isinstance(value, str) and value.lower() in ("", "none", "off", "no")):
        return None
    if isinstance(value, str) and value.lower() in ("starttls", "implicit"):
        return value.lower()  # type: ignore[return-value]
    raise OptionError(f"tls must be None, 'starttls' or 'implicit', not {value!r}")


def _parse_hostname(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in "\r\n\0 \t") or not text.isascii():
        raise OptionError(
            f"hostname must be a plain ASCII host name such as 'mx.test', not {value!r}"
        )
    return text


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Validated options of an :class:`~pytest_smtp.SMTPServer` (hashable: fixtures cache on it)."""

    host: str = "127.0.0.1"
    port: int = 0
    hostname: str = "smtp.pytest-smtp.test"
    tls: TLSMode | None = None
    require_tls: bool = False
    auth: tuple[tuple[str, str], ...] | Literal["any"] | None = None
    auth_mechanisms: tuple[str, ...] = DEFAULT_AUTH_MECHANISMS
    require_auth: bool = False
    auth_require_tls: bool = True
    max_size: int | None = 33_554_432
    max_recipients: int = 1000
    smtputf8: bool = True
    dsn: bool = True
    timeout: float = 300.0
    strict_line_endings: bool = False

    @property
    def auth_table(self) -> dict[str, str] | Literal["any"] | None:
        """``auth`` as the user gave it: ``{user: password}``, ``"any"`` or ``None``."""
        if self.auth is None or self.auth == "any":
            return self.auth
        return dict(self.auth)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every option name."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def build(cls, base: ServerOptions | None = None, **options: Any) -> ServerOptions:
        """Validate ``options`` (values may be text, as from the CLI or an ini file)."""
        valid = cls.names()
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise OptionError(
                f"unknown SMTP server option(s) {', '.join(map(repr, unknown))}; "
                f"valid options: {', '.join(valid)}"
            )
        values: dict[str, Any] = dataclasses.asdict(base or cls())
        values.update(options)
        auth = _parse_auth(values["auth"] if "auth" in options else (base or cls()).auth_table)
        result = cls(
            host=str(values["host"]),
            port=int(values["port"]),
            hostname=_parse_hostname(values["hostname"]),
            tls=_parse_tls(values["tls"]),
            require_tls=parse_bool("require_tls", values["require_tls"]),
            auth=tuple(sorted(auth.items())) if isinstance(auth, dict) else auth,
            auth_mechanisms=_parse_mechanisms(values["auth_mechanisms"]),
            require_auth=parse_bool("require_auth", values["require_auth"]),
            auth_require_tls=parse_bool("auth_require_tls", values["auth_require_tls"]),
            max_size=_parse_size("max_size", values["max_size"], allow_none=True) or None,
            max_recipients=_parse_count("max_recipients", values["max_recipients"]),
            smtputf8=parse_bool("smtputf8", values["smtputf8"]),
            dsn=parse_bool("dsn", values["dsn"]),
            timeout=_parse_float("timeout", values["timeout"]),
            strict_line_endings=parse_bool("strict_line_endings", values["strict_line_endings"]),
        )
        if result.require_tls and result.tls is None:
            raise OptionError("require_tls=True needs tls='starttls' or tls='implicit'")
        if result.require_auth and result.auth is None:
            raise OptionError(
                "require_auth=True needs auth='any' or an auth={user: password} table"
            )
        if result.auth_require_tls and result.auth is not None and result.tls is None:
            raise OptionError(
                "auth without TLS: AUTH is refused in the clear (auth_require_tls=True, as RFC "
                "4954 says); give tls='starttls' or tls='implicit', or auth_require_tls=False"
            )
        return result
