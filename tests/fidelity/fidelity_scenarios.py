"""The fidelity scenarios: one mail world each, run through a real Postfix relay and through a
``MailNetwork`` relay by ``harness.py``; the tests compare the two per recipient.

Every scenario has its own domains, so all of them run at once through one Postfix. The
relay is ``relay.fidelity.test`` in both worlds; the sender's domain ``sender.test`` has one MX
that receives the DSNs. Host specs name the MX hosts and how they misbehave (fault rules of
:class:`~pytest_smtp.smtp.server.SMTPServer`, or ``down``: an address with nothing listening).
"""

from __future__ import annotations

import dataclasses
from typing import Any

RELAY = "relay.fidelity.test"
SENDER = "alice@sender.test"
SENDER_MX = "mx.sender.test"

# Both worlds run with these queue times (seconds): Postfix's main.cf and the network's
# RetryPolicy (virtual seconds).
FIRST_RETRY, MAX_BACKOFF, LIFETIME, DELAY_WARNING = 1, 2, 8, 3


@dataclasses.dataclass(frozen=True)
class HostSpec:
    """One MX host of a scenario."""

    name: str
    faults: tuple[tuple[Any, ...], ...] = ()
    """``(method, args[, kwargs])`` calls on the server's ``faults``:
    ``("defer", ("rcpt", 451))``."""
    smtputf8: bool = True
    dsn: bool = True
    down: bool = False
    """Published in DNS but nothing listens (connection refused)."""


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One mail world and one message sent into it through the relay."""

    name: str
    title: str
    rcpts: tuple[str, ...]
    mx: tuple[tuple[str, str, int], ...] = ()
    """``(domain, host, preference)`` MX records; the hosts need a :class:`HostSpec`."""
    hosts: tuple[HostSpec, ...] = ()
    implicit: tuple[str, ...] = ()
    """Domains with an A record and no MX (their host spec has the domain's name)."""
    null_mx: tuple[str, ...] = ()
    dns_faults: tuple[tuple[str, str, str], ...] = ()
    """``(name, rdtype, action)`` for ``FakeDNS.fault``."""
    sender: str = SENDER
    mail_options: tuple[str, ...] = ()
    rcpt_options: tuple[str, ...] = ()
    subject: str = "fidelity"
    received: int = 0
    """``Received:`` fields already in the message (hop count)."""
    smuggle: bool = False
    """Send DATA with a bare-LF ``<LF>.<LF>`` followed by a second SMTP transaction."""
    any_host: bool = False
    """Equal-preference MX hosts: which one gets the mail is random; compare the count."""
    params: tuple[str, ...] = ()
    """SMTP parameters to compare as the MX saw them (``NOTIFY``, ``ORCPT``, ``RET``...)."""


def _mx(domain: str, *names: str, prefs: tuple[int, ...] = ()) -> tuple[tuple[str, str, int], ...]:
    return tuple(
        (domain, f"{n}.{domain}", prefs[i] if prefs else 10 * (i + 1)) for i, n in enumerate(names)
    )


def _h(domain: str, name: str, *faults: tuple[Any, ...], **kw: Any) -> HostSpec:
    return HostSpec(f"{name}.{domain}", tuple(faults), **kw)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "fallback_refused",
        "MX fallback: primary refuses the connection, backup takes it",
        ("u@fb-refused.test",),
        _mx("fb-refused.test", "mx1", "mx2"),
        (_h("fb-refused.test", "mx1", down=True), _h("fb-refused.test", "mx2")),
    ),
    Scenario(
        "fallback_421_greeting",
        "MX fallback: primary greets 421",
        ("u@fb-421.test",),
        _mx("fb-421.test", "mx1", "mx2"),
        (_h("fb-421.test", "mx1", ("defer", ("connect", 421))), _h("fb-421.test", "mx2")),
    ),
    Scenario(
        "fallback_554_greeting",
        "MX fallback: primary greets 554",
        ("u@fb-554.test",),
        _mx("fb-554.test", "mx1", "mx2"),
        (_h("fb-554.test", "mx1", ("reject", ("connect", 554))), _h("fb-554.test", "mx2")),
    ),
    Scenario(
        "fallback_451_rcpt",
        "MX fallback: primary answers 451 at RCPT, the backup works",
        ("u@fb-451.test",),
        _mx("fb-451.test", "mx1", "mx2"),
        (_h("fb-451.test", "mx1", ("defer", ("rcpt", 451))), _h("fb-451.test", "mx2")),
    ),
    Scenario(
        "equal_preference",
        "Two MX hosts of equal preference: exactly one gets the mail",
        ("u@equal.test",),
        _mx("equal.test", "mx1", "mx2", prefs=(10, 10)),
        (_h("equal.test", "mx1"), _h("equal.test", "mx2")),
        any_host=True,
    ),
    Scenario(
        "implicit_mx",
        "No MX record: the domain's A record is the implicit MX",
        ("u@implicit.test",),
        hosts=(HostSpec("implicit.test"),),
        implicit=("implicit.test",),
    ),
    Scenario("null_mx", "Null MX (RFC 7505)", ("u@nullmx.test",), null_mx=("nullmx.test",)),
    Scenario("nxdomain", "The recipient domain does not exist", ("u@missing.nxzone.test",)),
    Scenario(
        "servfail",
        "The MX lookup fails with SERVFAIL until the message expires",
        ("u@servfail.test",),
        _mx("servfail.test", "mx1"),
        (_h("servfail.test", "mx1"),),
        dns_faults=(("servfail.test", "MX", "servfail"),),
    ),
    Scenario(
        "mx_without_address",
        "The only MX names a host that has no address",
        ("u@noaddr.test",),
        (("noaddr.test", "ghost.noaddr.test", 10),),
    ),
    Scenario(
        "all_mx_down",
        "Every MX refuses connections until the message expires",
        ("u@alldown.test",),
        _mx("alldown.test", "mx1", "mx2"),
        (_h("alldown.test", "mx1", down=True), _h("alldown.test", "mx2", down=True)),
    ),
    Scenario(
        "mx_is_self",
        "The domain's best MX is the relay itself",
        ("u@self.test",),
        (("self.test", RELAY, 10),),
    ),
    Scenario(
        "rcpt_550",
        "550 at RCPT",
        ("u@r550.test",),
        _mx("r550.test", "mx1"),
        (_h("r550.test", "mx1", ("reject", ("rcpt", 550, "No such user"))),),
    ),
    Scenario(
        "rcpt_451_only_mx",
        "451 at RCPT from the only MX until the message expires",
        ("u@r451.test",),
        _mx("r451.test", "mx1"),
        (_h("r451.test", "mx1", ("defer", ("rcpt", 451))),),
    ),
    Scenario(
        "partial_multi",
        "Two recipients at one MX: one accepted, one refused 550",
        ("ok@partial.test", "bad@partial.test"),
        _mx("partial.test", "mx1"),
        (
            _h(
                "partial.test",
                "mx1",
                ("reject", ("rcpt", 550, "No such user"), {"rcpt": "bad@partial.test"}),
            ),
        ),
    ),
    Scenario(
        "data_554",
        "554 after DATA for a two-recipient message",
        ("a@d554.test", "b@d554.test"),
        _mx("d554.test", "mx1"),
        (_h("d554.test", "mx1", ("reject", ("eod", 554, "Content rejected"))),),
    ),
    Scenario(
        "hop_count_48",
        "48 Received: fields: accepted and delivered",
        ("u@hops48.test",),
        _mx("hops48.test", "mx1"),
        (_h("hops48.test", "mx1"),),
        received=48,
    ),
    Scenario(
        "hop_count_49",
        "49 Received: fields: accepted and delivered",
        ("u@hops49.test",),
        _mx("hops49.test", "mx1"),
        (_h("hops49.test", "mx1"),),
        received=49,
    ),
    Scenario(
        "hop_count_50",
        "50 Received: fields: refused as a loop (hopcount_limit 50)",
        ("u@hops50.test",),
        _mx("hops50.test", "mx1"),
        (_h("hops50.test", "mx1"),),
        received=50,
    ),
    Scenario(
        "smtputf8_capable",
        "UTF-8 recipient to an MX with SMTPUTF8",
        ("ünï@utf8-yes.test",),
        _mx("utf8-yes.test", "mx1"),
        (_h("utf8-yes.test", "mx1"),),
        mail_options=("SMTPUTF8",),
    ),
    Scenario(
        "smtputf8_incapable_utf8",
        "UTF-8 recipient to an MX without SMTPUTF8",
        ("ünï@utf8-no.test",),
        _mx("utf8-no.test", "mx1"),
        (_h("utf8-no.test", "mx1", smtputf8=False),),
        mail_options=("SMTPUTF8",),
    ),
    Scenario(
        "smtputf8_incapable_ascii",
        "All-ASCII message sent with SMTPUTF8 to an MX without SMTPUTF8",
        ("u@utf8-ascii.test",),
        _mx("utf8-ascii.test", "mx1"),
        (_h("utf8-ascii.test", "mx1", smtputf8=False),),
        mail_options=("SMTPUTF8",),
    ),
    Scenario(
        "dsn_notify_success",
        "NOTIFY=SUCCESS to a DSN-capable MX: passed on, no DSN from the relay",
        ("u@notify-ok.test",),
        _mx("notify-ok.test", "mx1"),
        (_h("notify-ok.test", "mx1"),),
        rcpt_options=("NOTIFY=SUCCESS",),
        params=("NOTIFY",),
    ),
    Scenario(
        "dsn_success_no_dsn_mx",
        "NOTIFY=SUCCESS to an MX without DSN: the relay reports 'relayed'",
        ("u@notify-relayed.test",),
        _mx("notify-relayed.test", "mx1"),
        (_h("notify-relayed.test", "mx1", dsn=False),),
        rcpt_options=("NOTIFY=SUCCESS",),
    ),
    Scenario(
        "dsn_notify_never",
        "NOTIFY=NEVER and a 550: bounced without a DSN",
        ("u@notify-never.test",),
        _mx("notify-never.test", "mx1"),
        (_h("notify-never.test", "mx1", ("reject", ("rcpt", 550))),),
        rcpt_options=("NOTIFY=NEVER",),
    ),
    Scenario(
        "dsn_ret_envid_orcpt",
        "RET=HDRS, ENVID and ORCPT: kept in the DSN for a 550, passed on to the MX",
        ("u@dsn-params.test",),
        _mx("dsn-params.test", "mx1"),
        (_h("dsn-params.test", "mx1", ("reject", ("rcpt", 550))),),
        mail_options=("RET=HDRS", "ENVID=fidelity-envid-1"),
        rcpt_options=("ORCPT=rfc822;original@dsn-params.test",),
    ),
    Scenario(
        "dsn_params_passed_on",
        "RET, ENVID, NOTIFY and ORCPT reach the next hop",
        ("u@dsn-pass.test",),
        _mx("dsn-pass.test", "mx1"),
        (_h("dsn-pass.test", "mx1"),),
        mail_options=("RET=FULL", "ENVID=fidelity-envid-2"),
        rcpt_options=("NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;first@dsn-pass.test"),
        params=("RET", "ENVID", "NOTIFY", "ORCPT"),
    ),
    Scenario(
        "null_sender",
        "A bounce (null sender) that bounces: no DSN about a DSN",
        ("u@nullsender.test",),
        _mx("nullsender.test", "mx1"),
        (_h("nullsender.test", "mx1", ("reject", ("rcpt", 550))),),
        sender="",
    ),
    Scenario(
        "delayed_dsn",
        "NOTIFY=DELAY,FAILURE, the only MX defers: a delay DSN, then a failure DSN",
        ("u@delayed.test",),
        _mx("delayed.test", "mx1"),
        (_h("delayed.test", "mx1", ("defer", ("rcpt", 450))),),
        rcpt_options=("NOTIFY=DELAY,FAILURE",),
    ),
    Scenario(
        "bare_lf_smuggling",
        "DATA with <LF>.<LF> and a second transaction behind it: no smuggled message",
        ("u@smuggle.test", "victim@smuggle.test"),
        _mx("smuggle.test", "mx1"),
        (_h("smuggle.test", "mx1"),),
        smuggle=True,
    ),
)

BY_NAME = {s.name: s for s in SCENARIOS}
