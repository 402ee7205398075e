"""Remote mode: servers made on a ``serve --http`` process, used as if they were local."""

from __future__ import annotations

import json
import smtplib
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from web_serve import Serve, serve_http

from pytest_smtp.mail import MailboxTimeout
from pytest_smtp.remote import RemoteAPI, RemoteError, RemoteSMTPServer


@pytest.fixture(scope="module")
def serve() -> Iterator[Serve]:
    with serve_http("--hostname", "remote.serve.test") as running:
        yield running


def servers_on(serve: Serve) -> list[dict[str, object]]:
    request = urllib.request.Request(
        serve.url + "api/servers", headers={"Authorization": f"Bearer {serve.token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        servers: list[dict[str, object]] = json.loads(response.read())["servers"]
    return servers


def send(address: tuple[str, int], subject: str, to: str = "bob@example.test") -> None:
    with smtplib.SMTP(*address, timeout=10) as client:
        client.sendmail("shop@example.test", [to], f"To: {to}\r\nSubject: {subject}\r\n\r\nhi")


SUITE = """
import smtplib
import threading

import pytest

def send(server, subject, to="bob@example.test"):
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        text = f"To: {to}\\r\\nSubject: {subject}\\r\\n\\r\\nhi"
        client.sendmail("shop@example.test", [to], text)

def test_mailbox_filters_and_reset(smtp_server):
    assert smtp_server.mailbox == []
    send(smtp_server, "Welcome")
    assert smtp_server.mailbox.one(to="bob@example.test").subject == "Welcome"
    assert smtp_server.transactions.one().outcome == "accepted"
    assert any("Subject" not in line and "DATA" in line.upper() for line in smtp_server.transcript)

def test_starts_empty_again(smtp_server):
    assert len(smtp_server.mailbox) == 0

def test_wait_for_a_mail_sent_later(smtp_server):
    sender = threading.Thread(target=send, args=(smtp_server, "Later"))
    sender.start()
    (message,) = smtp_server.mailbox.wait_for(subject="Later", timeout=10)
    sender.join()
    assert message.rcpt_tos == ["bob@example.test"]

@pytest.mark.smtp_fault("rcpt", "reject", 550, match="nobody@*")
def test_marker_fault(smtp_server):
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(smtp_server, "Refused", to="nobody@example.test")
    txn = smtp_server.transactions.wait_for(outcome="rejected", timeout=10)[0]
    assert txn.refused[0].reply.code == 550

def test_faults_api_and_rule_hits(smtp_server):
    rule = smtp_server.faults.defer("mail", times=1)
    with pytest.raises(smtplib.SMTPSenderRefused):
        send(smtp_server, "Deferred")
    send(smtp_server, "Retried")
    assert rule.hits == 1
    assert [t.outcome for t in smtp_server.transactions] == ["deferred", "accepted"]
    smtp_server.faults.clear()
    assert len(smtp_server.faults) == 0

def test_factory_server_with_options(smtp_server_factory):
    server = smtp_server_factory(hostname="mx.remote.test")
    assert server.hostname == "mx.remote.test"
    send(server, "From the factory", to="carol@example.test")
    assert server.mailbox.one().session.server_hostname == "mx.remote.test"

@pytest.mark.smtp(hostname="marked.remote.test")
def test_fails_with_its_mail_in_the_report(smtp_server):
    send(smtp_server, "Broken welcome")
    assert smtp_server.mailbox.one().subject == "Welcome"
"""


@pytest.mark.parametrize("xdist", [False, True], ids=["single", "xdist"])
def test_a_suite_runs_unchanged_against_a_remote_serve(
    pytester: pytest.Pytester, serve: Serve, xdist: bool
) -> None:
    pytester.makepyfile(SUITE)
    args = [f"--smtp-remote={serve.remote}", "--smtp-html=mail", "-p", "no:randomly"]
    result = pytester.runpytest_subprocess(*args, *(["-n", "2"] if xdist else []))
    result.assert_outcomes(passed=6, failed=1)
    # The failure shows the remote dialogue, and the report holds the remote mail.
    result.stdout.fnmatch_lines(["*Captured smtp call*", "*RemoteSMTPServer*", "*250 HELP*"])
    pages = list((pytester.path / "mail" / "tests").glob("*.html"))
    assert len(pages) == 1 and "Broken welcome" in pages[0].read_text(encoding="utf-8")
    # Every server the run made is stopped at its end.
    assert servers_on(serve) == []


def test_a_bad_token_is_a_clear_error(pytester: pytest.Pytester, serve: Serve) -> None:
    pytester.makepyfile("def test_x(smtp_server):\n    pass\n")
    result = pytester.runpytest_subprocess(f"--smtp-remote={serve.url}?token=wrong")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*RemoteError: POST http://127.0.0.1:*/api/servers: 401 a wrong token*"]
    )


def test_remote_url_must_be_http(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--smtp-remote=127.0.0.1:8025")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--smtp-remote / smtp_remote*must be the http:// URL*"])


