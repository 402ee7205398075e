"""The live web view and JSON API of one :class:`~pytest_smtp.SMTPServer`, on the engine loop.

``WebServer(smtp_server)`` serves, on its own port, a page listing the server's transactions
as they happen (server-sent events), a message view, and a JSON API (documented at
``/api/openapi.json``). It runs on aiohttp, on the same asyncio loop as the SMTP server: no
thread, no copy of the data, every request reads the live server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from importlib import resources
from typing import Any

from ..engine import LoopServer, bind_socket
from ..mail import OUTCOMES, MailboxTimeout, Message, SessionInfo, Transaction
from ..smtp.options import OptionError, ServerOptions
from ..smtp.server import SMTPServer
from ..store import MailStore, normalize_address
from ._extra import missing_extra
from .openapi import OPENAPI
from .records import (
    MessageRecord,
    TestRecord,
    TransactionRecord,
    mark_transactions,
    session_lines,
    session_to_dict,
)
from .templating import environment
from .view import MessageView

try:
    from aiohttp import web
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise missing_extra(exc) from exc

__all__ = ["PAGE_CSP", "SEARCH_FIELDS", "WebServer"]

#: The policy of the live pages: their own script and API only; HTML parts in srcdoc frames.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "img-src data:; frame-src 'self'; form-action 'self'; base-uri 'none'"
)
#: What an attachment or raw source is served under: never run as a page of this origin.
DOWNLOAD_CSP = "sandbox; default-src 'none'"

#: The query parameters of ``/api/messages`` and ``/api/transactions``.
SEARCH_FIELDS = ("from", "to", "subject", "text", "outcome")

#: Where a client may put the token: ``Authorization: Bearer T``, this cookie, or ``?token=T``.
TOKEN_COOKIE = "pytest_smtp_token"

#: The longest ``wait`` of ``GET /api/records`` (seconds); a client asks again after it.
MAX_RECORDS_WAIT = 60.0

#: The routes of one SMTP server's data: served at ``/api/...`` for the main server and at
#: ``/api/servers/{server}/...`` for each server made through ``POST /api/servers``.
SERVER_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/messages", "_list_messages"),
    ("DELETE", "/messages", "_clear_messages"),
    ("GET", "/messages/{id}", "_get_message"),
    ("DELETE", "/messages/{id}", "_delete_message"),
    ("GET", "/messages/{id}/raw", "_raw"),
    ("GET", "/messages/{id}/attachments/{index}", "_attachment"),
    ("GET", "/transactions", "_list_transactions"),
    ("GET", "/transactions/{id}", "_get_transaction"),
    ("GET", "/records", "_records"),
    ("GET", "/sessions", "_sessions"),
    ("GET", "/transcript", "_transcript"),
    ("GET", "/faults", "_list_faults"),
    ("POST", "/faults", "_add_fault"),
    ("DELETE", "/faults", "_clear_faults"),
    ("GET", "/maildrops", "_maildrops"),
    ("GET", "/maildrops/{address}", "_maildrop"),
    ("GET", "/maildrops/{address}/{folder}/{uid}", "_stored_raw"),
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _describe_step(step: Any) -> str:
    """A fault rule's step as a few words: its reply, or what it does instead."""
    if step.reply is not None:
        return str(step.reply)
    for name in ("drop", "hang", "disconnect"):
        if getattr(step, name):
            return name
    if step.disconnect_after is not None:
        return f"disconnect after {step.disconnect_after} bytes"
    if step.throttle is not None:
        return f"throttle {step.throttle:g} B/s"
    return f"delay {step.delay:g} s" if step.delay else "accept"


