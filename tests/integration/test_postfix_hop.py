"""A real Postfix as one hop of a MailNetwork (``MailNetwork.add_postfix``).

The chain is submission -> Postfix (Debian's ``postfix``, a private instance) -> the MX hosts
of the network, routed through the fake DNS by Postfix's ``tcp:`` transport table. The mail is
seen arriving at the MX (woken by the mailbox, never polled), with Postfix's own ``Received:``
field and queue id. Needs the ``postfix`` package and root: under CI both are given and these
tests fail when they are not; elsewhere they skip.
"""

from __future__ import annotations

import fcntl
import os
import re
import smtplib
import socket
from collections.abc import Iterator

import pytest

from pytest_smtp import ProxyHeader, SMTPServer
from pytest_smtp.fakedns import FakeDNS
from pytest_smtp.relay import MailNetwork, parse_dsn
from pytest_smtp.relay.postfix import (
    Postfix,
    PostfixError,
    PostfixHop,
    find_postfix,
    main_cf_value,
)

pytestmark = pytest.mark.external

SUB, PF = "smtp.example.test", "postfix.example.test"


def _need_postfix() -> None:
    missing = None
    if find_postfix() is None:
        missing = "Postfix is not installed (Debian package 'postfix')"
    elif os.geteuid() != 0:
        missing = "a private Postfix needs root"
    if missing is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{missing}: required under CI (./run.sh installs it and CI runs as root)")
    pytest.skip(missing)


def send(network: MailNetwork, to: list[str], sender: str = "alice@example.test") -> None:
    text = f"From: {sender}\r\nTo: {', '.join(to)}\r\nSubject: via postfix\r\n\r\nHi.\r\n"
    with smtplib.SMTP(*network.address, local_hostname="client.test", timeout=10) as client:
        client.sendmail(sender, to, text)


@pytest.fixture
def network(smtp_dns: FakeDNS) -> Iterator[tuple[MailNetwork, PostfixHop]]:
    _need_postfix()
    with MailNetwork(smtp_dns) as net:
        net.add_submission(SUB, smarthost=PF)
        hop = net.add_postfix(PF, maximal_queue_lifetime="0s", bounce_queue_lifetime="0s")
        net.add_domain("example.test", mx=["mx.example.test"])
        net.add_domain("example.org", mx=["mx1.example.org", "mx2.example.org"])
        yield net, hop
    assert net.errors == []
    assert not hop.running, "close() stops the Postfix hop"


def test_mail_goes_through_postfix_to_the_mx(network: tuple[MailNetwork, PostfixHop]) -> None:
    net, hop = network
    send(net, ["bob@example.org"])
    net.run_until_idle()
    [message] = net.host("mx1.example.org").mailbox.wait_for(1, timeout=30, to="bob@example.org")
    received = message.headers.get_all("Received")
    assert "by postfix.example.test (Postfix)" in received[0], received
    assert "from smtp.example.test" in received[0], received
    assert "by smtp.example.test" in received[1], received
    assert message.mail_from == "alice@example.test"
    assert ("bob@example.org", f"smtp:[{net.host('mx1.example.org').ip}]:"
            f"{net.host('mx1.example.org').port}, [{net.host('mx2.example.org').ip}]:"
            f"{net.host('mx2.example.org').port}") in hop.lookups  # fmt: skip
    assert len(net.host("mx2.example.org").mailbox) == 0
    # One journey, followed through Postfix: the network links the MX's arrival from the
    # Postfix hop's address to the recipient queued there.
    [journey] = net.journeys("bob@example.org")
    assert journey.status == "delivered"
    assert journey.hops == [SUB, PF, "mx1.example.org"]
    assert "relayed: to mx1.example.org (by Postfix)" in journey.describe()
    sent = hop.wait_for_delivery("bob@example.org")
    assert (sent.outcome, sent.status) == ("sent", "2.0.0")
    assert sent.relay == f"{net.host('mx1.example.org').ip}[{net.host('mx1.example.org').ip}]:" + (
        str(net.host("mx1.example.org").port)
    )


def test_postfix_falls_back_to_the_backup_mx_after_a_4xx(
    network: tuple[MailNetwork, PostfixHop],
) -> None:
    net, _ = network
    net.host("mx1.example.org").faults.defer("rcpt", 451, "try later", enhanced="4.3.0")
    send(net, ["carol@example.org"])
    net.run_until_idle()
    net.host("mx2.example.org").mailbox.wait_for(1, timeout=30, to="carol@example.org")
    assert len(net.host("mx1.example.org").mailbox) == 0
    assert net.host("mx1.example.org").transactions.wait_for(1, timeout=5, code=451)


