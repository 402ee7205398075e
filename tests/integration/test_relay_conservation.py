"""Conservation: every message the first hop accepts ends delivered, deferred, bounced or
dropped — over a seeded random run of many messages through faulty hosts and DNS."""

from __future__ import annotations

import random
import smtplib
from collections import Counter
from datetime import timedelta

import pytest

from pytest_smtp.fakedns import FakeDNS
from pytest_smtp.relay import MailNetwork, RetryPolicy

TERMINAL = {"delivered", "bounced", "dropped"}


def _check(net: MailNetwork, accepted: int, *, allow_deferred: bool) -> Counter[str]:
    roots = [j for j in net.journeys() if not j.generated]
    assert all(j.hops[0] == net.submission.name for j in roots)
    assert len(roots) == accepted, "one journey per recipient accepted by the first hop"
    allowed = TERMINAL | ({"deferred"} if allow_deferred else set())
    stray = [j.describe() for j in net.journeys() if j.status not in allowed]
    assert not stray, "\n".join(stray)
    assert net.queued() == [] or allow_deferred
    # Every delivered journey is one (message, recipient) in a final host's mailbox, and
    # every such copy belongs to a delivered journey: nothing appears or vanishes.
    copies = sum(
        1
        for host in net.hosts.values()
        for message in host.mailbox
        for rcpt in message.rcpt_tos
        if host.is_final(rcpt)
    )
    delivered = sum(1 for j in net.journeys() if j.status == "delivered")
    assert copies == delivered
    # Whatever is deferred is in a queue, and nothing in a queue is anything else.
    waiting = {r.address for item in net.queued() for r in item.recipients}
    assert {j.recipient for j in net.journeys() if j.status == "deferred"} <= waiting
    return Counter(j.status for j in roots)


@pytest.mark.parametrize("seed", [1, 2])
def test_conservation_under_random_faults(smtp_dns: FakeDNS, seed: int) -> None:
    rng = random.Random(seed)
    smtp_dns.add_zone("test")  # unknown *.test domains are NXDOMAIN
    # A short lifetime keeps the run quick: a hopeless message is retried ~15 times, not ~110.
    retry = RetryPolicy(lifetime=timedelta(hours=12))
    with MailNetwork.simple(smtp_dns, seed=seed, retry=retry) as net:
        net.add_domain("other.test", mx=["mx1.other.test", "mx2.other.test"])
        net.add_domain("third.test", mx=[("a.third.test", 10), ("b.third.test", 10)])
        net.add_domain("stuck.test", mx=["mx.stuck.test"])
        net.add_domain("void.test", null_mx=True)
        for name in ("mx.example.test", "mx1.other.test", "a.third.test", "b.third.test"):
            faults = net.host(name).faults
            faults.seed = seed
            faults.reject("rcpt", probability=0.05)
            faults.defer("rcpt", probability=0.2)
            faults.drop(probability=0.1)  # ~12 drops expected: some on every Python's order
            faults.reply("connect", 421, probability=0.1)
        net.host("mx.stuck.test").faults.defer("rcpt")
        smtp_dns.fault("third.test", "MX", "servfail", times=5)
        domains = (
            ["example.test"] * 4
            + ["other.test"] * 3
            + ["third.test"] * 3
            + ["stuck.test", "void.test", "nowhere.test"]
        )
        accepted = 0
        with smtplib.SMTP(*net.address, local_hostname="client.test", timeout=10) as client:
            for n in range(150):
                rcpts = sorted(
                    {
                        f"u{rng.randrange(20)}@{rng.choice(domains)}"
                        for _ in range(rng.randint(1, 3))
                    }
                )
                sender = "" if rng.random() < 0.05 else f"s{n % 7}@example.test"
                text = f"Subject: m{n}\r\nFrom: {sender or 'daemon'}\r\n\r\nbody {n}\r\n"
                refused = client.sendmail(sender, rcpts, text)
                accepted += len(rcpts) - len(refused)
        net.run_until_idle()
        first = _check(net, accepted, allow_deferred=True)
        assert first["delivered"] and first["deferred"] and first["bounced"] and first["dropped"]
        net.advance(hours=14)
        final = _check(net, accepted, allow_deferred=False)
        assert sum(final.values()) == accepted
        assert final["deferred"] == 0 and not net.queued()
    assert net.errors == []
