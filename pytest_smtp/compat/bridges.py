"""The incumbents' fixture objects, rebuilt on :class:`~pytest_smtp.SMTPServer` (no pytest here).

- :class:`SmtpdFix`: smtpdfix's ``smtpd`` (``hostname``, ``port``, ``messages``, ``config``
  with its ``SMTPD_*`` environment variables; a config change restarts the server, as there).
- :class:`LocalServerSMTP`: pytest-localserver's ``smtpserver`` (``addr``, ``outbox`` whose
  messages carry ``details.peer/.mailfrom/.rcpttos``).

Messages are ``email.message.Message`` objects as the incumbents give them; the captured
:class:`~pytest_smtp.Message` (envelope, session, transcript) stays on ``.server``.
"""

from __future__ import annotations

import email
import email.message
import os
from collections.abc import Callable
from typing import Any

from ..mail import Message
from ..smtp.options import OptionError, parse_bool
from ..smtp.server import SMTPServer

__all__ = [
    "INCUMBENTS",
    "LocalServerSMTP",
    "MessageDetails",
    "SMTPCompatWarning",
    "SmtpdConfig",
    "SmtpdFix",
    "smtpd_message",
]

#: fixture name -> (the incumbent's plugin name, its package, the pytest_smtp way).
INCUMBENTS = {
    "smtpd": ("smtpd", "smtpdfix", "smtp_server (smtp_server.host/.port/.mailbox)"),
    "smtpserver": (
        "localserver",
        "pytest_localserver",
        "smtp_server (smtp_server.address/.mailbox)",
    ),
}


class SMTPCompatWarning(DeprecationWarning):
    """A compatibility fixture was used: the message names the pytest_smtp fixture to use."""


#: A function that starts a server with these options (the plugin's ``smtp_server_factory``).
Factory = Callable[..., SMTPServer]


def smtpd_message(message: Message) -> email.message.Message:
    """``message`` as aiosmtpd's ``handlers.Message`` (so smtpdfix) gives it: parsed with the
    ``compat32`` policy, with ``X-Peer``, ``X-MailFrom`` and ``X-RcptTo`` headers added."""
    parsed = email.message_from_bytes(message.raw)
    parsed["X-Peer"] = str(message.session.peer)
    parsed["X-MailFrom"] = message.mail_from
    parsed["X-RcptTo"] = ", ".join(message.rcpt_tos)
    return parsed


def _env_bool(name: str, default: str) -> bool:
    try:
        return parse_bool(name, os.environ.get(name, default))
    except OptionError as exc:
        raise OptionError(f"environment variable {exc}") from None


class SmtpdConfig:
    """smtpdfix's ``Config``: read from the ``SMTPD_*`` environment variables; setting an
    attribute restarts the server with the new configuration (as smtpdfix's ``reset``)."""

    _FIELDS = (
        "host",
        "port",
        "login_username",
        "login_password",
        "enforce_auth",
        "auth_require_tls",
        "use_starttls",
        "use_ssl",
        "ready_timeout",
        "ssl_cert_files",
    )

    def __init__(self) -> None:
        self._changed: Callable[[], None] | None = None
        env = os.environ
        self.host: str | None = env.get("SMTPD_HOST")
        self.port: int | None = int(env["SMTPD_PORT"]) if env.get("SMTPD_PORT") else None
        self.login_username: str = env.get("SMTPD_LOGIN_NAME", "user")
        self.login_password: str = env.get("SMTPD_LOGIN_PASSWORD", "password")
        self.enforce_auth: bool = _env_bool("SMTPD_ENFORCE_AUTH", "False")
        self.auth_require_tls: bool = _env_bool("SMTPD_AUTH_REQUIRE_TLS", "True")
        self.use_starttls: bool = _env_bool("SMTPD_USE_STARTTLS", "False")
        self.use_ssl: bool = _env_bool("SMTPD_USE_SSL", "False") or _env_bool(
            "SMTPD_USE_TLS", "False"
        )
        self.ready_timeout: float = float(env.get("SMTPD_READY_TIMEOUT", 10.0))
        self.ssl_cert_files: tuple[str | None, str | None] = (
            env.get("SMTPD_SSL_CERTIFICATE_FILE"),
            env.get("SMTPD_SSL_KEY_FILE"),
        )

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("enforce_auth", "auth_require_tls", "use_starttls", "use_ssl"):
            value = parse_bool(name, value)
        object.__setattr__(self, name, value)
        changed = self.__dict__.get("_changed")
        if changed is not None and name in self._FIELDS:
            changed()

    def server_options(self) -> dict[str, Any]:
        """The :class:`~pytest_smtp.SMTPServer` options this configuration means."""
        options: dict[str, Any] = {"auth_require_tls": self.auth_require_tls}
        if self.host not in (None, "", "localhost"):
            options["host"] = self.host
        if self.port:
            options["port"] = self.port
        if self.use_starttls:
            options.update(tls="starttls", require_tls=True)
        elif self.use_ssl:
            options["tls"] = "implicit"
        # smtpdfix always configures AUTH; aiosmtpd hides it while auth_require_tls holds and
        # there is no TLS. Here the option is left out then (AUTH gets 502, not 538).
        if "tls" in options or not self.auth_require_tls:
            options["auth"] = {self.login_username: self.login_password}
            options["require_auth"] = self.enforce_auth
        elif self.enforce_auth:
            raise OptionError(
                "smtpd.config: enforce_auth needs AUTH, which is not offered without TLS while "
                "auth_require_tls holds; set use_starttls/use_ssl or auth_require_tls=False"
            )
        return options


