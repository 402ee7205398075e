"""Server options: one schema, validated once, clear errors."""

from __future__ import annotations

import pytest

from pytest_smtp.smtp.options import DEFAULT_AUTH_MECHANISMS, OptionError, ServerOptions


def test_defaults() -> None:
    opts = ServerOptions.build()
    assert opts.host == "127.0.0.1" and opts.port == 0
    assert opts.tls is None and opts.auth is None
    assert opts.auth_mechanisms == DEFAULT_AUTH_MECHANISMS
    assert opts.auth_require_tls is True
    assert opts.max_recipients == 1000


def test_text_values_as_from_cli_or_ini() -> None:
    opts = ServerOptions.build(
        max_size="2K",
        tls="STARTTLS",
        auth="alice:pw,bob:pw2",
        auth_mechanisms="plain, login",
        smtputf8="no",
        timeout="2.5",
        strict_line_endings="on",
    )
    assert opts.max_size == 2048
    assert opts.tls == "starttls"
    assert opts.auth_table == {"alice": "pw", "bob": "pw2"}
    assert opts.auth_mechanisms == ("PLAIN", "LOGIN")
    assert (opts.smtputf8, opts.timeout, opts.strict_line_endings) == (False, 2.5, True)


def test_options_are_hashable_for_caching() -> None:
    a = ServerOptions.build(auth={"u": "p"}, auth_require_tls=False)
    b = ServerOptions.build(auth={"u": "p"}, auth_require_tls=False)
    assert a == b and hash(a) == hash(b)
    assert ServerOptions.build(a, hostname="x.test").auth_table == {"u": "p"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"colour": "red"}, "unknown SMTP server option.*valid options: host, port, hostname"),
        ({"tls": "sometimes"}, "tls must be None, 'starttls' or 'implicit'"),
        ({"max_size": "lots"}, "max_size must be a whole number"),
        ({"max_recipients": 0}, "max_recipients must be 1 or more"),
        ({"timeout": 0}, "timeout must be more than 0"),
        ({"smtputf8": "perhaps"}, "smtputf8 must be true or false"),
        ({"auth_mechanisms": ["NTLM"]}, "unknown mechanism 'NTLM'; valid: PLAIN, LOGIN"),
        ({"auth": "nocolon"}, "'user:password'"),
        ({"hostname": "bad name"}, "hostname must be a plain ASCII host name"),
        ({"require_tls": True}, "require_tls=True needs tls="),
        ({"require_auth": True}, "require_auth=True needs auth="),
        ({"auth": "any"}, "auth_require_tls=False"),
    ],
)
def test_bad_values_name_what_is_right(options: dict[str, object], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        ServerOptions.build(**options)
