"""The same aiosmtpd handlers under aiosmtpd's own Controller and under SMTPServer(handler=...):
for the same client dialogue (a raw socket script) the replies come in the same order with the
same codes, and every reply a handler wrote is the same text on both servers."""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult, Envelope, LoginPassword, Session

from pytest_smtp import SMTPServer
from pytest_smtp.engine import bind_socket


class BoundController(Controller):
    """aiosmtpd's Controller on a socket bound here: its own port=0 is broken in 1.4.6."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        self._sock = bind_socket("127.0.0.1", 0)
        port = self._sock.getsockname()[1]
        super().__init__(handler, hostname="127.0.0.1", port=port, **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


class Rules:
    """Reject a domain at RCPT, rewrite a recipient, refuse DATA by content, count messages."""

    def __init__(self) -> None:
        self.count = 0
        self.envelopes: list[tuple[str | None, list[str], bytes]] = []
        self.sessions: list[Session] = []

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.endswith("@blocked.test"):
            return "550 5.7.1 Recipient domain blocked by policy"
        if address == "sales@example.test":
            envelope.rcpt_tos.append("alice@example.test")  # an alias
            return "250 2.1.5 Rewritten to alice@example.test"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        if b"viagra" in envelope.content.lower():
            return "554 5.7.1 Message refused: content"
        self.count += 1
        self.sessions.append(session)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return f"250 Message {self.count} accepted"

    async def handle_VRFY(
        self, server: Any, session: Session, envelope: Envelope, address: str
    ) -> Any:
        if address == "alice@example.test":
            return "250 Alice <alice@example.test>"
        return MISSING


def authenticator(
    server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = auth_data.login == b"alice" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)


def auth_callback(mechanism: str, login: bytes, password: bytes) -> bool:
    return login == b"alice" and password == b"s3cret"


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


MESSAGE = "Subject: hello\r\n\r\nNothing to see.\r\n."
SPAM = "Subject: offer\r\n\r\nCheap VIAGRA\r\n."
DIALOGUE = [
    "EHLO client.test",
    f"AUTH PLAIN {plain('alice', 'wrong')}",
    f"AUTH PLAIN {plain('alice', 's3cret')}",
    "MAIL FROM:<bob@sender.test>",
    "RCPT TO:<carol@blocked.test>",
    "RCPT TO:<sales@example.test>",
    "RCPT TO:<dave@example.test>",
    "DATA",
    MESSAGE,
    "MAIL FROM:<bob@sender.test>",
    "RCPT TO:<dave@example.test>",
    "DATA",
    SPAM,
    "VRFY alice@example.test",
    "VRFY nobody@example.test",
    "NOOP",
    "RSET",
    "QUIT",
]
# Replies the handlers wrote: the same text on both servers.
HANDLER_LINES = [
    "550 5.7.1 Recipient domain blocked by policy",
    "250 2.1.5 Rewritten to alice@example.test",
    "250 Message 1 accepted",
    "554 5.7.1 Message refused: content",
    "250 Alice <alice@example.test>",
]


def read_reply(stream: Any) -> list[str]:
    lines = []
    while True:
        line = stream.readline().decode().rstrip("\r\n")
        assert line, "connection closed before a complete reply"
        lines.append(line)
        if line[3:4] != "-":
            return lines


def converse(address: tuple[str, int], dialogue: list[str]) -> list[list[str]]:
    """Send each line, read one whole reply per line (and the greeting first)."""
    with socket.create_connection(address, timeout=10) as sock:
        stream = sock.makefile("rwb")
        replies = [read_reply(stream)]
        for line in dialogue:
            stream.write(line.encode() + b"\r\n")
            stream.flush()
            replies.append(read_reply(stream))
        return replies


@contextmanager
def under_aiosmtpd(handler: Any, auth: Callable[..., Any]) -> Iterator[tuple[str, int]]:
    key = "authenticator" if auth is authenticator else "auth_callback"
    controller = BoundController(
        handler, server_hostname="mx.test", auth_require_tls=False, **{key: auth}
    )
    controller.start()
    try:
        yield ("127.0.0.1", controller.port)
    finally:
        controller.stop()


@contextmanager
def under_ours(handler: Any, auth: Callable[..., Any]) -> Iterator[SMTPServer]:
    with SMTPServer(
        handler=handler, authenticator=auth, auth_require_tls=False, hostname="mx.test"
    ) as server:
        yield server


def codes(replies: list[list[str]]) -> list[str]:
    return [reply[0][:3] for reply in replies]


@pytest.mark.parametrize("auth", [authenticator, auth_callback], ids=["authenticator", "callback"])
def test_the_same_dialogue_gets_the_same_replies(auth: Callable[..., Any]) -> None:
    theirs_handler, ours_handler = Rules(), Rules()
    with under_aiosmtpd(theirs_handler, auth) as address:
        theirs = converse(address, DIALOGUE)
    with under_ours(ours_handler, auth) as server:
        ours = converse(server.address, DIALOGUE)
        accepted = server.mailbox.one()
    assert codes(ours) == codes(theirs)
    assert codes(ours) == [
        "220", "250", "535", "235", "250", "550", "250", "250", "354", "250",
        "250", "250", "354", "554", "250", "252", "250", "250", "221",
    ]  # fmt: skip
    flat_ours = [line for reply in ours for line in reply]
    flat_theirs = [line for reply in theirs for line in reply]
    for line in HANDLER_LINES:
        assert line in flat_ours and line in flat_theirs
    # The handlers saw the same envelopes: the rewritten recipient, not the alias.
    assert ours_handler.envelopes == theirs_handler.envelopes
    assert ours_handler.envelopes[0][:2] == (
        "bob@sender.test",
        ["alice@example.test", "dave@example.test"],
    )
    assert ours_handler.sessions[0].authenticated and theirs_handler.sessions[0].authenticated
    assert ours_handler.sessions[0].host_name == theirs_handler.sessions[0].host_name
    # What we capture is what the handler delivered to: the envelope as it left it.
    assert accepted.rcpt_tos == ["alice@example.test", "dave@example.test"]
    assert accepted.session.auth_user == "alice"


def test_the_capture_and_the_transaction_log_work_around_the_handler() -> None:
    handler = Rules()
    with under_ours(handler, authenticator) as server:
        converse(server.address, DIALOGUE)
        [auth, first, second] = server.transactions
        assert (auth.stage, auth.outcome, str(auth.reply)) == (
            "auth",
            "rejected",
            "535 5.7.8 Authentication credentials invalid",
        )
        # The transaction keeps what the client sent and the replies it got.
        assert [(r.address, r.reply.code) for r in first.recipients] == [
            ("carol@blocked.test", 550),
            ("sales@example.test", 250),
            ("dave@example.test", 250),
        ]
        assert (first.outcome, str(first.reply)) == ("accepted", "250 Message 1 accepted")
        assert (second.outcome, second.stage) == ("rejected", "eod")
        assert str(second.reply) == "554 5.7.1 Message refused: content"
        # Filed once per delivered recipient: the alias went to alice's maildrop.
        assert len(server.store.maildrop("alice@example.test").messages) == 1
        assert server.store.get("sales@example.test") is None
        assert "S: 550 5.7.1 Recipient domain blocked by policy" in "\n".join(server.transcript)


def test_fault_rules_run_before_the_handler() -> None:
    seen: list[str] = []

    class Recorder:
        async def handle_RCPT(
            self, server: Any, session: Any, envelope: Envelope, address: str, options: Any
        ) -> Any:
            seen.append(address)
            return MISSING

    with SMTPServer(handler=Recorder()) as server:
        server.faults.reject("rcpt", 550, "No such user", match="ghost@example.test")
        replies = converse(
            server.address,
            [
                "EHLO c.test",
                "MAIL FROM:<a@x.test>",
                "RCPT TO:<ghost@example.test>",
                "RCPT TO:<real@example.test>",
                "QUIT",
            ],
        )
    assert codes(replies) == ["220", "250", "250", "550", "250", "221"]
    assert seen == ["real@example.test"]  # the rule answered; the handler never ran


class Raises:
    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address == "boom@x.test":
            envelope.mail_from = address
            raise RuntimeError("handler bug")
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Envelope, address: str, options: Any
    ) -> str:
        envelope.rcpt_tos.append(address)
        return f"250 OK ({len(envelope.rcpt_tos)} recipient(s))"


def test_a_handler_exception_resets_the_transaction_where_aiosmtpd_keeps_it() -> None:
    """aiosmtpd's known bug (DESIGN.md traps): 500 with the exception text, and the envelope
    survives into the next MAIL. We keep ours: 451 4.3.0, a fresh transaction, the error
    reported with the test (server.errors)."""
    dialogue = [
        "EHLO c.test",
        "MAIL FROM:<boom@x.test>",
        "MAIL FROM:<fine@x.test>",
        "RCPT TO:<r@example.test>",
        "QUIT",
    ]
    controller = BoundController(Raises(), server_hostname="mx.test")
    controller.start()
    try:
        theirs = converse(("127.0.0.1", controller.port), dialogue)
    finally:
        controller.stop()
    assert theirs[2][0].startswith("500 Error: (RuntimeError) handler bug")
    assert theirs[3][0] == "503 Error: nested MAIL command"  # the envelope was kept
    with SMTPServer(handler=Raises()) as server:
        ours = converse(server.address, dialogue)
        errors = list(server.errors)
    assert ours[2] == ["451 4.3.0 Internal error, transaction reset"]
    assert ours[3] == ["250 OK"] and ours[4] == ["250 OK (1 recipient(s))"]
    assert len(errors) == 1 and "RuntimeError: handler bug" in errors[0]


class RaisesAndSays(Raises):
    """``handle_exception`` turns the hook's exception into a reply of its own."""

    def __init__(self) -> None:
        self.errors: list[Exception] = []

    async def handle_exception(self, error: Exception) -> str:
        self.errors.append(error)
        return f"451 4.3.0 Try again later ({type(error).__name__} handled)"


