"""Credentials and SASL decoding shared by the SMTP, POP3 and IMAP servers.

One implementation each, called by ``smtp/auth.py`` (SMTP AUTH), ``retrieval/pop3.py``
(USER/PASS, APOP, AUTH PLAIN) and ``retrieval/imap.py`` (LOGIN, AUTHENTICATE PLAIN):

- the ``auth`` option's meaning: ``"any"`` accepts every user name with any password, a
  ``{user: password}`` table checks them (:func:`check_password`, :func:`password_for`);
  ``None`` means no credentials are configured, so nothing checks out;
- base64 as SASL sends it (:func:`b64decode_strict`), UTF-8 fields (:func:`utf8_text`) and
  the PLAIN message of RFC 4616 (:func:`parse_plain`, :func:`decode_plain`).

A malformed exchange raises :class:`AuthSyntaxError` (a ``ValueError``) saying what is wrong.
This module never imports pytest.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Mapping
from typing import Literal, TypeAlias

__all__ = [
    "Auth",
    "AuthSyntaxError",
    "b64decode_strict",
    "check_password",
    "decode_plain",
    "parse_plain",
    "password_for",
    "utf8_text",
]

#: The ``auth`` option of every server: a table, ``"any"``, or ``None`` (none configured); or a
#: checker ``(user, password) -> bool`` (the SMTP server's ``authenticator``), which holds no
#: password to give :func:`password_for`.
Auth: TypeAlias = Mapping[str, str] | Callable[[str, str], bool] | Literal["any"] | None


class AuthSyntaxError(ValueError):
    """A malformed authentication exchange (bad base64, missing PLAIN fields, not UTF-8)."""


def password_for(auth: Auth, user: str) -> str | None:
    """The password ``auth`` holds for ``user``; None for ``"any"``, ``None`` or an unknown user.

    The user name is looked up exactly as given: a caller whose names are addresses
    normalises both the table and the name first.
    """
    if auth is None or auth == "any" or callable(auth):
        return None
    return auth.get(user)


def check_password(auth: Auth, user: str, password: str) -> bool:
    """True when ``auth`` is ``"any"`` or maps ``user`` to exactly ``password``.

    ``None`` (no credentials configured) accepts nobody. The comparison takes the same time
    whatever the password (``hmac.compare_digest``).
    """
    if auth == "any":
        return True
    if callable(auth):
        return auth(user, password)
    expected = password_for(auth, user)
    return expected is not None and hmac.compare_digest(
        expected.encode("utf-8"), password.encode("utf-8")
    )


def b64decode_strict(data: str | bytes, what: str = "the SASL response") -> bytes:
    """Decode base64 as SASL sends it; :class:`AuthSyntaxError` ``"<what> is not valid base64"``
    on anything malformed."""
    try:
        if isinstance(data, str):
            data = data.strip().encode("ascii")
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise AuthSyntaxError(f"{what} is not valid base64") from None


def utf8_text(data: bytes, what: str) -> str:
    """``data`` decoded as UTF-8; :class:`AuthSyntaxError` ``"<what> is not UTF-8"`` if not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthSyntaxError(f"{what} is not UTF-8") from None


def parse_plain(data: bytes) -> tuple[str, str, str]:
    """Split a decoded SASL PLAIN message into ``(authzid, authcid, password)`` (RFC 4616).

    Raises :class:`AuthSyntaxError` unless it is three NUL-separated UTF-8 fields with a
    non-empty user name (authcid).
    """
    parts = data.split(b"\x00")
    if len(parts) != 3:
        raise AuthSyntaxError(
            "the SASL PLAIN response must be authzid NUL authcid NUL password (RFC 4616)"
        )
    authzid, authcid, password = (utf8_text(p, "the SASL PLAIN response") for p in parts)
    if not authcid:
        raise AuthSyntaxError("the SASL PLAIN response has an empty user name")
    return authzid, authcid, password


def decode_plain(response: str) -> tuple[str, str, str]:
    """Decode a base64 SASL PLAIN response (as sent after ``AUTH PLAIN``/``AUTHENTICATE``)."""
    return parse_plain(b64decode_strict(response, "the SASL PLAIN response"))
