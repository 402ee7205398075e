"""Connection reuse: within one delivery run, a host sends every message for a next hop over
one SMTP session (RSET between messages, QUIT at the end of the run), and a hop that drops or
closes that session mid-batch costs nothing but a retry of the message that was in flight."""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from pytest_smtp.fakedns import FakeDNS
from pytest_smtp.relay import MailNetwork, assert_delivered, assert_discarded, assert_queued
from pytest_smtp.relay.mta import ConnectionCache, Target, deliver
from pytest_smtp.relay.queue import QueuedRecipient, QueueItem

SUB, RELAY, MX = "smtp.example.test", "relay.example.test", "mx.example.test"


def submit(network: MailNetwork, rcpts: list[str]) -> None:
    """One message per recipient, over one submission connection."""
    with smtplib.SMTP(*network.address, local_hostname="client.test", timeout=10) as client:
        for n, rcpt in enumerate(rcpts):
            text = f"From: alice@example.test\r\nTo: {rcpt}\r\nSubject: m{n}\r\n\r\nbody {n}\r\n"
            client.sendmail("alice@example.test", [rcpt], text)


def commands(network: MailNetwork, host: str, verb: str) -> list[str]:
    return [line for line in network.host(host).server.transcript if f"C: {verb}" in line]


def test_one_session_carries_every_message_of_a_run(smtp_dns: FakeDNS) -> None:
    rcpts = [f"u{n}@example.test" for n in range(12)]
    rcpts[5] = "gone@example.test"  # a refused recipient mid-batch: the session goes on
    with MailNetwork.simple(smtp_dns, concurrency=1) as net:
        net.host(MX).faults.reject("rcpt", match="gone@example.test")
        submit(net, rcpts)
        net.run_until_idle()
        for host in (RELAY, MX):
            assert len(net.host(host).server.sessions) == 1, f"{host}: one connection"
        # The relay sends the MX every message plus the bounce for gone@ to alice@.
        assert len(commands(net, MX, "RSET")) == len(rcpts)
        assert len(commands(net, MX, "QUIT")) == 1, "closed at the end of the run"
        assert (net.connections.opened, net.connections.reused) == (2, 2 * len(rcpts) - 1)
        assert len(net.connections) == 0
        for n, rcpt in enumerate(rcpts):
            if rcpt == "gone@example.test":
                continue
            journey = assert_delivered(net, rcpt, via=[SUB, RELAY, MX])
            assert journey.subject == f"m{n}"
            assert journey.message is not None and journey.message.rcpt_tos == [rcpt]
            # The relay's trace header names this recipient: no mix-up between messages
            # that shared the session.
            assert f"for <{rcpt}>" in journey.message.raw.decode()
        gone = net.outcome("gone@example.test")
        assert gone.status == "bounced" and gone.status_code == "5.1.1"
        assert len(net.host(MX).mailbox.filter(to="alice@example.test")) == 1, "the DSN"
    assert net.errors == []


def test_without_reuse_every_message_has_its_own_connection(smtp_dns: FakeDNS) -> None:
    rcpts = [f"u{n}@example.test" for n in range(6)]
    with MailNetwork.simple(smtp_dns, concurrency=1, reuse_connections=False) as net:
        submit(net, rcpts)
        net.run_until_idle()
        assert len(net.host(MX).server.sessions) == len(rcpts)
        assert commands(net, MX, "RSET") == []
        assert (net.connections.opened, net.connections.reused) == (0, 0)
        for rcpt in rcpts:
            assert_delivered(net, rcpt, via=[SUB, RELAY, MX])
    assert net.errors == []


def test_reuse_across_concurrent_deliveries(smtp_dns: FakeDNS) -> None:
    rcpts = [f"u{n}@example.test" for n in range(40)]
    with MailNetwork.simple(smtp_dns, concurrency=4) as net:
        submit(net, rcpts)
        net.run_until_idle()
        assert len(net.host(MX).server.sessions) <= 4 < len(rcpts)
        assert sorted(m.rcpt_tos[0] for m in net.host(MX).mailbox) == sorted(rcpts)
        assert net.summary()["delivered"] == len(rcpts)
    assert net.errors == []


