"""What a page shows of one message: decoded headers, parts, attachments, a safe HTML part.

Shared by the HTML report and the live web view, so both show a message the same way. Needs
neither aiohttp nor Jinja2.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from email.message import EmailMessage

from ..mail import Message
from ..quality.lint import Finding, lint
from .records import TransactionRecord

__all__ = ["FRAME_CSP", "AttachmentView", "MessageView", "safe_filename", "sandboxed_html"]

#: The policy of a rendered HTML part: no scripts, no remote loads of any kind (images, styles,
#: fonts, frames, forms, prefetch); inline styles and ``data:`` images only.
FRAME_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "form-action 'none'; base-uri 'none'"
)

_CID = re.compile(r"""cid:([^"'\s)>]+)""", re.IGNORECASE)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str | None, fallback: str) -> str:
    """``name`` reduced to a file name that cannot leave its folder (or ``fallback``)."""
    cleaned = _UNSAFE.sub("_", name or "").strip("._")
    return cleaned[:100] or fallback


def _inline_parts(root: EmailMessage) -> dict[str, str]:
    """``Content-ID`` (without ``<>``) -> ``data:`` URI, for ``cid:`` references."""
    found: dict[str, str] = {}
    for part in root.walk():
        cid = part.get("Content-ID")
        if cid is None or part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            encoded = base64.b64encode(payload).decode("ascii")
            found[str(cid).strip().strip("<>")] = f"data:{part.get_content_type()};base64,{encoded}"
    return found


def sandboxed_html(html: str, message: Message) -> str:
    """The HTML part made fit for ``<iframe sandbox srcdoc=...>``: ``cid:`` images inlined
    as ``data:`` URIs and a Content-Security-Policy forbidding scripts and remote loads put
    first (so the parser places it in the head, before anything it governs)."""
    try:
        inline = _inline_parts(message.email)
    except Exception:
        inline = {}
    body = _CID.sub(lambda m: inline.get(m.group(1), m.group(0)), html)
    meta = f'<meta http-equiv="Content-Security-Policy" content="{FRAME_CSP}">'
    return meta + body


@dataclass
class AttachmentView:
    """One attachment as a page lists it; ``payload`` is what its download serves."""

    index: int
    filename: str
    content_type: str
    size: int
    payload: bytes


@dataclass
class MessageView:
    """Everything a page shows of one message, its lint findings included."""

    id: int
    server: str
    subject: str | None
    from_: str | None
    to: list[str]
    headers: list[tuple[str, str]]
    text: str | None
    html: str | None
    """The HTML part made safe by :func:`sandboxed_html`, or ``None``."""
    attachments: list[AttachmentView]
    raw: str
    message: Message
    transaction: TransactionRecord | None
    findings: list[Finding]
    """What :func:`pytest_smtp.quality.lint` says of the message and its session."""

    @classmethod
    def build(cls, message: Message, transaction: TransactionRecord | None = None) -> MessageView:
        """The view of ``message`` (and of the transaction that delivered it, if known)."""
        html = message.html
        attachments = [
            AttachmentView(
                index=i,
                filename=safe_filename(a.filename, f"attachment-{i}"),
                content_type=a.content_type,
                size=a.size,
                payload=a.payload,
            )
            for i, a in enumerate(message.attachments)
        ]
        return cls(
            id=message.transaction_id,
            server=message.server,
            subject=message.subject,
            from_=message.from_,
            to=message.to,
            headers=message.headers.items(),
            text=message.text,
            html=None if html is None else sandboxed_html(html, message),
            attachments=attachments,
            raw=message.raw.decode("utf-8", "replace"),
            message=message,
            transaction=transaction,
            findings=lint(message),
        )
