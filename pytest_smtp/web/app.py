"""The live web view and JSON API of one :class:`~pytest_smtp.SMTPServer`, on the engine loop.

``WebServer(smtp_server)`` serves, on its own port, a page listing the server's transactions
as they happen (server-sent events), a message view, and a JSON API (documented at
``/api/openapi.json``). It runs on aiohttp, on the same asyncio loop as the SMTP server: no
thread, no copy of the data, every request reads the live server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Iterable
from importlib import resources
from typing import Any

from ..engine import LoopServer, bind_socket
from ..mail import OUTCOMES, MailboxTimeout, Message, SessionInfo, Transaction
from ..smtp.server import SMTPServer
from ..store import MailStore, normalize_address
from ._extra import missing_extra
from .openapi import OPENAPI
from .records import TransactionRecord, mark_transactions, session_lines
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
    data = dataclasses.asdict(info)
    data["peer"] = f"{info.peer[0]}:{info.peer[1]}"
    return data


def _contains(needle: str, *haystacks: str | None) -> bool:
    return any(h is not None and needle in h.lower() for h in haystacks)


class WebServer(LoopServer):
    """The web view and JSON API of ``smtp_server`` (and, when given, a FakeDNS and a store).

    ``store`` defaults to ``smtp_server.store`` (the maildrops POP3/IMAP read). Use it like
    every server here::

        with SMTPServer() as smtp, WebServer(smtp) as web:
            print(web.url)  # http://127.0.0.1:PORT/

    Deleting a message hides it (and its transaction) from the view and the API; clearing
    empties the server's mailbox and transaction log.
    """

    def __init__(
        self,
        smtp_server: SMTPServer,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        dns: Any = None,
        store: MailStore | None = None,
    ) -> None:
        super().__init__(host=host, port=port)
        self.smtp = smtp_server
        """The SMTP server shown."""
        self.dns = dns
        """The :class:`~pytest_smtp.FakeDNS` whose zones ``POST /api/dns/zones`` loads."""
        self.store = store if store is not None else smtp_server.store
        """The store whose maildrops ``/api/maildrops`` reads."""
        self._hidden: set[int] = set()
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
        app = web.Application(middlewares=[self._errors], client_max_size=16 * 2**20)
        get, post, delete = web.get, web.post, web.delete
        app.add_routes(
            [
                get("/", self._page_index),
                get("/messages/{id}", self._page_message),
                get("/static/live.js", self._static_js),
                get("/api/openapi.json", self._openapi),
                get("/api/messages", self._list_messages),
                delete("/api/messages", self._clear_messages),
                get("/api/messages/{id}", self._get_message),
                delete("/api/messages/{id}", self._delete_message),
                get("/api/messages/{id}/raw", self._raw),
                get("/api/messages/{id}/attachments/{index}", self._attachment),
                get("/api/transactions", self._list_transactions),
                get("/api/transactions/{id}", self._get_transaction),
                get("/api/sessions", self._sessions),
                get("/api/transcript", self._transcript),
                get("/api/events", self._events),
                get("/api/faults", self._list_faults),
                post("/api/faults", self._add_fault),
                delete("/api/faults", self._clear_faults),
                post("/api/dns/zones", self._load_zone),
                get("/api/maildrops", self._maildrops),
                get("/api/maildrops/{address}", self._maildrop),
                get("/api/maildrops/{address}/{folder}/{uid}", self._stored_raw),
            ]
        )
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
    def _visible(self) -> list[Transaction]:
        return [t for t in self.smtp.transactions if t.id not in self._hidden]

    def _record(self, txn: Transaction) -> TransactionRecord:
        return TransactionRecord.from_transaction(txn, self._server_name())

    def _server_name(self) -> str:
        return f"{self.smtp.host}:{self.smtp.port}"

    @staticmethod
    def _int(request: web.Request, name: str) -> int:
        value = request.match_info[name]
        if not value.isdigit():
            raise _ApiError(400, f"{name} must be a number, not {value!r}")
        return int(value)

    def _transaction(self, request: web.Request) -> Transaction:
        wanted = self._int(request, "id")
        for txn in self._visible():
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
        unknown = sorted(set(query) - set(SEARCH_FIELDS))
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
        record = self._record(txn)
        sid = message.session.id
        same_session = [self._record(t) for t in self.smtp.transactions if t.session.id == sid]
        lines = mark_transactions(session_lines(self.smtp.transcript, sid), same_session)
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
        found = [self._summary(t) for t in self._visible() if t.message is not None and match(t)]
        return _json({"count": len(found), "messages": found})

    async def _list_transactions(self, request: web.Request) -> web.Response:
        match = self._search(request)
        found = [self._summary(t) for t in self._visible() if match(t)]
        return _json({"count": len(found), "transactions": found})

    async def _get_message(self, request: web.Request) -> web.Response:
        return _json(self._detail(*self._message(request)))

    async def _get_transaction(self, request: web.Request) -> web.Response:
        txn = self._transaction(request)
        return _json({**self._summary(txn), "transcript": list(txn.transcript), "error": txn.error})

    async def _delete_message(self, request: web.Request) -> web.Response:
        txn = self._transaction(request)
        self._hidden.add(txn.id)
        self._broadcast({"type": "delete", "id": txn.id})
        return _json({"status": 200, "deleted": txn.id})

    async def _clear_messages(self, request: web.Request) -> web.Response:
        count = len(self._visible())
        self.smtp.mailbox.clear()
        self.smtp.transactions.clear()
        self._hidden.clear()
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
        sessions = [_session_json(s) for s in self.smtp.sessions]
        return _json({"count": len(sessions), "sessions": sessions})

    async def _transcript(self, request: web.Request) -> web.Response:
        lines = self.smtp.transcript
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

    # -- faults ----------------------------------------------------------------------------
    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError as exc:
            raise _ApiError(400, f"the body must be a JSON object: {exc}") from None
        if not isinstance(data, dict):
            raise _ApiError(400, f"the body must be a JSON object, not {type(data).__name__}")
        return data

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
        rules = [self._rule_json(i, r) for i, r in enumerate(self.smtp.faults.rules)]
        return _json({"count": len(rules), "rules": rules})

    async def _add_fault(self, request: web.Request) -> web.Response:
        data = await self._body(request)
        stage = data.pop("stage", None)
        action = data.pop("action", "reject")
        if not isinstance(stage, str):
            raise _ApiError(400, "a fault needs 'stage' (e.g. \"rcpt\") and 'action'")
        if "predicate" in data:
            raise _ApiError(400, "'predicate' takes a Python callable; it cannot come as JSON")
        try:
            rule = self.smtp.faults.from_marker(stage, str(action), **data)
        except (TypeError, ValueError) as exc:
            raise _ApiError(400, f"bad fault rule: {exc}") from None
        index = len(self.smtp.faults.rules) - 1
        return _json(self._rule_json(index, rule), 201)

    async def _clear_faults(self, request: web.Request) -> web.Response:
        count = len(self.smtp.faults)
        self.smtp.faults.clear()
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
        drop = self.store.get(address)
        if drop is None:
            known = ", ".join(self.store.addresses()) or "none"
            raise _ApiError(404, f"no maildrop for {address!r} (maildrops: {known})")
        return drop

    async def _maildrops(self, request: web.Request) -> web.Response:
        return _json({"addresses": self.store.addresses()})

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