class _ApiError(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


def _session_json(info: SessionInfo) -> dict[str, Any]:
    data = session_to_dict(info)
    data["peer"] = f"{info.peer[0]}:{info.peer[1]}"
    return data


def _contains(needle: str, *haystacks: str | None) -> bool:
    return any(h is not None and needle in h.lower() for h in haystacks)


@dataclasses.dataclass
class _Target:
    """One SMTP server the API shows, with the messages deleted from its view."""

    smtp: SMTPServer
    store: MailStore
    hidden: set[int] = dataclasses.field(default_factory=set)
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    """Set (and replaced) when the log is cleared or the server stops: ends long polls."""
    epoch: int = 0
    """How many times the log was cleared: a position in it is only good within one epoch."""

    def changed(self) -> None:
        """A new epoch: wake every long poll of this server (its log was cleared, or it
        stopped)."""
        self.epoch += 1
        self.wake.set()
        self.wake = asyncio.Event()


class WebServer(LoopServer):
    """The web view and JSON API of ``smtp_server`` (and, when given, a FakeDNS and a store).

    ``store`` defaults to ``smtp_server.store`` (the maildrops POP3/IMAP read). Use it like
    every server here::

        with SMTPServer() as smtp, WebServer(smtp) as web:
            print(web.url)  # http://127.0.0.1:PORT/

    Deleting a message hides it (and its transaction) from the view and the API; clearing
    empties the server's mailbox and transaction log.

    ``POST /api/servers`` starts more SMTP servers with ``smtp_server``'s options (its host, a
    free port; remote mode: one per test process), each with the same API under
    ``/api/servers/{id}/``; they stop with this one.
    With ``token``, every request must carry it (``Authorization: Bearer TOKEN``, the
    ``pytest_smtp_token`` cookie, or ``?token=TOKEN``, which also sets the cookie): a
    ``serve`` reachable from a network answers nobody else.
    """

    def __init__(
        self,
        smtp_server: SMTPServer,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        dns: Any = None,
        store: MailStore | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(host=host, port=port)
        if token is not None and (not token or not token.isprintable() or " " in token):
            raise ValueError(f"token must be printable text without spaces, not {token!r}")
        self.smtp = smtp_server
        """The SMTP server shown."""
        self.dns = dns
        """The :class:`~pytest_smtp.FakeDNS` whose zones ``POST /api/dns/zones`` loads."""
        self.store = store if store is not None else smtp_server.store
        """The store whose maildrops ``/api/maildrops`` reads."""
        self.token = token
        """The secret every request must carry, or ``None`` for none."""
        self._main = _Target(smtp_server, self.store)
        self._managed: dict[int, _Target] = {}
        self._next_managed = 1
        self._announced: set[int] = set()
        self._clients: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """``http://host:port/``, the address of the page."""
        host, port = self.address
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def __repr__(self) -> str:
        where = self.url if self._sockname else "not started"
        return f"<WebServer {where} for {self.smtp!r}>"

    # -- lifecycle -------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        """The aiohttp application (routes, error middleware); :meth:`start` serves it."""
        app = web.Application(
            middlewares=[self._errors, self._check_token], client_max_size=16 * 2**20
        )
        get, post, delete = web.get, web.post, web.delete
        app.add_routes(
            [
                get("/", self._page_index),
                get("/messages/{id}", self._page_message),
                get("/static/live.js", self._static_js),
                get("/api/openapi.json", self._openapi),
                get("/api/events", self._events),
                post("/api/dns/zones", self._load_zone),
                get("/api/servers", self._list_servers),
                post("/api/servers", self._create_server),
                get("/api/servers/{server}", self._get_server),
                delete("/api/servers/{server}", self._stop_server),
                post("/api/servers/{server}/reset", self._reset_server),
            ]
        )
        for prefix in ("/api", "/api/servers/{server}"):
            for method, path, handler in SERVER_ROUTES:
                app.router.add_route(method, prefix + path, getattr(self, handler))
        return app

    async def _astart(self) -> None:
        sock = bind_socket(self._host_arg, self._port_arg)
        try:
            runner = web.AppRunner(
                self.build_app(), handle_signals=False, access_log=None, shutdown_timeout=0.2
            )
            await runner.setup()
            self._runner = runner
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            raise
        name = sock.getsockname()
        self._sockname = (name[0], name[1])
        self._track(asyncio.get_running_loop().create_task(self._feed()))

    async def _aclose(self) -> None:
        managed, self._managed = list(self._managed.values()), {}
        for target in (self._main, *managed):
            target.changed()
        if managed:
            await asyncio.gather(*(t.smtp.stop_async() for t in managed))
        for queue in list(self._clients):
            queue.put_nowait(None)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _feed(self) -> None:
        """Announce each finished transaction to every event-stream client."""
        log = self.smtp.transactions
        while True:
            try:
                done = await log.wait_for_async(
                    predicate=lambda t: t.outcome is not None and t.id not in self._announced,
                    timeout=3600,
                )
            except MailboxTimeout:
                continue
            for txn in done:
                self._announced.add(txn.id)
                self._broadcast({"type": "transaction", "id": txn.id, "outcome": txn.outcome})

    def _broadcast(self, event: dict[str, Any]) -> None:
        for queue in list(self._clients):
            queue.put_nowait(event)

    # -- lookups ---------------------------------------------------------------------------
    def _target(self, request: web.Request) -> _Target:
        """The server a request is about: ``/api/servers/{server}/...`` or the main one."""
        if "server" not in request.match_info:
            return self._main
        sid = self._int(request, "server")
        target = self._managed.get(sid)
        if target is None:
            known = ", ".join(map(str, sorted(self._managed))) or "none"
            raise _ApiError(404, f"no server {sid} (servers: {known}; see GET /api/servers)")
        return target

    def _visible(self, request: web.Request) -> list[Transaction]:
        target = self._target(request)
        return [t for t in target.smtp.transactions if t.id not in target.hidden]

    @staticmethod
    def _record(txn: Transaction, smtp: SMTPServer) -> TransactionRecord:
        return TransactionRecord.from_transaction(txn, f"{smtp.host}:{smtp.port}")

    @staticmethod
    def _int(request: web.Request, name: str) -> int:
        value = request.match_info[name]
        if not value.isdigit():
            raise _ApiError(400, f"{name} must be a number, not {value!r}")
        return int(value)

    def _transaction(self, request: web.Request) -> Transaction:
        wanted = self._int(request, "id")
        for txn in self._visible(request):
            if txn.id == wanted:
                return txn
        raise _ApiError(404, f"no transaction {wanted} (see GET /api/transactions)")

    def _message(self, request: web.Request) -> tuple[Message, Transaction]:
        txn = self._transaction(request)
        if txn.message is None:
            state = txn.outcome or "in progress"
            raise _ApiError(404, f"transaction {txn.id} has no message: it was {state}")
        return txn.message, txn

    def _search(self, request: web.Request) -> Callable[[Transaction], bool]:
        query = request.query
        unknown = sorted(set(query) - {*SEARCH_FIELDS, "token"})
        if unknown:
            raise _ApiError(
                400,
                f"unknown search parameter(s) {', '.join(unknown)}; "
                f"valid: {', '.join(SEARCH_FIELDS)}",
            )
        outcome = query.get("outcome", "")
        if outcome and outcome not in OUTCOMES:
            raise _ApiError(400, f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
        wanted = {k: query.get(k, "").strip().lower() for k in ("from", "to", "subject", "text")}

        def match(txn: Transaction) -> bool:
            if outcome and txn.outcome != outcome:
                return False
            message = txn.message
            if wanted["from"] and not _contains(
                wanted["from"], txn.mail_from, message.from_ if message else None
            ):
                return False
            if wanted["to"]:
                tried = [r.address for r in txn.recipients]
                headers = (message.to + message.cc) if message else []
                if not _contains(wanted["to"], *tried, *headers):
                    return False
            if wanted["subject"] and not (
                message is not None and _contains(wanted["subject"], message.subject)
            ):
                return False
            return not (
                wanted["text"]
                and not (
                    message is not None and _contains(wanted["text"], message.text, message.html)
                )
            )

        return match

    @staticmethod
    def _summary(txn: Transaction) -> dict[str, Any]:
        message = txn.message
        return {
            "id": txn.id,
            "outcome": txn.outcome,
            "stage": txn.stage,
            "reply": None if txn.reply is None else str(txn.reply),
            "mail_from": txn.mail_from,
            "recipients": [
                {"address": r.address, "accepted": r.accepted, "reply": str(r.reply)}
                for r in list(txn.recipients)
            ],
            "session": txn.session.id,
            "started_at": txn.started_at.isoformat(),
            "has_message": message is not None,
            "subject": message.subject if message else None,
            "from": message.from_ if message else None,
            "to": message.to if message else [],
            "size": message.size if message else None,
        }

    def _detail(self, message: Message, txn: Transaction) -> dict[str, Any]:
        view = MessageView.build(message)
        return {
            **self._summary(txn),
            "envelope": {
                "mail_from": message.mail_from,
                "rcpt_tos": message.rcpt_tos,
                "mail_options": message.mail_options,
                "rcpt_options": message.rcpt_options,
            },
            "session": _session_json(message.session),
            "received_at": message.received_at.isoformat(),
            "headers": [[name, value] for name, value in view.headers],
            "text": view.text,
            "html": message.html,
            "attachments": [
                {
                    "index": a.index,
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "size": a.size,
                    "url": f"/api/messages/{message.transaction_id}/attachments/{a.index}",
                }
                for a in view.attachments
            ],
            "defects": message.defects,
            "lint": [dataclasses.asdict(finding) for finding in view.findings],
            "raw_url": f"/api/messages/{message.transaction_id}/raw",
        }

    # -- middleware ------------------------------------------------------------------------
    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except _ApiError as exc:
            return _json({"status": exc.status, "error": exc.error}, exc.status)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            error = exc.text or exc.reason
            if exc.status == 404:
                error = f"no route {request.method} {request.path} (see GET /api/openapi.json)"
            elif exc.status == 405:
                error = f"{request.method} is not allowed on {request.path}"
            return _json({"status": exc.status, "error": error}, exc.status)
        except Exception as exc:
            self._record_error(f"WebServer: {request.method} {request.path}")
            return _json(
                {"status": 500, "error": f"internal error: {type(exc).__name__}: {exc}"}, 500
            )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @web.middleware
    async def _check_token(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.token is None:
            return await handler(request)
        given = request.query.get("token")
        from_query = given is not None
        if given is None:
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            given = value.strip() if scheme.lower() == "bearer" else None
        if given is None:
            given = request.cookies.get(TOKEN_COOKIE)
        if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
            what = "a wrong token" if given is not None else "no token"
            raise _ApiError(
                401,
                f"{what}: send the token `serve` printed at start as 'Authorization: Bearer "
                "TOKEN' (or ?token=TOKEN)",
            )
        response = await handler(request)
        if from_query and not response.prepared:
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="Strict")
        return response

    # -- pages -----------------------------------------------------------------------------
    def _page(self, template: str, **context: Any) -> web.Response:
        html = environment().get_template(template).render(page_csp=PAGE_CSP, **context)
        response = web.Response(text=html, content_type="text/html")
        response.headers["Content-Security-Policy"] = PAGE_CSP
        return response

    async def _page_index(self, request: web.Request) -> web.Response:
        return self._page(
            "live_index.html", server=self.smtp, fields=SEARCH_FIELDS, outcomes=OUTCOMES
        )

    async def _page_message(self, request: web.Request) -> web.Response:
        message, txn = self._message(request)
        smtp = self.smtp
        record = self._record(txn, smtp)
        sid = message.session.id
        same_session = [self._record(t, smtp) for t in smtp.transactions if t.session.id == sid]
        lines = mark_transactions(session_lines(smtp.transcript, sid), same_session)
        return self._page(
            "live_message.html",
            view=MessageView.build(message, record),
            lines=lines,
            raw_href=lambda v: f"/api/messages/{v.id}/raw",
            attachment_href=lambda v, a: f"/api/messages/{v.id}/attachments/{a.index}",
        )

    async def _static_js(self, request: web.Request) -> web.Response:
        text = resources.files("pytest_smtp.web").joinpath("static/live.js").read_text("utf-8")
        return web.Response(text=text, content_type="text/javascript")

    async def _openapi(self, request: web.Request) -> web.Response:
        return _json(OPENAPI)

    # -- messages and transactions ---------------------------------------------------------
    async def _list_messages(self, request: web.Request) -> web.Response:
        match = self._search(request)
        found = [
            self._summary(t) for t in self._visible(request) if t.message is not None and match(t)
        ]
        return _json({"count": len(found), "messages": found})

    async def _list_transactions(self, request: web.Request) -> web.Response:
        match = self._search(request)
        found = [self._summary(t) for t in self._visible(request) if match(t)]
        return _json({"count": len(found), "transactions": found})

    async def _get_message(self, request: web.Request) -> web.Response:
        return _json(self._detail(*self._message(request)))

    async def _get_transaction(self, request: web.Request) -> web.Response:
        txn = self._transaction(request)
        return _json({**self._summary(txn), "transcript": list(txn.transcript), "error": txn.error})

    async def _delete_message(self, request: web.Request) -> web.Response:
        txn = self._transaction(request)
        target = self._target(request)
        target.hidden.add(txn.id)
        if target is self._main:
            self._broadcast({"type": "delete", "id": txn.id})
        return _json({"status": 200, "deleted": txn.id})

    async def _clear_messages(self, request: web.Request) -> web.Response:
        count = len(self._visible(request))
        target = self._target(request)
        target.smtp.mailbox.clear()
        target.smtp.transactions.clear()
        target.hidden.clear()
        target.changed()
        if target is self._main:
            self._broadcast({"type": "clear"})
        return _json({"status": 200, "deleted": count})

    async def _raw(self, request: web.Request) -> web.Response:
        message, _ = self._message(request)
        return self._download(message.raw, "message/rfc822", f"{message.transaction_id}.eml")

    async def _attachment(self, request: web.Request) -> web.Response:
        message, _ = self._message(request)
        index = self._int(request, "index")
        attachments = MessageView.build(message).attachments
        if index >= len(attachments):
            raise _ApiError(
                404,
                f"message {message.transaction_id} has {len(attachments)} attachment(s); "
                f"index {index} is out of range",
            )
        a = attachments[index]
        return self._download(a.payload, a.content_type, a.filename)

    @staticmethod
    def _download(body: bytes, content_type: str, filename: str) -> web.Response:
        response = web.Response(body=body, content_type=content_type)
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
        return response

    async def _sessions(self, request: web.Request) -> web.Response:
        sessions = [_session_json(s) for s in self._target(request).smtp.sessions]
        return _json({"count": len(sessions), "sessions": sessions})

    async def _transcript(self, request: web.Request) -> web.Response:
        lines = self._target(request).smtp.transcript
        session = request.query.get("session")
        if session is not None:
            if not session.isdigit():
                raise _ApiError(400, f"session must be a number, not {session!r}")
            lines = session_lines(lines, int(session))
        return _json({"lines": lines})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._clients.add(queue)
        try:
            await response.write(b"retry: 1000\nevent: hello\ndata: {}\n\n")
            while True:
                event = await queue.get()
                if event is None:
                    break
                data = json.dumps(event)
                await response.write(f"event: {event['type']}\ndata: {data}\n\n".encode())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(queue)
        return response

    async def _records(self, request: web.Request) -> web.Response:
        """The transaction log from position ``since`` on (transactions join the log when they
        finish), with their messages, raw bytes included; when nothing is there yet, waits up
        to ``wait`` seconds for the first one: a long poll. ``next`` is the next ``since``."""
        unknown = sorted(set(request.query) - {"since", "wait", "epoch", "token"})
        if unknown:
            raise _ApiError(
                400, f"unknown parameter(s) {', '.join(unknown)}; valid: since, wait, epoch"
            )
        numbers: dict[str, int] = {}
        for name in ("since", "epoch"):
            text = request.query.get(name, "0")
            if not text.isdigit():
                raise _ApiError(400, f"{name} must be a whole number, not {text!r}")
            numbers[name] = int(text)
        since = numbers["since"]
        try:
            wait = float(request.query.get("wait", "0"))
        except ValueError:
            wait = -1.0
        if not 0 <= wait <= MAX_RECORDS_WAIT:
            raise _ApiError(
                400,
                f"wait must be a number of seconds from 0 to {MAX_RECORDS_WAIT:g}, "
                f"not {request.query.get('wait')!r}",
            )
        target = self._target(request)
        log = target.smtp.transactions
        current = "epoch" not in request.query or numbers["epoch"] == target.epoch
        if current and len(log) <= since and wait > 0:
            waiter = asyncio.ensure_future(log.wait_for_async(count=since + 1, timeout=wait))
            woken = asyncio.ensure_future(target.wake.wait())
            await asyncio.wait((waiter, woken), return_when=asyncio.FIRST_COMPLETED)
            for task in (waiter, woken):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, MailboxTimeout):
                await waiter
        found = log[since:]
        shown = [t for t in found if t.id not in target.hidden]
        record = TestRecord(nodeid="", outcome="")
        record.transactions = [self._record(t, target.smtp) for t in shown]
        record.messages = [MessageRecord.from_message(t.message) for t in shown if t.message]
        data = record.to_dict()
        return _json(
            {
                "epoch": target.epoch,
                "next": since + len(found),
                "transactions": data["transactions"],
                "messages": data["messages"],
            }
        )

    # -- servers made through the API ------------------------------------------------------
    @staticmethod
    def _server_json(sid: int, smtp: SMTPServer) -> dict[str, Any]:
        return {
            "id": sid,
            "host": smtp.host,
            "port": smtp.port,
            "hostname": smtp.hostname,
            "running": smtp.running,
            "messages": len(smtp.mailbox),
            "errors": list(smtp.errors) + list(smtp.mailbox.listener_errors),
            "api": f"/api/servers/{sid}",
        }

    async def _list_servers(self, request: web.Request) -> web.Response:
        servers = [self._server_json(i, t.smtp) for i, t in sorted(self._managed.items())]
        return _json({"count": len(servers), "servers": servers})

    async def _create_server(self, request: web.Request) -> web.Response:
        options = await self._body(request, optional=True)
        for name in ("host", "port"):
            if name in options:
                raise _ApiError(
                    400,
                    f"{name!r} is chosen by serve (its --host, a free port); leave it out",
                )
        try:
            built = ServerOptions.build(self.smtp.options, port=0, **options)
        except OptionError as exc:
            raise _ApiError(400, f"bad server options: {exc}") from None
        smtp = SMTPServer(options=built)
        await smtp.start_async()
        sid, self._next_managed = self._next_managed, self._next_managed + 1
        self._managed[sid] = _Target(smtp, smtp.store)
        return _json(self._server_json(sid, smtp), 201)

    async def _get_server(self, request: web.Request) -> web.Response:
        target = self._target(request)
        return _json(self._server_json(self._int(request, "server"), target.smtp))

    async def _stop_server(self, request: web.Request) -> web.Response:
        target = self._target(request)
        sid = self._int(request, "server")
        del self._managed[sid]
        target.changed()
        await target.smtp.stop_async()
        return _json({"status": 200, "stopped": sid})

    async def _reset_server(self, request: web.Request) -> web.Response:
        target = self._target(request)
        data = await self._body(request, optional=True)
        unknown = sorted(set(data) - {"seed"})
        if unknown:
            raise _ApiError(400, f"unknown field(s) {', '.join(unknown)}; valid: seed")
        seed = self._seed(data)
        target.smtp.reset()
        target.hidden.clear()
        target.changed()
        if seed is not None:
            target.smtp.faults.seed = seed
        return _json({"status": 200, "reset": self._int(request, "server"), "epoch": target.epoch})

    # -- faults ----------------------------------------------------------------------------
    async def _body(self, request: web.Request, *, optional: bool = False) -> dict[str, Any]:
        """The request's JSON object; ``optional``: an empty one when there is no body."""
        if optional and not request.can_read_body:
            return {}
        try:
            data = await request.json()
        except ValueError as exc:
            raise _ApiError(400, f"the body must be a JSON object: {exc}") from None
        if not isinstance(data, dict):
            raise _ApiError(400, f"the body must be a JSON object, not {type(data).__name__}")
        return data

    @staticmethod
    def _seed(data: dict[str, Any]) -> int | None:
        """The ``seed`` field taken out of a request body: a whole number, or None."""
        seed = data.pop("seed", None)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise _ApiError(400, f"seed must be a whole number, not {seed!r}")
        return seed

    @staticmethod
    def _rule_json(index: int, rule: Any) -> dict[str, Any]:
        return {
            "index": index,
            "stage": rule.stage,
            "name": rule.name,
            "steps": [_describe_step(step) for step in rule.steps],
            "seen": rule.seen,
            "hits": rule.hits,
        }

    async def _list_faults(self, request: web.Request) -> web.Response:
        faults = self._target(request).smtp.faults
        rules = [self._rule_json(i, r) for i, r in enumerate(faults.rules)]
        return _json({"count": len(rules), "rules": rules})

    async def _add_fault(self, request: web.Request) -> web.Response:
        data = await self._body(request)
        stage = data.pop("stage", None)
        action = data.pop("action", "reject")
        args = data.pop("args", [])
        if not isinstance(stage, str):
            raise _ApiError(400, "a fault needs 'stage' (e.g. \"rcpt\") and 'action'")
        if not isinstance(args, list):
            raise _ApiError(400, f"'args' must be a list (positional arguments), not {args!r}")
        if "predicate" in data:
            raise _ApiError(400, "'predicate' takes a Python callable; it cannot come as JSON")
        faults = self._target(request).smtp.faults
        seed = self._seed(data)
        if seed is not None:
            faults.seed = seed
        try:
            rule = faults.from_marker(stage, str(action), *args, **data)
        except (TypeError, ValueError) as exc:
            raise _ApiError(400, f"bad fault rule: {exc}") from None
        index = len(faults.rules) - 1
        return _json(self._rule_json(index, rule), 201)

    async def _clear_faults(self, request: web.Request) -> web.Response:
        faults = self._target(request).smtp.faults
        count = len(faults)
        faults.clear()
        return _json({"status": 200, "deleted": count})

    # -- DNS and maildrops -----------------------------------------------------------------
    async def _load_zone(self, request: web.Request) -> web.Response:
        if self.dns is None:
            raise _ApiError(404, "this web server has no FakeDNS: start it with WebServer(dns=...)")
        origin = request.query.get("origin")
        if request.content_type == "application/json":
            data = await self._body(request)
            text, origin = data.get("text"), data.get("origin", origin)
        else:
            text = await request.text()
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(
                400,
                "no zone text: send master-file text (text/plain, or JSON "
                '{"text": ..., "origin": ...})',
            )
        try:
            self.dns.load(text, origin)
        except (TypeError, ValueError) as exc:
            raise _ApiError(400, str(exc)) from None
        return _json({"status": 201, "loaded": True, "origin": origin}, 201)

    def _drop(self, request: web.Request) -> Any:
        address = request.match_info["address"]
        try:
            normalize_address(address)
        except ValueError as exc:
            raise _ApiError(400, f"bad address {address!r}: {exc}") from None
        store = self._target(request).store
        drop = store.get(address)
        if drop is None:
            known = ", ".join(store.addresses()) or "none"
            raise _ApiError(404, f"no maildrop for {address!r} (maildrops: {known})")
        return drop

    async def _maildrops(self, request: web.Request) -> web.Response:
        return _json({"addresses": self._target(request).store.addresses()})

    async def _maildrop(self, request: web.Request) -> web.Response:
        drop = self._drop(request)
        folders = {
            name: [
                {
                    "uid": m.uid,
                    "size": m.size,
                    "flags": sorted(m.flags),
                    "subject": m.subject,
                    "internal_date": m.internal_date.isoformat(),
                }
                for m in folder.messages
            ]
            for name, folder in drop.folders.items()
        }
        return _json({"address": drop.address, "folders": folders})

    async def _stored_raw(self, request: web.Request) -> web.Response:
        drop = self._drop(request)
        name = request.match_info["folder"]
        if name not in drop:
            raise _ApiError(
                404, f"{drop.address} has no folder {name!r} (folders: {', '.join(drop.folders)})"
            )
        uid = self._int(request, "uid")
        stored = drop.folder(name).get(uid)
        if stored is None:
            raise _ApiError(404, f"{drop.address} folder {name!r} has no message uid {uid}")
        return self._download(stored.raw, "message/rfc822", f"{uid}.eml")


def routes_of(app: web.Application) -> Iterable[tuple[str, str]]:
    """``(method, path)`` of every route of ``app`` (HEAD excluded), for the OpenAPI check."""
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD" and path is not None:
            yield route.method, str(path)
