"""The hand-written corpus of hostile input (reliability_cases.py), run over raw sockets."""

from __future__ import annotations

import collections

import pytest
from reliability_cases import CASES, CLOSE, RST, TLS, Case
from reliability_support import ServerFor
from reliability_wire import Wire, WireReply, check_stored, probe, settle

from pytest_smtp import SMTPServer


def _matches(token: str, reply: WireReply) -> bool:
    code, _, enhanced = token.partition(" ")
    if len(code) == 1:
        if reply.code // 100 != int(code):
            return False
    elif reply.code != int(code):
        return False
    return not enhanced or reply.enhanced == enhanced


def run_case(server: SMTPServer, case: Case) -> int:
    """Play the case; return how many messages the server acknowledged after DATA."""
    wire = Wire(server.address)
    acked = 0
    awaiting_eod = False
    open_ = True
    try:
        steps = list(case.steps)
        if case.greet:
            steps.insert(0, (b"", ("220",)))
        for index, (data, expect) in enumerate(steps):
            where = f"step {index} ({data[:60]!r})"
            if data == CLOSE:
                open_ = False
                break
            if data == RST:
                open_ = False
                wire.reset()
                break
            if data == TLS:
                wire.starttls(server.ca.client_context(), server.hostname)
                continue
            wire.send(data)
            for token in expect:
                if token == "EOF":
                    open_ = False
                    wire.expect_eof()
                    continue
                if token == "GONE":
                    open_ = False
                    while wire.reply_or_bytes():
                        pass
                    continue
                reply = wire.reply()
                assert reply is not None, f"{where}: wanted {token}, the server closed"
                assert _matches(token, reply), f"{where}: wanted {token}, got {reply}"
                if awaiting_eod:
                    awaiting_eod = False
                    acked += reply.code // 100 == 2
                awaiting_eod = reply.code == 354
        if (
            open_
            and not awaiting_eod
            and data not in (CLOSE, RST, TLS)
            and (not data or data.endswith(b"\n"))
        ):
            # A sentinel: NOOP's reply must be the very next one, so no step drew more
            # replies than the table says (an unexpected extra message, say).
            sentinel = wire.command("NOOP")
            assert sentinel is not None and sentinel.lines == ("2.0.0 OK",), (
                f"after the last step, NOOP got {sentinel} (an unexpected extra reply?)"
            )
    finally:
        wire.close()
    return acked


@pytest.mark.parametrize("case", [pytest.param(case, id=case.name) for case in CASES])
def test_case(case: Case, server_for: ServerFor) -> None:
    server = server_for(**dict(case.options))
    acked = run_case(server, case)
    settle(server)
    check_stored(server)
    expected = case.accepted if case.accepted is not None else acked
    assert len(server.mailbox) == expected, (
        f"{len(server.mailbox)} message(s) captured, {expected} acknowledged: "
        f"{list(server.mailbox)!r}"
    )
    if case.check is not None:
        case.check(server)
    probe(server)


def test_corpus_size_and_coverage() -> None:
    """At least 200 rows, and every area the issue lists has rows."""
    assert len(CASES) >= 200, len(CASES)
    prefixes = collections.Counter(case.name.split("-", 1)[0] for case in CASES)
    for area in (
        "helo",
        "ehlo",
        "mail",
        "rcpt",
        "line",
        "junk",
        "http",
        "smuggle",
        "pipeline",
        "starttls",
        "idle",
        "disconnect",
        "size",
        "dot",
        "bare",
        "smtputf8",
        "max",
    ):
        assert prefixes[area] > 0, f"no case for {area}"
    assert len({case.name for case in CASES}) == len(CASES)
