"""The corpus of hostile input: one row per case, bytes sent step by step, reply expected per step.

A step is ``(bytes to send, expected replies)``. An expected reply is a token:

* ``"2"`` .. ``"5"`` — any reply of that class;
* ``"250"`` — that exact code; ``"501 5.5.2"`` — code and RFC 3463 status;
* ``"EOF"`` — the server closes the connection (after a ``421`` or ``221``), sending nothing;
* ``"GONE"`` — the server closes the connection, whatever it sends first (a TLS alert).

Special payloads: :data:`CLOSE` (the client closes: FIN), :data:`RST` (the client aborts: RST),
:data:`TLS` (upgrade to TLS now, after a ``220`` to STARTTLS). A case's ``greet=False`` sends its
first step before reading the greeting (junk before the greeting).

After every case the runner also checks what the table does not repeat: every reply well formed
and within 2 s, ``mailbox`` holds exactly the messages answered ``2xx`` after DATA (unless
``accepted`` says otherwise), nothing with CR/LF/NUL reached an envelope, a HELO name or a parsed
header, no transaction is left open, ``server.errors`` is empty, and a new connection still gets
``220``, ``NOOP`` → ``250``, ``QUIT`` → ``221``.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from pytest_smtp import SMTPServer

CLOSE = b"<client closes>"
RST = b"<client resets>"
TLS = b"<client starts TLS>"

Step = tuple[bytes, tuple[str, ...]]
Check = Callable[[SMTPServer], None]


@dataclasses.dataclass(frozen=True)
class Case:
    """One row of the corpus."""

    name: str
    steps: tuple[Step, ...]
    options: tuple[tuple[str, Any], ...] = ()
    greet: bool = True
    accepted: int | None = None
    check: Check | None = None


CASES: list[Case] = []


def case(
    name: str,
    *steps: Step | Iterable[Step],
    options: dict[str, Any] | None = None,
    greet: bool = True,
    accepted: int | None = None,
    check: Check | None = None,
) -> None:
    """Add a row; steps may be given one by one or as sequences (see :func:`envelope`)."""
    flat: list[Step] = []
    for step in steps:
        if isinstance(step, tuple) and len(step) == 2 and isinstance(step[0], bytes):
            flat.append(step)
        else:
            flat.extend(step)
    if any(c.name == name for c in CASES):
        raise ValueError(f"duplicate case name {name!r}")
    CASES.append(
        Case(
            name,
            tuple(flat),
            tuple(sorted((options or {}).items())),
            greet,
            accepted,
            check,
        )
    )


def c(line: bytes | str, *expect: str) -> Step:
    """A command line (CRLF added) and the replies it must draw."""
    data = line.encode() if isinstance(line, str) else line
    return (data + b"\r\n", expect)


def raw(data: bytes, *expect: str) -> Step:
    """Bytes sent exactly as given."""
    return (data, expect)


EHLO = c("EHLO client.test", "250")
HELO = c("HELO client.test", "250")
MAIL = c("MAIL FROM:<alice@example.test>", "250")
RCPT = c("RCPT TO:<bob@example.test>", "250")
DATA = c("DATA", "354")


def envelope(*extra: Step) -> list[Step]:
    """EHLO, MAIL, RCPT (all 250), then ``extra``."""
    return [EHLO, MAIL, RCPT, *extra]


def message(body: bytes, *expect: str) -> list[Step]:
    """A whole transaction whose DATA payload is ``body`` (terminator included by the caller)."""
    return [EHLO, MAIL, RCPT, DATA, raw(body, *expect)]


# -- checks -------------------------------------------------------------------------------------
def raws(*bodies: bytes) -> Check:
    """The mailbox holds exactly these bodies, in order."""

    def check(server: SMTPServer) -> None:
        got = [m.raw for m in server.mailbox]
        assert got == list(bodies), f"stored bodies {got!r}, expected {list(bodies)!r}"

    return check


def envelopes(*pairs: tuple[str, list[str]]) -> Check:
    """The mailbox holds messages with exactly these (sender, recipients), in order."""

    def check(server: SMTPServer) -> None:
        got = [(m.mail_from, m.rcpt_tos) for m in server.mailbox]
        assert got == list(pairs), f"stored envelopes {got!r}, expected {list(pairs)!r}"

    return check


def defects(*wanted: str, exact: bool = False) -> Check:
    """The one message's defects mention each of ``wanted`` (or are exactly none)."""

    def check(server: SMTPServer) -> None:
        found = server.mailbox.one().defects
        if exact:
            assert found == list(wanted), f"defects {found!r}, expected {list(wanted)!r}"
        for item in wanted:
            assert any(item in d for d in found), f"defect {item!r} missing from {found!r}"

    return check


def outcomes(*wanted: str) -> Check:
    """The transaction log's outcomes, in order."""

    def check(server: SMTPServer) -> None:
        got = [t.outcome for t in server.transactions]
        assert got == list(wanted), f"outcomes {got!r}, expected {list(wanted)!r}"

    return check


def helo_is(name: str | None) -> Check:
    """The last session's recorded HELO name."""

    def check(server: SMTPServer) -> None:
        assert server.sessions[0].helo == name, server.sessions[0]

    return check


def mail_options(*options: str) -> Check:
    """The one message's MAIL parameters, as sent."""

    def check(server: SMTPServer) -> None:
        assert server.mailbox.one().mail_options == list(options)

    return check


def holds(predicate: Callable[[SMTPServer], bool], what: str) -> Check:
    """``predicate(server)`` is true; ``what`` says what was expected."""

    def check(server: SMTPServer) -> None:
        assert predicate(server), f"expected {what}; mailbox={list(server.mailbox)!r}"

    return check


def both(*checks: Check) -> Check:
    """Every check in turn."""

    def check(server: SMTPServer) -> None:
        for item in checks:
            item(server)

    return check