def test_hop_dropping_the_session_mid_batch_loses_nothing(smtp_dns: FakeDNS) -> None:
    rcpts = [f"u{n}@example.test" for n in range(12)]
    with MailNetwork.simple(smtp_dns, concurrency=1) as net:
        faults = net.host(MX).faults
        faults.disconnect("rcpt", nth=4)  # 4th message: connection lost after MAIL
        faults.reply("mail", 421, "Too many messages, closing", nth=7)  # 7th: 421, closed
        faults.disconnect("data", after_bytes=20, match="u9@*", times=1)  # lost inside DATA
        submit(net, rcpts)
        net.run_until_idle()
        hit = {"u3@example.test", "u6@example.test", "u9@example.test"}
        for rcpt in rcpts:
            if rcpt in hit:
                assert_queued(net, rcpt)
            else:
                assert_delivered(net, rcpt, via=[SUB, RELAY, MX])
        assert net.outcome("u6@example.test").status_code == "4.3.2"
        assert net.outcome("u3@example.test").status_code == "4.4.2"
        # Each drop cost one new connection, not one per message.
        assert len(net.host(MX).server.sessions) == 4
        assert len(net.host(RELAY).server.sessions) == 1
        net.advance(minutes=5)
        for rcpt in rcpts:
            assert_delivered(net, rcpt, via=[SUB, RELAY, MX])
        assert len(net.host(MX).server.sessions) == 5, "the three retries shared one"
        # Nothing lost, nothing duplicated, nothing left behind.
        assert sorted(m.rcpt_tos[0] for m in net.host(MX).mailbox) == sorted(rcpts)
        assert net.queued() == []
        assert net.summary()["delivered"] == len(rcpts)
    assert net.errors == []


def test_a_message_dropped_on_a_shared_session_is_told_apart(smtp_dns: FakeDNS) -> None:
    rcpts = ["u0@example.test", "u1@example.test", "u2@example.test"]
    with MailNetwork.simple(smtp_dns, concurrency=1) as net:
        net.host(MX).faults.drop(match="u1@example.test")
        submit(net, rcpts)
        net.run_until_idle()
        assert len(net.host(MX).server.sessions) == 1
        dropped = assert_discarded(net, "u1@example.test", at=MX)
        assert dropped.events[-1].detail == "accepted (250) and discarded"
        for rcpt in ("u0@example.test", "u2@example.test"):
            assert_delivered(net, rcpt, via=[SUB, RELAY, MX])
    assert net.errors == []


# -- a next hop that closes the session after each message (seen only at RSET) --------------
async def _one_message_per_session(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: list[str], how: str
) -> None:
    """A minimal SMTP peer that takes one message per connection, then refuses RSET with 421
    (``how="421"``) or closes right after the 250 (``how="close"``)."""
    writer.write(b"220 peer.test ESMTP\r\n")
    taken = False
    while line := await reader.readline():
        verb = line[:4].upper()
        log.append(verb.decode())
        if verb == b"EHLO":
            writer.write(b"250-peer.test\r\n250 8BITMIME\r\n")
        elif verb in (b"MAIL", b"RCPT"):
            writer.write(b"250 OK\r\n")
        elif verb == b"DATA":
            writer.write(b"354 go ahead\r\n")
            while await reader.readline() not in (b".\r\n", b""):
                pass
            writer.write(b"250 OK queued\r\n")
            taken = True
            if how == "close":
                await writer.drain()
                break
        elif verb == b"RSET" and taken:
            writer.write(b"421 4.7.0 one message per connection\r\n")
            break
        elif verb == b"RSET":
            writer.write(b"250 OK\r\n")
        elif verb == b"QUIT":
            writer.write(b"221 bye\r\n")
            break
        else:
            writer.write(b"502 not here\r\n")
        await writer.drain()
    await writer.drain()
    writer.close()


@pytest.mark.parametrize("how", ["421", "close"])
def test_session_closed_between_messages_is_replaced_without_a_retry(how: str) -> None:
    async def main() -> tuple[list[str], ConnectionCache, list[str]]:
        log: list[str] = []
        server = await asyncio.start_server(
            lambda r, w: _one_message_per_session(r, w, log, how), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        cache = ConnectionCache()
        codes: list[str] = []
        try:
            for n in range(3):
                item = QueueItem(
                    host="relay.test",
                    destination="peer.test",
                    mail_from="a@relay.test",
                    raw=f"Subject: {n}\r\n\r\nbody\r\n".encode(),
                    recipients=[QueuedRecipient(f"b{n}@peer.test")],
                    arrived=0.0,
                )
                result = await deliver(
                    item,
                    [Target("peer.test", "127.0.0.1", port)],
                    helo="relay.test",
                    source_ip=None,
                    tls_context=None,
                    timeout=5,
                    cache=cache,
                )
                codes.extend(f"{v.address} {v.reply.code}" for v in result.verdicts)
            await cache.aclose()
        finally:
            server.close()
            await server.wait_closed()
        return codes, cache, log

    codes, cache, log = asyncio.run(main())
    assert codes == ["b0@peer.test 250", "b1@peer.test 250", "b2@peer.test 250"]
    assert (cache.opened, cache.reused) == (3, 0), "a dead session is replaced, not reused"
    assert log.count("DATA") == 3
    assert log.count("RSET") == (2 if how == "421" else 0)
