"""SMTP smuggling: a fake end-of-data inside a message never splits it at a later hop.

Each sequence below is sent inside one message to the submission host over a raw socket (no
client library that would repair it). The first hop stores it as one message; the relays
normalise every bare CR/LF to CRLF and dot-stuff, so the final MX must see exactly one message
per message sent, with the would-be smuggled commands still inside its body.
"""

from __future__ import annotations

import itertools
import smtplib
from collections.abc import Iterator

import pytest

from pytest_smtp.fakedns import FakeDNS
from pytest_smtp.relay import MailNetwork, assert_delivered

# Every <prefix> "." <suffix> with prefix and suffix among CRLF, LF and CR, with a NUL before
# or after the dot or none, except the one real terminator CRLF "." CRLF: 3 x 3 x 3 - 1 = 26.
# (This covers the 18 sequences usually listed for SMTP smuggling, and more.)
ENDINGS = (b"\r\n", b"\n", b"\r")
DOTS = (b".", b"\x00.", b".\x00")
SEQUENCES = [
    prefix + dot + suffix
    for prefix, dot, suffix in itertools.product(ENDINGS, DOTS, ENDINGS)
    if prefix + dot + suffix != b"\r\n.\r\n"
]
SMUGGLED = (
    b"MAIL FROM:<evil@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
    b"From: evil@example.test\r\nSubject: smuggled\r\n\r\nevil payload"
)


def test_the_sequence_list_is_complete() -> None:
    assert len(SEQUENCES) == 26 == len(set(SEQUENCES))
    for must in (b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r", b"\r.\n", b"\r\n\x00.\r\n"):
        assert must in SEQUENCES


@pytest.fixture
def network(smtp_dns: FakeDNS) -> Iterator[MailNetwork]:
    with MailNetwork.simple(smtp_dns) as net:
        yield net
    assert net.errors == []


def test_no_sequence_smuggles_a_second_message(network: MailNetwork) -> None:
    with smtplib.SMTP(*network.address, local_hostname="client.test", timeout=10) as client:
        client.ehlo()
        for index, sequence in enumerate(SEQUENCES):
            assert client.mail("alice@example.test")[0] == 250
            assert client.rcpt("bob@example.test")[0] == 250
            assert client.docmd("DATA")[0] == 354
            body = f"Subject: case {index}\r\n\r\nbefore".encode() + sequence + SMUGGLED
            client.send(body + b"\r\n.\r\n")
            code, text = client.getreply()
            assert code == 250, (index, sequence, text)
    submission = network.submission.mailbox
    assert len(submission) == len(SEQUENCES)
    network.run_until_idle()
    final = network.host("mx.example.test").mailbox
    assert len(final) == len(SEQUENCES), [m.subject for m in final]
    assert not final.filter(from_="evil@example.test")
    assert not final.filter(subject="smuggled")
    for index, sequence in enumerate(SEQUENCES):
        message = final.one(subject=f"case {index}")
        assert b"evil payload" in message.raw, sequence
        assert b"MAIL FROM:<evil@example.test>" in message.raw
        assert not [d for d in message.defects if "bare" in d], (sequence, message.defects)
        assert_delivered(network, "bob@example.test", subject=f"case {index}")
    relay = network.host("relay.example.test").mailbox
    assert len(relay) == len(SEQUENCES)
