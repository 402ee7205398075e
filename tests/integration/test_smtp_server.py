"""The capturing server over real sockets, with smtplib and raw sockets as clients."""

from __future__ import annotations

import smtplib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from pytest_smtp import SMTPServer
from pytest_smtp.engine import STOP_TIMEOUT


@pytest.fixture
def server() -> Iterator[SMTPServer]:
    with SMTPServer(timeout=5) as srv:
        yield srv


class Raw:
    """A line-oriented raw socket client for exact protocol checks."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=5)
        self.file = self.sock.makefile("rb")

    def reply(self) -> tuple[int, list[str]]:
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("closed")
            text = line.decode().rstrip("\r\n")
            lines.append(text[4:])
            if text[3:4] != "-":
                return int(text[:3]), lines

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, line: str | bytes) -> tuple[int, list[str]]:
        data = line if isinstance(line, bytes) else line.encode()
        self.send(data + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def raw(server: SMTPServer) -> Iterator[Raw]:
    client = Raw(server.address)
    assert client.reply()[0] == 220
    assert client.cmd("EHLO client.test")[0] == 250
    yield client
    client.close()


def test_smtplib_message_is_captured_with_envelope_and_headers(server: SMTPServer) -> None:
    body = (
        "From: Alice <alice@example.test>\r\nTo: bob@example.test\r\n"
        "Subject: Hello\r\n\r\nHi Bob\r\n"
    )
    with smtplib.SMTP(*server.address) as client:
        refused = client.sendmail(
            "alice@example.test", ["bob@example.test", "carol@example.test"], body
        )
    assert refused == {}
    message = server.mailbox.one()
    assert message.mail_from == "alice@example.test"
    assert message.rcpt_tos == ["bob@example.test", "carol@example.test"]
    assert message.subject == "Hello"
    assert message.text is not None and message.text.strip() == "Hi Bob"
    assert message.raw == body.encode()
    assert message.session.helo is not None
    assert message.session.esmtp is True
    txn = server.transactions[0]
    assert txn.outcome == "accepted" and txn.message is message
    # filed once per recipient into the store
    assert len(server.store.maildrop("bob@example.test").inbox.messages) == 1
    assert len(server.store.maildrop("carol@example.test").inbox.messages) == 1


def test_ehlo_advertises_extensions(raw: Raw, server: SMTPServer) -> None:
    code, lines = raw.cmd("EHLO again.test")
    assert code == 250
    for ext in ("PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN"):
        assert ext in lines
    assert f"SIZE {server.options.max_size}" in lines
    assert not any(line.startswith("AUTH") or line == "STARTTLS" for line in lines)


def test_dsn_parameters_are_accepted_and_kept_as_sent(raw: Raw, server: SMTPServer) -> None:
    assert raw.cmd("MAIL FROM:<a@x.test> RET=hdrs ENVID=Abc123 SIZE=10")[0] == 250
    assert raw.cmd("RCPT TO:<b@y.test> NOTIFY=Success,Failure ORCPT=rfc822;B@y.test")[0] == 250
    assert raw.cmd("DATA")[0] == 354
    assert raw.cmd(b"Subject: x\r\n\r\nbody\r\n.")[0] == 250
    message = server.mailbox.one()
    assert message.mail_options == ["RET=hdrs", "ENVID=Abc123", "SIZE=10"]
    envelope = message.envelope
    assert (envelope.mail_from, envelope.rcpt_tos) == ("a@x.test", ("b@y.test",))
    assert envelope.options_for("b@y.test") == ("NOTIFY=Success,Failure", "ORCPT=rfc822;B@y.test")
    assert server.transactions[0].envelope == envelope
    assert message.rcpt_options == {"b@y.test": ["NOTIFY=Success,Failure", "ORCPT=rfc822;B@y.test"]}


def test_dsn_can_be_turned_off() -> None:
    with SMTPServer(dsn=False) as srv, smtplib.SMTP(*srv.address) as client:
        client.ehlo()
        assert not client.has_extn("dsn")
        assert client.mail("a@x.test", ["RET=HDRS"])[0] == 555
        assert client.mail("a@x.test")[0] == 250
        assert client.rcpt("b@y.test", ["NOTIFY=NEVER"])[0] == 555
        assert client.rcpt("b@y.test")[0] == 250


def test_null_sender_is_empty_string_and_null_recipient_is_refused(
    raw: Raw, server: SMTPServer
) -> None:
    assert raw.cmd("MAIL FROM:<>")[0] == 250
    code, lines = raw.cmd("RCPT TO:<>")
    assert code == 501 and lines[0].startswith("5.1.3")
    assert raw.cmd("RCPT TO:<b@y.test>")[0] == 250
    assert raw.cmd("DATA")[0] == 354
    assert raw.cmd(b"x\r\n.")[0] == 250
    assert server.mailbox.one().mail_from == ""


@pytest.mark.parametrize(
    "line",
    [b"EHLO bad\rname", b"HELO a\x00b", b"MAIL FROM:<a\x00b@x.test>", b"MAIL FROM:<a@x\r.test>"],
)
def test_cr_or_nul_in_helo_or_address_is_501(raw: Raw, server: SMTPServer, line: bytes) -> None:
    code, _ = raw.cmd(line)
    assert code == 501
    # nothing of it reached a session or envelope
    assert all("\x00" not in (s.helo or "") and "\r" not in (s.helo or "") for s in server.sessions)
    assert all(t.mail_from is None for t in server.transactions)


def test_bare_lf_never_ends_a_command_line(raw: Raw, server: SMTPServer) -> None:
    """RFC 5321 §2.3.8: one CRLF line is one command with one reply; LF alone splits nothing."""
    assert raw.cmd("MAIL FROM:<a@x.test>")[0] == 250
    raw.send(b"RCPT TO:<a@x.test>\nRCPT TO:<evil@x.test>\r\nNOOP\r\n")
    assert raw.reply() == (
        501,
        ["5.5.2 Syntax error: bare CR or LF in command line (only CRLF ends a line)"],
    )
    assert raw.reply() == (250, ["2.0.0 OK"])  # the very next reply is the NOOP's
    assert raw.cmd(b"HELO a\nb")[0] == 501
    assert raw.cmd(b"RCPT TO:<b@y.test>\rRCPT TO:<c@y.test>")[0] == 501
    assert raw.cmd("RCPT TO:<b@y.test>")[0] == 250
    assert raw.cmd("DATA")[0] == 354
    assert raw.cmd(b"x\r\n.")[0] == 250
    message = server.mailbox.one()
    assert message.rcpt_tos == ["b@y.test"]
    assert message.session.helo == "client.test"
    # Recorded with the LF made visible, in the session and in the transaction.
    refused = "C: RCPT TO:<a@x.test>\\nRCPT TO:<evil@x.test>"
    assert any(line.endswith(refused) for line in server.transcript)
    assert refused in server.transactions[0].transcript


def test_command_line_length_limits(server: SMTPServer) -> None:
    """512 octets with CRLF (RFC 5321 §4.5.3.1.4); MAIL and RCPT get the SIZE, BODY, SMTPUTF8
    and DSN allowances; over the limit is 500 5.5.2 (5.5.6 on AUTH lines) and the session
    goes on."""
    with smtplib.SMTP(*server.address, timeout=5) as client:
        client.ehlo("client.test")
        assert client.docmd("NOOP", "a" * 505)[0] == 250  # 512 octets
        assert client.docmd("NOOP", "a" * 506) == (500, b"5.5.2 Line too long (limit 512 octets)")
        mail = "FROM:<a@x.test> SIZE=10" + " " * 600 + "BODY=7BIT"  # 5 + 632 + 2 = 639 octets
        assert client.docmd("MAIL", mail)[0] == 250
        rcpt = "TO:<b@y.test> NOTIFY=NEVER" + " " * 1000  # 1,033 octets: over 512 + 500
        assert client.docmd("RCPT", rcpt)[0] == 500
        assert client.docmd("RCPT", "TO:<b@y.test> NOTIFY=NEVER" + " " * 700)[0] == 250
        assert client.noop()[0] == 250
    assert any("over the limit of 1012" in line for line in server.transcript)


@pytest.mark.parametrize(
    "path", ["<@:a@x.test>", "<@r.test,:a@x.test>", "<@r.test,s.test:a@x.test>"]
)
def test_source_route_with_empty_or_bad_hop_is_501(raw: Raw, server: SMTPServer, path: str) -> None:
    code, lines = raw.cmd(f"MAIL FROM:{path}")
    assert code == 501 and "source route" in lines[0], lines
    assert raw.cmd("MAIL FROM:<@r.test,@s.test:a@x.test>")[0] == 250  # a well-formed route
    assert [t.mail_from for t in server.transactions] == [None]


def test_auth_parameter_needs_auth_offered() -> None:
    """RFC 4954 §5: AUTH= is a parameter of the AUTH extension: 555 5.5.4 where AUTH is not
    offered, accepted and kept as sent where it is."""
    with (
        SMTPServer(timeout=5) as plain,
        smtplib.SMTP(*plain.address, timeout=5) as client,
        pytest.raises(smtplib.SMTPSenderRefused) as refused,
    ):
        client.sendmail("a@x.test", ["b@y.test"], b"x\r\n", mail_options=["AUTH=<>"])
    assert (refused.value.smtp_code, refused.value.smtp_error[:6]) == (555, b"5.5.4 ")
    assert len(plain.mailbox) == 0
    with SMTPServer(timeout=5, auth="any", auth_require_tls=False) as offering:
        with smtplib.SMTP(*offering.address, timeout=5) as client:
            client.sendmail("a@x.test", ["b@y.test"], b"x\r\n", mail_options=["AUTH=<>"])
            with pytest.raises(smtplib.SMTPSenderRefused) as bad:
                client.sendmail("a@x.test", ["b@y.test"], b"x\r\n", mail_options=["AUTH=bob"])
            assert bad.value.smtp_code == 501
        assert offering.mailbox.one().mail_options == ["SIZE=3", "AUTH=<>"]


def test_over_size_message_is_552_and_recorded_as_rejected(server: SMTPServer) -> None:
    with SMTPServer(max_size=1000) as small, smtplib.SMTP(*small.address) as client:
        client.ehlo()
        client.mail("a@x.test")  # no SIZE parameter: the limit is found while reading DATA
        client.rcpt("b@y.test")
        code, text = client.data(b"x" * 5000)
        assert (code, text[:5]) == (552, b"5.3.4")
        assert client.noop()[0] == 250  # the connection is still usable
        assert len(small.mailbox) == 0
        txn = small.transactions[0]
        assert (txn.outcome, txn.stage, txn.reply and txn.reply.code) == ("rejected", "eod", 552)


def test_size_parameter_over_limit_is_refused_at_mail(raw: Raw) -> None:
    code, lines = raw.cmd("MAIL FROM:<a@x.test> SIZE=999999999999")
    assert code == 552 and lines[0].startswith("5.3.4")


def test_max_recipients_answers_452(server: SMTPServer) -> None:
    with SMTPServer(max_recipients=2) as srv, smtplib.SMTP(*srv.address) as client:
        refused = client.sendmail("a@x.test", ["1@y.test", "2@y.test", "3@y.test"], "x")
        assert refused == {"3@y.test": (452, b"4.5.3 Too many recipients")}
        assert srv.mailbox.one().rcpt_tos == ["1@y.test", "2@y.test"]
        assert [r.reply.code for r in srv.transactions[0].recipients] == [250, 250, 452]


def test_dot_stuffing_and_raw_bytes_kept(server: SMTPServer) -> None:
    body = b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n"
    with smtplib.SMTP(*server.address) as client:
        client.sendmail("a@x.test", ["b@y.test"], body)
    assert server.mailbox.one().raw == body


def test_pipelined_commands_in_one_packet(raw: Raw, server: SMTPServer) -> None:
    raw.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n")
    assert [raw.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
    raw.send(b"Subject: p\r\n\r\nhi\r\n.\r\nNOOP\r\n")
    assert raw.reply()[0] == 250
    assert raw.reply()[0] == 250
    assert server.mailbox.one().rcpt_tos == ["b@y.test", "c@y.test"]


def test_client_vanishing_mid_data_leaves_aborted_transaction(server: SMTPServer) -> None:
    client = Raw(server.address)
    client.reply()
    client.cmd("EHLO c.test")
    client.cmd("MAIL FROM:<a@x.test>")
    client.cmd("RCPT TO:<b@y.test>")
    assert client.cmd("DATA")[0] == 354
    client.send(b"Subject: cut\r\n\r\npartial")
    client.close()
    [txn] = server.transactions.wait_for(outcome="aborted", timeout=5)
    assert txn.stage == "data"
    assert len(server.mailbox) == 0


def test_rset_and_new_transaction_do_not_inherit_envelope(raw: Raw, server: SMTPServer) -> None:
    raw.cmd("MAIL FROM:<old@x.test>")
    raw.cmd("RCPT TO:<old@y.test>")
    assert raw.cmd("RSET")[0] == 250
    raw.cmd("MAIL FROM:<new@x.test>")
    raw.cmd("RCPT TO:<new@y.test>")
    raw.cmd("DATA")
    raw.cmd(b"x\r\n.")
    message = server.mailbox.one()
    assert (message.mail_from, message.rcpt_tos) == ("new@x.test", ["new@y.test"])
    assert [t.outcome for t in server.transactions] == ["aborted", "accepted"]


def test_bare_lf_is_recorded_as_defect_by_default(raw: Raw, server: SMTPServer) -> None:
    raw.cmd("MAIL FROM:<a@x.test>")
    raw.cmd("RCPT TO:<b@y.test>")
    raw.cmd("DATA")
    code, _ = raw.cmd(b"Subject: s\r\n\r\nline one\nline two\r\n.")
    assert code == 250
    assert any("bare LF" in d for d in server.mailbox.one().defects)


def test_stored_copies_are_crlf_and_a_clean_message_shares_its_bytes(
    raw: Raw, server: SMTPServer
) -> None:
    # A message with a bare LF goes through the store's CRLF pass; a clean one (no defect) is
    # filed as received, the stored copy sharing the bytes of message.raw.
    for body in (b"Subject: s\r\n\r\nline one\nline two\r\n.", b"Subject: s\r\n\r\nclean\r\n."):
        raw.cmd("MAIL FROM:<a@x.test>")
        raw.cmd("RCPT TO:<B@Y.test>")
        raw.cmd("DATA")
        assert raw.cmd(body)[0] == 250
    bare, clean = server.mailbox
    stored = server.store.maildrop("<B@y.TEST>").messages
    assert [m.raw for m in stored] == [
        b"Subject: s\r\n\r\nline one\r\nline two\r\n",
        b"Subject: s\r\n\r\nclean\r\n",
    ]
    assert bare.raw == b"Subject: s\r\n\r\nline one\nline two\r\n"  # as received
    assert stored[1].raw is clean.raw


def test_smuggling_sequence_does_not_end_data(raw: Raw, server: SMTPServer) -> None:
    raw.cmd("MAIL FROM:<a@x.test>")
    raw.cmd("RCPT TO:<b@y.test>")
    raw.cmd("DATA")
    payload = b"Subject: s\r\n\r\nhello\n.\nMAIL FROM:<evil@x.test>\r\n.\r\n"
    raw.send(payload)
    assert raw.reply()[0] == 250
    message = server.mailbox.one()
    assert b"MAIL FROM:<evil@x.test>" in message.raw


def test_strict_line_endings_reject_bare_cr_lf() -> None:
    with SMTPServer(strict_line_endings=True) as srv:
        client = Raw(srv.address)
        client.reply()
        client.cmd("EHLO c.test")
        client.cmd("MAIL FROM:<a@x.test>")
        client.cmd("RCPT TO:<b@y.test>")
        client.cmd("DATA")
        code, lines = client.cmd(b"Subject: s\r\n\r\nbare\rcr\r\n.")
        client.close()
        assert code == 550 and lines[0].startswith("5.5.2")
        assert len(srv.mailbox) == 0
        assert srv.transactions[0].outcome == "rejected"


def test_idle_timeout_answers_421() -> None:
    with SMTPServer(timeout=0.2) as srv:
        client = Raw(srv.address)
        assert client.reply()[0] == 220
        code, lines = client.reply()
        client.close()
        assert code == 421 and lines[0].startswith("4.4.2")


def test_slow_but_flowing_data_upload_is_not_cut_off() -> None:
    # The idle timeout is 10x the gap between chunks (the margin docs/development.md asks for
    # under two busy loops), and the whole upload lasts twice the timeout.
    with SMTPServer(timeout=0.5) as srv:
        client = Raw(srv.address)
        client.reply()
        client.cmd("EHLO c.test")
        client.cmd("MAIL FROM:<a@x.test>")
        client.cmd("RCPT TO:<b@y.test>")
        client.cmd("DATA")
        tick = threading.Event()
        for _ in range(20):  # 20 x 0.05 s = at least 1 s of upload, over the 0.5 s idle timeout
            client.send(b"some more data\r\n")
            tick.wait(0.05)
        code, _ = client.cmd(b".")
        client.close()
        assert code == 250
        assert srv.mailbox.one().raw.count(b"some more data") == 20


def test_unknown_commands_then_close(raw: Raw) -> None:
    code, lines = raw.cmd("FOO bar")
    assert code == 500 and lines[0].startswith("5.5.1")
    code, _ = raw.cmd("GET / HTTP/1.1")
    assert code == 500
    assert raw.cmd("NOOP")[0] == 250


def test_new_connection_after_many_bad_commands_still_served(server: SMTPServer) -> None:
    client = Raw(server.address)
    client.reply()
    for _ in range(19):
        client.cmd("XYZZY")
    assert client.cmd("XYZZY")[0] == 421
    client.close()
    again = Raw(server.address)
    assert again.reply()[0] == 220
    assert again.cmd("NOOP")[0] == 250
    assert again.cmd("QUIT")[0] == 221
    again.close()


def test_transcript_records_dialogue(server: SMTPServer) -> None:
    with smtplib.SMTP(*server.address) as client:
        client.sendmail("a@x.test", ["b@y.test"], "Subject: t\r\n\r\nx")
    transcript = server.transcript
    assert any("C: MAIL FROM:<A@X.TEST>" in line.upper() for line in transcript)
    assert any("S: 250 2.0.0 OK: queued" in line for line in transcript)
    assert any("<message:" in line for line in transcript)


def test_getfqdn_is_never_called(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> str:
        raise AssertionError("socket.getfqdn() called")

    monkeypatch.setattr(socket, "getfqdn", boom)
    with SMTPServer() as srv, smtplib.SMTP(*srv.address, local_hostname="client.test") as client:
        client.sendmail("a@x.test", ["b@y.test"], "x")
    assert len(srv.mailbox) == 1


@pytest.mark.parametrize("state", ["idle", "mid-data", "connected", "twice"])
def test_stop_is_bounded_in_every_state(state: str) -> None:
    srv = SMTPServer().start()
    client = None
    if state in ("mid-data", "connected"):
        client = Raw(srv.address)
        client.reply()
        if state == "mid-data":
            client.cmd("EHLO c.test")
            client.cmd("MAIL FROM:<a@x.test>")
            client.cmd("RCPT TO:<b@y.test>")
            client.cmd("DATA")
            client.send(b"partial body")
    started = time.monotonic()
    srv.stop()
    if state == "twice":
        srv.stop()
    assert time.monotonic() - started <= STOP_TIMEOUT
    if client is not None:
        client.close()


def test_stop_after_failed_start_is_bounded() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    srv = SMTPServer(port=taken.getsockname()[1])
    with pytest.raises(OSError):
        srv.start()
    taken.close()
    started = time.monotonic()
    srv.stop()
    srv.stop()
    assert time.monotonic() - started <= STOP_TIMEOUT


def test_host_must_be_an_ip_literal() -> None:
    with pytest.raises(ValueError, match="IP address"):
        SMTPServer(host="localhost").start()


def test_pipelined_group_is_answered_in_one_segment(raw: Raw, server: SMTPServer) -> None:
    # The connection answers commands in the loop turn their bytes arrived and writes the
    # replies of one incoming segment together: one segment back, not four.
    raw.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n")
    data = raw.sock.recv(4096)
    assert data.split(b"\r\n")[:-1] == [
        b"250 2.1.0 Sender <a@x.test> OK",
        b"250 2.1.5 Recipient <b@y.test> OK",
        b"250 2.1.5 Recipient <c@y.test> OK",
        b"354 End data with <CR><LF>.<CR><LF>",
    ]


def test_stop_records_the_open_transaction_before_it_returns(raw: Raw, server: SMTPServer) -> None:
    raw.cmd("MAIL FROM:<a@x.test>")
    assert raw.cmd("RCPT TO:<b@y.test>")[0] == 250
    server.stop()
    # No waiting: stop() returns after the connection has recorded how it ended.
    assert [(t.outcome, t.stage) for t in server.transactions] == [("aborted", "rcpt")]


def test_a_delay_mid_session_keeps_order_of_pipelined_replies(raw: Raw, server: SMTPServer) -> None:
    # MAIL is answered at once; the delay at RCPT moves the dialogue into a task with DATA
    # and the message still in the buffer: every reply comes, in order, and the mail is kept.
    server.faults.delay("rcpt", 0.05)
    raw.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")
    assert [raw.reply()[0] for _ in range(3)] == [250, 250, 354]
    raw.send(b"Subject: d\r\n\r\nhi\r\n.\r\nNOOP\r\n")
    assert [raw.reply()[0] for _ in range(2)] == [250, 250]
    assert server.mailbox.one().rcpt_tos == ["b@y.test"]
    assert raw.cmd("QUIT")[0] == 221


def test_transactions_lists_a_transaction_once_it_has_ended(server: SMTPServer) -> None:
    # The documented contract (docs/reference/api-messages.md), the same in remote mode.
    with smtplib.SMTP(*server.address, local_hostname="client.test", timeout=10) as client:
        client.ehlo()
        assert client.mail("a@example.test")[0] == 250
        assert client.rcpt("b@example.test")[0] == 250
        assert server.transactions == []  # MAIL and RCPT answered: still in progress
        client.rset()  # the 250 to RSET comes after the transaction was recorded
        [txn] = server.transactions
    assert (txn.outcome, txn.in_progress, txn.rcpt_tos) == ("aborted", False, ["b@example.test"])
