"""POP3Server against the stdlib poplib client (and a raw socket where poplib hides the wire)."""

from __future__ import annotations

import base64
import hashlib
import poplib
import random
import socket
import ssl
from collections.abc import Iterator

import pytest

from pytest_smtp.retrieval import common
from pytest_smtp.retrieval.common import SessionLog, mask_words
from pytest_smtp.retrieval.pop3 import POP3Server
from pytest_smtp.smtp.options import OptionError
from pytest_smtp.smtp.tls import TestCA, default_ca
from pytest_smtp.store import MailStore

BOB = "bob@example.org"
USERS = {BOB: "s3cret", "carol@example.org": "pw"}


def message(n: int, body: str = "Hello") -> bytes:
    return f"From: a@example.org\r\nTo: {BOB}\r\nSubject: M{n}\r\n\r\n{body} {n}\r\n".encode()


@pytest.fixture
def store() -> MailStore:
    return MailStore()


@pytest.fixture
def pop3(store: MailStore) -> Iterator[POP3Server]:
    with POP3Server(store, auth=USERS) as server:
        yield server
    assert server.errors == []


def login(server: POP3Server, user: str = BOB, password: str = "s3cret") -> poplib.POP3:
    client = poplib.POP3(*server.address, timeout=5)
    client.user(user)
    client.pass_(password)
    return client


class Wire:
    """A raw POP3 connection, to see exactly what goes over the socket."""

    def __init__(self, server: POP3Server) -> None:
        self.sock = socket.create_connection(server.address, timeout=5)
        self.file = self.sock.makefile("rb")
        self.greeting = self.line()

    def line(self) -> bytes:
        return self.file.readline()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, line: str) -> bytes:
        self.send(line.encode() + b"\r\n")
        return self.line()

    def multiline(self) -> list[bytes]:
        lines = []
        while (line := self.line()) != b".\r\n":
            assert line, "connection closed inside a multi-line response"
            lines.append(line)
        return lines

    def close(self) -> None:
        self.file.close()
        self.sock.close()


# -- greeting and CAPA ----------------------------------------------------------------------------
def test_greeting_carries_an_apop_banner(pop3: POP3Server) -> None:
    client = poplib.POP3(*pop3.address, timeout=5)
    welcome = client.getwelcome()
    assert welcome.startswith(b"+OK smtp.pytest-smtp.test POP3 server ready <")
    assert welcome.endswith(b"@smtp.pytest-smtp.test>")
    client.quit()


def test_capa_before_and_after_login(pop3: POP3Server) -> None:
    client = poplib.POP3(*pop3.address, timeout=5)
    before = client.capa()
    assert {"TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"} <= set(before)
    assert before["SASL"] == ["PLAIN"]
    assert "STLS" not in before  # no tls option
    client.user(BOB)
    client.pass_("s3cret")
    after = client.capa()
    assert "USER" not in after
    assert "TOP" in after
    client.quit()


# -- logins ---------------------------------------------------------------------------------------
def test_user_pass_with_a_table(pop3: POP3Server, store: MailStore) -> None:
    store.deliver(BOB, message(1))
    client = login(pop3, user="bob@EXAMPLE.ORG")
    assert client.stat() == (1, len(message(1)))
    client.quit()
    (session,) = pop3.sessions
    assert (session.user, session.mechanism, session.end) == (BOB, "USER", "quit")


@pytest.mark.parametrize(
    ("user", "password"), [(BOB, "wrong"), ("nobody@example.org", "s3cret"), (BOB, "")]
)
def test_bad_credentials_get_the_auth_response_code(
    pop3: POP3Server, user: str, password: str
) -> None:
    client = poplib.POP3(*pop3.address, timeout=5)
    client.user(user)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
        client.pass_(password)
    # the session stays usable: a correct login afterwards works
    client.user(BOB)
    assert client.pass_("s3cret").startswith(b"+OK")
    client.quit()
    assert pop3.sessions[0].failed_logins == 1


