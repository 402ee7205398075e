"""SMTP AUTH (RFC 4954): the mechanisms (credentials and PLAIN decoding: ``pytest_smtp.sasl``).

A mechanism is a coroutine that talks to the client through a ``challenge`` callable (send a
``334`` challenge, get the decoded answer back) and returns an :class:`AuthOutcome`. Secrets
never leave this module: the transcript only ever sees ``****``.
"""

from __future__ import annotations

import dataclasses
import hmac
import os
from collections.abc import Awaitable, Callable

from ..sasl import (
    Auth,
    AuthSyntaxError,
    b64decode_strict,
    check_password,
    parse_plain,
    password_for,
    utf8_text,
)

__all__ = [
    "AuthAborted",
    "AuthOutcome",
    "AuthSyntaxError",
    "b64decode_strict",
    "check_password",
    "run_mechanism",
]

Challenge = Callable[[bytes], Awaitable[bytes]]


class AuthAborted(Exception):
    """The client answered ``*`` to a challenge (RFC 4954 §4): ``501 5.7.0``."""


@dataclasses.dataclass(frozen=True)
class AuthOutcome:
    """What a mechanism found: the user it claims and whether the secret matched."""

    user: str
    success: bool


async def _plain(
    auth: Auth, initial: bytes | None, challenge: Challenge, hostname: str
) -> AuthOutcome:
    data = initial if initial is not None else await challenge(b"")
    _authzid, user, password = parse_plain(data)
    return AuthOutcome(user, check_password(auth, user, password))


async def _login(
    auth: Auth, initial: bytes | None, challenge: Challenge, hostname: str
) -> AuthOutcome:
    user = utf8_text(
        initial if initial is not None else await challenge(b"Username:"), "the user name"
    )
    password = utf8_text(await challenge(b"Password:"), "the password")
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
    user = utf8_text(user_bytes, "the user name")
    if auth == "any":
        return AuthOutcome(user, True)
    secret = password_for(auth, user)
    if secret is None:
        return AuthOutcome(user, False)
    expected = hmac.new(secret.encode(), nonce, "md5").hexdigest().encode()
    return AuthOutcome(user, hmac.compare_digest(expected, digest.lower()))


async def _xoauth2(
    auth: Auth, initial: bytes | None, challenge: Challenge, hostname: str
) -> AuthOutcome:
    data = initial if initial is not None else await challenge(b"")
    text = utf8_text(data, "the XOAUTH2 response")
    fields = dict(item.split("=", 1) for item in text.split("\x01") if "=" in item)
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