# =============================================================================================
# HELO / EHLO
case("helo-ok", HELO, check=helo_is("client.test"))
case("ehlo-ok", EHLO, check=helo_is("client.test"))
case("helo-empty", c("HELO", "501 5.5.4"), check=helo_is(None))
case("ehlo-empty", c("EHLO", "501 5.5.4"), check=helo_is(None))
case("ehlo-only-spaces", c("EHLO    ", "501"), check=helo_is(None))
case("helo-cr-inside", c(b"HELO a\rb.test", "501 5.5.2"), check=helo_is(None))
case("ehlo-cr-inside", c(b"EHLO a\rb.test", "501 5.5.2"), check=helo_is(None))
case("ehlo-cr-at-end", c(b"EHLO a.test\r", "501 5.5.2"), check=helo_is(None))
case("helo-lf-inside", c(b"HELO a\nb", "501 5.5.2"), check=helo_is(None))
case("ehlo-lf-inside-does-not-split-line", c(b"EHLO a\nQUIT", "501 5.5.2"), check=helo_is(None))
case("helo-nul", c(b"HELO a\0b.test", "501 5.5.2"), check=helo_is(None))
case("ehlo-nul-at-end", c(b"EHLO a.test\0", "501 5.5.2"), check=helo_is(None))
case("ehlo-255-octets", c("EHLO " + "a" * 255, "250"))
case("ehlo-256-octets", c("EHLO " + "a" * 256, "501 5.5.4"), check=helo_is(None))
case("helo-over-long-2000", c("HELO " + "h" * 2000, "500 5.5.2"), check=helo_is(None))
case("ehlo-non-ascii", c("EHLO bücher.test", "501 5.5.4"), check=helo_is(None))
case("ehlo-invalid-utf8", c(b"EHLO \xff\xfe.test", "500 5.5.2"), check=helo_is(None))
case("ehlo-two-words", c("EHLO a.test b.test", "501"), check=helo_is(None))
case("ehlo-repeated", EHLO, EHLO, c("EHLO other.test", "250"), check=helo_is("other.test"))
case("helo-after-ehlo", EHLO, HELO, c("MAIL FROM:<a@x.test> SIZE=10", "501 5.5.4"))
case("ehlo-after-helo", HELO, EHLO, c("MAIL FROM:<a@x.test> SIZE=10", "250"))
case(
    "ehlo-mid-transaction-resets-envelope",
    EHLO,
    MAIL,
    RCPT,
    EHLO,
    c("DATA", "503 5.5.1"),
    check=outcomes("aborted"),
)
case("ehlo-address-literal-v4", c("EHLO [127.0.0.1]", "250"))
case("ehlo-address-literal-v6", c("EHLO [IPv6:::1]", "250"))
case("ehlo-lower-case-verb", c("ehlo client.test", "250"))
case("ehlo-mixed-case-verb", c("EhLo client.test", "250"))
case("ehlo-trailing-spaces", c("EHLO client.test   ", "250"), check=helo_is("client.test"))
case("ehlo-double-space", c("EHLO  client.test", "250"), check=helo_is("client.test"))
case("ehlo-tab-separator", c("EHLO\tclient.test", "500 5.5.1"), check=helo_is(None))
case("ehlo-control-char-soh", c(b"EHLO a\x01b.test", "501"), check=helo_is(None))
case("ehlo-escape-sequence", c(b"EHLO \x1b[31mred", "501"), check=helo_is(None))
case("helo-del-char", c(b"HELO a\x7f.test", "501"), check=helo_is(None))
case("helo-tab-inside", c(b"HELO a\tb.test", "501"), check=helo_is(None))
case("mail-before-helo", c("MAIL FROM:<a@x.test>", "503 5.5.1"), check=outcomes("rejected"))

# =============================================================================================
# Commands
case("unknown-command", c("FOO", "500 5.5.1"))
case("unknown-command-with-args", c("XYZZY plugh", "500 5.5.1"))
case("noop-lower", c("noop", "250"))
case("noop-mixed", c("NoOp", "250"))
case("noop-with-argument", c("NOOP hello there", "250"))
case("rset-lower", c("rset", "250"))
case("rset-with-argument", c("RSET now", "501 5.5.4"))
case("quit-upper", c("QUIT", "221 2.0.0", "EOF"))
case("quit-lower", c("quit", "221", "EOF"))
case("quit-mid-transaction", EHLO, MAIL, RCPT, c("QUIT", "221", "EOF"), check=outcomes("aborted"))
case("rcpt-before-mail", EHLO, c("RCPT TO:<b@y.test>", "503 5.5.1"))
case("data-before-mail", EHLO, c("DATA", "503 5.5.1"))
case("data-before-rcpt", EHLO, MAIL, c("DATA", "503 5.5.1"))
case(
    "data-with-argument",
    *envelope(c("DATA now", "501 5.5.4")),
    c("DATA", "354"),
    raw(b".\r\n", "250"),
)
case(
    "nested-mail",
    EHLO,
    MAIL,
    c("MAIL FROM:<c@x.test>", "503 5.5.1"),
    RCPT,
    DATA,
    raw(b"x\r\n.\r\n", "250"),
    check=envelopes(("alice@example.test", ["bob@example.test"])),
)
case("vrfy", c("VRFY bob", "252"))
case("vrfy-empty", c("VRFY", "501"))
case("expn", c("EXPN staff", "502"))
case("help", c("HELP", "214"))
case("help-with-topic", c("HELP MAIL", "214"))
case(
    "bdat-not-offered",
    EHLO,
    MAIL,
    RCPT,
    c("BDAT 5 LAST", "502"),
    c("DATA", "354"),
    raw(b".\r\n", "250"),
)
case("starttls-not-offered", EHLO, c("STARTTLS", "502 5.5.1"))
case("auth-not-offered", EHLO, c("AUTH PLAIN AGJvYgBzZWNyZXQ=", "502 5.5.1"))
case("empty-line", c("", "500 5.5.1"))
case("bare-lf-does-not-end-a-line", raw(b"\n"), c("NOOP", "501 5.5.2"))
case("lone-space-line", c(" ", "500"))
case("command-with-nul", c(b"NO\0OP", "501 5.5.2"))
case("command-with-trailing-nul", c(b"NOOP\0", "501 5.5.2"))
case("command-with-bare-cr", c(b"NOOP\rRSET", "501 5.5.2"))
case("verb-non-ascii", c("NÖOP", "500 5.5.2"))
case("verb-invalid-utf8", c(b"\xff\xfe\xfd", "500 5.5.2"))
case("line-600-octets", c("X" * 600, "500 5.5.2"))
case("line-4000-octets-noop", c("NOOP " + "a" * 3990, "500 5.5.2"), c("NOOP", "250"))
case(
    "line-5000-octets-one-packet",
    c("NOOP " + " " * 5000, "500 5.5.2"),
    c("NOOP", "250"),
)
case(
    "line-5000-octets-two-packets",
    raw(
        b"NOOP " + b"a" * 4995,
    ),
    raw(b"a" * 10 + b"\r\n", "500 5.5.2"),
    c("NOOP", "250"),
)
case(
    "line-100k-without-newline-then-newline",
    raw(b"A" * 100_000),
    raw(b"\r\n", "500 5.5.2"),
    c("NOOP", "250"),
)


# -- One CRLF-terminated line is one command and draws one reply (RFC 5321 §2.3.8) -------------
def in_transcript(text: str) -> Check:
    """Some transcript line contains ``text``."""
    return holds(lambda s: any(text in line for line in s.transcript), f"{text!r} in transcript")


def padded(prefix: str, suffix: str, octets: int) -> str:
    """``prefix``, spaces, ``suffix``: a command line of exactly ``octets`` octets with CRLF."""
    return prefix + " " * (octets - 2 - len(prefix) - len(suffix)) + suffix


