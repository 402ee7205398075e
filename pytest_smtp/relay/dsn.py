"""Delivery status notifications: RFC 3464 reports and the RFC 3461 envelope parameters.

:func:`build_dsn` writes the bytes of a ``multipart/report; report-type=delivery-status``
message by hand (not through ``email.generator``) so that the returned original is carried
byte for byte, 8-bit content included. :func:`parse_dsn` reads one back for assertions.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from email import message_from_bytes
from email import policy as email_policy
from email.message import Message as EmailMessage
from typing import Literal

__all__ = [
    "DSNRecipient",
    "DSNReport",
    "build_dsn",
    "parse_dsn",
    "parse_notify",
    "xtext_decode",
    "xtext_encode",
]

Action = Literal["failed", "delayed", "delivered", "relayed", "expanded"]
ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")

_SUBJECTS = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
    "delivered": "Successful Mail Delivery Report",
    "relayed": "Mail Relayed Without Delivery Notification",
    "expanded": "Mail Expanded",
}

_XTEXT_RE = re.compile(r"\+([0-9A-F]{2})")


def xtext_encode(text: str) -> str:
    """RFC 3461 §4 xtext: ``+``, ``=`` and characters outside ``!``..``~`` as ``+HH``."""
    out = []
    for byte in text.encode("utf-8"):
        if byte in (0x2B, 0x3D) or not 0x21 <= byte <= 0x7E:
            out.append(f"+{byte:02X}")
        else:
            out.append(chr(byte))
    return "".join(out)


def xtext_decode(text: str) -> str:
    """Undo :func:`xtext_encode` (``+HH`` hex escapes; invalid escapes are kept as sent)."""
    raw = _XTEXT_RE.sub(lambda m: chr(int(m.group(1), 16)), text)
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def parse_notify(value: str | None) -> frozenset[str] | None:
    """``NOTIFY=`` value to a set (``{"NEVER"}`` or a subset of SUCCESS/FAILURE/DELAY)."""
    if value is None:
        return None
    items = frozenset(v.strip().upper() for v in value.split(",") if v.strip())
    if not items or not (items == {"NEVER"} or items <= {"SUCCESS", "FAILURE", "DELAY"}):
        raise ValueError(
            f"NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY, not {value!r}"
        )
    return items


@dataclasses.dataclass(frozen=True)
class DSNRecipient:
    """One per-recipient block of a report (RFC 3464 §2.3)."""

    final_recipient: str
    action: str
    status: str
    original_recipient: str | None = None
    """The ``ORCPT`` value as given (``rfc822;user@example.test``, xtext-decoded here)."""
    remote_mta: str | None = None
    diagnostic: str | None = None
    """The remote reply (``550 5.1.1 No such user``) or this MTA's own explanation."""
    last_attempt: datetime | None = None
    will_retry_until: datetime | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {self.action!r}")
        if not re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", self.status):
            raise ValueError(
                f"status must be an RFC 3463 code such as '5.1.1', not {self.status!r}"
            )


def _date(when: datetime) -> str:
    return email.utils.format_datetime(when)


