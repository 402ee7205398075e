"""A small mail sender: the code under test in the fault and TLS how-tos.

It is what an application's "send a notification" module usually looks like: settings in a
dataclass, smtplib underneath, and a policy for failures — permanent ones (5xx) bounce at once,
temporary ones (4xx, a lost connection, a timeout) are tried again after a pause, up to
``attempts`` times. It knows nothing about tests: the tests point it at ``smtp_server``.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib


@dataclass
class Outbox:
    """Where and how to send: the application's mail settings."""

    host: str
    port: int
    sender: str = "noreply@example.test"
    tls: str | None = None  # None, "starttls" or "implicit"
    context: ssl.SSLContext | None = None  # None: the system's trust store
    user: str | None = None
    password: str | None = None
    timeout: float = 10.0
    attempts: int = 1
    backoff: float = 60.0  # seconds between attempts
    sleep: Callable[[float], None] = time.sleep


@dataclass
class Report:
    """What happened to one message, per recipient."""

    delivered: list[str] = field(default_factory=list)
    bounced: dict[str, str] = field(default_factory=dict)  # 5xx: given up
    deferred: dict[str, str] = field(default_factory=dict)  # 4xx or no answer: try later
    attempts: int = 0


def _reply(code: int, text: bytes | str) -> str:
    return f"{code} {text.decode() if isinstance(text, bytes) else text}"


def _connect(outbox: Outbox) -> smtplib.SMTP:
    context = outbox.context or ssl.create_default_context()
    client: smtplib.SMTP
    if outbox.tls == "implicit":
        client = smtplib.SMTP_SSL(outbox.host, outbox.port, timeout=outbox.timeout, context=context)
    else:
        client = smtplib.SMTP(outbox.host, outbox.port, timeout=outbox.timeout)
        if outbox.tls == "starttls":
            client.starttls(context=context)
    if outbox.user is not None and outbox.password is not None:
        client.login(outbox.user, outbox.password)
    return client


def _close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def compose(outbox: Outbox, to: list[str], subject: str, body: str) -> EmailMessage:
    """The message as the application builds it."""
    msg = EmailMessage()
    msg["From"] = outbox.sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


def _attempt(outbox: Outbox, msg: EmailMessage, pending: list[str], report: Report) -> None:
    """One connection, one try for every pending recipient; moves them into the report."""
    try:
        client = _connect(outbox)
    except smtplib.SMTPResponseException as exc:
        bucket = report.bounced if exc.smtp_code >= 500 else report.deferred
        bucket.update(dict.fromkeys(pending, _reply(exc.smtp_code, exc.smtp_error)))
        return
    try:
        refused = client.send_message(msg, to_addrs=pending)
    except smtplib.SMTPRecipientsRefused as exc:
        refused = exc.recipients
    except smtplib.SMTPResponseException as exc:  # MAIL FROM or DATA refused
        bucket = report.bounced if exc.smtp_code >= 500 else report.deferred
        bucket.update(dict.fromkeys(pending, _reply(exc.smtp_code, exc.smtp_error)))
        return
    finally:
        _close(client)
    for rcpt in pending:
        if rcpt not in refused:
            report.delivered.append(rcpt)
            continue
        code, text = refused[rcpt]
        bucket = report.bounced if code >= 500 else report.deferred
        bucket[rcpt] = _reply(code, text)


def send(outbox: Outbox, to: list[str], subject: str, body: str) -> Report:
    """Send one message to ``to``; retry temporary failures; report per recipient."""
    msg = compose(outbox, to, subject, body)
    report = Report()
    pending = list(to)
    while pending and report.attempts < outbox.attempts:
        if report.attempts:
            outbox.sleep(outbox.backoff)
        report.attempts += 1
        report.deferred.clear()
        try:
            _attempt(outbox, msg, pending, report)
        except smtplib.SMTPServerDisconnected as exc:
            # No final answer: the server may or may not have the message; try again.
            report.deferred.update(dict.fromkeys(pending, f"no reply: {exc}"))
        except smtplib.SMTPException:
            raise  # a dialogue the app cannot have (e.g. no AUTH offered): a bug, not bad luck
        except OSError as exc:  # timeout, connection reset, TLS handshake failure
            report.deferred.update(dict.fromkeys(pending, f"no reply: {exc}"))
        pending = [r for r in pending if r in report.deferred]
    return report


def send_batch(outbox: Outbox, messages: list[tuple[str, str, str]]) -> Report:
    """Send many one-recipient messages ``(to, subject, body)`` over one connection.

    A ``421`` (rate limit, server closing) ends the connection: pause, reconnect and go on
    with the same message, as long as attempts are left.
    """
    report = Report()
    queue = list(messages)
    client: smtplib.SMTP | None = None
    while queue:
        to, subject, body = queue[0]
        if client is None:
            if report.attempts >= outbox.attempts:
                break
            if report.attempts:
                outbox.sleep(outbox.backoff)
            report.attempts += 1
            client = _connect(outbox)
        try:
            client.send_message(compose(outbox, [to], subject, body))
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == 421:
                client.close()
                client = None
                continue
            report.bounced[to] = _reply(exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = exc.recipients[to]
            if code == 421:
                client.close()
                client = None
                continue
            bucket = report.bounced if code >= 500 else report.deferred
            bucket[to] = _reply(code, text)
        else:
            report.delivered.append(to)
        queue.pop(0)
    if client is not None:
        _close(client)
    for to, _, _ in queue:
        report.deferred[to] = "421 not sent: rate limited"
    return report


async def send_async(outbox: Outbox, to: list[str], subject: str, body: str) -> None:
    """The async path (a web handler, a worker) sends with aiosmtplib; errors propagate."""
    await aiosmtplib.send(
        compose(outbox, to, subject, body),
        hostname=outbox.host,
        port=outbox.port,
        use_tls=outbox.tls == "implicit",
        start_tls=outbox.tls == "starttls",
        tls_context=outbox.context,
        username=outbox.user,
        password=outbox.password,
        timeout=outbox.timeout,
    )
