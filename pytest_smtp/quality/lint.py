"""Lint a captured message as a strict receiver would: RFC 5321, 5322, 2045-2049, 6152, 6531/6532.

:func:`lint` reads :attr:`Message.raw <pytest_smtp.mail.Message.raw>` and the envelope and
session facts (``mail_options``, ``session.helo``) and returns a list of :class:`Finding`.
It works on the bytes with linear scans of its own (never the :mod:`email` header parser,
whose address parsing is super-linear on crafted input), so it is safe on any message the
server accepted.

Codes (see :data:`CODES` for severity and RFC section of each):

=========================  =================================================================
``bare-cr``                a CR not followed by LF
``bare-lf``                an LF not preceded by CR
``line-too-long``          a line over 998 octets (CRLF not counted)
``missing-date``           no ``Date`` field (``duplicate-date``: more than one)
``missing-from``           no ``From`` field (``duplicate-from``: more than one)
``missing-message-id``     no ``Message-ID`` (a warning: SHOULD) (``duplicate-message-id``)
``from-without-sender``    ``From`` with several mailboxes and no ``Sender``
``8bit-without-8bitmime``  8-bit body data but MAIL FROM had no ``BODY=8BITMIME``
``non-ascii-header``       8-bit header bytes without ``SMTPUTF8`` (use RFC 2047 words)
``mime-boundary-missing``  a multipart without ``boundary``, or whose boundary never appears
``mime-boundary-unclosed`` a multipart without its close delimiter ``--boundary--``
``mime-boundary-reused``   a nested multipart whose boundary an enclosing one already uses
``cte-unknown``            a ``Content-Transfer-Encoding`` that is not one of the five
``cte-mismatch``           data that does not fit its transfer encoding
``text-8bit-no-charset``   a text part with 8-bit content and no ``charset``
``helo-invalid``           HELO/EHLO argument neither a domain nor an address literal
``header-malformed``       a header line that is neither a field nor a continuation
``header-fold-orphan``     a continuation line before the first field
``header-fold-blank``      a folded line made only of white space
=========================  =================================================================

This module never imports pytest.
"""

from __future__ import annotations

import binascii
import ipaddress
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pytest_smtp.smtp.address import EnvelopeSyntaxError
from pytest_smtp.smtp.address import _check_domain as check_domain

if TYPE_CHECKING:
    from ._inputs import CheckedMessage

__all__ = ["CODES", "Finding", "Severity", "lint"]

#: ``"error"``: a receiver may reject or mangle the message; ``"warning"``: a SHOULD.
Severity = Literal["error", "warning"]

#: Every finding code: ``code -> (severity, RFC section)``.
CODES: dict[str, tuple[Severity, str]] = {
    "bare-cr": ("error", "RFC 5322 §2.3"),
    "bare-lf": ("error", "RFC 5321 §2.3.8"),
    "line-too-long": ("error", "RFC 5322 §2.1.1"),
    "missing-date": ("error", "RFC 5322 §3.6"),
    "duplicate-date": ("error", "RFC 5322 §3.6"),
    "missing-from": ("error", "RFC 5322 §3.6"),
    "duplicate-from": ("error", "RFC 5322 §3.6"),
    "missing-message-id": ("warning", "RFC 5322 §3.6.4"),
    "duplicate-message-id": ("error", "RFC 5322 §3.6"),
    "from-without-sender": ("error", "RFC 5322 §3.6.2"),
    "8bit-without-8bitmime": ("error", "RFC 6152 §3"),
    "non-ascii-header": ("error", "RFC 6532 §3.2"),
    "mime-boundary-missing": ("error", "RFC 2046 §5.1.1"),
    "mime-boundary-unclosed": ("error", "RFC 2046 §5.1.1"),
    "mime-boundary-reused": ("error", "RFC 2046 §5.1.2"),
    "cte-unknown": ("error", "RFC 2045 §6.1"),
    "cte-mismatch": ("error", "RFC 2045 §6"),
    "text-8bit-no-charset": ("error", "RFC 2046 §4.1.2"),
    "helo-invalid": ("error", "RFC 5321 §4.1.1.1"),
    "header-malformed": ("error", "RFC 5322 §2.2"),
    "header-fold-orphan": ("error", "RFC 5322 §2.2.3"),
    "header-fold-blank": ("error", "RFC 5322 §3.2.2"),
}

