"""SMTP AUTH (RFC 4954): the mechanisms and the credential check.

A mechanism is a coroutine that talks to the client through a ``challenge`` callable (send a
``334`` challenge, get the decoded answer back) and returns an :class:`AuthOutcome`. Secrets
never leave this module: the transcript only ever sees ``****``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

__all__ = ["AuthAborted", "AuthOutcome", "AuthSyntaxError", "check_password", "run_mechanism"]

Auth = Mapping[str, str] | Literal["any"] | None
Challenge = Callable[[bytes], Awaitable[bytes]]


class AuthAborted(Exception):
    """The client answered ``*`` to a challenge (RFC 4954 §4): ``501 5.7.0``."""


class AuthSyntaxError(Exception):
    """A malformed exchange (bad base64, missing fields): ``501 5.5.2``."""


@dataclasses.dataclass(frozen=True)
class AuthOutcome:
    """What a mechanism found: the user it claims and whether the secret matched."""

    user: str
    success: bool


def check_password(auth: Auth, user: str, password: str) -> bool:
    """True when ``auth`` is ``"any"`` or maps ``user`` to exactly ``password``."""
    if auth == "any":
        return True
    if not auth:
        return False
    expected = auth.get(user)
    return expected is not None and hmac.compare_digest(expected.encode(), password.encode())


def b64decode_strict(data: str | bytes) -> bytes:
    """Decode base64, raising :class:`AuthSyntaxError` on anything malformed."""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise AuthSyntaxError("cannot decode base64") from None


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthSyntaxError("credentials are not UTF-8") from None


async def _plain(
    auth: Auth, initial: bytes | None, challenge: Challenge, hostname: str
) -> AuthOutcome:
    data = initial if initial is not None else await challenge(b"")
    parts = data.split(b"\0")
    if len(parts) != 3 or not parts[1]:
        raise AuthSyntaxError("PLAIN needs authzid NUL user NUL password")
    user, password = _text(parts[1]), _text(parts[2])
    return AuthOutcome(user, check_password(auth, user, password))


async def _login(
    auth: Auth, initial: bytes | None, challenge: Challenge, hostname: str
) -> AuthOutcome:
    user = _text(initial if initial is not None else await challenge(b"Username:"))
    password = _text(await challenge(b"Password:"))
    if not user:
        raise AuthSyntaxError("LOGIN needs a user name")
    return AuthOutcome(user, check_password(auth, user, password))


async def _cram_md5(
    auth: Auth, initial: bytes | None, challenge: Challenge, hostname: str
) -> AuthOutcome:
    if initial is not None:
        raise AuthSyntaxError("CRAM-MD5 takes no initial response")
    nonce = f"<{int.from_bytes(os.urandom(8), 'big')}@{hostname}>".encode()
    user_bytes, sep, digest = (await challenge(nonce)).rpartition(b" ")
    if not sep or not user_bytes or not digest:
        raise AuthSyntaxError("CRAM-MD5 answer must be 'user digest'")
    user = _text(user_bytes)
    if auth == "any":
        return AuthOutcome(user, True)
    secret = auth.get(user) if auth else None
    if secret is None:
        return AuthOutcome(user, False)
    expected = hmac.new(secret.encode(), nonce, "md5").hexdigest().encode()
    return AuthOutcome(user, hmac.compare_digest(expected, digest.lower()))


async def _xoauth2(
    auth: Auth, initial: bytes | None, challenge: Challenge, hostname: str
) -> AuthOutcome:
    data = initial if initial is not None else await challenge(b"")
    fields = dict(item.split("=", 1) for item in _text(data).split("\x01") if "=" in item)
    user = fields.get("user", "")
    token = fields.get("auth", "")
    if not user or not token.startswith("Bearer "):
        raise AuthSyntaxError("XOAUTH2 needs user=...^Aauth=Bearer TOKEN^A^A")
    ok = check_password(auth, user, token[len("Bearer ") :])
    if not ok:
        # RFC-less but universal (Google's): a JSON error challenge, answered by an empty line.
        await challenge(b'{"status":"401","schemes":"bearer","scope":"mail"}')
    return AuthOutcome(user, ok)


_MECHANISMS = {
    "PLAIN": _plain,
    "LOGIN": _login,
    "CRAM-MD5": _cram_md5,
    "XOAUTH2": _xoauth2,
}


async def run_mechanism(
    mechanism: str,
    auth: Auth,
    initial_response: str | None,
    challenge: Challenge,
    hostname: str,
) -> AuthOutcome:
    """Run one AUTH exchange. ``initial_response`` is the base64 text after the mechanism.

    ``"="`` as the initial response means an empty one (RFC 4954 §4).
    """
    initial: bytes | None = None
    if initial_response is not None:
        initial = b"" if initial_response == "=" else b64decode_strict(initial_response)
    return await _MECHANISMS[mechanism](auth, initial, challenge, hostname)
