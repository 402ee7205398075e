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

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "pytest_smtp web API",
        "version": "1",
        "description": "The live view of one capturing SMTP server: messages, transactions "
        "with their outcomes, sessions, transcript, fault rules, fake DNS zones and "
        "maildrops. Every error is JSON {status, error}.",
    },
    "paths": {
        "/": {"get": _op("The live page (HTML)")},
        "/messages/{id}": {"get": _op("One message's page (HTML)", params=["id"])},
        "/static/live.js": {"get": _op("The live page's script")},
        "/api/openapi.json": {"get": _op("This document")},
        "/api/messages": {
            "get": _op("List and search messages (accepted or dropped)", params=_SEARCH),
            "delete": _op("Clear the server's mailbox and transaction log"),
        },
        "/api/messages/{id}": {
            "get": _op(
                "One message: envelope, session, decoded headers, parts, attachments", params=["id"]
            ),
            "delete": _op("Hide a message (and its transaction) from the view", params=["id"]),
        },
        "/api/messages/{id}/raw": {"get": _op("The raw source (message/rfc822)", params=["id"])},
        "/api/messages/{id}/attachments/{index}": {
            "get": _op("One attachment's decoded bytes", params=["id", "index"])
        },
        "/api/transactions": {
            "get": _op("List and search every transaction with its outcome", params=_SEARCH)
        },
        "/api/transactions/{id}": {
            "get": _op("One transaction with its transcript", params=["id"])
        },
        "/api/sessions": {"get": _op("Every SMTP connection: peer, HELO, TLS, AUTH")},
        "/api/transcript": {
            "get": _op("The SMTP transcript, all sessions or one", params=["session"])
        },
        "/api/events": {
            "get": _op(
                "Server-sent events: hello, transaction {id, outcome}, delete {id}, clear",
                ok="text/event-stream",
            )
        },
        "/api/faults": {
            "get": _op("The fault rules with their counters"),
            "post": _op(
                "Add a fault rule: {stage, action, ...arguments and matchers of FaultSet}",
                ok="Created",
                requestBody=_JSON_BODY,
                responses={"201": {"description": "Created"}, "4XX": _ERROR},
            ),
            "delete": _op("Remove every fault rule"),
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
        "/api/maildrops": {"get": _op("The addresses that have a maildrop")},
        "/api/maildrops/{address}": {
            "get": _op(
                "A maildrop's folders and messages (uid, size, flags, subject)", params=["address"]
            )
        },
        "/api/maildrops/{address}/{folder}/{uid}": {
            "get": _op("One stored message's raw bytes", params=["address", "folder", "uid"])
        },
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