def test_postfix_bounces_to_the_sender_with_its_own_dsn(
    network: tuple[MailNetwork, PostfixHop],
) -> None:
    net, hop = network
    net.add_domain("nomail.test", null_mx=True)
    send(net, ["dave@nomail.test"])
    net.run_until_idle()
    # Accepted first (as Postfix does with a domain it cannot route), bounced afterwards.
    [journey] = net.journeys("dave@nomail.test")
    assert (journey.host, journey.status) == (PF, "queued"), journey.describe()
    [dsn] = net.host("mx.example.test").mailbox.wait_for(1, timeout=30, to="alice@example.test")
    assert dsn.mail_from == ""
    report = parse_dsn(dsn.raw)
    block = report.recipient("dave@nomail.test")
    assert (block.action, block.status) == ("failed", "5.1.10")
    assert report.reporting_mta == PF
    bounce = hop.wait_for_delivery("dave@nomail.test")
    assert hop.deliveries()[0] == bounce
    assert (bounce.outcome, bounce.status, bounce.relay) == ("bounced", "5.1.10", "none")
    assert (
        "dave@nomail.test",
        "error:5.1.10 Domain nomail.test accepts no mail (null MX, RFC 7505)",
    ) in (hop.lookups)


def test_hop_settings_are_checked(smtp_dns: FakeDNS) -> None:
    with MailNetwork(smtp_dns) as net:
        with pytest.raises(TypeError, match="queue_directory is set by the private instance"):
            net.add_postfix(PF, queue_directory="/var/spool/postfix")
        with pytest.raises(TypeError, match="transport_maps is set by the network hop"):
            net.add_postfix(PF, transport_maps="hash:/etc/postfix/transport")
        with pytest.raises(ValueError, match=r"looks like 'postfix\.example\.test'"):
            net.add_postfix("bad name")
    with pytest.raises(ValueError, match="lower-case letters"):
        main_cf_value("Bad-Name", "x")
    with pytest.raises(ValueError, match="must be one line"):
        main_cf_value("myorigin", "a\nb")
    assert main_cf_value("smtputf8_enable", False) == "no"
    assert main_cf_value("mynetworks", ["127.0.0.0/8", "[::1]/128"]) == "127.0.0.0/8, [::1]/128"


def test_missing_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the lookup of the binary is replaced: what is under test is the message.
    monkeypatch.setattr("pytest_smtp.relay.postfix.find_postfix", lambda: None)
    with pytest.raises(PostfixError, match="install the Debian package 'postfix'"):
        Postfix().start()


def test_a_private_instance_on_its_own() -> None:
    _need_postfix()
    postfix = Postfix("solo.test", host="127.0.0.1", main_cf={"smtputf8_enable": False})
    with postfix:
        directory = postfix.directory
        assert directory is not None and (directory / "main.cf").is_file()
        assert "smtputf8_enable = no" in (directory / "main.cf").read_text()
        with smtplib.SMTP(*postfix.address, local_hostname="client.test", timeout=10) as client:
            code, features = client.ehlo()
        assert code == 250 and features.startswith(b"solo.test")
        assert b"SMTPUTF8" not in features
        assert postfix.queue() == []
        postfix.flush()  # postqueue -f against this instance (nothing queued)
        assert postfix.wait_for_log(r"postfix/master\[\d+\]: daemon started", 1) is not None
    assert not postfix.running and postfix.directory is None
    assert not directory.exists()
    assert f"configuration {directory}" in postfix.log  # the log outlives the instance
    with pytest.raises(PostfixError, match="not running"):
        postfix.queue()