_MAX_LINE = 998
_MAX_QP_LINE = 76
_MAX_DEPTH = 50
_BARE_CR = re.compile(rb"\r(?!\n)")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_LINE_END = re.compile(rb"\r?\n")  # a bare CR is reported, not taken as a line end
_EIGHT_BIT = re.compile(rb"[\x80-\xff]")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=\s]")
_QP_BAD_ESCAPE = re.compile(rb"=(?![0-9A-Fa-f]{2}|[ \t]*(?:\r?\n|$))")
_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")
_GENERAL_LITERAL = re.compile(r"[A-Za-z0-9-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+")
_KNOWN_CTE = ("7bit", "8bit", "binary", "quoted-printable", "base64")


@dataclass(frozen=True)
class Finding:
    """One lint finding: what is wrong, how bad, which RFC says so, and where.

    ``where`` names the place: ``"line 3"``, ``"header 'From'"``, ``"part 1.2 (text/plain)"``,
    ``"HELO"``, ``"body"``.
    """

    code: str
    severity: Severity
    rfc: str
    where: str
    text: str

    def __str__(self) -> str:
        return f"{self.severity} {self.code} ({self.rfc}) at {self.where}: {self.text}"


def _finding(code: str, where: str, text: str) -> Finding:
    severity, rfc = CODES[code]
    return Finding(code, severity, rfc, where, text)


@dataclass
class _Field:
    name: str  # lower-cased
    value: bytes  # unfolded, CRLF removed
    line: int  # 1-based line number of the field's first line


@dataclass
class _Entity:
    """A header section and the body after it, both as line lists (line ends removed)."""

    fields: list[_Field]
    body: list[bytes]
    body_line: int  # line number of the first body line
    problems: list[Finding] = field(default_factory=list)

    def get(self, name: str) -> list[_Field]:
        return [f for f in self.fields if f.name == name]

    def first(self, name: str) -> bytes | None:
        for f in self.fields:
            if f.name == name:
                return f.value
        return None


def _split_lines(raw: bytes) -> list[bytes]:
    """Lines without their ending; CRLF and bare LF end a line (a bare CR stays in it)."""
    lines = _LINE_END.split(raw)
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _parse_entity(lines: list[bytes], first_line: int, where: str) -> _Entity:
    fields: list[_Field] = []
    chunks: list[list[bytes]] = []  # each field's lines, joined once at the end (linear)
    seen: dict[str, tuple[int, int, str]] = {}  # code -> (first line, count, text)

    def problem(code: str, number: int, text: str) -> None:
        first, count, shown = seen.get(code, (number, 0, text))
        seen[code] = (first, count + 1, shown)

    index = 0
    while index < len(lines):
        line = lines[index]
        number = first_line + index
        index += 1
        if line == b"":
            break
        if line[:1] in (b" ", b"\t"):
            if not fields:
                problem(
                    "header-fold-orphan",
                    number,
                    f"{where} starts with a continuation line {_show(line)}; a folded line "
                    "must follow a field's first line",
                )
                continue
            if not line.strip(b" \t"):
                problem(
                    "header-fold-blank",
                    number,
                    f"header {fields[-1].name!r} has a folded line made only of white space; "
                    "fold only before non-blank text",
                )
            chunks[-1].append(line)
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _FIELD_NAME.fullmatch(name.rstrip(b" \t")):
            problem(
                "header-malformed",
                number,
                f"{_show(line)} in the header section of {where} is neither 'Name: value' "
                "nor a continuation (missing blank line before the body?)",
            )
            continue
        fields.append(_Field(name.rstrip(b" \t").decode("ascii").lower(), b"", number))
        chunks.append([value])
    for f, parts in zip(fields, chunks, strict=True):
        f.value = b"".join(parts)
    problems = [
        _finding(code, f"line {first}", f"{count} line(s): {text}" if count > 1 else text)
        for code, (first, count, text) in seen.items()
    ]
    return _Entity(fields, lines[index:], first_line + index, problems)


