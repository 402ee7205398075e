"""aiosmtpd handlers on the capturing server: the ``handler`` and ``authenticator`` options.

An aiosmtpd handler is an object with async ``handle_<VERB>(server, session, envelope, ...)``
hooks. :class:`HandlerBridge` keeps one aiosmtpd :class:`~aiosmtpd.smtp.Session` per
connection and one :class:`~aiosmtpd.smtp.Envelope` per transaction in step with the
connection's own records, calls the hooks with aiosmtpd's signatures, and turns what they
return into replies:

- a reply string (``"250 OK"``, ``"550 5.1.1 No such user"``, lines joined by CRLF) is sent;
- :data:`aiosmtpd.smtp.MISSING` means "do the default": the server's own reply, and for
  ``MAIL``/``RCPT`` the address added to the envelope, exactly as aiosmtpd does;
- ``handle_EHLO(server, session, envelope, hostname, responses)`` gets the EHLO lines and
  returns the lines to send (the 4-argument form of aiosmtpd < 1.3 returns one more line).

The envelope is what gets delivered: a recipient a ``handle_RCPT`` rewrote (it appended
another address) is the recipient of the captured message and of the maildrop, while the
transaction keeps what the client sent and the reply it got. A 2xx answer always leaves the
address in the envelope (a handler that returns ``"250 OK"`` without appending gets it added):
nothing accepted is dropped silently.

A hook that raises, when the handler has ``async handle_exception(error)``, gets that
method's reply string, as on aiosmtpd (the handler took charge: nothing is reported). Without
it, where aiosmtpd has a known bug, the server keeps its own behaviour: ``451 4.3.0`` and a
reset transaction (aiosmtpd answers ``500`` with the exception text and keeps the envelope),
and the error is reported with the test. This module never imports pytest.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import re
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import MISSING, AuthResult, Envelope, LoginPassword, Session

from ..mail import Reply

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..mail import Message

__all__ = ["HandlerBridge", "HandlerReplyError", "parse_status"]

_LINE = re.compile(r"([2-5][0-9][0-9])(?:([ -])(.*))?\Z", re.DOTALL)
_ENHANCED = re.compile(r"([245]\.[0-9]{1,3}\.[0-9]{1,3}) ")


class HandlerReplyError(ValueError):
    """A hook returned something that is not a reply (the message says what it returned)."""


def parse_status(status: object, hook: str) -> Reply:
    """An aiosmtpd status string (``"550 5.1.1 No such user"``, multiline joined by CRLF) as a
    :class:`~pytest_smtp.Reply` whose wire form is the same text."""
    if not isinstance(status, str) or not status:
        raise HandlerReplyError(
            f"{hook} returned {status!r}; an aiosmtpd hook returns a reply string such as "
            f"'250 OK' or '550 5.1.1 No such user', or MISSING for the default"
        )
    lines = status.replace("\r\n", "\n").rstrip("\n").split("\n")
    code: int | None = None
    enhanced: str | None = None
    texts = []
    for index, line in enumerate(lines):
        match = _LINE.match(line)
        if match is None or (code is not None and int(match.group(1)) != code):
            raise HandlerReplyError(
                f"{hook} returned {status!r}; each line must start with the same 3-digit "
                f"reply code (200-599), then a space or '-', then the text"
            )
        code = int(match.group(1))
        text = match.group(3) or ""
        if index == 0:
            found = _ENHANCED.match(text + " ")
            if found and int(found.group(1)[0]) == code // 100:
                enhanced = found.group(1)
        if enhanced is not None and text.startswith(enhanced):
            text = text[len(enhanced) :].lstrip(" ")
        texts.append(text)
    assert code is not None
    return Reply(code, "\n".join(texts), enhanced)


class HandlerBridge:
    """One connection's side of an aiosmtpd handler; passed to the hooks as ``server``.

    Hooks may read :attr:`hostname`, :attr:`session` and :attr:`envelope`, and ``await
    server.push(status)`` to send a reply of their own, as on aiosmtpd's ``SMTP``.
    """

    def __init__(
        self,
        handler: Any,
        authenticator: Callable[..., Any] | None,
        *,
        hostname: str,
        peer: tuple[str, int],
        send: Callable[[Reply], None],
    ) -> None:
        self.handler = handler
        self.authenticator = authenticator
        self.hostname = hostname
        """The server's name, as in the greeting (aiosmtpd's ``SMTP.hostname``)."""
        self.session = Session(asyncio.get_running_loop())
        """The aiosmtpd session of this connection."""
        self.session.peer = peer  # type: ignore[assignment]  # aiosmtpd stores the tuple
        self.envelope = Envelope()
        """The aiosmtpd envelope of the current transaction (a fresh one at each MAIL)."""
        self._send = send
        self._auth_result: AuthResult | None = None
        self._pushed = ""  # continuation lines pushed, waiting for their last line
        self._readline: Callable[[], Awaitable[bytes]] | None = None  # while auth_NAME runs

    async def push(self, status: str) -> None:
        """Send ``status`` now, as aiosmtpd's ``SMTP.push`` does; continuation lines
        (``"250-..."``) go out with the reply that completes them."""
        text = self._pushed + status
        if text.rstrip("\r\n").rsplit("\n", 1)[-1][3:4] == "-":
            self._pushed = text.rstrip("\r\n") + "\r\n"
            return
        self._pushed = ""
        self._send(parse_status(text, "push"))

    async def proxy(self, raw: bytes) -> bool:
        """The PROXY header ``raw`` as aiosmtpd reads it: ``session.proxy_data`` is
        aiosmtpd's own ``ProxyData`` (parsed by aiosmtpd), then ``handle_PROXY(server,
        session, envelope, proxy_data)`` decides: a false result (or ``MISSING``) closes the
        connection. Without the hook the header is accepted (aiosmtpd closes there)."""
        from aiosmtpd.proxy_protocol import get_proxy

        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        data = await get_proxy(reader)
        self.session.proxy_data = data
        hook = getattr(self.handler, "handle_PROXY", None) if self.handler else None
        if hook is None:
            return True
        status = await hook(self, self.session, self.envelope, data)
        return status is not MISSING and bool(status)

    async def _call(self, command: str, *args: Any) -> Reply | None:
        hook = getattr(self.handler, f"handle_{command}", None) if self.handler else None
        if hook is None:
            return None
        try:
            status = await hook(self, self.session, self.envelope, *args)
        except Exception as error:
            on_error = getattr(self.handler, "handle_exception", None)
            if on_error is None:
                raise  # the server's own answer: 451 4.3.0, reported with the test
            # aiosmtpd's contract: the handler turns its own exception into the reply.
            status = await on_error(error)
            return parse_status(status, "handle_exception")
        if status is MISSING:
            return None
        pushed, self._pushed = self._pushed, ""
        if isinstance(status, str):
            status = pushed + status
        return parse_status(status, f"handle_{command}")

    # -- session ---------------------------------------------------------------------------
    def reset(self) -> None:
        """A fresh envelope (a new transaction, RSET, HELO/EHLO, after DATA)."""
        self.envelope = Envelope()

    async def helo(self, hostname: str) -> Reply | None:
        """``handle_HELO``; the default records the name in the session."""
        self.reset()
        self.session.extended_smtp = False
        reply = await self._call("HELO", hostname)
        if reply is None:
            self.session.host_name = hostname
        return reply

    async def ehlo(self, hostname: str, lines: list[str]) -> Reply | None:
        """``handle_EHLO`` with the EHLO lines (``"250-..."``) it may replace."""
        self.reset()
        self.session.extended_smtp = True
        hook = getattr(self.handler, "handle_EHLO", None) if self.handler else None
        if hook is None:
            self.session.host_name = hostname
            return None
        result: Any
        responses = [f"250-{line}" for line in lines[:-1]] + [f"250 {lines[-1]}"]
        if len(inspect.signature(hook).parameters) == 4:  # aiosmtpd's old form
            status = await hook(self, self.session, self.envelope, hostname)
            responses[-1] = responses[-1].replace("250 ", "250-", 1)
            result = [*responses, status]
        else:
            result = await hook(self, self.session, self.envelope, hostname, responses)
        if result is MISSING:
            return None
        if isinstance(result, list):
            return parse_status("\r\n".join(map(str, result)), "handle_EHLO")
        return parse_status(result, "handle_EHLO")

    def tls_started(self, info: dict[str, Any]) -> None:
        """STARTTLS or implicit TLS: aiosmtpd's ``session.ssl`` and a new session state."""
        self.session.ssl = info
        self.session.host_name = None
        self.session.extended_smtp = False
        self.reset()

    # -- the transaction -------------------------------------------------------------------
    async def mail(self, address: str, options: list[str]) -> Reply | None:
        """``handle_MAIL``; the default (or a 2xx that left it unset) fills the envelope."""
        self.reset()
        self.envelope.smtp_utf8 = any(o.upper() == "SMTPUTF8" for o in options)
        reply = await self._call("MAIL", address, list(options))
        if reply is None or (reply.code < 300 and self.envelope.mail_from is None):
            self.envelope.mail_from = address
            self.envelope.mail_options.extend(options)
        return reply

    async def rcpt(self, address: str, options: list[str]) -> Reply | None:
        """``handle_RCPT``; the default (or a 2xx that added no address) appends ``address``."""
        before = len(self.envelope.rcpt_tos)
        reply = await self._call("RCPT", address, list(options))
        if reply is None or (reply.code < 300 and len(self.envelope.rcpt_tos) == before):
            self.envelope.rcpt_tos.append(address)
            self.envelope.rcpt_options.extend(options)
        return reply

    def paths(self, mail_from: str, rcpt_tos: list[str]) -> tuple[str, list[str]]:
        """The sender and recipients to deliver to: the envelope as the hooks left it."""
        envelope = self.envelope
        sender = envelope.mail_from if envelope.mail_from is not None else mail_from
        return sender, list(envelope.rcpt_tos) or rcpt_tos

    async def data(self, message: Message) -> Reply | None:
        """``handle_DATA`` with ``envelope.content`` = ``original_content`` = the message."""
        self.envelope.content = message.raw
        self.envelope.original_content = message.raw
        try:
            return await self._call("DATA")
        finally:
            self.reset()

    async def command(self, command: str, *args: Any) -> Reply | None:
        """``handle_RSET``/``NOOP``/``QUIT``/``VRFY``/``AUTH``: a reply, or None for ours."""
        if command == "RSET":
            self.reset()
        return await self._call(command, *args)

    # -- AUTH ------------------------------------------------------------------------------
    def checker(self, mechanism: str) -> Callable[[str, str], bool]:
        """The credential check of ``mechanism`` through :attr:`authenticator`."""
        assert self.authenticator is not None
        authenticator = self.authenticator
        self._auth_result = None

        def check(user: str, password: str) -> bool:
            data = LoginPassword(user.encode("utf-8"), password.encode("utf-8"))
            if len(inspect.signature(authenticator).parameters) == 3:  # auth_callback
                result = AuthResult(success=bool(authenticator(mechanism, *data)), handled=False)
            else:
                found = authenticator(self, self.session, self.envelope, mechanism, data)
                if isinstance(found, AuthResult):
                    result = found
                else:
                    result = AuthResult(success=bool(found), handled=False, auth_data=data)
            if result.success and result.auth_data is None:
                result.auth_data = data
            self._auth_result = result
            return bool(result.success)

        return check

    async def run_mechanism(
        self, attribute: str, args: list[str], readline: Callable[[], Awaitable[bytes]]
    ) -> tuple[Reply | None, str | None]:
        """Run the handler's own ``auth_NAME(server, args)`` method, as aiosmtpd does: it may
        ``await server.challenge_auth(...)`` for each exchange and returns an ``AuthResult``
        (or the older forms: ``None`` when it replied itself, ``MISSING``/``False`` for bad
        credentials, anything else for success). Returns the reply to send (None when the
        method sent its own) and the login on success (``""`` when the mechanism has none)."""
        self._readline = readline
        try:
            result = await getattr(self.handler, attribute)(self, args)
        finally:
            self._readline = None
        invalid = Reply(535, "Authentication credentials invalid", "5.7.8")
        success = Reply(235, "Authentication successful", "2.7.0")
        if isinstance(result, AuthResult):
            if not result.success:
                if result.handled:
                    return None, None
                return (
                    parse_status(result.message, attribute) if result.message else invalid
                ), None
            self.session.authenticated = True
            self.session.auth_data = result.auth_data
            login = getattr(result.auth_data, "login", None)
            self.session.login_data = login
            reply = parse_status(result.message, attribute) if result.message else success
            return reply, _text(login)
        if result is None:
            return None, None
        if result is MISSING or result is False:
            return invalid, None
        self.session.authenticated = True
        self.session.login_data = result
        return success, _text(result)

    async def challenge_auth(
        self,
        challenge: str | bytes,
        encode_to_b64: bool = True,
        log_client_response: bool = False,
    ) -> Any:
        """aiosmtpd's ``SMTP.challenge_auth`` for an ``auth_NAME`` method: send ``334`` and
        ``challenge`` (base64 unless ``encode_to_b64=False``), return the client's answer
        decoded, or ``MISSING`` after answering ``501`` to a ``*`` or bad base64."""
        readline = self._readline
        if readline is None:
            raise RuntimeError(
                "challenge_auth() is for a handler's auth_NAME method, while it runs"
            )
        data = challenge.encode("utf-8") if isinstance(challenge, str) else challenge
        text = (base64.b64encode(data) if encode_to_b64 else data).decode("ascii")
        self._send(Reply(334, text))
        line = (await readline()).strip()
        if line == b"*":
            self._send(Reply(501, "Auth aborted", "5.7.0"))
            return MISSING
        try:
            return base64.b64decode(line, validate=True)
        except binascii.Error:
            self._send(Reply(501, "Can't decode base64", "5.5.2"))
            return MISSING

    def authenticated(self, success: bool) -> Reply | None:
        """Record the outcome in the session; the ``AuthResult.message`` reply, if one."""
        result = self._auth_result
        self._auth_result = None
        if success:
            self.session.authenticated = True
            if result is not None:
                self.session.auth_data = result.auth_data
        if result is not None and result.message:
            return parse_status(result.message, "authenticator")
        return None


def _text(login: object) -> str:
    """A login as the session records it: bytes decoded, ``""`` when there is none."""
    if login is None:
        return ""
    if isinstance(login, bytes):
        return login.decode("utf-8", "replace")
    return str(login)