def _header_section(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[: end + 2]


def build_dsn(
    *,
    reporting_mta: str,
    sender: str,
    original: bytes,
    recipients: Sequence[DSNRecipient],
    arrival: datetime,
    now: datetime,
    envid: str | None = None,
    ret: str | None = None,
) -> bytes:
    """The bytes of a DSN from ``MAILER-DAEMON@reporting_mta`` to ``sender``.

    ``original`` (CRLF line endings) is returned whole as ``message/rfc822`` when ``ret`` is
    ``FULL``, or when ``ret`` is absent and the report is a failure; otherwise only its header
    section as ``text/rfc822-headers``. ``envid`` becomes ``Original-Envelope-Id``.
    """
    if not recipients:
        raise ValueError("a DSN needs at least one recipient block")
    actions = {r.action for r in recipients}
    main = "failed" if "failed" in actions else sorted(actions)[0]
    ret_mode = (ret or "").upper()
    full = ret_mode == "FULL" or (not ret_mode and main == "failed")
    digest = hashlib.sha1(original + repr((sender, now, recipients)).encode()).hexdigest()[:16]
    boundary = f"=_dsn_{digest}"
    crlf = "\r\n"
    head = [
        f"From: MAILER-DAEMON@{reporting_mta} (Mail Delivery System)",
        f"To: {sender}",
        f"Subject: {_SUBJECTS[main]}",
        f"Date: {_date(now)}",
        f"Message-ID: <{digest}.dsn@{reporting_mta}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a MIME-encapsulated message (a delivery status notification).",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        f"This is the mail system at host {reporting_mta}.",
        "",
    ]
    human = {
        "failed": "I'm sorry to have to inform you that your message could not be delivered "
        "to one or more recipients.",
        "delayed": "Your message could not be delivered yet; the mail system will keep trying.",
        "delivered": "Your message was successfully delivered to the destination(s) listed below.",
        "relayed": "Your message was relayed to a system that does not send delivery "
        "notifications; no further notice will follow.",
        "expanded": "Your message was expanded to several recipients.",
    }
    head.append(human[main])
    head.append("")
    for r in recipients:
        line = f"<{r.final_recipient}>: {r.action}"
        if r.diagnostic:
            line += f" ({r.diagnostic})"
        head.append(line)
    head += ["", f"--{boundary}", "Content-Type: message/delivery-status", ""]
    head.append(f"Reporting-MTA: dns; {reporting_mta}")
    if envid is not None:
        head.append(f"Original-Envelope-Id: {xtext_decode(envid)}")
    head.append(f"Arrival-Date: {_date(arrival)}")
    for r in recipients:
        head.append("")
        if r.original_recipient:
            kind, _, addr = r.original_recipient.partition(";")
            head.append(f"Original-Recipient: {kind.strip()}; {xtext_decode(addr.strip())}")
        head.append(f"Final-Recipient: rfc822; {r.final_recipient}")
        head.append(f"Action: {r.action}")
        head.append(f"Status: {r.status}")
        if r.remote_mta:
            head.append(f"Remote-MTA: dns; {r.remote_mta}")
        if r.diagnostic:
            head.append(f"Diagnostic-Code: smtp; {r.diagnostic}")
        if r.last_attempt is not None:
            head.append(f"Last-Attempt-Date: {_date(r.last_attempt)}")
        if r.will_retry_until is not None:
            head.append(f"Will-Retry-Until: {_date(r.will_retry_until)}")
    head += ["", f"--{boundary}"]
    if full:
        head += ["Content-Type: message/rfc822", "Content-Transfer-Encoding: 8bit", "", ""]
        body = original if original.endswith(b"\r\n") else original + b"\r\n"
    else:
        head += ["Content-Type: text/rfc822-headers", "", ""]
        body = _header_section(original)
    # The CRLF before a boundary belongs to the delimiter, so the original keeps its own.
    tail = f"{crlf}--{boundary}--{crlf}".encode()
    return crlf.join(head).encode("utf-8") + body + tail


@dataclasses.dataclass(frozen=True)
class DSNReport:
    """A parsed DSN: what :func:`build_dsn` wrote, read back (also works on other MTAs')."""

    reporting_mta: str | None
    envid: str | None
    recipients: tuple[DSNRecipient, ...]
    returned: bytes | None
    """The returned original (whole message or header section), or None."""
    returned_kind: Literal["message", "headers"] | None

    def recipient(self, address: str) -> DSNRecipient:
        """The block whose ``Final-Recipient`` is ``address`` (case-insensitive)."""
        for r in self.recipients:
            if r.final_recipient.lower() == address.lower():
                return r
        raise LookupError(
            f"no DSN block for {address}; blocks: {[r.final_recipient for r in self.recipients]}"
        )


def _value(block: EmailMessage, name: str) -> str | None:
    value = block.get(name)
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text


def _typed(value: str | None) -> str | None:
    """``"rfc822; a@b"`` -> ``"a@b"``; ``"dns; host"`` -> ``"host"``."""
    if value is None:
        return None
    return value.partition(";")[2].strip() if ";" in value else value.strip()


def parse_dsn(raw: bytes) -> DSNReport:
    """Parse the bytes of a ``multipart/report; report-type=delivery-status`` message.

    ``ValueError`` when ``raw`` is not a delivery status report.
    """
    msg = message_from_bytes(raw, policy=email_policy.compat32)
    report_type = msg.get_param("report-type")
    if (
        msg.get_content_type() != "multipart/report"
        or not isinstance(report_type, str)
        or report_type.lower() != "delivery-status"
    ):
        raise ValueError(
            f"not a delivery status report: Content-Type is {msg.get('Content-Type')!r}, "
            "expected multipart/report; report-type=delivery-status"
        )
    parts = msg.get_payload()
    status_part = None
    if isinstance(parts, list):
        status_part = next(
            (
                p
                for p in parts
                if isinstance(p, EmailMessage) and p.get_content_type() == "message/delivery-status"
            ),
            None,
        )
    if status_part is None:
        raise ValueError("the report has no message/delivery-status part")
    payload = status_part.get_payload()
    blocks = []
    if isinstance(payload, list):
        blocks = [b for b in payload if isinstance(b, EmailMessage)]
    if not blocks:
        raise ValueError("the message/delivery-status part has no fields")
    per_message = blocks[0]
    recipients = []
    for block in blocks[1:]:
        final = _typed(_value(block, "Final-Recipient"))
        if final is None:
            continue
        original = _value(block, "Original-Recipient")
        recipients.append(
            DSNRecipient(
                final_recipient=final,
                action=(_value(block, "Action") or "").lower(),
                status=(_value(block, "Status") or "").split()[0]
                if _value(block, "Status")
                else "",
                original_recipient=original.replace("; ", ";") if original else None,
                remote_mta=_typed(_value(block, "Remote-MTA")),
                diagnostic=_typed(_value(block, "Diagnostic-Code")),
            )
        )
    returned: bytes | None = None
    kind: Literal["message", "headers"] | None = None
    # The returned original is cut out of the raw bytes, so it compares byte for byte.
    boundary = msg.get_boundary()
    if boundary is not None:
        pieces = raw.split(b"--" + boundary.encode())
        for piece in pieces[1:]:
            head, sep, body = piece.partition(b"\r\n\r\n")
            if not sep:
                continue
            lowered = head.lower()
            body = body[:-2] if body.endswith(b"\r\n") else body
            if b"content-type: message/rfc822" in lowered:
                returned, kind = body, "message"
            elif b"content-type: text/rfc822-headers" in lowered:
                returned, kind = body, "headers"
    return DSNReport(
        reporting_mta=_typed(_value(per_message, "Reporting-MTA")),
        envid=_value(per_message, "Original-Envelope-Id"),
        recipients=tuple(recipients),
        returned=returned,
        returned_kind=kind,
    )