def _show(data: bytes, limit: int = 40) -> str:
    text = repr(data[:limit])[1:]
    return text + ("…" if len(data) > limit else "")


def _split_params(value: bytes) -> tuple[str, dict[str, str]]:
    """``type/subtype`` (lower-cased) and the parameters of a Content-Type value."""
    text = value.decode("ascii", "replace")
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    depth = 0
    for char in text:
        if escaped:
            escaped = False
        elif quoted:
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "(":
            depth += 1
            continue
        elif char == ")" and depth:
            depth -= 1
            continue
        elif depth:
            continue
        elif char == ";":
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    ctype = parts[0].strip().lower()
    params: dict[str, str] = {}
    for part in parts[1:]:
        key, eq, val = part.partition("=")
        if not eq:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = re.sub(r"\\(.)", r"\1", val[1:-1])
        params.setdefault(key.strip().lower(), val)
    return ctype, params


def _count_mailboxes(value: bytes) -> int:
    """Mailboxes in an address list: top-level commas outside quotes, comments, <...>."""
    count = 0
    seen = False
    quoted = escaped = False
    depth = angle = 0
    for byte in value:
        char = chr(byte)
        if escaped:
            escaped = False
        elif char == "\\" and (quoted or depth):
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
        elif char == '"':
            quoted = seen = True
        elif char == "(":
            depth = 1
        elif char == "<":
            angle, seen = angle + 1, True
        elif char == ">":
            angle = max(0, angle - 1)
        elif char == "," and not angle:
            count += seen
            seen = False
        elif not char.isspace():
            seen = True
    return count + seen


def _helo_problem(helo: str) -> str | None:
    """Why ``helo`` is neither a Domain nor an address-literal (RFC 5321 §4.1.2), or None."""
    try:
        ipaddress.ip_address(helo)
    except ValueError:
        pass
    else:
        return f"{helo!r} is an IP address without brackets; send it as [{helo}]"
    literal = helo[1:-1] if helo.startswith("[") and helo.endswith("]") else ""
    if _GENERAL_LITERAL.fullmatch(literal) and literal[:5].lower() != "ipv6:":
        return None  # General-address-literal: [tag:content]
    try:
        check_domain(helo, utf8=False, enhanced="5.5.2")
    except EnvelopeSyntaxError as exc:
        return (
            f"{helo!r} is not a domain (letters, digits and inner hyphens, in dot-separated "
            f"labels) nor an address literal such as [192.0.2.1] ({exc.text})"
        )
    return None