def test_a_message_qmgr_skips_as_still_being_delivered_is_tried_again_soon(
    smtp_server: SMTPServer,
) -> None:
    # With test backoffs of a second, qmgr can rescan a message while the delivery agent that
    # just deferred it still holds its lock: Postfix then parks it in the incoming queue for
    # 60 s and looks there again only when woken (every 300 s). The instance stamps that
    # file and kicks qmgr instead, so the next try comes at once.
    _need_postfix()
    smtp_server.faults.defer("rcpt")
    rcpt = "u@far.test"
    postfix = Postfix(
        "pf.test",
        main_cf={
            "relayhost": f"[{smtp_server.host}]:{smtp_server.port}",
            # No retry of its own within the test: only the kick can bring the second try.
            "minimal_backoff_time": "300s",
            "maximal_backoff_time": "300s",
            "queue_run_delay": "300s",
        },
    )
    with postfix:
        with smtplib.SMTP(*postfix.address, local_hostname="client.test", timeout=10) as client:
            client.sendmail("alice@example.test", [rcpt], "Subject: held\r\n\r\nHi.\r\n")
        assert postfix.wait_for_delivery(rcpt, 30, final=False).outcome == "deferred"
        [entry] = postfix.queue()
        queue_id = entry["queue_id"]
        assert postfix.directory is not None
        [path] = (postfix.directory / "queue" / "deferred").rglob(queue_id)
        with path.open("rb") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # as a delivery agent holds it while it works
            postfix.flush()
            skipped = rf"qmgr\[\d+\]: {queue_id}: skipped, still being delivered"
            assert postfix.wait_for_log(skipped, 30) is not None, postfix.log
        attempts = re.compile(rf"{queue_id}: to=<{re.escape(rcpt)}>.*status=deferred")

        def tried_twice(lines: list[str]) -> bool:
            return sum(1 for line in lines if attempts.search(line)) >= 2

        assert postfix.wait_until(tried_twice, 30), postfix.log
    tried = [t for t in smtp_server.transactions if rcpt in [r.address for r in t.recipients]]
    assert len(tried) >= 2, "the MX saw the second try"


# The PROXY protocol, ours against Postfix's smtpd_upstream_proxy_protocol = haproxy: the same
# bytes to both, the first reply compared (code, and the enhanced status of a refusal).
PROXY_CASES = {
    "v1": ProxyHeader(source=("203.0.113.7", 51234), destination=("192.0.2.25", 25)).encode(),
    "v2": ProxyHeader(
        version=2, source=("203.0.113.7", 51234), destination=("192.0.2.25", 25)
    ).encode(),
    "v2 LOCAL": ProxyHeader(version=2, command="LOCAL", family="UNKNOWN").encode(),
    "v1 UNKNOWN": b"PROXY UNKNOWN\r\n",
    "no header": b"EHLO client.test\r\n",
    "bad address": b"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n",
    "v2 version 3": b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x00",
}
# Where Postfix 3.7 departs from the PROXY protocol specification, (Postfix, the spec): a
# receiver must accept "PROXY UNKNOWN" and use the connection's own endpoints (spec §2.1);
# Postfix answers "bad or missing protocol type" with 421. Ours follows the spec (documented
# in docs/how-to/proxy-protocol.md).
PROXY_DIFFERENCES = {"v1 UNKNOWN": ("421 4.3.0", "220")}


def first_reply(address: tuple[str, int], data: bytes) -> str:
    """The first reply line to a connection that begins with ``data``: its code, and its
    enhanced status when it refuses."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(data)
        line = sock.makefile("rb").readline().decode("ascii", "replace")
        if line.startswith("220"):
            sock.sendall(b"QUIT\r\n")  # a refusal has closed the connection already
    return line[:9] if line[:1] in "45" else line[:3]


def test_proxy_protocol_answers_as_postfix_does() -> None:
    _need_postfix()
    postfix = Postfix(
        "pf.test",
        main_cf={"smtpd_upstream_proxy_protocol": "haproxy", "smtpd_upstream_proxy_timeout": 5},
    )
    with postfix, SMTPServer(proxy_protocol=True, hostname="mx.test") as ours:
        results = {
            name: (first_reply(postfix.address, data), first_reply(ours.address, data))
            for name, data in PROXY_CASES.items()
        }

        def relayed_twice(lines: list[str]) -> bool:  # the v1 and v2 connections, logged
            return sum("connect from unknown[203.0.113.7]" in line for line in lines) >= 2

        relayed = postfix.wait_until(relayed_twice, 30)
    expected = {
        name: PROXY_DIFFERENCES.get(name, (theirs, theirs)) for name, (theirs, _) in results.items()
    }
    assert results == expected
    assert results["v1"] == ("220", "220") and results["no header"] == ("421 4.3.0",) * 2
    # Both take the relayed client for the client.
    assert relayed, postfix.log
    clients = [s.proxy.client if s.proxy else None for s in ours.sessions]
    assert clients[:3] == [("203.0.113.7", 51234), ("203.0.113.7", 51234), None]