def test_wait_for_wakes_on_the_long_poll_not_a_timer(serve: Serve) -> None:
    api = RemoteAPI(serve.remote)
    with RemoteSMTPServer(api) as server:
        started = threading.Event()

        def later() -> None:
            started.wait(10)
            send(server.address, "Woken")

        sender = threading.Thread(target=later)
        sender.start()
        started.set()
        # The long poll answers the moment the transaction finishes.
        (message,) = server.mailbox.wait_for(subject="Woken", timeout=10)
        sender.join()
        assert message.subject == "Woken"
        with pytest.raises(MailboxTimeout, match="1 message captured"):
            server.mailbox.wait_for(subject="Never", timeout=0.2)
        server.reset()
        assert server.mailbox == [] and server.transactions == []
        send(server.address, "After reset")
        assert server.mailbox.wait_for(timeout=10)[0].subject == "After reset"
    assert all(s["id"] != server.id for s in servers_on(serve))


def test_what_cannot_go_as_json_is_refused(serve: Serve) -> None:
    with RemoteSMTPServer(RemoteAPI(serve.remote)) as server:
        with pytest.raises(TypeError, match=r"predicate= .* cannot go"):
            server.faults.reject("rcpt", predicate=lambda ctx: True)
        with pytest.raises(RemoteError, match=r"400 bad fault rule: unknown fault action"):
            server.faults.from_marker("rcpt", "explode")
    with pytest.raises(RemoteError, match="400 'port' is chosen by serve"):
        RemoteSMTPServer(RemoteAPI(serve.remote), port=2525).start()


def test_a_multiline_reply_comes_back_whole(serve: Serve) -> None:
    with RemoteSMTPServer(RemoteAPI(serve.remote)) as server:
        server.faults.reject("rcpt", 550, "No such user here\nTry the directory", rcpt="x@*")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            send(server.address, "Refused", to="x@example.test")
        [txn] = server.transactions.wait_for(outcome="rejected", timeout=10)
    reply = txn.recipients[0].reply
    assert (reply.code, reply.enhanced) == (550, "5.1.1")
    assert reply.text == "No such user here\nTry the directory"
    assert txn.reply == reply


def test_two_readers_answers_that_overlap_are_both_mirrored(serve: Serve) -> None:
    # The long poll and a read's own fetch can ask from the same position; the answer that
    # arrives second reaches further. It was dropped whole ("the other reader got there first"),
    # so a read right after a send could miss that send (a CI flake). Each transaction is now
    # filed once, by id, from whichever answer brings it.
    from types import SimpleNamespace

    from pytest_smtp.mail import Mailbox, TransactionLog
    from pytest_smtp.remote import _Mirror

    api = RemoteAPI(serve.remote)
    with RemoteSMTPServer(api) as server:
        epoch = server._mirror.epoch
        records = f"{server.base}/records?since=0&epoch={epoch}&wait=0"
        send(server.address, "one")
        first_only = api.call("GET", records)
        send(server.address, "two")
        both = api.call("GET", records)
    assert (first_only["next"], both["next"]) == (1, 2)
    target = SimpleNamespace(id="test", mailbox=Mailbox(), transactions=TransactionLog())
    mirror = _Mirror(target)  # type: ignore[arg-type]  # its thread is never started
    mirror.epoch = epoch
    mirror._apply(first_only, epoch)  # one reader's answer lands first ...
    mirror._apply(both, epoch)  # ... the other's, from the same position, reaches further
    mirror._apply(both, epoch)  # and one that brings nothing new changes nothing
    assert [m.subject for m in target.mailbox] == ["one", "two"]
    assert [t.outcome for t in target.transactions] == ["accepted", "accepted"]
    assert mirror.position == 2