class _Linter:
    def __init__(self, message: CheckedMessage) -> None:
        self.message = message
        options = [option.upper() for option in message.mail_options]
        self.smtputf8 = "SMTPUTF8" in options
        self.body8 = any(o in ("BODY=8BITMIME", "BODY=BINARYMIME") for o in options)
        self.findings: list[Finding] = []

    def add(self, code: str, where: str, text: str) -> None:
        self.findings.append(_finding(code, where, text))

    def run(self) -> list[Finding]:
        raw = self.message.raw
        self.line_endings(raw)
        lines = _split_lines(raw)
        self.line_lengths(lines)
        self.helo()
        top = _parse_entity(lines, 1, "the message")
        self.origin_fields(top)
        self.non_ascii_headers(top)
        self.findings.extend(top.problems)
        body8 = [p for p in self.entities(top, "body", ()) if p]
        if body8 and not self.body8:
            line = body8[0]
            self.add(
                "8bit-without-8bitmime",
                f"line {line}",
                f"the body has 8-bit bytes (first at line {line}) but MAIL FROM had no "
                "BODY=8BITMIME; send BODY=8BITMIME or encode the part as quoted-printable or "
                "base64",
            )
        return self.findings

    def line_endings(self, raw: bytes) -> None:
        for code, pattern, what in (
            ("bare-cr", _BARE_CR, "CR without LF"),
            ("bare-lf", _BARE_LF, "LF without CR"),
        ):
            matches = pattern.finditer(raw)
            first = next(matches, None)
            if first is None:
                continue
            count = 1 + sum(1 for _ in matches)
            line = sum(1 for _ in _LINE_END.finditer(raw, 0, first.start())) + 1
            self.add(
                code,
                f"line {line}",
                f"{count} {what} (first at line {line}); every line must end with CRLF",
            )

    def line_lengths(self, lines: list[bytes]) -> None:
        long = [i for i, line in enumerate(lines, 1) if len(line) > _MAX_LINE]
        if long:
            longest = max(len(lines[i - 1]) for i in long)
            self.add(
                "line-too-long",
                f"line {long[0]}",
                f"{len(long)} line(s) over {_MAX_LINE} octets (first at line {long[0]}, longest "
                f"{longest}); fold headers or use quoted-printable/base64",
            )

    def helo(self) -> None:
        helo = self.message.session.helo
        if helo is None:
            return
        problem = _helo_problem(helo)
        if problem:
            self.add("helo-invalid", "HELO", problem)

    def origin_fields(self, top: _Entity) -> None:
        for name, label, code in (
            ("date", "Date", "date"),
            ("from", "From", "from"),
            ("message-id", "Message-ID", "message-id"),
        ):
            found = top.get(name)
            if not found:
                self.add(f"missing-{code}", "header section", f"there is no {label} field")
            elif len(found) > 1:
                lines = ", ".join(str(f.line) for f in found)
                self.add(
                    f"duplicate-{code}",
                    f"header {label!r}",
                    f"{label} appears {len(found)} times (lines {lines}); exactly one allowed",
                )
        author = top.first("from")
        if author is not None and not top.get("sender"):
            count = _count_mailboxes(author)
            if count > 1:
                self.add(
                    "from-without-sender",
                    "header 'From'",
                    f"From names {count} mailboxes; add a Sender field naming the one who sent",
                )

    def non_ascii_headers(self, entity: _Entity) -> None:
        if self.smtputf8:
            return
        found = [f for f in entity.fields if _EIGHT_BIT.search(f.value)]
        if found:
            first = found[0]
            names = ", ".join(sorted({repr(f.name) for f in found}))
            self.add(
                "non-ascii-header",
                f"header {first.name!r} (line {first.line})",
                f"{len(found)} field(s) ({names}) hold raw 8-bit bytes but MAIL FROM had no "
                "SMTPUTF8; encode them as RFC 2047 encoded words (=?utf-8?b?...?=) or send "
                "SMTPUTF8",
            )

    def entities(self, entity: _Entity, where: str, boundaries: tuple[str, ...]) -> Iterator[int]:
        """Check ``entity`` and its parts; yields the line number of each 8-bit body line."""
        ctype, params = _split_params(entity.first("content-type") or b"text/plain")
        cte_raw = entity.first("content-transfer-encoding")
        cte = cte_raw.decode("ascii", "replace").strip().lower() if cte_raw is not None else "7bit"
        label = f"{where} ({ctype})"
        if cte not in _KNOWN_CTE:
            self.add(
                "cte-unknown",
                label,
                f"Content-Transfer-Encoding {cte!r} is not one of {', '.join(_KNOWN_CTE)}",
            )
        for offset, line in enumerate(entity.body):
            if _EIGHT_BIT.search(line):
                yield entity.body_line + offset
                break
        if ctype.startswith("multipart/") and len(boundaries) < _MAX_DEPTH:
            if cte not in ("7bit", "8bit", "binary"):
                self.add(
                    "cte-mismatch",
                    label,
                    f"a multipart may only be 7bit, 8bit or binary, not {cte!r}",
                )
            yield from self.multipart(entity, where, label, params, boundaries)
        elif cte in _KNOWN_CTE:
            self.leaf(entity, label, ctype, params, cte)

    def multipart(
        self,
        entity: _Entity,
        where: str,
        label: str,
        params: dict[str, str],
        boundaries: tuple[str, ...],
    ) -> Iterator[int]:
        boundary = params.get("boundary")
        if not boundary:
            self.add("mime-boundary-missing", label, "a multipart needs a boundary parameter")
            return
        clash = [b for b in boundaries if boundary.startswith(b) or b.startswith(boundary)]
        if clash:
            self.add(
                "mime-boundary-reused",
                label,
                f"boundary {boundary!r} collides with the enclosing boundary {clash[0]!r}; "
                "nested multiparts need boundaries that are not prefixes of each other",
            )
            return
        delimiter = b"--" + boundary.encode("ascii", "replace")
        starts: list[int] = []
        closed = False
        for index, line in enumerate(entity.body):
            if line.startswith(delimiter):
                rest = line[len(delimiter) :]
                if rest.startswith(b"--"):
                    closed = True
                    break
                if not rest.strip(b" \t"):
                    starts.append(index)
        if not starts:
            self.add(
                "mime-boundary-missing",
                label,
                f"the boundary {boundary!r} never appears as a delimiter line in the body",
            )
            return
        if not closed:
            self.add(
                "mime-boundary-unclosed",
                label,
                f"no close delimiter '--{boundary}--' ends the multipart",
            )
            end = len(entity.body)
        else:
            end = index
        nested = (*boundaries, boundary)
        for number, start in enumerate(starts, 1):
            stop = starts[number] if number < len(starts) else end
            part_where = f"part {number}" if where == "body" else f"{where}.{number}"
            part = _parse_entity(
                entity.body[start + 1 : stop], entity.body_line + start + 1, part_where
            )
            self.findings.extend(part.problems)
            self.non_ascii_headers(part)
            yield from self.entities(part, part_where, nested)

    def leaf(
        self, entity: _Entity, label: str, ctype: str, params: dict[str, str], cte: str
    ) -> None:
        data = b"\r\n".join(entity.body)
        decoded = data
        problem = None
        if cte == "7bit" and _EIGHT_BIT.search(data):
            problem = "declared 7bit (the default) but holds 8-bit bytes; declare 8bit"
        elif cte == "base64":
            bad = _NOT_BASE64.search(data)
            letters = len(re.sub(rb"\s", b"", data))
            if bad or letters % 4:
                problem = "declared base64 but is not valid base64"
            else:
                try:
                    decoded = binascii.a2b_base64(data)
                except binascii.Error:
                    problem = "declared base64 but is not valid base64"
        elif cte == "quoted-printable":
            if _EIGHT_BIT.search(data):
                problem = "declared quoted-printable but holds raw 8-bit bytes"
            elif _QP_BAD_ESCAPE.search(data):
                problem = "declared quoted-printable but has an '=' not followed by two hex digits"
            elif any(len(line) > _MAX_QP_LINE for line in entity.body):
                problem = f"declared quoted-printable but has lines over {_MAX_QP_LINE} characters"
            else:
                decoded = quopri.decodestring(data)
        if problem:
            self.add("cte-mismatch", label, problem)
        if ctype.startswith("text/") and "charset" not in params and _EIGHT_BIT.search(decoded):
            self.add(
                "text-8bit-no-charset",
                label,
                "a text part with 8-bit content needs a charset parameter (the default is "
                "us-ascii); add charset=utf-8",
            )


def lint(message: CheckedMessage) -> list[Finding]:
    """Check ``message`` (a captured :class:`~pytest_smtp.mail.Message`) and its session.

    Returns the findings in a stable order (line endings, line lengths, HELO, origin fields,
    headers, MIME structure, 8BITMIME); an empty list means clean. Each kind of defect is
    reported once per place (the message, or one MIME part), with a count and the first
    line where it occurs.
    """
    return _Linter(message).run()
