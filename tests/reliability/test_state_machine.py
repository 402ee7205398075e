"""Generated dialogues: a Hypothesis state machine drives real connections through SMTP.

Valid and mutated commands, pipelined transactions, junk and vanishing clients. After every
step: each reply was well formed and of the class the model predicts, ``mailbox`` holds exactly
the messages answered ``250`` after DATA (byte-identical after dot-unstuffing, with their own
envelope: nothing leaks from one transaction into the next), and ``server.errors`` is empty.

``ci`` profile: 300 runs of up to 50 steps (about 12,000 steps) with a fixed seed; ``deep``:
5,000 runs of up to 100 steps with a fresh seed. A failure names the seed:
``PYTEST_SMTP_SEED=<n>`` replays it.
"""

from __future__ import annotations

import itertools
import os
import random

import hypothesis.strategies as st
from hypothesis import seed, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from reliability_support import CI_EXAMPLES, CI_STEPS, ServerFor, profile_name
from reliability_wire import Wire, WireReply, check_stored, settle

from pytest_smtp import SMTPServer

CI_SEED = 20_240_607
_BAD_COMMAND_LIMIT = 20

_name = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]\.test", fullmatch=True)
_local = st.from_regex(r"[a-z0-9][a-z0-9.+_-]{0,12}[a-z0-9]", fullmatch=True).filter(
    lambda s: ".." not in s
)
_address = st.builds(lambda local, domain: f"{local}@{domain}", _local, _name)
# Mutations that must draw a 5xx and change nothing (a bare LF or CR never ends a line).
_poison = st.sampled_from(["\r", "\n", "\0", " ", "<", ">", '"', "\\", "@@", ","])
# A HELO name only has to be visible ASCII, so only CR, LF and NUL are sure to be refused there.
_helo_poison = st.sampled_from(["\r", "\n", "\0"])
_junk_verb = st.from_regex(r"X[A-Z]{2,8}", fullmatch=True)
_body = st.lists(
    st.one_of(
        st.binary(max_size=80),
        st.sampled_from([b".", b"..", b".\r\n", b"\r\n.\r\n", b"\n.\n", b"\r.\r", b"\r\n.\r"]),
    ),
    max_size=12,
).map(b"".join)


def _mutate(text: str, poison: str, where: int) -> str:
    index = where % (len(text) + 1)
    return text[:index] + poison + text[index:]


def _stuff(body: bytes) -> bytes:
    """DATA payload for a body that ends with CRLF: dot-stuffed, terminator added."""
    return (b"\r\n" + body).replace(b"\r\n.", b"\r\n..")[2:] + b".\r\n"


def _content(body: bytes) -> bytes:
    """What the server must store for ``body``: it ends with CRLF (the terminator's first one)."""
    return body if body.endswith(b"\r\n") else body + b"\r\n"


