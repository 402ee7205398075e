"""Plain data for the report and the web view: what a test's mail looked like, as JSON.

A :class:`TestRecord` holds everything the HTML report shows for one test (messages with their
raw bytes, transactions with their outcomes, the SMTP transcript), as plain dataclasses that
survive a JSON round trip: each pytest-xdist worker writes its records, and one process merges
them into one report. Nothing here needs aiohttp or Jinja2.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..mail import Message, ProxyHeader, Reply, SessionInfo, Transaction

__all__ = [
    "MessageRecord",
    "RecipientRecord",
    "TestRecord",
    "TransactionRecord",
]

#: Test outcomes that sort first in the report (a failed test is what one opens it for).
FAILED_OUTCOMES = ("failed", "error")


def reply_text(reply: Reply) -> str:
    """``reply`` as sent, every line, joined by ``"\n"``: :meth:`Reply.parse
    <pytest_smtp.Reply.parse>` reads it back whole (``str(reply)`` is its first line only)."""
    return "\n".join(reply.wire_lines())


def session_to_dict(info: SessionInfo) -> dict[str, Any]:
    """``info`` as JSON-ready data; :func:`session_from_dict` reads it back."""
    return _json_safe_session(dataclasses.asdict(info))


def _json_safe_session(data: dict[str, Any]) -> dict[str, Any]:
    """A session dict of ``dataclasses.asdict``, with a PROXY header's extension values (bytes)
    in base64."""
    proxy = data.get("proxy")
    if proxy is not None:
        proxy["tlvs"] = [
            [kind, base64.b64encode(value).decode("ascii")] for kind, value in proxy["tlvs"]
        ]
    return data


def _pair(value: Any) -> tuple[str, int] | None:
    return None if value is None else (str(value[0]), int(value[1]))


def session_from_dict(data: dict[str, Any]) -> SessionInfo:
    """The :class:`~pytest_smtp.SessionInfo` :func:`session_to_dict` turned into JSON."""
    host, port = data["peer"]
    proxy = data.get("proxy")
    if proxy is not None:
        proxy = ProxyHeader(
            version=int(proxy["version"]),
            command=str(proxy["command"]),
            family=str(proxy["family"]),
            source=_pair(proxy["source"]),
            destination=_pair(proxy["destination"]),
            tlvs=tuple(
                (int(kind), base64.b64decode(value, validate=True)) for kind, value in proxy["tlvs"]
            ),
        )
    return SessionInfo(**{**data, "peer": (str(host), int(port)), "proxy": proxy})


@dataclass
class RecipientRecord:
    """One ``RCPT TO`` and the server's reply to it."""

    address: str
    options: list[str]
    reply: str
    accepted: bool


@dataclass
class MessageRecord:
    """One message a server accepted (or dropped), with its raw bytes, envelope and session."""

    id: int
    """The id of the transaction that delivered it (unique per server)."""
    server: str
    received_at: str
    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str]
    rcpt_options: dict[str, list[str]]
    session: SessionInfo
    raw: bytes = field(repr=False)
    defects: list[str] = field(default_factory=list)

    @classmethod
    def from_message(cls, message: Message) -> MessageRecord:
        """The record of a live :class:`~pytest_smtp.Message`."""
        return cls(
            id=message.transaction_id,
            server=message.server,
            received_at=message.received_at.isoformat(),
            mail_from=message.mail_from,
            rcpt_tos=list(message.rcpt_tos),
            mail_options=list(message.mail_options),
            rcpt_options={k: list(v) for k, v in message.rcpt_options.items()},
            session=message.session,
            raw=message.raw,
            defects=list(message.defects),
        )

    def to_message(self) -> Message:
        """A :class:`~pytest_smtp.Message` again: the same parsing as in a test."""
        return Message(
            raw=self.raw,
            mail_from=self.mail_from,
            rcpt_tos=self.rcpt_tos,
            mail_options=self.mail_options,
            rcpt_options=self.rcpt_options,
            session=self.session,
            server=self.server,
            received_at=datetime.fromisoformat(self.received_at),
            transaction_id=self.id,
            defects=self.defects,
        )


@dataclass
class TransactionRecord:
    """One ``MAIL FROM`` .. end attempt: its outcome, the deciding reply and its dialogue."""

    id: int
    server: str
    session: SessionInfo
    mail_from: str | None
    recipients: list[RecipientRecord]
    outcome: str | None
    stage: str
    reply: str | None
    message_id: int | None
    transcript: list[str]
    started_at: str
    ended_at: str | None = None
    error: str | None = None

    @classmethod
    def from_transaction(cls, txn: Transaction, server: str) -> TransactionRecord:
        """The record of a live :class:`~pytest_smtp.Transaction` of the server ``server``."""
        return cls(
            id=txn.id,
            server=server,
            session=txn.session,
            mail_from=txn.mail_from,
            recipients=[
                RecipientRecord(r.address, list(r.options), reply_text(r.reply), r.accepted)
                for r in list(txn.recipients)
            ],
            outcome=txn.outcome,
            stage=txn.stage,
            reply=None if txn.reply is None else reply_text(txn.reply),
            message_id=None if txn.message is None else txn.message.transaction_id,
            transcript=list(txn.transcript),
            started_at=txn.started_at.isoformat(),
            ended_at=None if txn.ended_at is None else txn.ended_at.isoformat(),
            error=txn.error,
        )


