"""RFC 5321 envelope syntax: reverse/forward paths and ESMTP parameters.

Strict where strictness protects the test (no CR/LF/NUL, no unbalanced brackets, length
limits), lenient where RFC 5321 asks servers to be (source routes are accepted and ignored,
``Postmaster`` needs no domain). Errors carry the SMTP reply a server should send.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "EnvelopeSyntaxError",
    "Path",
    "check_auth_param",
    "domain_of",
    "parse_params",
    "parse_path",
]

_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
_DOT_STRING = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*\Z")
_DOT_STRING_UTF8 = re.compile(rf"(?:[{_ATEXT}]|[^\x00-\x7f])+(?:\.(?:[{_ATEXT}]|[^\x00-\x7f])+)*\Z")
_QUOTED = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"\Z')
_QUOTED_UTF8 = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|[^\x00-\x7f]|\\[\x20-\x7e])*"\Z')
# A whole domain in one match: dot-separated labels of 1-63, no hyphen at either end.
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_LABEL_UTF8 = r"(?!-)(?:[A-Za-z0-9-]|[^\x00-\x7f]){1,63}(?<!-)"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\Z")
_DOMAIN_UTF8 = re.compile(rf"(?:{_LABEL_UTF8}\.)*{_LABEL_UTF8}\Z")
# The path nearly every client sends, <dot-atom@domain> and nothing or " parameters": valid
# with or without SMTPUTF8, so parse_path takes it in one match (lengths checked after).
_PLAIN_PATH = re.compile(
    rf"<([{_ATEXT}]+(?:\.[{_ATEXT}]+)*)@((?:{_LABEL}\.)*{_LABEL})>(?: (.*))?\Z"
)
_PARAM_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")
_PARAM_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e]+\Z")
_PARAM_VALUE_UTF8 = re.compile(r"(?:[\x21-\x3c\x3e-\x7e]|[^\x00-\x7f])+\Z")
# RFC 3461 §4 xtext (RFC 4954 §8 uses it for AUTH=): printable ASCII but "+" and "=", or +HH.
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})+\Z")
_XTEXT_HEX = re.compile(r"\+([0-9A-F]{2})")

MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_PATH = 256


class EnvelopeSyntaxError(ValueError):
    """A path or parameter that breaks RFC 5321; ``code``/``enhanced`` is the reply to send."""

    def __init__(self, code: int, enhanced: str, text: str) -> None:
        super().__init__(f"{code} {enhanced} {text}")
        self.code = code
        self.enhanced = enhanced
        self.text = text


class Path:
    """A parsed path: ``address`` ("" for the null path), and the parameter text after it."""

    __slots__ = ("address", "rest", "source_route")

    def __init__(self, address: str, rest: str, source_route: str | None) -> None:
        self.address = address
        self.rest = rest
        self.source_route = source_route


def domain_of(address: str) -> str:
    """The domain of ``address``, lower-cased, without the root's trailing dot; ``""`` when
    there is none (``"postmaster"``). ``domain_of("Bob@Example.ORG.") == "example.org"``.
    """
    _, at, domain = address.rpartition("@")
    return domain.lower().rstrip(".") if at else ""


def _check_domain(domain: str, utf8: bool, enhanced: str) -> None:
    if domain.startswith("[") and domain.endswith("]"):
        literal = domain[1:-1]
        try:
            if literal[:5].lower() == "ipv6:":
                ipaddress.IPv6Address(literal[5:])
            else:
                ipaddress.IPv4Address(literal)
        except ValueError:
            raise EnvelopeSyntaxError(501, enhanced, f"Bad address literal {domain}") from None
        return
    if len(domain) > MAX_DOMAIN:
        raise EnvelopeSyntaxError(501, enhanced, f"Domain longer than {MAX_DOMAIN} octets")
    if not (_DOMAIN_UTF8 if utf8 else _DOMAIN).match(domain):
        raise EnvelopeSyntaxError(501, enhanced, f"Bad domain syntax {domain!r}")


def _check_mailbox(address: str, utf8: bool, enhanced: str) -> None:
    if not utf8 and not address.isascii():
        raise EnvelopeSyntaxError(553, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter")
    local, at, domain = address.rpartition("@")
    if not at:
        if address.lower() == "postmaster":
            return
        raise EnvelopeSyntaxError(501, enhanced, f"Address {address!r} has no domain")
    if len(local.encode("utf-8", "surrogateescape")) > MAX_LOCAL_PART:
        raise EnvelopeSyntaxError(501, enhanced, f"Local part longer than {MAX_LOCAL_PART} octets")
    dot, quoted = (_DOT_STRING_UTF8, _QUOTED_UTF8) if utf8 else (_DOT_STRING, _QUOTED)
    if not (dot.match(local) or quoted.match(local)):
        raise EnvelopeSyntaxError(501, enhanced, f"Bad local part syntax {local!r}")
    _check_domain(domain, utf8, enhanced)


def parse_path(text: str, *, utf8: bool, sender: bool) -> Path:
    """Parse ``<path> [params]`` after ``MAIL FROM:`` or ``RCPT TO:``.

    ``utf8`` allows non-ASCII (SMTPUTF8). The null path ``<>`` is only valid for the sender.
    """
    enhanced = "5.1.7" if sender else "5.1.3"
    if "\r" in text or "\n" in text or "\0" in text:
        raise EnvelopeSyntaxError(501, "5.5.2", "CR, LF or NUL in command")
    text = text.lstrip(" ")
    plain = _PLAIN_PATH.match(text)
    if plain is not None and len(plain[1]) <= MAX_LOCAL_PART and plain.end(2) + 1 <= MAX_PATH:
        return Path(text[1 : plain.end(2)], (plain[3] or "").strip(" "), None)
    if not text.startswith("<"):
        raise EnvelopeSyntaxError(
            501, "5.5.4", f"Syntax: {'MAIL FROM' if sender else 'RCPT TO'}:<address> (missing '<')"
        )
    end = _find_closing(text)
    if end < 0:
        raise EnvelopeSyntaxError(501, "5.5.4", "Missing '>' at the end of the address")
    inner, rest = text[1:end], text[end + 1 :]
    if rest and not rest.startswith(" "):
        raise EnvelopeSyntaxError(501, "5.5.4", "Parameters must follow the address after a space")
    route = None
    if inner.startswith("@"):
        route, colon, inner = inner.partition(":")
        if not colon:
            raise EnvelopeSyntaxError(501, enhanced, "Source route without ':'")
        _check_source_route(route, utf8, enhanced)
    if len(inner) + 2 > MAX_PATH:
        raise EnvelopeSyntaxError(501, enhanced, f"Path longer than {MAX_PATH} octets")
    if inner == "":
        if not sender:
            raise EnvelopeSyntaxError(501, "5.1.3", "The null address <> is not a valid recipient")
        return Path("", rest.strip(" "), route)
    _check_mailbox(inner, utf8, enhanced)
    return Path(inner, rest.strip(" "), route)


def _check_source_route(route: str, utf8: bool, enhanced: str) -> None:
    """RFC 5321 §4.1.2 ``A-d-l = At-domain *( "," At-domain )``, ``At-domain = "@" Domain``.

    The route is ignored once parsed (§3.6.1), but each hop must still be a domain: ``<@:a@b>``
    (an empty hop) or ``<@x,,@y:a@b>`` is a syntax error, as in real MTAs."""
    for hop in route.split(","):
        if not hop.startswith("@") or hop == "@":
            raise EnvelopeSyntaxError(
                501, enhanced, f"Bad source route {route!r}: each hop is @domain"
            )
        _check_domain(hop[1:], utf8, enhanced)


def check_auth_param(value: str | None) -> None:
    """Check a ``MAIL FROM`` ``AUTH=`` value (RFC 4954 §5): xtext that decodes to ``<>`` or a
    mailbox. Anything else is :class:`EnvelopeSyntaxError` ``501 5.5.4``."""
    if value is None or not _XTEXT.match(value):
        raise EnvelopeSyntaxError(501, "5.5.4", "AUTH= needs a value: <> or a mailbox, as xtext")
    decoded = _XTEXT_HEX.sub(lambda m: chr(int(m.group(1), 16)), value)
    if decoded == "<>":
        return
    try:
        _check_mailbox(decoded, False, "5.5.4")
    except EnvelopeSyntaxError:
        raise EnvelopeSyntaxError(
            501, "5.5.4", f"AUTH= value {decoded!r} is neither <> nor a mailbox"
        ) from None


def _find_closing(text: str) -> int:
    """Index of the '>' closing the path, skipping quoted strings; -1 if none."""
    end = text.find(">", 1)
    if end < 0 or text.find('"', 1, end) < 0:
        return end  # no quoted string before the first '>' (nearly every path): C speed
    quoted = False
    escaped = False
    for i, ch in enumerate(text):
        if i == 0:
            continue
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ">" and not quoted:
            return i
    return -1


def parse_params(text: str, *, utf8: bool = False) -> list[tuple[str, str | None]]:
    """Split ESMTP parameters into ``(KEYWORD, value-as-sent)``; keywords are upper-cased.

    Repeated keywords and malformed values are :class:`EnvelopeSyntaxError` (``501 5.5.4``).
    """
    result: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    value_re = _PARAM_VALUE_UTF8 if utf8 else _PARAM_VALUE
    for item in text.split():
        key, eq, value = item.partition("=")
        if not _PARAM_KEY.match(key):
            raise EnvelopeSyntaxError(501, "5.5.4", f"Bad parameter keyword {key!r}")
        if eq and not value_re.match(value):
            raise EnvelopeSyntaxError(501, "5.5.4", f"Bad value for parameter {key.upper()}")
        upper = key.upper()
        if upper in seen:
            raise EnvelopeSyntaxError(501, "5.5.4", f"Parameter {upper} given twice")
        seen.add(upper)
        result.append((upper, value if eq else None))
    return result


def check_mail_params(
    params: list[tuple[str, str | None]],
    address: str,
    *,
    max_size: int | None,
    smtputf8: bool,
    dsn: bool,
    auth_offered: bool,
) -> None:
    """Check the parameters of ``MAIL FROM`` (from :func:`parse_params`) against what the
    server offers: SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531), RET/ENVID (RFC 3461),
    AUTH (RFC 4954 §5). An unknown or unoffered keyword is ``555 5.5.4`` (RFC 5321 §4.1.1.11);
    a bad value is ``501 5.5.4``; a non-ASCII address without SMTPUTF8 is ``553 5.6.7``."""
    names = {k for k, _ in params}
    for key, value in params:
        if key == "SIZE":
            if value is None or not value.isdigit():
                raise EnvelopeSyntaxError(501, "5.5.4", "SIZE needs a number of octets")
            if max_size and int(value) > max_size:
                raise EnvelopeSyntaxError(
                    552, "5.3.4", f"Message size exceeds fixed limit of {max_size} octets"
                )
        elif key == "BODY":
            if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                raise EnvelopeSyntaxError(501, "5.5.4", "BODY must be 7BIT or 8BITMIME")
        elif key == "SMTPUTF8":
            if value is not None:
                raise EnvelopeSyntaxError(501, "5.5.4", "SMTPUTF8 takes no value")
            if not smtputf8:
                raise EnvelopeSyntaxError(555, "5.5.4", "SMTPUTF8 is not enabled here")
        elif key in ("RET", "ENVID") and not dsn:
            raise EnvelopeSyntaxError(555, "5.5.4", f"Unsupported MAIL parameter {key} (no DSN)")
        elif key == "RET":
            if value is None or value.upper() not in ("FULL", "HDRS"):
                raise EnvelopeSyntaxError(501, "5.5.4", "RET must be FULL or HDRS")
        elif key == "ENVID":
            if value is None or len(value) > 100:
                raise EnvelopeSyntaxError(501, "5.5.4", "ENVID needs a value of 1 to 100 chars")
        elif key == "AUTH":
            if not auth_offered:
                # RFC 5321 §4.1.1.11 / RFC 4954 §5: the parameter of an extension not offered.
                raise EnvelopeSyntaxError(
                    555, "5.5.4", "Unsupported MAIL parameter AUTH (AUTH is not offered)"
                )
            check_auth_param(value)
        else:
            raise EnvelopeSyntaxError(555, "5.5.4", f"Unsupported MAIL parameter {key}")
    if not address.isascii() and "SMTPUTF8" not in names:
        raise EnvelopeSyntaxError(553, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter")


def check_rcpt_params(params: list[tuple[str, str | None]], *, dsn: bool) -> None:
    """Check the parameters of ``RCPT TO``: NOTIFY and ORCPT (RFC 3461 §4) when DSN is offered;
    anything else is ``555 5.5.4``, a bad value ``501 5.5.4``."""
    for key, value in params:
        if key in ("NOTIFY", "ORCPT") and not dsn:
            raise EnvelopeSyntaxError(555, "5.5.4", f"Unsupported RCPT parameter {key} (no DSN)")
        if key == "NOTIFY":
            items = {item.upper() for item in (value or "").split(",")}
            if not value or not (items == {"NEVER"} or items <= {"SUCCESS", "FAILURE", "DELAY"}):
                raise EnvelopeSyntaxError(
                    501, "5.5.4", "NOTIFY must be NEVER or a list of SUCCESS,FAILURE,DELAY"
                )
        elif key == "ORCPT":
            if value is None or ";" not in value:
                raise EnvelopeSyntaxError(501, "5.5.4", "ORCPT must be addr-type;address")
        else:
            raise EnvelopeSyntaxError(555, "5.5.4", f"Unsupported RCPT parameter {key}")