def test_pass_without_user_and_commands_in_the_wrong_state(pop3: POP3Server) -> None:
    wire = Wire(pop3)
    assert wire.command("PASS x") == b"-ERR Send USER first\r\n"
    assert wire.command("STAT").startswith(b"-ERR Log in first")
    assert wire.command("NOOP").startswith(b"-ERR Log in first")
    assert wire.command("USER").startswith(b"-ERR USER needs a user name")
    assert wire.command("FROB 1").startswith(b"-ERR Unknown command 'FROB'")
    assert wire.command("").startswith(b"-ERR Unknown command")
    wire.command(f"USER {BOB}")
    assert wire.command("pass s3cret").startswith(b"+OK")  # commands are case-insensitive
    assert wire.command("USER x").startswith(b"-ERR Already logged in")
    assert wire.command("NOOP") == b"+OK\r\n"
    assert wire.command("QUIT").startswith(b"+OK")
    wire.close()


def test_any_auth_accepts_every_login(store: MailStore) -> None:
    store.deliver("whoever@example.net", message(1))
    with POP3Server(store) as server:
        client = login(server, "whoever@example.net", "anything at all")
        assert client.stat()[0] == 1
        client.quit()
        client = poplib.POP3(*server.address, timeout=5)
        assert client.apop("whoever@example.net", "ignored").startswith(b"+OK")
        client.quit()


def test_apop_with_a_table(pop3: POP3Server, store: MailStore) -> None:
    store.deliver(BOB, message(1))
    client = poplib.POP3(*pop3.address, timeout=5)
    assert client.apop(BOB, "s3cret").startswith(b"+OK bob@example.org has 1 messages")
    client.quit()
    client = poplib.POP3(*pop3.address, timeout=5)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
        client.apop(BOB, "wrong")
    client.quit()
    assert pop3.sessions[0].mechanism == "APOP"


def test_apop_digest_is_computed_over_the_banner(pop3: POP3Server) -> None:
    wire = Wire(pop3)
    banner = wire.greeting.split()[-1].decode()
    digest = hashlib.md5((banner + "pw").encode()).hexdigest()
    assert wire.command("APOP carol@example.org nothex").startswith(b"-ERR Usage: APOP")
    assert wire.command(f"APOP carol@example.org {digest.upper()}").startswith(b"+OK")
    wire.command("QUIT")
    wire.close()