class SMTPDialogue(RuleBasedStateMachine):
    """A model of one server and the client's current connection."""

    server: SMTPServer
    steps = 0
    """Steps checked in this process (the invariant runs once after each)."""

    def __init__(self) -> None:
        super().__init__()
        settle(self.server)
        self.server.reset()
        self.wire: Wire | None = None
        self.expected: list[tuple[str, list[str], bytes]] = []
        self._forget_session()

    # -- model -----------------------------------------------------------------------------
    def _forget_session(self) -> None:
        self.helo = False
        self.esmtp = False
        self.bad = 0
        self._forget_transaction()

    def _forget_transaction(self) -> None:
        self.sender: str | None = None
        self.accepted: list[str] = []
        self.refused = 0

    def _reply(self, wanted: str) -> WireReply:
        assert self.wire is not None
        reply = self.wire.reply()
        assert reply is not None, f"connection closed; wanted {wanted}"
        code = str(reply.code)
        assert code.startswith(wanted), f"wanted {wanted}, got {reply}"
        return reply

    def _command(self, line: str, wanted: str, *, known: bool = True) -> WireReply:
        assert self.wire is not None
        self.wire.send(line.encode() + b"\r\n")
        reply = self._reply(wanted)
        self.bad = 0 if known else self.bad + 1
        return reply

    def _drop(self) -> None:
        if self.wire is not None:
            self.wire.close()
        self.wire = None
        self._forget_session()
        settle(self.server)

    # -- rules -----------------------------------------------------------------------------
    @precondition(lambda self: self.wire is None)
    @rule()
    def connect(self) -> None:
        self.wire = Wire(self.server.address)
        self._reply("220")

    @precondition(lambda self: self.wire is not None)
    @rule(name=_name, verb=st.sampled_from(["EHLO", "HELO", "ehlo"]))
    def ehlo(self, name: str, verb: str) -> None:
        self._command(f"{verb} {name}", "250")
        self.helo, self.esmtp = True, verb.upper() == "EHLO"
        self._forget_transaction()

    @precondition(lambda self: self.wire is not None)
    @rule(name=_name, poison=_helo_poison, where=st.integers(0, 30))
    def ehlo_mutated(self, name: str, poison: str, where: int) -> None:
        self._command(f"EHLO {_mutate(name, poison, where)}", "5")

    @precondition(lambda self: self.wire is not None)
    @rule(sender=_address | st.just(""), size=st.none() | st.integers(0, 10_000))
    def mail(self, sender: str, size: int | None) -> None:
        params = f" SIZE={size}" if size is not None and self.esmtp else ""
        if not self.helo or self.sender is not None:
            self._command(f"MAIL FROM:<{sender}>{params}", "503")
            return
        self._command(f"MAIL FROM:<{sender}>{params}", "250")
        self.sender = sender

    @precondition(lambda self: self.wire is not None)
    @rule(sender=_address, poison=_poison, where=st.integers(0, 30))
    def mail_mutated(self, sender: str, poison: str, where: int) -> None:
        self._command(f"MAIL FROM:<{_mutate(sender, poison, where)}>", "5")

    @precondition(lambda self: self.wire is not None)
    @rule(rcpt=_address)
    def rcpt(self, rcpt: str) -> None:
        if self.sender is None:
            self._command(f"RCPT TO:<{rcpt}>", "503")
            return
        self._command(f"RCPT TO:<{rcpt}>", "250")
        self.accepted.append(rcpt)

    @precondition(lambda self: self.wire is not None)
    @rule(rcpt=_address, poison=_poison, where=st.integers(0, 30))
    def rcpt_mutated(self, rcpt: str, poison: str, where: int) -> None:
        self._command(f"RCPT TO:<{_mutate(rcpt, poison, where)}>", "5")
        if self.sender is not None:
            self.refused += 1

    @precondition(lambda self: self.wire is not None)
    @rule(body=_body, cuts=st.lists(st.integers(1, 2_000), max_size=3))
    def data(self, body: bytes, cuts: list[int]) -> None:
        assert self.wire is not None
        if self.sender is None:
            self._command("DATA", "503")
            return
        if not self.accepted:
            self._command("DATA", "554" if self.refused else "503")
            if self.refused:
                self._forget_transaction()
            return
        self._command("DATA", "354")
        payload = _stuff(_content(body))
        # Sent in pieces: a terminator or a dot-stuffed line may straddle TCP segments.
        for start, stop in itertools.pairwise([0, *sorted(set(cuts)), len(payload)]):
            self.wire.send(payload[start:stop])
        self._reply("250")
        self.expected.append((self.sender, list(self.accepted), _content(body)))
        self._forget_transaction()

    @precondition(lambda self: self.wire is not None and self.helo)
    @rule(sender=_address, rcpts=st.lists(_address, min_size=1, max_size=5), body=_body)
    def pipelined_transaction(self, sender: str, rcpts: list[str], body: bytes) -> None:
        assert self.wire is not None
        lines = [f"MAIL FROM:<{sender}>", *(f"RCPT TO:<{r}>" for r in rcpts), "DATA"]
        self.wire.send("".join(f"{line}\r\n" for line in lines).encode() + _stuff(_content(body)))
        if self.sender is not None:  # nested MAIL, RCPTs join the open transaction
            self._reply("503")
            for _ in rcpts:
                self._reply("250")
            self.accepted += rcpts
            sender = self.sender
        else:
            for wanted in ("250", *["250"] * len(rcpts)):
                self._reply(wanted)
            self.accepted = list(rcpts)
        self._reply("354")
        self._reply("250")
        self.bad = 0
        self.expected.append((sender, list(self.accepted), _content(body)))
        self._forget_transaction()

    @precondition(lambda self: self.wire is not None)
    @rule()
    def rset(self) -> None:
        self._command("RSET", "250")
        self._forget_transaction()

    @precondition(lambda self: self.wire is not None)
    @rule(verb=st.sampled_from(["NOOP", "noop", "VRFY someone", "HELP"]))
    def harmless(self, verb: str) -> None:
        self._command(verb, "2")

    @precondition(lambda self: self.wire is not None)
    @rule(verb=_junk_verb, arg=st.text(st.characters(min_codepoint=32, max_codepoint=126)))
    def junk(self, verb: str, arg: str) -> None:
        assert self.wire is not None
        if self.bad + 1 >= _BAD_COMMAND_LIMIT:
            self._command(f"{verb} {arg}", "421", known=False)
            self.wire.expect_eof()
            self._drop()
            return
        self._command(f"{verb} {arg}", "500", known=False)

    @precondition(lambda self: self.wire is not None)
    @rule()
    def quit(self) -> None:
        assert self.wire is not None
        self._command("QUIT", "221")
        self.wire.expect_eof()
        self._drop()

    @precondition(lambda self: self.wire is not None)
    @rule(rst=st.booleans())
    def vanish(self, rst: bool) -> None:
        assert self.wire is not None
        if rst:
            self.wire.reset()
            self.wire = None
        self._drop()

    @precondition(
        lambda self: self.wire is not None and self.sender is not None and bool(self.accepted)
    )
    @rule(body=_body, rst=st.booleans())
    def vanish_mid_data(self, body: bytes, rst: bool) -> None:
        assert self.wire is not None
        self._command("DATA", "354")
        self.wire.send(_stuff(_content(body))[:-3])  # all but the terminating ".\r\n"
        if rst:
            self.wire.reset()
            self.wire = None
        self._drop()

    # -- invariants ------------------------------------------------------------------------
    @invariant()
    def mailbox_is_exactly_what_was_acknowledged(self) -> None:
        SMTPDialogue.steps += 1
        got = [(m.mail_from, m.rcpt_tos, m.raw) for m in self.server.mailbox]
        assert got == self.expected
        assert not self.server.errors, self.server.errors

    def teardown(self) -> None:
        self._drop()
        check_stored(self.server)


def test_generated_dialogues(server_for: ServerFor) -> None:
    profile = profile_name()
    chosen = os.environ.get("PYTEST_SMTP_SEED")
    run_seed = int(chosen) if chosen else CI_SEED if profile == "ci" else random.randrange(2**32)
    SMTPDialogue.server = server_for(timeout=120)  # a safety net only: no step waits on it
    machine = seed(run_seed)(SMTPDialogue)
    try:
        run_state_machine_as_test(machine, settings=settings.get_profile(profile))
    except BaseException as exc:
        raise AssertionError(
            f"state machine failed (profile {profile}, seed {run_seed}); replay with "
            f"PYTEST_SMTP_SEED={run_seed} PYTEST_SMTP_PROFILE={profile}"
        ) from exc
    steps = SMTPDialogue.steps
    print(f"\nstate machine: profile {profile}, seed {run_seed}, {steps} steps checked")
    if profile == "ci" and not chosen:
        assert steps >= 10_000, steps


def test_ci_profile_runs_at_least_ten_thousand_steps() -> None:
    ci = settings.get_profile("ci")
    assert ci.max_examples * ci.stateful_step_count >= 10_000
    assert (ci.max_examples, ci.stateful_step_count) == (CI_EXAMPLES, CI_STEPS)
