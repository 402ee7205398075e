"""Delivery status notifications: RFC 3464 reports and the RFC 3461 envelope parameters.

:func:`build_dsn` writes the bytes of a ``multipart/report; report-type=delivery-status``
message by hand (not through ``email.generator``) so that the returned original is carried
byte for byte, 8-bit content included. :func:`parse_dsn` reads one back for assertions.

Internationalized reports (RFC 6533): when an address of the report (sender, recipient,
original recipient, envelope id) is not ASCII, the status part is
``message/global-delivery-status`` (and ``report-type=global-delivery-status``, as RFC 6522
§3 names the second part's subtype; Postfix keeps ``delivery-status`` there), its fields are
UTF-8 and non-ASCII addresses have the ``utf-8`` address type. A returned original whose
header section is not ASCII is ``message/global`` (``message/global-headers`` for the
headers only). Such a DSN goes out with ``SMTPUTF8`` (:func:`needs_smtputf8`).
"""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import hashlib
import quopri
import re
from collections.abc import Sequence
from datetime import datetime
from email import message_from_bytes
from email import policy as email_policy
from email.message import Message as EmailMessage
from typing import Literal

from pytest_smtp.parsing import parse_message

__all__ = [
    "DSNRecipient",
    "DSNReport",
    "build_dsn",
    "needs_smtputf8",
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
_UNICODE_ESCAPE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")


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


def _unescape_utf8(text: str) -> str:
    """RFC 6533 §3 ``EmbeddedUnicodeChar``: ``\\x{HEX}`` -> the character."""

    def char(match: re.Match[str]) -> str:
        code = int(match.group(1), 16)
        return chr(code) if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else match[0]

    return _UNICODE_ESCAPE.sub(char, text)


def _address_field(address: str) -> str:
    """``rfc822; user@x`` for an ASCII address, ``utf-8; üser@x`` otherwise (RFC 6533 §3)."""
    return f"{'rfc822' if address.isascii() else 'utf-8'}; {address}"


def _original_address(orcpt: str) -> tuple[str, str]:
    """An ``ORCPT`` value (``type;xtext``) as ``(type, address)``, both escapes undone."""
    kind, _, addr = orcpt.partition(";")
    kind = kind.strip()
    address = xtext_decode(addr.strip())
    if kind.lower() == "utf-8":
        address = _unescape_utf8(address)
    return kind, address


def needs_smtputf8(raw: bytes) -> bool:
    """Whether a DSN made by :func:`build_dsn` is an internationalized one (RFC 6533: a
    ``global-delivery-status`` report or a ``message/global*`` part) that must be sent with
    ``SMTPUTF8``."""
    msg = message_from_bytes(_header_section(raw), policy=email_policy.compat32)
    report_type = msg.get_param("report-type")
    if isinstance(report_type, str) and report_type.lower() == "global-delivery-status":
        return True
    boundary = msg.get_boundary()
    parts = _parts(raw, boundary) if boundary is not None else []
    return any(ctype.startswith("message/global") for ctype, _, _ in parts)


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
    section as ``text/rfc822-headers`` (``message/global`` and ``message/global-headers``
    when that header section is not ASCII). ``envid`` becomes ``Original-Envelope-Id``. A
    non-ASCII address anywhere in the report makes it an RFC 6533
    ``message/global-delivery-status`` (see the module docstring).
    """
    if not recipients:
        raise ValueError("a DSN needs at least one recipient block")
    originals = [
        _original_address(r.original_recipient) for r in recipients if r.original_recipient
    ]
    envelope_id = xtext_decode(envid) if envid is not None else None
    addresses = [sender, envelope_id or "", *(r.final_recipient for r in recipients)]
    global_status = not all(a.isascii() for a in addresses + [a for _, a in originals])
    global_original = not _header_section(original).isascii()
    actions = {r.action for r in recipients}
    main = "failed" if "failed" in actions else sorted(actions)[0]
    ret_mode = (ret or "").upper()
    full = ret_mode == "FULL" or (not ret_mode and main == "failed")
    digest = hashlib.sha1(original + repr((sender, now, recipients)).encode()).hexdigest()[:16]
    boundary = f"=_dsn_{digest}"
    crlf = "\r\n"
    status_type = "global-delivery-status" if global_status else "delivery-status"
    head = [
        f"From: MAILER-DAEMON@{reporting_mta} (Mail Delivery System)",
        f"To: {sender}",
        f"Subject: {_SUBJECTS[main]}",
        f"Date: {_date(now)}",
        f"Message-ID: <{digest}.dsn@{reporting_mta}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type={status_type}; boundary="{boundary}"',
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
    head += ["", f"--{boundary}", f"Content-Type: message/{status_type}"]
    if global_status:
        head.append("Content-Transfer-Encoding: 8bit")
    head += ["", f"Reporting-MTA: dns; {reporting_mta}"]
    if envelope_id is not None:
        head.append(f"Original-Envelope-Id: {envelope_id}")
    head.append(f"Arrival-Date: {_date(arrival)}")
    for r in recipients:
        head.append("")
        if r.original_recipient:
            kind, addr = _original_address(r.original_recipient)
            if kind.lower() == "utf-8" or not addr.isascii():
                head.append(f"Original-Recipient: {_address_field(addr)}")
            else:
                head.append(f"Original-Recipient: {kind}; {addr}")
        head.append(f"Final-Recipient: {_address_field(r.final_recipient)}")
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
        kind = "message/global" if global_original else "message/rfc822"
        head += [f"Content-Type: {kind}", "Content-Transfer-Encoding: 8bit", "", ""]
        body = original if original.endswith(b"\r\n") else original + b"\r\n"
    else:
        if global_original:
            head += ["Content-Type: message/global-headers", "Content-Transfer-Encoding: 8bit"]
        else:
            head += ["Content-Type: text/rfc822-headers"]
        head += ["", ""]
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


def _typed(value: str | None) -> str | None:
    """``"rfc822; a@b"`` -> ``"a@b"``; ``"dns; host"`` -> ``"host"``; ``"utf-8; a\\x{E9}@b"``
    -> ``"aé@b"`` (RFC 6533 §3)."""
    if value is None:
        return None
    if ";" not in value:
        return value.strip()
    kind, _, rest = value.partition(";")
    rest = rest.strip()
    return _unescape_utf8(rest) if kind.strip().lower() == "utf-8" else rest


def _fields(block: bytes) -> dict[str, str]:
    """One block of a delivery-status body: ``Name: value`` lines, folded lines joined,
    names lower-cased, UTF-8 decoded (RFC 6533 allows UTF-8 in the global variant)."""
    fields: dict[str, str] = {}
    name: str | None = None
    for line in block.decode("utf-8", errors="replace").split("\r\n"):
        if line[:1] in (" ", "\t") and name is not None:
            fields[name] += " " + line.strip()
            continue
        key, colon, value = line.partition(":")
        if colon and key.strip():
            name = key.strip().lower()
            fields.setdefault(name, value.strip())
    return {key: " ".join(value.split()) for key, value in fields.items()}


def _parts(raw: bytes, boundary: str) -> list[tuple[str, EmailMessage, bytes]]:
    """The body parts of a multipart message: ``(content type, part header, body bytes)``."""
    parts = []
    for piece in raw.split(b"\r\n--" + boundary.encode())[1:]:
        if piece.startswith(b"--"):
            break
        head, sep, body = piece.partition(b"\r\n\r\n")
        if not sep:
            head, body = piece, b""
        header = message_from_bytes(
            head.lstrip(b"\r\n") + b"\r\n\r\n", policy=email_policy.compat32
        )
        parts.append((header.get_content_type(), header, body))
    return parts


def _decoded(header: EmailMessage, body: bytes) -> bytes:
    """``body`` with a base64 or quoted-printable transfer encoding undone."""
    encoding = str(header.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding == "base64":
        return base64.b64decode(body)
    if encoding == "quoted-printable":
        return quopri.decodestring(body)
    return body


def parse_dsn(raw: bytes) -> DSNReport:
    """Parse the bytes of a ``multipart/report; report-type=delivery-status`` message (or the
    RFC 6533 ``global-delivery-status`` one; UTF-8 fields and ``utf-8`` addresses are decoded).

    ``ValueError`` when ``raw`` is not a delivery status report.
    """
    msg = parse_message(raw)[0]  # the capped parser: a report is mail received like any other
    report_type = msg.get_param("report-type")
    if (
        msg.get_content_type() != "multipart/report"
        or not isinstance(report_type, str)
        or report_type.lower() not in _REPORT_TYPES
    ):
        raise ValueError(
            f"not a delivery status report: Content-Type is {msg.get('Content-Type')!r}, "
            "expected multipart/report; report-type=delivery-status"
        )
    boundary = msg.get_boundary()
    parts = _parts(raw, boundary) if boundary is not None else []
    status = next(((head, body) for ctype, head, body in parts if ctype in _STATUS_TYPES), None)
    if status is None:
        raise ValueError("the report has no message/delivery-status part")
    text = _decoded(*status).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    blocks = [_fields(b) for b in re.split(rb"\r\n(?:[ \t]*\r\n)+", text.strip(b"\r\n"))]
    blocks = [b for b in blocks if b]
    if not blocks:
        raise ValueError("the message/delivery-status part has no fields")
    per_message = blocks[0]
    recipients = []
    for block in blocks[1:]:
        final = _typed(block.get("final-recipient"))
        if final is None:
            continue
        original = block.get("original-recipient")
        status_code = block.get("status", "")
        recipients.append(
            DSNRecipient(
                final_recipient=final,
                action=block.get("action", "").lower(),
                status=status_code.split()[0] if status_code else "",
                original_recipient=original.replace("; ", ";") if original else None,
                remote_mta=_typed(block.get("remote-mta")),
                diagnostic=_typed(block.get("diagnostic-code")),
            )
        )
    returned: bytes | None = None
    kind: Literal["message", "headers"] | None = None
    # The returned original is cut out of the raw bytes, so it compares byte for byte.
    for ctype, _, body in parts:
        if ctype in ("message/rfc822", "message/global"):
            returned, kind = body, "message"
        elif ctype in ("text/rfc822-headers", "message/global-headers"):
            returned, kind = body, "headers"
    return DSNReport(
        reporting_mta=_typed(per_message.get("reporting-mta")),
        envid=per_message.get("original-envelope-id"),
        recipients=tuple(recipients),
        returned=returned,
        returned_kind=kind,
    )


_REPORT_TYPES = ("delivery-status", "global-delivery-status")
_STATUS_TYPES = tuple(f"message/{t}" for t in _REPORT_TYPES)
