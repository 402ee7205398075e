"""The relay's modules: the old ``pytest_smtp.relay.chain`` name still works, with a warning."""

from __future__ import annotations

import importlib

import pytest

import pytest_smtp
import pytest_smtp.relay


@pytest.mark.parametrize(
    "name", ["Event", "Host", "Journey", "MailNetwork", "distinct_loopback_available"]
)
def test_the_old_chain_module_gives_the_same_objects_with_a_warning(name: str) -> None:
    chain = importlib.import_module("pytest_smtp.relay.chain")
    with pytest.warns(DeprecationWarning, match=rf"import {name} from pytest_smtp\.relay"):
        obj = getattr(chain, name)
    assert obj is getattr(pytest_smtp.relay, name) is getattr(pytest_smtp, name)


def test_the_old_chain_module_names_what_it_lacks() -> None:
    chain = importlib.import_module("pytest_smtp.relay.chain")
    with pytest.raises(AttributeError, match="has no attribute 'Nothing'"):
        _ = chain.Nothing
