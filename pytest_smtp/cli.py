"""``python -m pytest_smtp serve``: the capturing server outside pytest.

For trying an application by hand, or testing a program that is not written in Python: the
server prints one line per transaction (outcome, sender, recipients, subject) and, with
``--save-dir``, writes every accepted message as a ``.eml`` file. Options have the same names
as everywhere else (``--max-size`` is ``max_size``). Stop it with Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .mail import Message, Transaction
from .smtp.options import OptionError, ServerOptions
from .smtp.server import SMTPServer

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_smtp",
        description="Run pytest_smtp's capturing SMTP server on loopback until interrupted.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a capturing SMTP server")
    serve.add_argument("--host", default="127.0.0.1", help="IP address to bind (127.0.0.1)")
    serve.add_argument("--port", default="0", help="port to bind (0: the kernel picks one)")
    serve.add_argument("--hostname", help="name in the greeting and the certificate")
    serve.add_argument("--tls", help="starttls or implicit")
    serve.add_argument("--auth", help="'any' or 'user:password,user2:password2'")
    serve.add_argument("--auth-require-tls", help="refuse AUTH before TLS (default true)")
    serve.add_argument("--max-size", help="largest message in bytes (K/M suffixes; 0 = none)")
    serve.add_argument("--save-dir", type=Path, help="write each accepted message as .eml here")
    return parser


def _describe(txn: Transaction) -> str:
    subject = txn.message.subject if txn.message is not None else None
    reply = f" {txn.reply}" if txn.reply is not None and txn.outcome != "accepted" else ""
    return (
        f"#{txn.id} {txn.outcome} at {txn.stage}{reply}: from=<{txn.mail_from or ''}> "
        f"to={txn.rcpt_tos} subject={subject!r}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m pytest_smtp``; returns the exit status."""
    args = _parser().parse_args(argv)
    given = {
        "host": args.host,
        "port": args.port,
        "hostname": args.hostname,
        "tls": args.tls,
        "auth": args.auth,
        "auth_require_tls": args.auth_require_tls,
        "max_size": args.max_size,
    }
    try:
        options = ServerOptions.build(**{k: v for k, v in given.items() if v is not None})
    except (OptionError, ValueError) as exc:
        print(f"python -m pytest_smtp serve: {exc}", file=sys.stderr)
        return 2
    save_dir: Path | None = args.save_dir
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    lock = threading.Lock()

    def on_transaction(txn: Transaction) -> None:
        with lock:
            print(_describe(txn), flush=True)

    def on_message(message: Message) -> None:
        if save_dir is not None:
            (save_dir / f"{message.transaction_id:06d}.eml").write_bytes(message.as_eml())

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    with SMTPServer(options=options) as server:
        server.transactions.add_listener(on_transaction)
        server.mailbox.add_listener(on_message)
        print(f"listening on {server.host}:{server.port} as {server.hostname}", flush=True)
        if options.tls is not None:
            print(f"test CA (trust it in the client): {server.ca.ca_file}", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0
