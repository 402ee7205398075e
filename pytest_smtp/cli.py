"""``python -m pytest_smtp serve``: the capturing server outside pytest.

For trying an application by hand, or testing a program that is not written in Python: the
server prints one line per transaction (outcome, sender, recipients, subject) and, with
``--save-dir``, writes every accepted message as a ``.eml`` file. Its arguments are the server
options of :meth:`ServerOptions.schema` under the same names (``--max-size`` is ``max_size``).
Stop it with Ctrl-C or SIGTERM.
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
    # Every server option, from the one schema: --max-size is max_size.
    for spec in ServerOptions.schema():
        serve.add_argument(
            "--" + spec.name.replace("_", "-"),
            dest=spec.name,
            metavar="VALUE",
            help=spec.plain_help,
        )
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
    given = {name: getattr(args, name) for name in ServerOptions.names()}
    try:
        options = ServerOptions.build(**{k: v for k, v in given.items() if v is not None})
    except OptionError as exc:
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