@dataclass
class TestRecord:
    """What the report shows of one test: its outcome and every server's mail and dialogue.

    ``transcript`` maps a server's ``"host:port"`` to its transcript lines
    (``"[session] C: ..."``, as ``SMTPServer.transcript`` gives them). Fill it from live
    servers with :meth:`add_server`; :meth:`to_dict` / :meth:`from_dict` are its JSON form.
    """

    __test__ = False  # not a pytest test class, whatever its name

    nodeid: str
    outcome: str
    duration: float = 0.0
    messages: list[MessageRecord] = field(default_factory=list)
    transactions: list[TransactionRecord] = field(default_factory=list)
    transcript: dict[str, list[str]] = field(default_factory=dict)
    longrepr: str = ""
    """The failure text pytest printed for the test (empty when it passed)."""

    @property
    def failed(self) -> bool:
        """True for a failed test or an error in its setup or teardown."""
        return self.outcome in FAILED_OUTCOMES

    @property
    def anchor(self) -> str:
        """The id of this test's row in the report's ``index.html`` (``test-`` and 12 hex
        digits of its node id's SHA-1): known before the report is merged, so pytest-html's
        row for the test can link to ``index.html#<anchor>``."""
        return "test-" + hashlib.sha1(self.nodeid.encode("utf-8")).hexdigest()[:12]

    def add_server(self, server: Any) -> TestRecord:
        """Copy what ``server`` (an :class:`~pytest_smtp.SMTPServer`) captured; returns self."""
        name = f"{server.host}:{server.port}"
        self.messages.extend(MessageRecord.from_message(m) for m in server.mailbox)
        self.transactions.extend(
            TransactionRecord.from_transaction(t, name) for t in server.transactions
        )
        self.transcript[name] = list(server.transcript)
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (raw message bytes in base64)."""
        data = dataclasses.asdict(self)
        for message in data["messages"]:
            message["raw"] = base64.b64encode(message["raw"]).decode("ascii")
            _json_safe_session(message["session"])
        for txn in data["transactions"]:
            _json_safe_session(txn["session"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestRecord:
        """The record :meth:`to_dict` wrote; ``ValueError`` naming the field when it is not."""
        try:
            messages = [
                MessageRecord(
                    **{
                        **m,
                        "raw": base64.b64decode(m["raw"], validate=True),
                        "session": session_from_dict(m["session"]),
                    }
                )
                for m in data.get("messages", [])
            ]
            transactions = [
                TransactionRecord(
                    **{
                        **t,
                        "session": session_from_dict(t["session"]),
                        "recipients": [RecipientRecord(**r) for r in t["recipients"]],
                    }
                )
                for t in data.get("transactions", [])
            ]
            return cls(
                nodeid=str(data["nodeid"]),
                outcome=str(data["outcome"]),
                duration=float(data.get("duration", 0.0)),
                messages=messages,
                transactions=transactions,
                transcript={str(k): list(v) for k, v in data.get("transcript", {}).items()},
                longrepr=str(data.get("longrepr", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"not a TestRecord dict ({type(exc).__name__}: {exc}); write it with "
                "TestRecord.to_dict()"
            ) from None


def session_lines(transcript: list[str], session_id: int) -> list[str]:
    """The lines of one session out of a server transcript, without the ``[id]`` prefix."""
    prefix = f"[{session_id}] "
    return [line[len(prefix) :] for line in transcript if line.startswith(prefix)]


def mark_transactions(
    lines: list[str], transactions: list[TransactionRecord]
) -> list[tuple[str, int | None]]:
    """``(line, transaction id or None)`` for each line of one session's transcript.

    A transaction's lines are a contiguous run of its session's lines, followed by the reply
    that decided it; runs are found in order, each after the previous one.
    """
    marks: list[int | None] = [None] * len(lines)
    cursor = 0
    for txn in sorted(transactions, key=lambda t: t.id):
        run = txn.transcript
        if not run:
            continue
        for start in range(cursor, len(lines) - len(run) + 1):
            if lines[start : start + len(run)] == run:
                end = start + len(run)
                # The deciding reply is logged after the transaction has finished.
                code = f"S: {txn.reply[:3]}" if txn.reply else None
                while code is not None and end < len(lines) and lines[end].startswith(code):
                    end += 1
                for i in range(start, end):
                    marks[i] = txn.id
                cursor = end
                break
    return list(zip(lines, marks, strict=True))