def plain(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def test_auth_plain_initial_response_and_continuation(pop3: POP3Server) -> None:
    client = poplib.POP3(*pop3.address, timeout=5)
    assert client._shortcmd("AUTH PLAIN " + plain(BOB, "s3cret")).startswith(b"+OK")
    client.quit()
    client = poplib.POP3(*pop3.address, timeout=5)
    assert client._shortcmd("AUTH PLAIN") == b"+ "
    assert client._shortcmd(plain("carol@example.org", "pw", "carol@example.org")).startswith(
        b"+OK"
    )
    client.quit()
    assert [s.mechanism for s in pop3.sessions] == ["PLAIN", "PLAIN"]


def test_auth_plain_failures(pop3: POP3Server) -> None:
    wire = Wire(pop3)
    wire.send(b"AUTH\r\n")
    assert wire.line() == b"+OK Supported mechanisms follow\r\n"
    assert wire.multiline() == [b"PLAIN\r\n"]
    assert wire.command("AUTH CRAM-MD5").startswith(b"-ERR Unsupported SASL mechanism")
    assert wire.command("AUTH PLAIN " + plain(BOB, "bad")).startswith(b"-ERR [AUTH]")
    assert wire.command("AUTH PLAIN !!!").startswith(b"-ERR [AUTH] the SASL PLAIN response")
    assert wire.command("AUTH PLAIN =").startswith(b"-ERR [AUTH]")
    assert wire.command("AUTH PLAIN " + plain(BOB, "s3cret", "carol@example.org")).startswith(
        b"-ERR [AUTH] Authorization identity"
    )
    assert wire.command("AUTH PLAIN") == b"+ \r\n"
    assert wire.command("*") == b"-ERR Authentication cancelled\r\n"
    assert wire.command("QUIT").startswith(b"+OK")
    wire.close()
    assert pop3.sessions[0].failed_logins == 4


# -- transaction commands -------------------------------------------------------------------------
def test_stat_list_uidl(pop3: POP3Server, store: MailStore) -> None:
    raws = [store.deliver(BOB, message(n)).raw for n in range(1, 4)]
    folder = store.maildrop(BOB).inbox
    client = login(pop3)
    assert client.stat() == (3, sum(map(len, raws)))
    resp, listing, _ = client.list()
    assert resp == f"+OK 3 messages ({sum(map(len, raws))} octets)".encode()
    assert listing == [f"{i} {len(r)}".encode() for i, r in enumerate(raws, 1)]
    assert client.list(2) == f"+OK 2 {len(raws[1])}".encode()
    _, uids, _ = client.uidl()
    assert uids == [f"{i} {folder.uidvalidity}.{i}".encode() for i in (1, 2, 3)]
    assert client.uidl(3) == f"+OK 3 {folder.uidvalidity}.3".encode()
    for bad, reason in [("4", "No such message 4"), ("0", "No such message 0"), ("x", "Invalid")]:
        with pytest.raises(poplib.error_proto, match=reason):
            client.list(bad)
    client.quit()


def test_uidl_is_stable_across_sessions_and_deletions(pop3: POP3Server, store: MailStore) -> None:
    for n in range(1, 4):
        store.deliver(BOB, message(n))
    client = login(pop3)
    first = dict(line.split() for line in client.uidl()[1])
    client.dele(1)
    client.quit()
    client = login(pop3)
    second = dict(line.split() for line in client.uidl()[1])
    client.quit()
    assert list(second.values()) == [first[b"2"], first[b"3"]]


def test_retr_gives_exact_octets(pop3: POP3Server, store: MailStore) -> None:
    stored = store.deliver(BOB, message(1))
    client = login(pop3)
    resp, lines, octets = client.retr(1)
    assert resp == f"+OK {stored.size} octets".encode()
    assert octets == stored.size
    assert b"".join(line + b"\r\n" for line in lines) == stored.raw
    client.quit()


def test_dot_stuffing_round_trip(pop3: POP3Server, store: MailStore) -> None:
    body = b".\r\n..\r\n.leading dot\r\nmiddle . dot\r\n.\r\n"
    stored = store.deliver(BOB, b"Subject: dots\r\n\r\n" + body)
    client = login(pop3)
    _, lines, octets = client.retr(1)
    assert b"".join(line + b"\r\n" for line in lines) == stored.raw
    assert octets == stored.size
    client.quit()
    # and on the wire every line starting with a dot got one more
    wire = Wire(pop3)
    wire.command(f"USER {BOB}")
    wire.command("PASS s3cret")
    assert wire.command("RETR 1") == f"+OK {stored.size} octets\r\n".encode()
    assert wire.multiline()[2:] == [
        b"..\r\n",
        b"...\r\n",
        b"..leading dot\r\n",
        b"middle . dot\r\n",
        b"..\r\n",
    ]
    wire.command("QUIT")
    wire.close()


def test_message_without_final_line_break_is_terminated(pop3: POP3Server, store: MailStore) -> None:
    stored = store.deliver(BOB, b"Subject: x\r\n\r\nno newline at end")
    wire = Wire(pop3)
    wire.command(f"USER {BOB}")
    wire.command("PASS s3cret")
    assert wire.command("RETR 1") == f"+OK {stored.size} octets\r\n".encode()
    assert wire.multiline() == [b"Subject: x\r\n", b"\r\n", b"no newline at end\r\n"]
    wire.command("QUIT")
    wire.close()


def test_top(pop3: POP3Server, store: MailStore) -> None:
    store.deliver(BOB, b"Subject: t\r\nX-A: 1\r\n\r\nl1\r\n.l2\r\nl3\r\n")
    store.deliver(BOB, b"Subject: header only\r\n")
    client = login(pop3)
    assert client.top(1, 0)[1] == [b"Subject: t", b"X-A: 1", b""]
    assert client.top(1, 2)[1] == [b"Subject: t", b"X-A: 1", b"", b"l1", b".l2"]
    assert client.top(1, 99)[1] == [b"Subject: t", b"X-A: 1", b"", b"l1", b".l2", b"l3"]
    assert client.top(2, 5)[1] == [b"Subject: header only"]
    for args in ("TOP 1", "TOP 1 -1", "TOP 1 x"):
        with pytest.raises(poplib.error_proto, match="Usage: TOP"):
            client._shortcmd(args)
    with pytest.raises(poplib.error_proto, match="No such message"):
        client.top(3, 0)
    client.quit()
    assert all(not m.seen for m in store.maildrop(BOB).inbox)  # TOP never marks \Seen


def test_dele_rset_and_numbers_that_do_not_shift(pop3: POP3Server, store: MailStore) -> None:
    sizes = [store.deliver(BOB, message(n, "x" * n)).size for n in range(1, 4)]
    client = login(pop3)
    assert client.dele(2) == b"+OK Message 2 deleted"
    with pytest.raises(poplib.error_proto, match="Message 2 is deleted"):
        client.dele(2)
    with pytest.raises(poplib.error_proto, match="Message 2 is deleted"):
        client.retr(2)
    assert client.stat() == (2, sizes[0] + sizes[2])
    assert client.list()[1] == [f"1 {sizes[0]}".encode(), f"3 {sizes[2]}".encode()]
    assert client.retr(3)[1][-1] == b"x 3".replace(b"x", b"xxx")
    assert client.rset() == f"+OK Maildrop has 3 messages ({sum(sizes)} octets)".encode()
    assert client.stat() == (3, sum(sizes))
    client.quit()
    assert len(store.maildrop(BOB).inbox) == 3


def test_deletions_apply_at_quit_only(pop3: POP3Server, store: MailStore) -> None:
    for n in range(1, 4):
        store.deliver(BOB, message(n))
    client = login(pop3)
    client.dele(1)
    client.dele(3)
    assert len(store.maildrop(BOB).inbox) == 3  # still there before QUIT
    assert client.quit() == (b"+OK smtp.pytest-smtp.test POP3 server signing off (1 messages left)")
    assert [m.subject for m in store.maildrop(BOB).inbox] == ["M2"]


def test_a_dropped_connection_deletes_nothing_and_unlocks(
    pop3: POP3Server, store: MailStore
) -> None:
    for n in range(1, 3):
        store.deliver(BOB, message(n))
    client = login(pop3)
    client.retr(1)
    client.dele(1)
    client.dele(2)
    client.close()  # no QUIT: no UPDATE state
    (session,) = pop3.wait_idle(timeout=5)
    assert session.end == "disconnect"
    inbox = store.maildrop(BOB).inbox
    assert len(inbox) == 2
    assert not any(m.seen for m in inbox)
    client = login(pop3)  # the lock was released
    assert client.stat()[0] == 2
    client.quit()


def test_retrieved_messages_are_marked_seen_at_quit(pop3: POP3Server, store: MailStore) -> None:
    for n in range(1, 4):
        store.deliver(BOB, message(n))
    client = login(pop3)
    client.retr(1)
    client.retr(2)
    client.dele(2)
    client.retr(3)
    client.rset()  # forgets the retrievals and the deletion so far
    client.retr(1)
    assert not store.maildrop(BOB).inbox.messages[0].seen
    client.quit()
    assert [m.seen for m in store.maildrop(BOB).inbox] == [True, False, False]


def test_the_maildrop_is_fixed_at_login(pop3: POP3Server, store: MailStore) -> None:
    store.deliver(BOB, message(1))
    client = login(pop3)
    store.deliver(BOB, message(2))
    assert client.stat()[0] == 1
    client.dele(1)
    client.quit()
    assert [m.subject for m in store.maildrop(BOB).inbox] == ["M2"]


def test_other_folders_are_untouched(pop3: POP3Server, store: MailStore) -> None:
    store.deliver(BOB, message(1))
    store.deliver(BOB, message(2), folder="Archive")
    client = login(pop3)
    assert client.stat()[0] == 1
    client.dele(1)
    client.quit()
    assert len(store.maildrop(BOB).folder("Archive")) == 1


# -- the maildrop lock ----------------------------------------------------------------------------
def test_second_login_to_the_same_maildrop_is_in_use(pop3: POP3Server) -> None:
    first = login(pop3)
    second = poplib.POP3(*pop3.address, timeout=5)
    second.user(BOB)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[IN-USE\]"):
        second.pass_("s3cret")
    other = login(pop3, "carol@example.org", "pw")  # another maildrop is free
    other.quit()
    first.quit()
    second.user(BOB)
    assert second.pass_("s3cret").startswith(b"+OK")
    second.quit()


def test_rpop_is_not_supported(pop3: POP3Server) -> None:
    client = poplib.POP3(*pop3.address, timeout=5)
    client.user(BOB)
    with pytest.raises(poplib.error_proto, match="Unknown command 'RPOP'"):
        client.rpop(BOB)
    client.quit()


def test_garbage_input_gets_err_replies_and_no_server_error(
    pop3: POP3Server, store: MailStore
) -> None:
    store.deliver(BOB, message(1))
    rng = random.Random(9)
    wire = Wire(pop3)
    wire.command(f"USER {BOB}")
    wire.command("PASS s3cret")
    words = [b"LIST", b"UIDL", b"RETR", b"TOP", b"DELE", b"STAT", b"APOP", b"AUTH", b"\xff\xfe"]
    for _ in range(200):
        args = bytes(rng.choice(b" 0123456789-x\xc3\x00") for _ in range(rng.randrange(6)))
        line = rng.choice(words) + b" " + args
        wire.send(line + b"\r\n")
        reply = wire.line()
        assert reply.startswith((b"+OK", b"-ERR")), (line, reply)
        parts = line.split()
        listing = parts[0] in (b"LIST", b"UIDL", b"AUTH") and len(parts) == 1
        if reply.startswith(b"+OK") and (listing or parts[0] in (b"RETR", b"TOP")):
            wire.multiline()
    wire.command("QUIT")
    wire.close()
    assert pop3.wait_idle(5)[0].end == "quit"


# -- pipelining, limits, timeouts -----------------------------------------------------------------
def test_pipelined_commands_are_answered_in_order(pop3: POP3Server, store: MailStore) -> None:
    store.deliver(BOB, message(1))
    wire = Wire(pop3)
    wire.send(f"USER {BOB}\r\nPASS s3cret\r\nSTAT\r\nNOOP\r\nQUIT\r\n".encode())
    replies = [wire.line() for _ in range(5)]
    assert [r[:3] for r in replies] == [b"+OK"] * 5
    assert replies[2] == f"+OK 1 {len(message(1))}\r\n".encode()
    assert wire.line() == b""  # closed after QUIT
    wire.close()


def test_an_overlong_line_ends_the_session(pop3: POP3Server) -> None:
    wire = Wire(pop3)
    wire.send(b"NOOP " + b"x" * 10000 + b"\r\n")
    assert wire.line().startswith(b"-ERR Line too long")
    assert wire.line() == b""
    wire.close()


def test_idle_timeout_is_an_autologout(store: MailStore) -> None:
    with POP3Server(store, timeout=0.2) as server:
        wire = Wire(server)
        assert wire.line() == b"-ERR [SYS/TEMP] Autologout: idle for too long\r\n"
        assert wire.line() == b""
        wire.close()
        assert server.wait_idle(5)[0].end == "timeout"


def test_stop_with_a_client_connected_is_prompt(store: MailStore) -> None:
    server = POP3Server(store).start()
    client = login(server, "x@example.org", "y")
    server.stop()
    with pytest.raises((poplib.error_proto, OSError, EOFError)):
        client.stat()
    client.close()


# -- transcript -----------------------------------------------------------------------------------
def test_transcript_masks_every_secret(pop3: POP3Server) -> None:
    client = poplib.POP3(*pop3.address, timeout=5)
    client.user(BOB)
    client.pass_("s3cret")
    client.quit()
    client = poplib.POP3(*pop3.address, timeout=5)
    client.apop("carol@example.org", "pw")
    client.quit()
    client = poplib.POP3(*pop3.address, timeout=5)
    client._shortcmd("AUTH PLAIN " + plain(BOB, "s3cret"))
    client.quit()
    client = poplib.POP3(*pop3.address, timeout=5)
    client._shortcmd("AUTH PLAIN")
    client._shortcmd(plain(BOB, "s3cret"))
    client.quit()
    text = "\n".join(pop3.transcript)
    assert "#1 C: PASS ****" in text
    assert "#2 C: APOP carol@example.org ****" in text
    assert "#3 C: AUTH PLAIN ****" in text
    assert "#4 C: ****" in text
    assert "s3cret" not in text
    assert plain(BOB, "s3cret") not in text
    assert "#1 C: USER bob@example.org" in text
    assert str(pop3.sessions[0]).startswith("POP3 session #1 from 127.0.0.1:")
    pop3.reset()
    assert pop3.sessions == []
    assert pop3.transcript == []


def test_retr_is_summarised_in_the_transcript(pop3: POP3Server, store: MailStore) -> None:
    stored = store.deliver(BOB, message(1))
    client = login(pop3)
    client.retr(1)
    client.quit()
    lines = pop3.sessions[0].transcript
    index = lines.index("C: RETR 1")
    assert lines[index + 1 : index + 4] == [
        f"S: +OK {stored.size} octets",
        f"S: [{stored.size} octets of message data]",
        "S: .",
    ]


# -- TLS ------------------------------------------------------------------------------------------
def test_implicit_tls(store: MailStore) -> None:
    store.deliver(BOB, message(1))
    with POP3Server(store, tls="implicit", auth=USERS) as server:
        client = poplib.POP3_SSL(*server.address, context=default_ca().client_context())
        client.user(BOB)
        client.pass_("s3cret")
        assert client.stat()[0] == 1
        assert "STLS" not in client.capa()
        client.quit()
        (session,) = server.sessions
        assert session.tls
        assert session.tls_mode == "implicit"
        assert session.tls_version in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("legacy", [False, True], ids=["start_tls", "py310-path"])
def test_stls(store: MailStore, monkeypatch: pytest.MonkeyPatch, legacy: bool) -> None:
    # py310-path runs the Python 3.10 upgrade code (loop.start_tls) on this Python too.
    monkeypatch.setattr(common, "_FORCE_LEGACY_TLS_UPGRADE", legacy)
    store.deliver(BOB, message(1))
    with POP3Server(store, tls="starttls", require_tls=True, auth=USERS) as server:
        client = poplib.POP3(*server.address, timeout=5)
        capa = client.capa()
        assert "STLS" in capa
        assert "USER" not in capa  # no plaintext login offered before TLS
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext"):
            client.user(BOB)
        client.stls(default_ca().client_context())
        assert "STLS" not in client.capa()
        assert "USER" in client.capa()
        with pytest.raises(poplib.error_proto, match="TLS active"):
            client._shortcmd("STLS")
        client.user(BOB)
        client.pass_("s3cret")
        _, lines, _ = client.retr(1)
        assert lines[-1] == b"Hello 1"
        client.quit()
        (session,) = server.sessions
        assert (session.tls, session.tls_mode, session.user) == (True, "starttls", BOB)
        assert server.errors == []


def test_require_tls_refuses_plaintext_login(store: MailStore) -> None:
    with POP3Server(store, tls="starttls", require_tls=True) as server:
        wire = Wire(server)
        for command in ("USER bob", "APOP bob " + "0" * 32, "AUTH PLAIN " + plain("b", "p")):
            assert wire.command(command).startswith(b"-ERR [AUTH] Plaintext authentication")
        wire.command("QUIT")
        wire.close()


def test_stls_not_offered_without_tls_option(pop3: POP3Server) -> None:
    client = poplib.POP3(*pop3.address, timeout=5)
    with pytest.raises(poplib.error_proto, match="STLS is not offered"):
        client._shortcmd("STLS")  # poplib.stls() would refuse on its own (no STLS in CAPA)
    client.quit()


def test_stls_after_login_is_refused(store: MailStore) -> None:
    with POP3Server(store, tls="starttls") as server:
        client = login(server, "x@example.org", "y")
        with pytest.raises(poplib.error_proto, match="only allowed before login"):
            client._shortcmd("STLS")
        client.quit()


def test_plaintext_pipelined_after_stls_is_discarded(store: MailStore) -> None:
    with POP3Server(store, tls="starttls") as server:
        wire = Wire(server)
        # "USER" sneaked in after STLS must not be read as a command once TLS is up.
        wire.send(b"STLS\r\nUSER mallory@example.org\r\n")
        assert wire.line() == b"+OK Begin TLS negotiation\r\n"
        wire.file.close()
        context = default_ca().client_context()
        with context.wrap_socket(wire.sock, server_hostname="localhost") as tls_sock:
            tls_file = tls_sock.makefile("rb")
            tls_sock.sendall(b"PASS whatever\r\n")
            assert tls_file.readline() == b"-ERR Send USER first\r\n"
            tls_sock.sendall(b"QUIT\r\n")
            assert tls_file.readline().startswith(b"+OK")
            tls_file.close()
        (session,) = server.wait_idle(5)
        assert any("discarded" in line for line in session.transcript)


def test_failed_stls_handshake_ends_the_session(store: MailStore) -> None:
    with POP3Server(store, tls="starttls") as server:
        wire = Wire(server)
        assert wire.command("STLS") == b"+OK Begin TLS negotiation\r\n"
        wire.send(b"this is not a TLS ClientHello\r\n" * 4)
        assert wire.line() == b""
        wire.close()
        (session,) = server.wait_idle(5)
        assert session.end == "tls-failed"
        assert server.errors == []


def test_custom_ssl_context_is_used_with_a_deprecation_warning(store: MailStore) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert, key = default_ca().cert_files("pop.example.test")
    context.load_cert_chain(cert, key)
    with pytest.deprecated_call(match=r"ssl_context=\.\.\.\) is deprecated: pass ca="):
        server = POP3Server(store, tls="implicit", ssl_context=context)
    with server:
        assert server.ssl_context() is context
        client = poplib.POP3_SSL(*server.address, context=default_ca().client_context())
        client.quit()


def test_ca_issues_the_certificate_as_on_smtp(store: MailStore, tmp_path: object) -> None:
    own = TestCA()
    with POP3Server(store, tls="implicit", ca=own, hostname="pop.example.test") as server:
        assert server.ca is own
        # A client trusting only the own CA verifies the server's leaf for its hostname ...
        context = own.client_context()
        client = poplib.POP3_SSL(server.host, server.port, context=context, timeout=5)
        client.quit()
        # ... and one trusting only the process's default CA does not.
        with pytest.raises(ssl.SSLCertVerificationError):
            poplib.POP3_SSL(server.host, server.port, context=default_ca().client_context())


# -- options --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"tls": "ssl"}, OptionError, "tls must be None, 'starttls' or 'implicit'"),
        ({"require_tls": True}, OptionError, "require_tls=True needs tls="),
        ({"require_tls": "maybe"}, OptionError, "require_tls must be true or false"),
        ({"auth": "none"}, OptionError, "auth must be 'any'"),
        ({"auth": {"bob": 1}}, OptionError, "auth must map user names"),
        ({"auth": {"": "pw"}}, OptionError, "'' is not a maildrop address"),
        ({"hostname": "two words"}, OptionError, "hostname must be"),
        ({"timeout": 0}, OptionError, "timeout must be more than 0 seconds"),
        ({"ca": "ca.pem", "tls": "implicit"}, TypeError, "ca must be a pytest_smtp.TestCA"),
        ({"host": "localhost"}, ValueError, "IP address"),
    ],
)
def test_bad_options_are_named(options: dict[str, object], error: type, match: str) -> None:
    with pytest.raises(error, match=match), POP3Server(MailStore(), **options):  # type: ignore[arg-type]
        pass


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"ssl_context": object(), "tls": "implicit"}, TypeError, "ssl.SSLContext"),
        ({"ssl_context": ssl.create_default_context()}, OptionError, "tls is None"),
        (
            {"ssl_context": ssl.create_default_context(), "ca": default_ca(), "tls": "implicit"},
            OptionError,
            "not both",
        ),
    ],
)
def test_bad_deprecated_ssl_context_is_named(
    options: dict[str, object], error: type, match: str
) -> None:
    with pytest.deprecated_call(), pytest.raises(error, match=match):
        POP3Server(MailStore(), **options)  # type: ignore[arg-type]