class _OnServer:
    """An incumbent's fixture object over :attr:`server`, the SMTPServer underneath."""

    server: SMTPServer

    @property
    def hostname(self) -> str:
        """The address to connect to."""
        return self.server.host

    @property
    def port(self) -> int:
        """The port to connect to."""
        return self.server.port


class SmtpdFix(_OnServer):
    """What smtpdfix's ``smtpd`` fixture gives, on a pytest_smtp server (:attr:`server`)."""

    def __init__(self, factory: Factory, config: SmtpdConfig | None = None) -> None:
        self._factory = factory
        self.config = config if config is not None else SmtpdConfig()
        """smtpdfix's ``Config``: changing an attribute restarts the server."""
        self._kept: list[Message] = []
        self.server = factory(**self.config.server_options())
        """The :class:`~pytest_smtp.SMTPServer` underneath: the way forward."""
        object.__setattr__(self.config, "_changed", self._restart)

    def _restart(self) -> None:
        old = self.server
        self._kept += list(old.mailbox)  # smtpdfix keeps the messages across a reset
        old.stop()
        options = self.config.server_options()
        options.setdefault("port", old.port)  # the same port, as smtpdfix restarts on it
        self.server = self._factory(**options)

    @property
    def messages(self) -> list[email.message.Message]:
        """A copy of the messages received, as ``email.message.Message`` with ``X-MailFrom``,
        ``X-RcptTo`` and ``X-Peer`` headers."""
        return [smtpd_message(m) for m in [*self._kept, *self.server.mailbox]]


class MessageDetails:
    """pytest-localserver's ``message.details``: the envelope of a message."""

    def __init__(self, message: Message) -> None:
        self.peer = message.session.peer
        self.mailfrom = message.mail_from
        self.rcpttos = list(message.rcpt_tos)
        if message.mail_options:
            self.mail_options = list(message.mail_options)


class LocalServerSMTP(_OnServer):
    """What pytest-localserver's ``smtpserver`` fixture gives, on a pytest_smtp server."""

    def __init__(self, server: SMTPServer) -> None:
        self.server = server
        """The :class:`~pytest_smtp.SMTPServer` underneath: the way forward."""

    @property
    def addr(self) -> tuple[str, int]:
        """``(host, port)`` to connect to."""
        return self.server.address

    @property
    def outbox(self) -> list[email.message.Message]:
        """The messages received, as ``email.message.Message`` with ``.details``."""
        result = []
        for message in self.server.mailbox:
            parsed = email.message_from_bytes(message.raw)
            parsed.details = MessageDetails(message)  # type: ignore[attr-defined]
            result.append(parsed)
        return result

    def is_alive(self) -> bool:
        """True while the server runs."""
        return self.server.running

    @property
    def accepting(self) -> bool:
        """True while the server runs."""
        return self.server.running