def test_handle_exception_gives_the_reply_on_both_servers() -> None:
    dialogue = [
        "EHLO c.test",
        "MAIL FROM:<boom@x.test>",
        "RSET",
        "MAIL FROM:<fine@x.test>",
        "RCPT TO:<r@example.test>",
        "QUIT",
    ]
    theirs_handler = RaisesAndSays()
    controller = BoundController(theirs_handler, server_hostname="mx.test")
    controller.start()
    try:
        theirs = converse(("127.0.0.1", controller.port), dialogue)
    finally:
        controller.stop()
    ours_handler = RaisesAndSays()
    with SMTPServer(handler=ours_handler) as server:
        ours = converse(server.address, dialogue)
        errors = list(server.errors)
        txn = server.transactions.wait_for(2, predicate=lambda t: not t.in_progress)[0]
    said = "451 4.3.0 Try again later (RuntimeError handled)"
    assert theirs[2] == ours[2] == [said]
    assert [r[0][:3] for r in theirs[3:]] == [r[0][:3] for r in ours[3:]]
    assert [r[0][:3] for r in ours[3:]] == ["250", "250", "250", "221"]
    assert [str(e) for e in theirs_handler.errors] == [str(e) for e in ours_handler.errors]
    assert errors == [], "the handler took charge of its exception: nothing to report"
    assert txn.outcome == "deferred" and txn.reply is not None and str(txn.reply) == said


