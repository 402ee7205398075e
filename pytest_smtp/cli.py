"""``python -m pytest_smtp serve``: the capturing server outside pytest.

For trying an application by hand, or testing a program that is not written in Python: the
server prints one line per transaction (outcome, sender, recipients, subject) and, with
``--save-dir``, writes every accepted message as a ``.eml`` file. Its arguments are the server
options of :meth:`ServerOptions.schema` under the same names (``--max-size`` is ``max_size``).
``--http HOST:PORT`` adds the live web view and JSON API (the ``web`` extra), which also makes
servers for ``pytest --smtp-remote``; it refuses requests without its token (``--token``, or
one drawn and printed at start). Stop it with Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import secrets
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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
        if spec.python_only:
            continue
        serve.add_argument(
            "--" + spec.name.replace("_", "-"),
            dest=spec.name,
            metavar="VALUE",
            help=spec.plain_help,
        )
    serve.add_argument("--save-dir", type=Path, help="write each accepted message as .eml here")
    serve.add_argument(
        "--http",
        type=http_address,
        metavar="HOST:PORT",
        help="also serve the web view and JSON API there (needs pytest-smtp-suite[web])",
    )
    serve.add_argument(
        "--token",
        help="the secret every web request must carry (default: drawn at start and printed)",
    )
    return parser


def http_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8025`` for IPv6) as ``(host, port)``; argparse's type check."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        number = -1
    if not sep or not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT with an IP address, such as 127.0.0.1:8025, not {text!r}"
        )
    return host, number


@contextlib.contextmanager
def _web(server: SMTPServer, address: tuple[str, int], token: str) -> Iterator[Any]:
    """The WebServer beside ``server``; ImportError naming the extra when it is missing."""
    from .web import WebServer  # only with --http: the extra is optional

    with WebServer(server, host=address[0], port=address[1], token=token) as web:
        yield web


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
        spec.name: getattr(args, spec.name)
        for spec in ServerOptions.schema()
        if not spec.python_only
    }
    try:
        options = ServerOptions.build(**{k: v for k, v in given.items() if v is not None})
    except OptionError as exc:
        print(f"python -m pytest_smtp serve: {exc}", file=sys.stderr)
        return 2
    if args.token is not None and args.http is None:
        print("python -m pytest_smtp serve: --token goes with --http HOST:PORT", file=sys.stderr)
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
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(SMTPServer(options=options))
        server.transactions.add_listener(on_transaction)
        server.mailbox.add_listener(on_message)
        print(f"listening on {server.host}:{server.port} as {server.hostname}", flush=True)
        if options.tls is not None:
            print(f"test CA (trust it in the client): {server.ca.ca_file}", flush=True)
        if args.http is not None:
            token = args.token or secrets.token_urlsafe(16)
            try:
                web = stack.enter_context(_web(server, args.http, token))
            except ImportError as exc:
                print(f"python -m pytest_smtp serve --http: {exc}", file=sys.stderr)
                return 2
            except (OSError, ValueError) as exc:
                print(f"python -m pytest_smtp serve --http {args.http}: {exc}", file=sys.stderr)
                return 2
            print(f"web view on {web.url}?token={token}", flush=True)
            print(f"remote mode: pytest --smtp-remote={web.url}?token={token}", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0
