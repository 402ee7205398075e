"""Pure routing rules: MX ordering, equal-preference shuffling, self removal, refused syntax."""

from __future__ import annotations

import random

import pytest

from pytest_smtp.relay.routing import (
    RoutingError,
    check_recipient_syntax,
    domain_of,
    drop_self,
    is_loopback,
    order_exchanges,
)


def test_order_sorts_by_preference() -> None:
    records = [(20, "b.test"), (10, "a.test"), (30, "c.test")]
    assert order_exchanges(records, random.Random(0)) == [
        (10, "a.test"),
        (20, "b.test"),
        (30, "c.test"),
    ]


def test_equal_preferences_are_shuffled_reproducibly_by_seed() -> None:
    records = [(10, f"mx{i}.test") for i in range(6)] + [(5, "best.test")]
    first = order_exchanges(records, random.Random(1))
    assert first == order_exchanges(list(reversed(records)), random.Random(1))
    assert first[0] == (5, "best.test")
    orders = {tuple(order_exchanges(records, random.Random(seed))) for seed in range(20)}
    assert len(orders) > 1, "equal preferences were never reordered"
    for order in orders:
        assert sorted(order) == sorted(records)


def test_drop_self_removes_own_preference_and_worse() -> None:
    ordered = [(10, "a.test"), (20, "me.test"), (20, "peer.test"), (30, "c.test")]
    remaining, found = drop_self(ordered, lambda name: name == "me.test")
    assert found
    assert remaining == [(10, "a.test")]


def test_drop_self_when_absent_changes_nothing() -> None:
    ordered = [(10, "a.test"), (20, "b.test")]
    assert drop_self(ordered, lambda name: False) == (ordered, False)


def test_drop_self_as_best_mx_leaves_nothing() -> None:
    remaining, found = drop_self([(10, "me.test"), (20, "b.test")], lambda n: n == "me.test")
    assert (remaining, found) == ([], True)


@pytest.mark.parametrize(
    ("address", "route", "refused"),
    [
        ("bob@example.test", None, False),
        ("bob@example.test", "@relay.test", True),
        ("bob@example.test", "@a.test,@b.test", True),
        ("bob%other.test@example.test", None, True),
        ("host!bob@example.test", None, True),
        ("bob+tag@example.test", None, False),
    ],
)
def test_recipient_syntax(address: str, route: str | None, refused: bool) -> None:
    assert (check_recipient_syntax(address, route) is not None) is refused


def test_domain_of_and_loopback() -> None:
    assert domain_of("Bob@Example.TEST") == "example.test"
    assert domain_of("postmaster") == ""
    assert is_loopback("127.0.0.9") and is_loopback("::1")
    assert not is_loopback("192.0.2.1") and not is_loopback("not-an-ip")


def test_routing_error_kind() -> None:
    assert RoutingError("5.1.2", "x").permanent
    assert not RoutingError("4.4.3", "x").permanent
    assert str(RoutingError("5.1.10", "null MX")) == "5.1.10 null MX"