class TokenMechanism:
    """A mechanism of the handler's own (``auth_X__TOKEN`` is ``X-TOKEN``): one challenge,
    the answer must be ``good-token``."""

    async def auth_X__TOKEN(self, server: Any, args: list[str]) -> AuthResult:
        answer = await server.challenge_auth("token, please")
        if answer is MISSING:  # the client sent "*" (server answered 501)
            return AuthResult(success=False, handled=True)
        if answer != b"good-token":
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=LoginPassword(b"token-user", answer))

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        envelope.rcpt_tos.append(address)
        return f"250 OK ({session.login_data!r})"


@pytest.mark.parametrize(
    ("answer", "then"),
    [
        (base64.b64encode(b"good-token").decode(), "MAIL FROM:<a@x.test>"),
        (base64.b64encode(b"bad-token").decode(), "NOOP"),
        ("*", "NOOP"),
        ("not base64!", "NOOP"),
    ],
    ids=["good", "bad", "aborted", "garbled"],
)
def test_a_handler_auth_mechanism_runs_on_both_servers(answer: str, then: str) -> None:
    dialogue = ["EHLO c.test", "AUTH X-TOKEN", answer, then, "RCPT TO:<r@example.test>", "QUIT"]
    controller = BoundController(
        TokenMechanism(), server_hostname="mx.test", auth_require_tls=False
    )
    controller.start()
    try:
        theirs = converse(("127.0.0.1", controller.port), dialogue)
    finally:
        controller.stop()
    with SMTPServer(handler=TokenMechanism(), auth_require_tls=False) as server:
        ours = converse(server.address, dialogue)
        sessions = server.sessions
        errors = list(server.errors)
    assert "250-AUTH X-TOKEN" in ours[1]  # only the handler's mechanism is offered here
    assert any(line.startswith("250-AUTH") and "X-TOKEN" in line for line in theirs[1])
    assert theirs[2] == ours[2] == ["334 " + base64.b64encode(b"token, please").decode()]
    assert theirs[3] == ours[3]
    if answer.startswith(base64.b64encode(b"good").decode()[:4]):
        assert ours[3] == ["235 2.7.0 Authentication successful"]
        assert ours[5] == theirs[5] == ["250 OK (b'token-user')"]
        assert (sessions[0].auth_mechanism, sessions[0].auth_user) == ("X-TOKEN", "token-user")
    else:
        assert sessions[0].auth_user is None
    assert errors == []


