"""ENVELOPE address lists without sockets: one reading of quotes, quoted pairs and comments."""

from __future__ import annotations

import pytest

from pytest_smtp.retrieval.imap_mime import parse_message


def _envelope(to: bytes) -> bytes:
    return parse_message(b"Subject: s\r\nTo: " + to + b"\r\n\r\nbody\r\n").envelope()


@pytest.mark.parametrize(
    ("to", "addresses"),
    [
        pytest.param(
            b'"Smith, J. \\"Jr\\"" <j@example.test>, plain@example.test (Plain, P.)',
            b'(("Smith, J. \\"Jr\\"" NIL "j" "example.test")'
            b'("Plain, P." NIL "plain" "example.test"))',
            id="separators-in-quotes-and-comments",
        ),
        pytest.param(
            b'Team (the (nested, comment) one): a@example.test, "b;c" <b@example.test>;, '
            b"d@example.test",
            b'((NIL NIL "Team (the (nested, comment) one)" NIL)(NIL NIL "a" "example.test")'
            b'("b;c" NIL "b" "example.test")(NIL NIL NIL NIL)(NIL NIL "d" "example.test"))',
            id="group-with-nested-comment",
        ),
        pytest.param(
            b"J (a \\) b) Doe <j@example.test>",
            b'(("J  Doe" NIL "j" "example.test"))',
            id="quoted-pair-in-a-comment",
        ),
        pytest.param(
            b"<@relay.test,@r2.test:route@example.test>",
            b'((NIL "@relay.test,@r2.test" "route" "example.test"))',
            id="source-route",
        ),
    ],
)
def test_address_lists(to: bytes, addresses: bytes) -> None:
    assert addresses in _envelope(to)
