"""Remote mode: an SMTP server made on a ``python -m pytest_smtp serve --http`` instance.

For suites whose system under test runs elsewhere (a container in CI, another machine):
:class:`RemoteSMTPServer` asks the ``serve`` JSON API for a new SMTP server and then offers
what a test uses of a local :class:`~pytest_smtp.SMTPServer`: ``host``/``port`` of the remote
listener, ``mailbox`` and ``transactions`` with ``filter``/``one``/``wait_for``, ``faults``
(``reject``/``defer``/... ``clear``), ``transcript``, ``sessions``, ``reset()``. The logs are
local mirrors, fed by a long poll of ``GET /api/servers/{id}/records`` (waiting is event-driven
on both ends, never a sleep loop) and brought up to date before every read.

Needs the ``web`` extra (the records it reads are :mod:`pytest_smtp.web.records`).
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Any, TypeVar, overload

from .mail import (
    Mailbox,
    Message,
    RecipientResult,
    Reply,
    SessionInfo,
    Transaction,
    TransactionLog,
)
from .mail.waiting import _WaitableLog
from .smtp.options import ServerOptions
from .web.records import TestRecord, TransactionRecord, session_from_dict

__all__ = ["RemoteAPI", "RemoteError", "RemoteFaults", "RemoteRule", "RemoteSMTPServer"]

_T = TypeVar("_T")

#: The environment variable holding the token when the URL does not.
TOKEN_ENV = "PYTEST_SMTP_TOKEN"

#: Seconds one long poll of the mirror waits on the server before asking again.
POLL_WAIT = 20.0


class RemoteError(RuntimeError):
    """The ``serve`` API refused a request or could not be reached; says which and why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status of the refusal (``None`` when the server was not reached)."""


class RemoteAPI:
    """A JSON client of one ``serve --http`` instance: ``RemoteAPI("http://host:8025", token)``."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"the remote must be an http:// URL such as http://127.0.0.1:8025, not {url!r}"
            )
        self.url = url.rstrip("/")
        """The base URL, without a trailing slash."""
        self.host = parts.hostname
        """The host name of the URL: where the remote SMTP servers are reached as well."""
        self.token = (
            token
            or urllib.parse.parse_qs(parts.query).get("token", [None])[0]
            or os.environ.get(TOKEN_ENV)
        )
        """The token sent with every request: given, ``?token=`` of the URL, or the
        ``PYTEST_SMTP_TOKEN`` environment variable."""
        self.timeout = timeout
        if parts.query:
            self.url = self.url.split("?", 1)[0].rstrip("/")

    def call(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        """``method path`` with a JSON ``body``; the decoded JSON answer, or :class:`RemoteError`
        naming the request, the status and the server's error text."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        wait = self.timeout if timeout is None else timeout
        try:
            with urllib.request.urlopen(request, timeout=wait) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                error = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                error = raw.decode("utf-8", "replace")[:200]
            raise RemoteError(
                f"{method} {self.url}{path}: {exc.code} {error}", status=exc.code
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RemoteError(
                f"{method} {self.url}{path}: cannot reach the pytest_smtp serve instance "
                f"({reason}); start it with `python -m pytest_smtp serve --http HOST:PORT`"
            ) from None


class RemoteRule:
    """A fault rule added on the remote server; ``seen``/``hits`` are read from it on access."""

    def __init__(self, faults: RemoteFaults, data: dict[str, Any]) -> None:
        self._faults = faults
        self.index: int = data["index"]
        self.stage: str = data["stage"]
        self.name: str | None = data["name"]
        self.steps: list[str] = data["steps"]

    def _now(self) -> dict[str, Any]:
        for rule in self._faults.rules:
            if rule["index"] == self.index:
                return rule
        raise RemoteError(f"fault rule {self.index} is gone from the server (cleared)")

    @property
    def seen(self) -> int:
        """How many times the rule's stage came by and its matchers matched."""
        return int(self._now()["seen"])

    @property
    def hits(self) -> int:
        """How many times the rule acted."""
        return int(self._now()["hits"])

    def __repr__(self) -> str:
        return f"<RemoteRule #{self.index} {self.stage} {self.steps}>"


class RemoteFaults:
    """``server.faults`` of a :class:`RemoteSMTPServer`: the same actions, sent to the API.

    Arguments go as JSON, so ``predicate=`` (a Python callable) and ``sequence`` (of
    :class:`~pytest_smtp.faults.Verdict` steps) are refused with a :class:`TypeError`.
    """

    def __init__(self, api: RemoteAPI, base: str) -> None:
        self._api = api
        self._base = base
        self.seed = 0
        """The seed for probabilistic rules; sent with each rule added."""

    def from_marker(
        self, stage: str, action: str = "reject", *args: Any, **kwargs: Any
    ) -> RemoteRule:
        """Add a rule from the ``smtp_fault`` marker's arguments: ``(stage, action, ...)``."""
        if "predicate" in kwargs:
            raise TypeError(
                "remote mode sends fault rules as JSON: predicate= (a Python callable) cannot "
                "go; use match/sender/rcpt/domain/nth/times/probability"
            )
        if action == "sequence":
            raise TypeError("remote mode cannot send a sequence of Verdict objects as JSON")
        if "nth" in kwargs and isinstance(kwargs["nth"], (set, frozenset, tuple)):
            kwargs["nth"] = sorted(kwargs["nth"])
        body = {"stage": stage, "action": action, "args": list(args), "seed": self.seed, **kwargs}
        try:
            json.dumps(body)
        except TypeError as exc:
            raise TypeError(f"remote mode sends fault rules as JSON: {exc}") from None
        return RemoteRule(self, self._api.call("POST", f"{self._base}/faults", body))

    def reject(self, stage: str, *args: Any, **kwargs: Any) -> RemoteRule:
        """Answer a permanent failure (5xx) at ``stage``."""
        return self.from_marker(stage, "reject", *args, **kwargs)

    def defer(self, stage: str, *args: Any, **kwargs: Any) -> RemoteRule:
        """Answer a temporary failure (4xx) at ``stage``."""
        return self.from_marker(stage, "defer", *args, **kwargs)

    def reply(self, stage: str, *args: Any, **kwargs: Any) -> RemoteRule:
        """Answer ``code`` (4xx/5xx) at ``stage``."""
        return self.from_marker(stage, "reply", *args, **kwargs)

    def drop(self, **matchers: Any) -> RemoteRule:
        """Answer 250 at the end of DATA but keep nothing."""
        return self.from_marker("eod", "drop", **matchers)

    def delay(self, stage: str, seconds: float, **matchers: Any) -> RemoteRule:
        """Wait ``seconds`` before answering at ``stage``."""
        return self.from_marker(stage, "delay", seconds, **matchers)

    def disconnect(self, stage: str, **kwargs: Any) -> RemoteRule:
        """Close the connection at ``stage`` (``after_bytes=`` during DATA)."""
        return self.from_marker(stage, "disconnect", **kwargs)

    def hang(self, stage: str, **matchers: Any) -> RemoteRule:
        """Never answer at ``stage``."""
        return self.from_marker(stage, "hang", **matchers)

    def throttle(self, bytes_per_second: float, **matchers: Any) -> RemoteRule:
        """Read DATA at ``bytes_per_second``."""
        return self.from_marker("data", "throttle", bytes_per_second, **matchers)

    def rate_limit(self, *args: Any, stage: str = "rcpt", **kwargs: Any) -> RemoteRule:
        """Defer past a rate (the arguments of :meth:`FaultSet.rate_limit`)."""
        return self.from_marker(stage, "rate_limit", *args, **kwargs)

    @property
    def rules(self) -> list[dict[str, Any]]:
        """The rules on the server: ``{index, stage, name, steps, seen, hits}`` each."""
        rules: list[dict[str, Any]] = self._api.call("GET", f"{self._base}/faults")["rules"]
        return rules

    def __len__(self) -> int:
        return len(self.rules)

    def clear(self) -> None:
        """Remove every rule."""
        self._api.call("DELETE", f"{self._base}/faults")


def _reply(text: str | None) -> Reply | None:
    return None if text is None else Reply.parse(text)


def transaction_from_record(record: TransactionRecord, message: Message | None) -> Transaction:
    """A finished :class:`~pytest_smtp.Transaction` rebuilt from its record."""
    txn = Transaction(id=record.id, session=record.session)
    txn.mail_from = record.mail_from
    txn.recipients = [
        RecipientResult(r.address, list(r.options), Reply.parse(r.reply)) for r in record.recipients
    ]
    txn.transcript = list(record.transcript)
    if record.outcome is not None:
        txn.finish(record.outcome, record.stage, _reply(record.reply), message, record.error)  # type: ignore[arg-type]
    txn.started_at = datetime.fromisoformat(record.started_at)
    txn.ended_at = None if record.ended_at is None else datetime.fromisoformat(record.ended_at)
    return txn


class _Mirror:
    """Brings the remote log into the local ``mailbox`` and ``transactions``: on demand (before
    each read) and from a thread that long-polls the server (so ``wait_for`` wakes)."""

    def __init__(self, server: RemoteSMTPServer) -> None:
        self.server = server
        self.position = 0
        self.epoch = 0
        self.applied: set[int] = set()  # ids of the transactions mirrored in this epoch
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(
            target=self._run, name=f"pytest_smtp-remote-{server.id}", daemon=True
        )

    def fetch(self, wait: float) -> None:
        with self.lock:
            position, epoch = self.position, self.epoch
        data = self.server.api.call(
            "GET",
            f"{self.server.base}/records?since={position}&epoch={epoch}&wait={wait:g}",
            timeout=wait + self.server.api.timeout,
        )
        self._apply(data, epoch)

    def _apply(self, data: dict[str, Any], epoch: int) -> None:
        """File an answer to a request made in ``epoch``."""
        parsed = TestRecord.from_dict(
            {"nodeid": "", "outcome": "", **{k: data[k] for k in ("transactions", "messages")}}
        )
        messages = {m.id: m.to_message() for m in parsed.messages}
        with self.lock:
            if int(data["epoch"]) != self.epoch:
                if epoch == self.epoch:
                    # Cleared on the server by someone else (DELETE /messages): start over.
                    self._restart(int(data["epoch"]))
                return  # else: reset by this client meanwhile, an answer to forget
            if epoch != self.epoch:
                return  # asked before a reset: its positions count the old log
            # Two readers (this thread's long poll and a read's own fetch) may answer from the
            # same position: keep whichever answer reaches further, and file each transaction
            # once, by id. An answer that only overlaps must not be dropped: the reader that
            # asked for it returns what is mirrored after it, and expects its own news there.
            self.position = max(self.position, int(data["next"]))
            for record in parsed.transactions:
                if record.id in self.applied:
                    continue
                self.applied.add(record.id)
                message = messages.get(record.id)
                if record.outcome == "accepted" and message is not None:
                    self.server.mailbox._append(message)
                self.server.transactions._append(transaction_from_record(record, message))

    def restart(self, epoch: int) -> None:
        """The server's log was cleared (a new ``epoch``): empty the mirrors, start over."""
        with self.lock:
            self._restart(epoch)

    def _restart(self, epoch: int) -> None:
        self.epoch = epoch
        self.position = 0
        self.applied.clear()
        self.server.mailbox.clear()
        self.server.transactions.clear()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.fetch(POLL_WAIT)
            except RemoteError as exc:
                if self.stopping.is_set():
                    return
                self.errors.append(f"remote mirror of {self.server!r}: {exc}")
                # The server is gone or refusing: waiting again would only repeat this.
                return


class _MirroredLog(_WaitableLog[_T]):
    """A log that fetches what is new on the remote server before every read."""

    mirror: _Mirror | None = None

    def _fresh(self) -> None:
        if self.mirror is not None:
            self.mirror.fetch(0)

    def _snapshot(self) -> list[_T]:
        self._fresh()
        return super()._snapshot()

    def __len__(self) -> int:
        self._fresh()
        return super().__len__()

    @overload
    def __getitem__(self, index: int) -> _T: ...

    @overload
    def __getitem__(self, index: slice) -> list[_T]: ...

    def __getitem__(self, index: int | slice) -> _T | list[_T]:
        self._fresh()
        return super().__getitem__(index)


class _RemoteMailbox(_MirroredLog[Message], Mailbox):
    pass


class _RemoteTransactionLog(_MirroredLog[Transaction], TransactionLog):
    pass


class RemoteSMTPServer:
    """An SMTP server made on a ``serve --http`` instance, used like a local one.

    ``RemoteSMTPServer(api, **options).start()`` makes it (server options but ``host`` and
    ``port``: it listens on ``serve``'s ``--host``, on a free port); :meth:`stop` removes it.
    ``host`` is the host of the API URL, the address a client uses to reach it. As on a local
    server, ``transactions`` lists a transaction once it has ended.
    """

    def __init__(self, api: RemoteAPI, **options: Any) -> None:
        self.api = api
        #: What is asked of the remote ``serve`` (JSON), and the same as :class:`ServerOptions`,
        #: read locally like a local server's (``strict`` decides the lint check at teardown).
        self.requested = options
        self.options = ServerOptions.build(**options)
        self.id = 0
        self.hostname = ""
        self._port = 0
        self._running = False
        self._mirror = _Mirror(self)
        self._logs = (_RemoteMailbox(), _RemoteTransactionLog())
        self.mailbox: Mailbox = self._logs[0]
        """Every accepted message, mirrored from the remote server."""
        self.transactions: TransactionLog = self._logs[1]
        """Every finished transaction, mirrored from the remote server."""
        self.faults = RemoteFaults(api, "")

    @property
    def base(self) -> str:
        """The API path of this server: ``/api/servers/{id}``."""
        return f"/api/servers/{self.id}"

    @property
    def host(self) -> str:
        """The host of the API URL (where the SMTP listener is reached too)."""
        return self.api.host

    @property
    def port(self) -> int:
        """The remote SMTP listener's port."""
        if not self._running:
            raise RemoteError(f"{self!r} is not started: use start() or 'with'")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, ready for ``smtplib.SMTP(*server.address)``."""
        return self.host, self.port

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._running

    def start(self) -> RemoteSMTPServer:
        """Make the server on the remote instance; returns ``self``."""
        if self._running:
            return self
        made = self.api.call("POST", "/api/servers", self.requested)
        self.id, self._port, self.hostname = int(made["id"]), int(made["port"]), made["hostname"]
        self.faults = RemoteFaults(self.api, self.base)
        self._running = True
        for log in self._logs:
            log.mirror = self._mirror
        self._mirror.thread.start()
        return self

    def stop(self) -> None:
        """Remove the server from the remote instance (idempotent)."""
        if not self._running:
            return
        self._running = False
        self._mirror.stopping.set()
        try:
            self.api.call("DELETE", self.base)
        except RemoteError as exc:
            if exc.status != 404:
                raise
        # The poll in flight ends with the server: a 404 the stopping thread ignores.
        self._mirror.thread.join(timeout=self.api.timeout)

    def __enter__(self) -> RemoteSMTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget everything captured and every fault rule, here and on the remote server."""
        done = self.api.call("POST", f"{self.base}/reset", {})
        self._mirror.restart(int(done["epoch"]))

    @property
    def errors(self) -> list[str]:
        """Internal errors of the remote server, and of this mirror's long poll."""
        errors: list[str] = self.api.call("GET", self.base)["errors"]
        return errors + list(self._mirror.errors)

    @property
    def store(self) -> Any:
        """Not here: the maildrops stay on the ``serve`` side (a :class:`RemoteError`)."""
        raise RemoteError(
            f"{self!r}: the maildrops stay on the serve side in remote mode (no POP3/IMAP "
            f"fixtures); read one with GET {self.base}/maildrops/ADDRESS"
        )

    @property
    def transcript(self) -> list[str]:
        """The SMTP dialogue of every connection: ``[id] C: ...``."""
        lines: list[str] = self.api.call("GET", f"{self.base}/transcript")["lines"]
        return lines

    @property
    def sessions(self) -> list[SessionInfo]:
        """One :class:`~pytest_smtp.SessionInfo` per connection, in order."""
        found = self.api.call("GET", f"{self.base}/sessions")["sessions"]
        result = []
        for data in found:
            host, _, port = str(data["peer"]).rpartition(":")
            result.append(session_from_dict({**data, "peer": (host, int(port))}))
        return result

    def __repr__(self) -> str:
        where = f"{self.host}:{self._port}" if self._running else "not started"
        return f"<RemoteSMTPServer #{self.id} {where} via {self.api.url}>"