def sasl_plain(length: int) -> str:
    """A base64 PLAIN response (any password passes ``auth="any"``) of ``length`` characters."""
    return base64.b64encode(b"\0u\0" + b"p" * (length * 3 // 4 - 3)).decode()


AUTH_OFFERED = {"auth": "any", "auth_require_tls": False}

case(
    "line-bare-lf-rcpt-is-one-command",
    EHLO,
    MAIL,
    c(b"RCPT TO:<a@x.test>\nRCPT TO:<evil@x.test>", "501 5.5.2"),
    c("DATA", "503 5.5.1"),
    check=in_transcript("C: RCPT TO:<a@x.test>\\nRCPT TO:<evil@x.test>"),
)
case(
    "line-bare-cr-rcpt-is-one-command",
    EHLO,
    MAIL,
    c(b"RCPT TO:<a@x.test>\rRCPT TO:<evil@x.test>", "501 5.5.2"),
    c("DATA", "503 5.5.1"),
)
case(
    "line-bare-lf-mail-is-one-command",
    EHLO,
    c(b"MAIL FROM:<a@x.test>\nMAIL FROM:<b@x.test>", "501 5.5.2"),
    c("RCPT TO:<c@y.test>", "503 5.5.1"),
)
case(
    "line-bare-lf-smuggled-transaction",
    EHLO,
    raw(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\nDATA\nevil\n.\nQUIT\r\n", "250", "501 5.5.2"),
    c("DATA", "503 5.5.1"),
    check=outcomes("aborted"),
)
case("line-crlf-split-across-packets", raw(b"NOOP\r"), raw(b"\n", "250"))
case("line-lf-then-crlf", raw(b"NOOP\n"), raw(b"\r\n", "501 5.5.2"))
case("line-cr-cr-lf", c(b"NOOP\r", "501 5.5.2"))

# -- Length: 512 octets with CRLF, plus the extensions' allowances (RFC 5321 §4.5.3.1.4) -------
case("line-512-octets", c(padded("NOOP", "", 512), "250"))
case(
    "line-513-octets",
    c(padded("NOOP", "", 513), "500 5.5.2"),
    c("NOOP", "250"),
    check=in_transcript("<line of 513 octets, over the limit of 512>"),
)
case(
    "line-513-octets-two-packets",
    raw(b"NOOP " + b"a" * 300),
    raw(b"a" * 206 + b"\r\n", "500 5.5.2"),
    c("NOOP", "250"),
)
case(
    "line-too-long-then-pipelined", raw(b"NOOP " + b"a" * 600 + b"\r\nNOOP\r\n", "500 5.5.2", "250")
)
# MAIL: + SIZE 26, BODY 16, SMTPUTF8 10, DSN 100 (and AUTH 500 when AUTH is offered).
# RCPT: + NOTIFY/ORCPT 500 with DSN. Each limit is checked at the octet and one past it.
NO_DSN_SMTPUTF8 = {"dsn": False, "smtputf8": False}
for name, pre, line, suffix, limit, options in (
    ("mail", [EHLO], "MAIL FROM:<a@x.test>", "BODY=7BIT", 664, {}),
    (
        "mail-without-dsn-smtputf8",
        [EHLO],
        "MAIL FROM:<a@x.test>",
        "BODY=7BIT",
        554,
        NO_DSN_SMTPUTF8,
    ),
    ("mail-auth-offered", [EHLO], "MAIL FROM:<a@x.test>", "AUTH=<>", 1164, AUTH_OFFERED),
    ("rcpt", [EHLO, MAIL], "RCPT TO:<b@y.test>", "NOTIFY=NEVER", 1012, {}),
    ("rcpt-without-dsn", [EHLO, MAIL], "RCPT TO:<b@y.test>", "", 512, {"dsn": False}),
):
    case(f"line-{name}-at-{limit}", *pre, c(padded(line, suffix, limit), "250"), options=options)
    case(
        f"line-{name}-over-{limit}",
        *pre,
        c(padded(line, suffix, limit + 1), "500 5.5.2"),
        c(line, "250"),  # the session goes on: the same command, short, is served
        options=options,
    )
# AUTH with an initial response, and each SASL response: 12,288 octets (RFC 4954 §4).
case(
    "line-auth-12285-octets",
    EHLO,
    c("AUTH PLAIN " + sasl_plain(12272), "235"),
    options=AUTH_OFFERED,
)
case(
    "line-auth-12293-octets",
    EHLO,
    c("AUTH PLAIN " + sasl_plain(12280), "500 5.5.6"),
    c("AUTH PLAIN " + sasl_plain(8), "235"),
    options=AUTH_OFFERED,
)
case("line-auth-597-octets-not-offered", EHLO, c("AUTH PLAIN " + sasl_plain(584), "500 5.5.2"))
for length, reply in ((12284, "235"), (13000, "500 5.5.6")):
    case(
        f"line-sasl-response-{length + 2}-octets",
        EHLO,
        c("AUTH PLAIN", "334"),
        c(sasl_plain(length), reply),
        options=AUTH_OFFERED,
    )

case("junk-before-greeting-command", raw(b"EHLO early.test\r\n", "220", "250"), greet=False)
case("junk-before-greeting-binary", raw(b"\x00\xff\x10garbage\r\n", "220", "5"), greet=False)
case(
    "junk-before-greeting-then-mail",
    raw(
        b"EHLO e.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
        "220",
        "250",
        "250",
        "250",
        "354",
    ),
    raw(b"early\r\n.\r\n", "250"),
    greet=False,
    check=raws(b"early\r\n"),
)
case(
    "http-get",
    raw(b"GET / HTTP/1.1\r\nHost: mail.test\r\n\r\n", "500", "500", "500"),
    c("NOOP", "250"),
)
case(
    "http-post",
    raw(b"POST /submit HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\r\n", "500", "500", "500", "500"),
    c("NOOP", "250"),
)
case(
    "http-connect-proxy",
    raw(b"CONNECT mail.test:25 HTTP/1.1\r\n\r\n", "500", "500"),
    c("NOOP", "250"),
)
case("http-before-greeting", raw(b"GET / HTTP/1.0\r\n\r\n", "220", "500", "500"), greet=False)
case(
    "tls-client-hello-on-plain-port",
    raw(
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(0x80, 0xA0)) + b"\r\n", "500"
    ),
    c("NOOP", "250"),
)
case("nineteen-bad-commands-then-noop", *[c(f"BAD{i}", "500") for i in range(19)], c("NOOP", "250"))
case(
    "twenty-bad-commands-close",
    *[c(f"BAD{i}", "500") for i in range(19)],
    c("BAD19", "421 4.7.0", "EOF"),
)
case(
    "bad-counter-reset-by-good-command",
    *[c(f"BAD{i}", "500") for i in range(15)],
    c("NOOP", "250"),
    *[c(f"BAD{i}", "500") for i in range(15)],
    c("NOOP", "250"),
)
case(
    "twenty-bad-in-one-packet",
    raw(b"".join(b"BAD%d\r\n" % i for i in range(20)), *["500"] * 19, "421", "EOF"),
)
case(
    "twenty-bad-mid-transaction-aborts",
    EHLO,
    MAIL,
    RCPT,
    raw(b"".join(b"ZAP%d\r\n" % i for i in range(20)), *["500"] * 19, "421", "EOF"),
    check=outcomes("aborted"),
)

# =============================================================================================
# Addresses
for verb, prefix, pre in (("mail", "MAIL FROM:", [EHLO]), ("rcpt", "RCPT TO:", [EHLO, MAIL])):
    case(f"{verb}-cr-in-local-part", *pre, c(f"{prefix}<a\rb@x.test>".encode(), "501 5.5.2"))
    case(f"{verb}-nul-in-local-part", *pre, c(f"{prefix}<a\0b@x.test>".encode(), "501 5.5.2"))
    case(f"{verb}-lf-in-local-part", *pre, c(f"{prefix}<a\nb@x.test>".encode(), "501 5.5.2"))
    case(f"{verb}-cr-in-domain", *pre, c(f"{prefix}<a@x\r.test>".encode(), "501 5.5.2"))
    case(f"{verb}-nul-in-domain", *pre, c(f"{prefix}<a@x\0.test>".encode(), "501 5.5.2"))
    case(f"{verb}-lf-in-domain", *pre, c(f"{prefix}<a@x\n.test>".encode(), "501 5.5.2"))
    case(
        f"{verb}-crlf-header-injection",
        *pre,
        c(f"{prefix}<a@x.test>\r\nBcc: evil@x.test".encode(), "2", "500"),
    )
    case(f"{verb}-cr-in-quoted-string", *pre, c(f'{prefix}<"a\rb"@x.test>'.encode(), "501 5.5.2"))
    case(f"{verb}-nul-in-quoted-string", *pre, c(f'{prefix}<"a\0b"@x.test>'.encode(), "501 5.5.2"))
    case(f"{verb}-lf-in-quoted-string", *pre, c(f'{prefix}<"a\nb"@x.test>'.encode(), "501 5.5.2"))
    case(f"{verb}-missing-brackets", *pre, c(f"{prefix}a@x.test", "501 5.5.4"))
    case(f"{verb}-missing-closing-bracket", *pre, c(f"{prefix}<a@x.test", "501 5.5.4"))
    case(f"{verb}-missing-opening-bracket", *pre, c(f"{prefix}a@x.test>", "501 5.5.4"))
    case(f"{verb}-double-brackets", *pre, c(f"{prefix}<<a@x.test>>", "501"))
    case(f"{verb}-space-after-colon", *pre, c(f"{prefix} <a@x.test>", "250"))
    case(f"{verb}-source-route", *pre, c(f"{prefix}<@relay1.test,@relay2.test:a@x.test>", "250"))
    case(f"{verb}-source-route-no-colon", *pre, c(f"{prefix}<@relay1.testa@x.test>", "501"))
    case(f"{verb}-source-route-empty-hop", *pre, c(f"{prefix}<@:a@x.test>", "501"))
    case(f"{verb}-source-route-empty-second-hop", *pre, c(f"{prefix}<@r.test,:a@x.test>", "501"))
    case(
        f"{verb}-source-route-hop-without-at", *pre, c(f"{prefix}<@r.test,s.test:a@x.test>", "501")
    )
    case(f"{verb}-source-route-bad-domain", *pre, c(f"{prefix}<@-r.test:a@x.test>", "501"))
    case(f"{verb}-percent-hack", *pre, c(f"{prefix}<a%y.test@x.test>", "250"))
    case(f"{verb}-bang-path", *pre, c(f"{prefix}<y.test!a@x.test>", "250"))
    case(f"{verb}-local-part-64", *pre, c(f"{prefix}<{'l' * 64}@x.test>", "250"))
    case(f"{verb}-local-part-65", *pre, c(f"{prefix}<{'l' * 65}@x.test>", "501"))
    case(
        f"{verb}-domain-over-255",
        *pre,
        c(f"{prefix}<a@{'d' * 60}.{'d' * 60}.{'d' * 60}.{'d' * 60}.{'d' * 20}.test>", "501"),
    )
    case(f"{verb}-label-64", *pre, c(f"{prefix}<a@{'d' * 64}.test>", "501"))
    case(f"{verb}-label-63", *pre, c(f"{prefix}<a@{'d' * 63}.test>", "250"))
    case(
        f"{verb}-path-over-256",
        *pre,
        c(f"{prefix}<{'l' * 60}@{'d' * 60}.{'d' * 60}.{'d' * 60}.{'d' * 12}.test>", "501"),
    )
    case(f"{verb}-address-literal-v4", *pre, c(f"{prefix}<a@[192.0.2.1]>", "250"))
    case(f"{verb}-address-literal-v6", *pre, c(f"{prefix}<a@[IPv6:2001:db8::1]>", "250"))
    case(f"{verb}-address-literal-bad-v4", *pre, c(f"{prefix}<a@[999.0.2.1]>", "501"))
    case(f"{verb}-address-literal-bad-v6", *pre, c(f"{prefix}<a@[IPv6:zz::1]>", "501"))
    case(f"{verb}-address-literal-unclosed", *pre, c(f"{prefix}<a@[192.0.2.1>", "501"))
    case(f"{verb}-no-domain", *pre, c(f"{prefix}<bob>", "501"))
    case(f"{verb}-empty-local-part", *pre, c(f"{prefix}<@x.test>", "501"))
    case(f"{verb}-trailing-dot-domain", *pre, c(f"{prefix}<a@x.test.>", "501"))
    case(f"{verb}-underscore-domain", *pre, c(f"{prefix}<a@x_y.test>", "501"))
    case(f"{verb}-double-dot-local", *pre, c(f"{prefix}<a..b@x.test>", "501"))
    case(f"{verb}-quoted-local-with-space", *pre, c(f'{prefix}<"a b"@x.test>', "250"))
    case(f"{verb}-quoted-local-escaped-quote", *pre, c(f'{prefix}<"a\\"b"@x.test>', "250"))
    case(f"{verb}-quoted-local-unbalanced", *pre, c(f'{prefix}<"ab@x.test>', "501"))
    case(f"{verb}-two-at-signs", *pre, c(f"{prefix}<a@b@x.test>", "501"))
    case(f"{verb}-non-ascii-without-smtputf8", *pre, c(f"{prefix}<jösé@x.test>", "553 5.6.7"))
    case(
        f"{verb}-invalid-utf8-address",
        *pre,
        c(f"{prefix}<".encode() + b"\xc3(@x.test>", "500 5.5.2"),
    )
    case(f"{verb}-verb-lower-case", *pre, c(f"{prefix.lower()}<a@x.test>", "250"))

case(
    "mail-null-sender",
    EHLO,
    c("MAIL FROM:<>", "250"),
    RCPT,
    DATA,
    raw(b"bounce\r\n.\r\n", "250"),
    check=envelopes(("", ["bob@example.test"])),
)
case("rcpt-null-recipient", EHLO, MAIL, c("RCPT TO:<>", "501 5.1.3"))
case("rcpt-postmaster-without-domain", EHLO, MAIL, c("RCPT TO:<Postmaster>", "250"))
case("mail-from-without-colon", EHLO, c("MAIL FROM <a@x.test>", "501 5.5.4"))
case("rcpt-to-without-colon", EHLO, MAIL, c("RCPT TO <a@x.test>", "501 5.5.4"))
case("mail-no-argument", EHLO, c("MAIL", "501"))
case("rcpt-no-argument", EHLO, MAIL, c("RCPT", "501"))
case(
    "source-route-is-dropped-from-envelope",
    EHLO,
    c("MAIL FROM:<@r.test:a@x.test>", "250"),
    c("RCPT TO:<@r.test,@s.test:b@y.test>", "250"),
    DATA,
    raw(b"x\r\n.\r\n", "250"),
    check=envelopes(("a@x.test", ["b@y.test"])),
)
case(
    "smtputf8-sender-and-recipient",
    EHLO,
    c("MAIL FROM:<jösé@bücher.test> SMTPUTF8", "250"),
    c("RCPT TO:<müller@bücher.test>", "250"),
    DATA,
    raw("Subject: ü\r\n\r\nü\r\n.\r\n".encode(), "250"),
    check=envelopes(("jösé@bücher.test", ["müller@bücher.test"])),
)
case(
    "smtputf8-recipient-without-parameter",
    EHLO,
    MAIL,
    c("RCPT TO:<müller@bücher.test>", "553 5.6.7"),
)
case(
    "smtputf8-disabled",
    EHLO,
    c("MAIL FROM:<a@x.test> SMTPUTF8", "555"),
    c("MAIL FROM:<jösé@x.test> SMTPUTF8", "5"),
    options={"smtputf8": False},
)
case("smtputf8-with-value", EHLO, c("MAIL FROM:<a@x.test> SMTPUTF8=yes", "501"))
case(
    "smtputf8-not-advertised-when-off",
    c("EHLO c.test", "250"),
    options={"smtputf8": False},
    check=holds(lambda s: not any("SMTPUTF8" in line for line in s.transcript), "no SMTPUTF8"),
)

# =============================================================================================
# ESMTP parameters
for name, line, code in (
    ("unknown", "MAIL FROM:<a@x.test> FOO=bar", "555"),
    ("unknown-flag", "MAIL FROM:<a@x.test> XFLAG", "555"),
    ("size-repeated", "MAIL FROM:<a@x.test> SIZE=10 SIZE=10", "501"),
    ("size-not-a-number", "MAIL FROM:<a@x.test> SIZE=ten", "501"),
    ("size-negative", "MAIL FROM:<a@x.test> SIZE=-1", "501"),
    ("size-empty-value", "MAIL FROM:<a@x.test> SIZE=", "501"),
    ("size-without-value", "MAIL FROM:<a@x.test> SIZE", "501"),
    ("size-zero", "MAIL FROM:<a@x.test> SIZE=0", "250"),
    ("size-at-limit", "MAIL FROM:<a@x.test> SIZE=33554432", "250"),
    ("size-over-limit", "MAIL FROM:<a@x.test> SIZE=33554433", "552 5.3.4"),
    ("size-huge", "MAIL FROM:<a@x.test> SIZE=" + "9" * 60, "552"),
    ("size-lower-case", "MAIL FROM:<a@x.test> size=10", "250"),
    ("body-8bitmime", "MAIL FROM:<a@x.test> BODY=8BITMIME", "250"),
    ("body-7bit", "MAIL FROM:<a@x.test> BODY=7BIT", "250"),
    ("body-lower-case", "MAIL FROM:<a@x.test> body=8bitmime", "250"),
    ("body-binarymime", "MAIL FROM:<a@x.test> BODY=BINARYMIME", "501"),
    ("body-without-value", "MAIL FROM:<a@x.test> BODY", "501"),
    ("ret-full", "MAIL FROM:<a@x.test> RET=FULL", "250"),
    ("ret-hdrs", "MAIL FROM:<a@x.test> RET=HDRS", "250"),
    ("ret-bad", "MAIL FROM:<a@x.test> RET=ALL", "501"),
    ("ret-without-value", "MAIL FROM:<a@x.test> RET", "501"),
    ("envid", "MAIL FROM:<a@x.test> ENVID=QQ314159", "250"),
    ("envid-101-chars", "MAIL FROM:<a@x.test> ENVID=" + "e" * 101, "501"),
    ("envid-without-value", "MAIL FROM:<a@x.test> ENVID", "501"),
    ("value-with-equals", "MAIL FROM:<a@x.test> ENVID=a=b", "501"),
    ("keyword-empty", "MAIL FROM:<a@x.test> =x", "501"),
    ("keyword-bad-chars", "MAIL FROM:<a@x.test> SI_ZE=1", "501"),
    ("auth-null-not-offered", "MAIL FROM:<a@x.test> AUTH=<>", "555 5.5.4"),
    ("auth-without-value-not-offered", "MAIL FROM:<a@x.test> AUTH", "555 5.5.4"),
    ("glued-to-address", "MAIL FROM:<a@x.test>SIZE=10", "501"),
    ("many-spaces-between", "MAIL FROM:<a@x.test>    SIZE=10     BODY=7BIT", "250"),
):
    case(f"mail-param-{name}", EHLO, c(line, code))

for name, line, code in (
    ("notify-never", "RCPT TO:<b@y.test> NOTIFY=NEVER", "250"),
    ("notify-list", "RCPT TO:<b@y.test> NOTIFY=SUCCESS,FAILURE,DELAY", "250"),
    ("notify-never-and-success", "RCPT TO:<b@y.test> NOTIFY=NEVER,SUCCESS", "501"),
    ("notify-bogus", "RCPT TO:<b@y.test> NOTIFY=SOMETIMES", "501"),
    ("notify-without-value", "RCPT TO:<b@y.test> NOTIFY", "501"),
    ("notify-repeated", "RCPT TO:<b@y.test> NOTIFY=NEVER NOTIFY=NEVER", "501"),
    ("orcpt", "RCPT TO:<b@y.test> ORCPT=rfc822;b@y.test", "250"),
    ("orcpt-without-type", "RCPT TO:<b@y.test> ORCPT=b@y.test", "501"),
    ("unknown", "RCPT TO:<b@y.test> FOO=bar", "555"),
):
    case(f"rcpt-param-{name}", EHLO, MAIL, c(line, code))

# AUTH= (RFC 4954 §5): accepted and recorded where AUTH is offered, 555 where it is not.
case(
    "auth-param-null-offered",
    EHLO,
    c("MAIL FROM:<a@x.test> AUTH=<>", "250"),
    RCPT,
    DATA,
    raw(b"x\r\n.\r\n", "250"),
    options=AUTH_OFFERED,
    check=mail_options("AUTH=<>"),
)
case(
    "auth-param-xtext-mailbox-offered",
    EHLO,
    c("MAIL FROM:<e=mc2@x.test> AUTH=e+3Dmc2@x.test", "250"),
    options=AUTH_OFFERED,
)
case(
    "auth-param-not-a-mailbox-offered",
    EHLO,
    c("MAIL FROM:<a@x.test> AUTH=nobody", "501 5.5.4"),
    options=AUTH_OFFERED,
)
case(
    "auth-param-bad-xtext-offered",
    EHLO,
    c("MAIL FROM:<a@x.test> AUTH=a+zz@x.test", "501 5.5.4"),
    options=AUTH_OFFERED,
)
case(
    "auth-param-without-value-offered",
    EHLO,
    c("MAIL FROM:<a@x.test> AUTH", "501 5.5.4"),
    options=AUTH_OFFERED,
)
case(
    "auth-param-before-tls-not-offered",
    EHLO,
    c("MAIL FROM:<a@x.test> AUTH=<>", "555 5.5.4"),
    options={"auth": "any", "tls": "starttls"},
)
case("params-after-helo-refused", HELO, c("MAIL FROM:<a@x.test> BODY=8BITMIME", "501 5.5.4"))
case(
    "rcpt-params-after-helo-refused",
    HELO,
    c("MAIL FROM:<a@x.test>", "250"),
    c("RCPT TO:<b@y.test> NOTIFY=NEVER", "501 5.5.4"),
)
case(
    "dsn-parameters-kept-as-sent",
    EHLO,
    c("MAIL FROM:<a@x.test> RET=hdrs ENVID=QQ+2B314", "250"),
    c("RCPT TO:<b@y.test> NOTIFY=failure ORCPT=rfc822;B@Y.test", "250"),
    DATA,
    raw(b"x\r\n.\r\n", "250"),
    check=mail_options("RET=hdrs", "ENVID=QQ+2B314"),
)
case(
    "failed-mail-leaves-no-sender",
    EHLO,
    c("MAIL FROM:<a@x.test> FOO=1", "555"),
    c("RCPT TO:<b@y.test>", "503 5.5.1"),
    check=outcomes("rejected"),
)

# =============================================================================================
# DATA
case("dot-stuffed-line", *message(b"..x\r\n.\r\n", "250"), check=raws(b".x\r\n"))
case("dot-stuffed-lone-dot", *message(b"..\r\n.\r\n", "250"), check=raws(b".\r\n"))
case("dot-stuffed-three-dots", *message(b"...\r\n.\r\n", "250"), check=raws(b"..\r\n"))
case("dot-space-line", *message(b". \r\n.\r\n", "250"), check=raws(b" \r\n"))
case("dot-first-line", *message(b".x\r\ny\r\n.\r\n", "250"), check=raws(b"x\r\ny\r\n"))
case(
    "dot-inside-line-untouched",
    *message(b"a.b\r\nc..d\r\n.\r\n", "250"),
    check=raws(b"a.b\r\nc..d\r\n"),
)
case("dot-at-end-of-line", *message(b"end.\r\n.\r\n", "250"), check=raws(b"end.\r\n"))
case("empty-message", *message(b".\r\n", "250"), check=raws(b""))
case("only-blank-line", *message(b"\r\n.\r\n", "250"), check=raws(b"\r\n"))
case("headers-only", *message(b"Subject: s\r\n.\r\n", "250"), check=raws(b"Subject: s\r\n"))
case(
    "folded-header",
    *message(b"Subject: a\r\n b\r\n\r\nx\r\n.\r\n", "250"),
    check=holds(lambda s: s.mailbox.one().subject == "a b", "the folded Subject unfolded"),
)
case(
    "bare-lf-lines",
    *message(b"a\nb\nc\r\n.\r\n", "250"),
    check=both(raws(b"a\nb\nc\r\n"), defects("bare LF x2")),
)
case(
    "bare-cr-lines",
    *message(b"a\rb\r\n.\r\n", "250"),
    check=both(raws(b"a\rb\r\n"), defects("bare CR x1")),
)
case(
    "bare-lf-strict",
    *message(b"a\nb\r\n.\r\n", "550 5.5.2"),
    options={"strict_line_endings": True},
    check=outcomes("rejected"),
)
case(
    "bare-cr-strict",
    *message(b"a\rb\r\n.\r\n", "550 5.5.2"),
    options={"strict_line_endings": True},
    check=outcomes("rejected"),
)
case(
    "crlf-only-strict-accepted",
    *message(b"a\r\nb\r\n.\r\n", "250"),
    options={"strict_line_endings": True},
)
case("line-998-octets", *message(b"x" * 998 + b"\r\n.\r\n", "250"), check=defects(exact=True))
case(
    "line-999-octets",
    *message(b"x" * 999 + b"\r\n.\r\n", "250"),
    check=defects("line over 998 octets"),
)
case(
    "line-100k-octets",
    *message(b"y" * 100_000 + b"\r\n.\r\n", "250"),
    check=defects("line over 998 octets"),
)
case(
    "long-line-not-first",
    *message(b"short\r\n" + b"z" * 1500 + b"\r\n.\r\n", "250"),
    check=defects("line over 998 octets"),
)
case(
    "nul-in-body", *message(b"a\0b\r\n.\r\n", "250"), check=both(raws(b"a\0b\r\n"), defects("NUL"))
)
case("eight-bit-without-8bitmime", *message("é\r\n.\r\n".encode(), "250"), check=defects("8-bit"))
case(
    "eight-bit-with-8bitmime",
    EHLO,
    c("MAIL FROM:<a@x.test> BODY=8BITMIME", "250"),
    RCPT,
    DATA,
    raw("é\r\n.\r\n".encode(), "250"),
    check=defects(exact=True),
)
case("eight-bit-invalid-utf8", *message(b"\xff\xfe\r\n.\r\n", "250"), check=raws(b"\xff\xfe\r\n"))
case(
    "body-without-final-crlf-then-eof",
    *envelope(DATA, raw(b"no line end")),
    raw(CLOSE),
    check=outcomes("aborted"),
)
case(
    "dot-without-crlf-before-eof",
    *envelope(DATA, raw(b"text\r\n.")),
    raw(CLOSE),
    check=outcomes("aborted"),
)
case(
    "terminator-split-cr-lf-dot",
    *envelope(DATA, raw(b"a\r"), raw(b"\n.\r\n", "250")),
    check=raws(b"a\r\n"),
)
case(
    "terminator-split-dot-cr",
    *envelope(DATA, raw(b"a\r\n."), raw(b"\r\n", "250")),
    check=raws(b"a\r\n"),
)
case(
    "terminator-split-last-lf",
    *envelope(DATA, raw(b"a\r\n.\r"), raw(b"\n", "250")),
    check=raws(b"a\r\n"),
)
case(
    "terminator-byte-by-byte",
    *envelope(DATA, *[raw(bytes([b])) for b in b"ab\r\n.\r"], raw(b"\n", "250")),
    check=raws(b"ab\r\n"),
)
case(
    "terminator-then-noop-glued",
    *envelope(DATA, raw(b"a\r\n.\r\nNOOP\r\n", "250", "250")),
    check=raws(b"a\r\n"),
)
case(
    "terminator-then-quit-glued",
    *envelope(DATA, raw(b"a\r\n.\r\nQUIT\r\n", "250", "221", "EOF")),
    check=raws(b"a\r\n"),
)
case(
    "second-transaction-glued",
    *envelope(
        DATA,
        raw(
            b"one\r\n.\r\nMAIL FROM:<c@x.test>\r\nRCPT TO:<d@y.test>\r\nDATA\r\ntwo\r\n.\r\n",
            "250",
            "250",
            "250",
            "354",
            "250",
        ),
    ),
    check=both(
        raws(b"one\r\n", b"two\r\n"),
        envelopes(("alice@example.test", ["bob@example.test"]), ("c@x.test", ["d@y.test"])),
    ),
)
case(
    "data-looks-like-commands",
    *message(b"QUIT\r\nRSET\r\nMAIL FROM:<evil@x.test>\r\n.\r\n", "250"),
    check=envelopes(("alice@example.test", ["bob@example.test"])),
)
case("size-limit-exact", *message(b"x" * 98 + b"\r\n.\r\n", "250"), options={"max_size": 100})
case(
    "size-limit-one-over",
    *message(b"x" * 99 + b"\r\n.\r\n", "552 5.3.4"),
    options={"max_size": 100},
    check=outcomes("rejected"),
)
case(
    "size-limit-far-over", *message(b"x" * 500_000 + b"\r\n.\r\n", "552"), options={"max_size": 100}
)
case(
    "size-limit-then-new-transaction",
    *message(b"x" * 500 + b"\r\n.\r\n", "552"),
    MAIL,
    RCPT,
    DATA,
    raw(b"ok\r\n.\r\n", "250"),
    options={"max_size": 100},
    check=both(raws(b"ok\r\n"), outcomes("rejected", "accepted")),
)
case(
    "size-limit-terminator-split",
    *envelope(DATA, raw(b"x" * 300 + b"\r\n."), raw(b"\r\nNOOP\r\n", "552", "250")),
    options={"max_size": 100},
)
case(
    "two-messages-same-connection",
    *message(b"1\r\n.\r\n", "250"),
    MAIL,
    RCPT,
    DATA,
    raw(b"2\r\n.\r\n", "250"),
    check=raws(b"1\r\n", b"2\r\n"),
)
case(
    "rset-after-data-accepted",
    *message(b"1\r\n.\r\n", "250"),
    c("RSET", "250"),
    c("RCPT TO:<b@y.test>", "503"),
)
case(
    "no-valid-recipients-then-data",
    EHLO,
    MAIL,
    c("RCPT TO:<bad>", "501"),
    c("DATA", "554 5.5.1"),
    c("RCPT TO:<b@y.test>", "503"),
    check=outcomes("rejected"),
)

# =============================================================================================
# SMTP smuggling: no sequence other than CRLF.CRLF may end DATA
_INJECTED = b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@y.test>\r\nDATA\r\nsmuggled\r\n"
_SEQUENCES = {
    "lf-dot-lf": b"\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "cr-dot-cr": b"\r.\r",
    "crlf-dot-cr": b"\r\n.\r",
    "cr-dot-lf": b"\r.\n",
    "crlf-dot-lf": b"\r\n.\n",
    "lf-dot-cr": b"\n.\r",
    "cr-dot-crlf": b"\r.\r\n",
    "lf-dot-lf-crlf": b"\n.\n\r\n",
    "crlf-crlf-dot-lf": b"\r\n\r\n.\n",
}
for label, seq in _SEQUENCES.items():
    body = b"Subject: s\r\n\r\nhello" + seq + _INJECTED
    case(
        f"smuggle-{label}",
        *message(body + b".\r\n", "250"),
        check=both(
            envelopes(("alice@example.test", ["bob@example.test"])),
            holds(
                lambda s: (
                    s.mailbox.one().raw.endswith(b"smuggled\r\n")
                    and b"MAIL FROM:<evil@x.test>" in s.mailbox.one().raw
                ),
                "the injected commands kept inside the one message",
            ),
        ),
    )
    case(
        f"smuggle-{label}-strict",
        *message(body + b".\r\n", "550 5.5.2"),
        options={"strict_line_endings": True},
        check=outcomes("rejected"),
    )
    case(
        f"smuggle-{label}-split-packets",
        *envelope(DATA, raw(b"hello" + seq[:1]), raw(seq[1:] + _INJECTED), raw(b".\r\n", "250")),
        check=envelopes(("alice@example.test", ["bob@example.test"])),
    )
case(
    "smuggle-combined-sequences",
    *message(b"a\n.\n\r.\r\n.\r\r\n.\n" + _INJECTED + b".\r\n", "250"),
    check=envelopes(("alice@example.test", ["bob@example.test"])),
)
case(
    "smuggle-null-before-dot",
    *message(b"a\r\n\0.\r\n" + _INJECTED + b".\r\n", "250"),
    check=envelopes(("alice@example.test", ["bob@example.test"])),
)

# =============================================================================================
# Pipelining
case(
    "pipeline-whole-transaction",
    raw(
        b"EHLO p.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
        "250",
        "250",
        "250",
        "354",
    ),
    raw(b"x\r\n.\r\n", "250"),
)
case(
    "pipeline-everything-one-packet",
    raw(
        b"EHLO p.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
        b"DATA\r\nbody\r\n.\r\nQUIT\r\n",
        "250",
        "250",
        "250",
        "354",
        "250",
        "221",
        "EOF",
    ),
    check=raws(b"body\r\n"),
)
case("pipeline-100-noops", raw(b"NOOP\r\n" * 100, *["250"] * 100))
case(
    "pipeline-50-recipients",
    EHLO,
    MAIL,
    raw(b"".join(b"RCPT TO:<r%d@y.test>\r\n" % i for i in range(50)), *["250"] * 50),
    DATA,
    raw(b"x\r\n.\r\n", "250"),
    check=holds(lambda s: len(s.mailbox.one().rcpt_tos) == 50, "50 recipients"),
)
case(
    "pipeline-after-rejected-rcpt",
    EHLO,
    raw(
        b"MAIL FROM:<a@x.test>\r\nRCPT TO:<bad>\r\nRCPT TO:<good@y.test>\r\nDATA\r\nbody\r\n.\r\n",
        "250",
        "501",
        "250",
        "354",
        "250",
    ),
    check=envelopes(("a@x.test", ["good@y.test"])),
)
case(
    "pipeline-all-rcpt-rejected-body-becomes-commands",
    EHLO,
    raw(
        b"MAIL FROM:<a@x.test>\r\nRCPT TO:<bad>\r\nDATA\r\nhello\r\n.\r\n",
        "250",
        "501",
        "554",
        "500",
        "500",
    ),
    c("NOOP", "250"),
    check=outcomes("rejected"),
)
case(
    "pipeline-rset-between-transactions",
    EHLO,
    raw(
        b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRSET\r\n"
        b"MAIL FROM:<c@x.test>\r\nRCPT TO:<d@y.test>\r\nDATA\r\nx\r\n.\r\n",
        "250",
        "250",
        "250",
        "250",
        "250",
        "354",
        "250",
    ),
    check=both(envelopes(("c@x.test", ["d@y.test"])), outcomes("aborted", "accepted")),
)
case(
    "pipeline-mail-rejected-then-rcpt",
    EHLO,
    raw(b"MAIL FROM:<bad>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n", "501", "503", "503"),
    c("NOOP", "250"),
)
case(
    "pipeline-two-messages-then-quit",
    EHLO,
    raw(
        b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\none\r\n.\r\n"
        b"MAIL FROM:<c@x.test>\r\nRCPT TO:<d@y.test>\r\nDATA\r\ntwo\r\n.\r\nQUIT\r\n",
        "250",
        "250",
        "354",
        "250",
        "250",
        "250",
        "354",
        "250",
        "221",
        "EOF",
    ),
    check=envelopes(("a@x.test", ["b@y.test"]), ("c@x.test", ["d@y.test"])),
)
_TLS = {"tls": "starttls"}
case(
    "starttls-then-session",
    c("EHLO c.test", "250"),
    c("STARTTLS", "220"),
    raw(TLS),
    EHLO,
    MAIL,
    RCPT,
    DATA,
    raw(b"secret\r\n.\r\n", "250"),
    options=_TLS,
    check=holds(lambda s: s.mailbox.one().session.tls_mode == "starttls", "a TLS session"),
)
case(
    "starttls-pipelined-commands-discarded",
    c("EHLO c.test", "250"),
    raw(b"STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n", "220"),
    raw(TLS),
    EHLO,
    c("RCPT TO:<b@y.test>", "503 5.5.1"),
    options=_TLS,
    check=outcomes(),
)
case(
    "starttls-forgets-helo",
    c("EHLO c.test", "250"),
    c("STARTTLS", "220"),
    raw(TLS),
    c("MAIL FROM:<a@x.test>", "503 5.5.1"),
    options=_TLS,
)
case(
    "starttls-forgets-envelope",
    c("EHLO c.test", "250"),
    MAIL,
    c("STARTTLS", "220"),
    raw(TLS),
    EHLO,
    c("RCPT TO:<b@y.test>", "503"),
    options=_TLS,
    check=outcomes("aborted"),
)
case(
    "starttls-twice",
    c("EHLO c.test", "250"),
    c("STARTTLS", "220"),
    raw(TLS),
    EHLO,
    c("STARTTLS", "503 5.5.1"),
    options=_TLS,
)
case("starttls-with-argument", c("EHLO c.test", "250"), c("STARTTLS now", "501"), options=_TLS)
case(
    "starttls-then-garbage-not-tls",
    c("EHLO c.test", "250"),
    c("STARTTLS", "220"),
    raw(b"this is not a TLS record\r\n\r\n", "GONE"),
    options=_TLS,
)
case(
    "require-tls-refuses-mail",
    c("EHLO c.test", "250"),
    c("MAIL FROM:<a@x.test>", "530 5.7.0"),
    c("NOOP", "250"),
    options={"tls": "starttls", "require_tls": True},
    check=outcomes("rejected"),
)
case(
    "auth-before-tls-refused",
    c("EHLO c.test", "250"),
    c("AUTH PLAIN AGJvYgBzZWNyZXQ=", "538 5.7.11"),
    options={"tls": "starttls", "auth": {"bob": "secret"}},
)
_AUTH = {"tls": "starttls", "auth": {"bob": "secret"}}
_AUTH_READY = [c("EHLO c.test", "250"), c("STARTTLS", "220"), raw(TLS), EHLO]
case("auth-plain-ok", *_AUTH_READY, c("AUTH PLAIN AGJvYgBzZWNyZXQ=", "235"), options=_AUTH)
case(
    "auth-plain-bad-base64",
    *_AUTH_READY,
    c("AUTH PLAIN !!!notbase64", "501"),
    c("NOOP", "250"),
    options=_AUTH,
)
case(
    "auth-plain-wrong-password",
    *_AUTH_READY,
    c("AUTH PLAIN AGJvYgB3cm9uZw==", "535 5.7.8"),
    options=_AUTH,
)
case(
    "auth-login-abort",
    *_AUTH_READY,
    c("AUTH LOGIN", "334"),
    c("*", "501"),
    c("NOOP", "250"),
    options=_AUTH,
)
case("auth-unknown-mechanism", *_AUTH_READY, c("AUTH GSSAPI", "504"), options=_AUTH)
case(
    "auth-challenge-line-too-long",
    *_AUTH_READY,
    c("AUTH LOGIN", "334"),
    raw(b"A" * 13000),  # RFC 4954 §4: 12,288 octets is the line limit of a SASL response
    raw(b"\r\n", "500 5.5.6"),
    c("NOOP", "250"),
    options=_AUTH,
)
case(
    "auth-disconnect-mid-exchange", *_AUTH_READY, c("AUTH LOGIN", "334"), raw(CLOSE), options=_AUTH
)

# =============================================================================================
# Limits
case(
    "max-recipients",
    EHLO,
    MAIL,
    *[c(f"RCPT TO:<r{i}@y.test>", "250") for i in range(3)],
    c("RCPT TO:<r3@y.test>", "452 4.5.3"),
    DATA,
    raw(b"x\r\n.\r\n", "250"),
    options={"max_recipients": 3},
    check=holds(
        lambda s: s.mailbox.one().rcpt_tos == ["r0@y.test", "r1@y.test", "r2@y.test"],
        "the first 3 recipients",
    ),
)
case(
    "max-recipients-duplicates-count",
    EHLO,
    MAIL,
    c("RCPT TO:<r@y.test>", "250"),
    c("RCPT TO:<r@y.test>", "452"),
    options={"max_recipients": 1},
)
_IDLE = {"timeout": 0.5}
case("idle-after-greeting", raw(b"", "421 4.4.2", "EOF"), options=_IDLE)
case("idle-after-ehlo", EHLO, raw(b"", "421 4.4.2", "EOF"), options=_IDLE)
case(
    "idle-mid-transaction",
    EHLO,
    MAIL,
    RCPT,
    raw(b"", "421 4.4.2", "EOF"),
    options=_IDLE,
    check=outcomes("aborted"),
)
case(
    "idle-mid-data",
    *envelope(DATA, raw(b"partial\r\n", "421 4.4.2", "EOF")),
    options=_IDLE,
    check=outcomes("aborted"),
)
case("idle-mid-command-line", raw(b"NOO", "421 4.4.2", "EOF"), options=_IDLE)
case(
    "idle-mid-terminator",
    *envelope(DATA, raw(b"x\r\n.\r", "421 4.4.2", "EOF")),
    options=_IDLE,
    check=outcomes("aborted"),
)

# =============================================================================================
# Disconnects at every stage (FIN and RST)
for how, token in (("fin", CLOSE), ("rst", RST)):
    case(f"disconnect-{how}-before-greeting", raw(token), greet=False)
    case(f"disconnect-{how}-after-greeting", raw(token))
    case(f"disconnect-{how}-after-ehlo", EHLO, raw(token))
    case(f"disconnect-{how}-after-mail", EHLO, MAIL, raw(token), check=outcomes("aborted"))
    case(f"disconnect-{how}-after-rcpt", EHLO, MAIL, RCPT, raw(token), check=outcomes("aborted"))
    case(f"disconnect-{how}-after-354", *envelope(DATA, raw(token)), check=outcomes("aborted"))
    case(
        f"disconnect-{how}-mid-body",
        *envelope(DATA, raw(b"Subject: x\r\n\r\npartial"), raw(token)),
        check=outcomes("aborted"),
    )
    case(
        f"disconnect-{how}-mid-terminator",
        *envelope(DATA, raw(b"body\r\n.\r"), raw(token)),
        check=outcomes("aborted"),
    )
    case(f"disconnect-{how}-mid-command", raw(b"MAIL FROM:<a@x"), raw(token))
    case(
        f"disconnect-{how}-after-rejected-rcpt",
        EHLO,
        MAIL,
        c("RCPT TO:<bad>", "501"),
        raw(token),
        check=outcomes("rejected"),
    )
case(
    "disconnect-after-terminator-unread",
    *envelope(DATA, raw(b"done\r\n.\r\n")),
    raw(CLOSE),
    accepted=1,
    check=raws(b"done\r\n"),
)
case("disconnect-after-quit-unread", raw(b"QUIT\r\n"), raw(CLOSE))
case(
    "disconnect-mid-pipeline",
    EHLO,
    raw(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nhal"),
    raw(RST),
)