def test_bad_store_is_named() -> None:
    with pytest.raises(TypeError, match="MailStore"):
        POP3Server({})  # type: ignore[arg-type]


def test_own_store_by_default() -> None:
    with POP3Server() as server:
        server.store.deliver("a@example.org", message(1))
        client = login(server, "a@example.org", "x")
        assert client.stat()[0] == 1
        client.quit()
        assert "POP3Server 127.0.0.1:" in repr(server)


# -- shared helpers (retrieval/common.py) ---------------------------------------------------------
def test_login_check_compares_addresses_as_the_store_does() -> None:
    server = POP3Server(auth={"Bob@Example.ORG": "pw"})
    assert server.auth == {"Bob@example.org": "pw"}
    assert server.check_login("Bob@EXAMPLE.org", "pw")
    assert not server.check_login("bob@example.org", "pw")  # the local part keeps its case
    assert not server.check_login("Bob@example.org", "PW")
    assert server.password_of("Bob@example.ORG") == "pw"
    assert server.password_of("carol@example.org") is None
    anyone = POP3Server()
    assert anyone.check_login("x", "")
    assert not anyone.check_login("", "pw")
    assert anyone.password_of("bob@example.org") is None


def test_mask_words() -> None:
    assert mask_words("PASS my secret", 1) == "PASS ****"
    assert mask_words("a1 LOGIN bob pw", 3) == "a1 LOGIN bob ****"
    assert mask_words("PASS", 1) == "PASS"


def test_tls_context_is_the_test_ca_leaf_for_the_hostname() -> None:
    server = POP3Server(tls="starttls", require_tls=True)
    assert server.ca is default_ca()
    assert server.ssl_context() is default_ca().server_context("smtp.pytest-smtp.test")


def test_session_log_wait_idle_times_out_naming_open_sessions() -> None:
    log = SessionLog("POP3")
    record = log.start(("127.0.0.1", 1234))
    with pytest.raises(TimeoutError, match=r"1 POP3 session\(s\) still open .* #1"):
        log.wait_idle(0.01)
    log.finish(record, "quit")
    assert log.wait_idle(0.01) == [record]
    assert log.transcript == ["#1 -- session ended: quit"]
