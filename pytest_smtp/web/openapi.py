"""The OpenAPI 3.1 document of the JSON API, served at ``/api/openapi.json``.

Written by hand as data; a test checks that it documents every route the app has, and only
those.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OPENAPI"]

_ERROR = {"$ref": "#/components/responses/Error"}


def _op(
    summary: str, ok: str = "OK", params: tuple[str, ...] | list[str] = (), **extra: Any
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": {"description": ok}, "4XX": _ERROR},
    }
    if params:
        operation["parameters"] = [{"$ref": f"#/components/parameters/{p}"} for p in params]
    operation.update(extra)
    return operation


def _query(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


def _path(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": kind},
    }


_SEARCH = ["from", "to", "subject", "text", "outcome"]
_JSON_BODY = {"content": {"application/json": {"schema": {"type": "object"}}}}

#: The paths of one SMTP server's data, under ``/api`` (the main server) and under
#: ``/api/servers/{server}`` (each server made through ``POST /api/servers``).
_SERVER_PATHS: dict[str, dict[str, Any]] = {
    "/messages": {
        "get": _op("List and search messages (accepted or dropped)", params=_SEARCH),
        "delete": _op("Clear the server's mailbox and transaction log"),
    },
    "/messages/{id}": {
        "get": _op(
            "One message: envelope, session, decoded headers, parts, attachments, lint findings",
            params=["id"],
        ),
        "delete": _op("Hide a message (and its transaction) from the view", params=["id"]),
    },
    "/messages/{id}/raw": {"get": _op("The raw source (message/rfc822)", params=["id"])},
    "/messages/{id}/attachments/{index}": {
        "get": _op("One attachment's decoded bytes", params=["id", "index"])
    },
    "/transactions": {
        "get": _op("List and search every transaction with its outcome", params=_SEARCH)
    },
    "/transactions/{id}": {"get": _op("One transaction with its transcript", params=["id"])},
    "/records": {
        "get": _op(
            "The transaction log from position `since` (transactions join it when they "
            "finish) with their messages (raw bytes in base64), as TransactionRecord/"
            "MessageRecord dicts, and `next`, the next position; waits up to `wait` seconds "
            "for a first one (a long poll: remote mode's wait_for). `epoch` counts the "
            "clears of the log: a request whose `epoch` is not the current one answers at once",
            params=["since", "wait", "epoch"],
        )
    },
    "/sessions": {"get": _op("Every SMTP connection: peer, HELO, TLS, AUTH")},
    "/transcript": {"get": _op("The SMTP transcript, all sessions or one", params=["session"])},
    "/faults": {
        "get": _op("The fault rules with their counters"),
        "post": _op(
            "Add a fault rule: {stage, action, args?, seed?, ...keyword arguments and "
            "matchers of FaultSet}; seed sets the server's fault seed first",
            ok="Created",
            requestBody=_JSON_BODY,
            responses={"201": {"description": "Created"}, "4XX": _ERROR},
        ),
        "delete": _op("Remove every fault rule"),
    },
    "/maildrops": {"get": _op("The addresses that have a maildrop")},
    "/maildrops/{address}": {
        "get": _op(
            "A maildrop's folders and messages (uid, size, flags, subject)", params=["address"]
        )
    },
    "/maildrops/{address}/{folder}/{uid}": {
        "get": _op("One stored message's raw bytes", params=["address", "folder", "uid"])
    },
}


def _per_server(ops: dict[str, Any]) -> dict[str, Any]:
    """``ops`` of a made server: the same operations with the ``server`` parameter first."""
    made: dict[str, Any] = {}
    for method, op in ops.items():
        params = [{"$ref": "#/components/parameters/server"}, *op.get("parameters", [])]
        made[method] = {**op, "summary": op["summary"] + " (a made server)", "parameters": params}
    return made


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "pytest_smtp web API",
        "version": "1",
        "description": "The live view of one capturing SMTP server: messages, transactions "
        "with their outcomes, sessions, transcript, fault rules, fake DNS zones and "
        "maildrops; and more SMTP servers made through /api/servers, each with the same "
        "data routes under /api/servers/{server}. Every error is JSON {status, error}. "
        "A server started with a token answers 401 to a request without it "
        "(Authorization: Bearer TOKEN).",
    },
    "paths": {
        "/": {"get": _op("The live page (HTML)")},
        "/messages/{id}": {"get": _op("One message's page (HTML)", params=["id"])},
        "/static/live.js": {"get": _op("The live page's script")},
        "/api/openapi.json": {"get": _op("This document")},
        "/api/events": {
            "get": _op(
                "Server-sent events: hello, transaction {id, outcome}, delete {id}, clear",
                ok="text/event-stream",
            )
        },
        "/api/dns/zones": {
            "post": _op(
                "Load master-file text into the FakeDNS (text/plain, or JSON {text, origin})",
                params=["origin"],
                requestBody={
                    "content": {
                        "text/plain": {"schema": {"type": "string"}},
                        **_JSON_BODY["content"],
                    }
                },
                responses={"201": {"description": "Loaded"}, "4XX": _ERROR},
            )
        },
        "/api/servers": {
            "get": _op("The SMTP servers made through this API (remote mode)"),
            "post": _op(
                "Start an SMTP server on serve's host: {server options but host and port}",
                ok="Created: {id, host, port, hostname, api}",
                requestBody=_JSON_BODY,
                responses={"201": {"description": "Created"}, "4XX": _ERROR},
            ),
        },
        "/api/servers/{server}": {
            "get": _op(
                "One made server: address, message count, internal errors", params=["server"]
            ),
            "delete": _op("Stop a made server", params=["server"]),
        },
        "/api/servers/{server}/reset": {
            "post": _op(
                "Forget everything a made server captured and its fault rules: {seed?}",
                params=["server"],
                requestBody=_JSON_BODY,
            )
        },
        **{"/api" + path: ops for path, ops in _SERVER_PATHS.items()},
        **{"/api/servers/{server}" + path: _per_server(ops) for path, ops in _SERVER_PATHS.items()},
    },
    "components": {
        "parameters": {
            "id": _path(
                "id", "The transaction id (a message's id is its transaction's)", "integer"
            ),
            "index": _path("index", "0-based attachment index", "integer"),
            "address": _path("address", "A recipient address"),
            "folder": _path("folder", "A folder name such as INBOX"),
            "uid": _path("uid", "The message's IMAP UID", "integer"),
            "from": _query("from", "Substring of the envelope sender or From header"),
            "to": _query("to", "Substring of any recipient tried, or of To/Cc"),
            "subject": _query("subject", "Substring of the Subject"),
            "text": _query("text", "Substring of the text or HTML part"),
            "outcome": _query("outcome", "accepted, rejected, deferred, dropped or aborted"),
            "session": _query("session", "A session id"),
            "origin": _query("origin", "The zone origin for relative names"),
            "server": _path("server", "A server made by POST /api/servers", "integer"),
            "since": _query("since", "A position in the transaction log (default 0)"),
            "epoch": _query("epoch", "The epoch the position belongs to (see /records)"),
            "wait": _query("wait", "Seconds (0-60) to wait for a first one (default 0)"),
        },
        "responses": {
            "Error": {
                "description": "What was wrong",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["status", "error"],
                            "properties": {
                                "status": {"type": "integer"},
                                "error": {"type": "string"},
                            },
                        }
                    }
                },
            }
        },
    },
}