def test_bad_handler_mechanisms_are_clear_errors() -> None:
    class NotAsync:
        def auth_X__TOKEN(self, server: Any, args: list[str]) -> bool:
            return True

    class BadName:
        async def auth_X__TOKEN(self, server: Any, args: list[str]) -> bool:
            return True

    BadName.auth_X__TOKEN.__auth_mechanism_name__ = "X TOKEN"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"handler.auth_X__TOKEN must be an async method"):
        SMTPServer(handler=NotAsync(), auth_require_tls=False)
    with pytest.raises(ValueError, match=r"mechanism 'X TOKEN'; a mechanism name is made of"):
        SMTPServer(handler=BadName(), auth_require_tls=False)
    with pytest.raises(ValueError, match=r"auth_require_tls"):
        SMTPServer(handler=TokenMechanism())  # AUTH offered, no TLS: as with auth=


def test_ehlo_hook_replaces_the_lines_in_both_forms() -> None:
    class NewForm:
        async def handle_EHLO(
            self, server: Any, session: Session, envelope: Any, hostname: str, responses: Any
        ) -> list[str]:
            session.host_name = hostname
            return [line for line in responses if "SIZE" not in line]

    class OldForm:
        async def handle_EHLO(
            self, server: Any, session: Session, envelope: Any, hostname: str
        ) -> str:
            session.host_name = hostname
            return "250 X-CUSTOM"

    with SMTPServer(handler=NewForm()) as server:
        [_, ehlo] = converse(server.address, ["EHLO c.test"])
    assert ehlo[0].startswith("250-") and ehlo[-1] == "250 HELP"
    assert not any("SIZE" in line for line in ehlo)
    with SMTPServer(handler=OldForm()) as server:
        [_, ehlo] = converse(server.address, ["EHLO c.test"])
        assert server.sessions[0].helo == "c.test"
    assert ehlo[-2:] == ["250-HELP", "250 X-CUSTOM"]


def test_bad_handlers_and_replies_are_clear_errors() -> None:
    class Sync:
        def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    with pytest.raises(ValueError, match=r"handler.handle_DATA must be an async method"):
        SMTPServer(handler=Sync())
    with pytest.raises(ValueError, match="handler must be an aiosmtpd-style handler object"):
        SMTPServer(handler="module:Handler")
    with pytest.raises(ValueError, match="authenticator must take 5 arguments"):
        SMTPServer(authenticator=lambda user, password: True, auth_require_tls=False)
    with pytest.raises(ValueError, match="not both"):
        SMTPServer(authenticator=auth_callback, auth="any", auth_require_tls=False)
    with pytest.raises(ValueError, match="CRAM-MD5 sends no password"):
        SMTPServer(
            authenticator=auth_callback,
            auth_mechanisms=["PLAIN", "CRAM-MD5"],
            auth_require_tls=False,
        )

    class NoCode:
        async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: str) -> str:
            return "fine"

    with SMTPServer(handler=NoCode()) as server:
        replies = converse(server.address, ["NOOP", "QUIT"])
        errors = list(server.errors)
    assert replies[1] == ["451 4.3.0 Internal error, transaction reset"]
    assert "handle_NOOP returned 'fine'" in errors[0]


def test_push_and_multiline_replies() -> None:
    class Pusher:
        async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: str) -> str:
            await server.push("250-first")
            return "250-second\r\n250 third"

        async def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:
            await server.push("250 pushed")
            return "250 returned"

    with SMTPServer(handler=Pusher()) as server:
        replies = converse(server.address, ["NOOP", "RSET", "QUIT"])
    assert replies[1] == ["250-first", "250-second", "250 third"]
    # A complete reply pushed is sent at once; the returned one follows it (as in aiosmtpd).
    assert replies[2] == ["250 pushed"] and replies[3] == ["250 returned"]
