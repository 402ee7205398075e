"""One options schema: the ServerOptions fields, and every place generated from them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from pytest_smtp import OptionError, ServerOptions, SMTPServer
from pytest_smtp.cli import _parser
from pytest_smtp.plugin import SETTINGS
from pytest_smtp.smtp.options import marker_help, options_table, positive_seconds

DOCS = Path(__file__).parents[2] / "docs" / "reference" / "options.md"


def test_every_field_is_in_the_schema_with_its_default() -> None:
    schema = ServerOptions.schema()
    assert [spec.name for spec in schema] == [f.name for f in dataclasses.fields(ServerOptions)]
    defaults = ServerOptions()
    for spec in schema:
        assert spec.default == getattr(defaults, spec.name)
        assert spec.help and spec.valid
        # The parser accepts its own default (a base ServerOptions is re-validated on build).
        assert spec.parse(spec.name, spec.default) == spec.default


def test_the_docs_page_holds_the_generated_table() -> None:
    page = DOCS.read_text(encoding="utf-8")
    assert options_table() in page
    documented = re.findall(r"^\| `([a-z0-9_]+)` \|", page, flags=re.MULTILINE)
    assert documented == list(ServerOptions.names())


def test_the_docs_page_lists_every_run_setting() -> None:
    page = DOCS.read_text(encoding="utf-8")
    for setting in SETTINGS:
        assert f"| `{setting.flag}` | `{setting.ini}` |" in page


def test_run_settings_are_the_schema_settings_plus_the_plugins_own() -> None:
    from_schema = [s.name for s in SETTINGS if s.server_option]
    assert from_schema == [spec.name for spec in ServerOptions.schema() if spec.setting]
    own = [s.name for s in SETTINGS if not s.server_option]
    assert own == ["wait_timeout", "transcript", "save_dir", "seed", "html", "html_all", "remote"]


def test_cli_has_one_argument_per_option() -> None:
    serve = _parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    dests = [a.dest for a in serve._actions if a.dest not in ("help", "save_dir", "http", "token")]
    assert dests == [spec.name for spec in ServerOptions.schema() if not spec.python_only]


def test_marker_help_and_docstring_name_every_option() -> None:
    doc = SMTPServer.__doc__ or ""
    for name in ServerOptions.names():
        assert name in marker_help()
        assert f"``{name}`` = " in doc


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"port": "http"}, "port must be a port number from 0 to 65535"),
        ({"port": 70000}, "port must be a port number from 0 to 65535"),
        ({"port": True}, "port must be a port number"),
        ({"host": "localhost"}, "host must be an IP address"),
        ({"timeout": "soon"}, "timeout must be a number of seconds"),
        ({"timeout": float("inf")}, "timeout must be more than 0 seconds"),
        ({"timeout": True}, "timeout must be a number of seconds"),
        ({"require_tls": "maybe"}, "require_tls must be true or false"),
        ({"auth_mechanisms": "GSSAPI"}, "unknown mechanism 'GSSAPI'"),
    ],
)
def test_every_bad_value_is_one_option_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        ServerOptions.build(**options)


def test_text_forms_of_port_and_host() -> None:
    opts = ServerOptions.build(port="2525", host="::1")
    assert (opts.port, opts.host) == (2525, "::1")


@pytest.mark.parametrize(("value", "expected"), [(1, 1.0), ("2.5", 2.5), (0.001, 0.001)])
def test_positive_seconds_accepts(value: object, expected: float) -> None:
    assert positive_seconds("x", value) == expected


@pytest.mark.parametrize("value", [0, -1, "0", None, False, float("nan"), float("inf")])
def test_positive_seconds_refuses(value: object) -> None:
    with pytest.raises(OptionError, match=r"^x must be"):
        positive_seconds("x", value)
