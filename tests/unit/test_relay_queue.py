"""Retry schedule, virtual clock and the per-host queue."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pytest_smtp.relay.queue import (
    DeliveryQueue,
    QueuedRecipient,
    QueueItem,
    RetryPolicy,
    VirtualClock,
    seconds,
)


def test_default_policy_is_postfix_like() -> None:
    policy = RetryPolicy()
    assert policy.first_retry == 300
    assert policy.max_backoff == 4000
    assert policy.lifetime == 5 * 86400
    assert [policy.backoff(n) for n in range(1, 6)] == [300, 600, 1200, 2400, 4000]
    assert policy.backoff(100) == 4000
    assert policy.schedule(4) == [300, 900, 2100, 4500]


def test_policy_accepts_timedelta() -> None:
    policy = RetryPolicy(first_retry=timedelta(minutes=1), lifetime=timedelta(hours=2))
    assert policy.first_retry == 60.0
    assert policy.lifetime == 7200.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"first_retry": 0}, "first_retry must be more than 0"),
        ({"first_retry": 600, "max_backoff": 300}, "max_backoff"),
        ({"lifetime": -1}, "must not be negative"),
        ({"first_retry": "5m"}, "number of seconds or a datetime.timedelta"),
    ],
)
def test_policy_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_backoff_needs_positive_attempts() -> None:
    with pytest.raises(ValueError, match="counts from 1"):
        RetryPolicy().backoff(0)


def test_seconds_helper() -> None:
    assert seconds(timedelta(minutes=2)) == 120.0
    assert seconds(5) == 5.0
    with pytest.raises(TypeError):
        seconds(True)


def test_virtual_clock_moves_only_forward() -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    clock = VirtualClock(start)
    assert clock.now() == start
    clock.set(90)
    assert clock.now() == start + timedelta(seconds=90)
    assert clock.time() == 90
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(10)
    with pytest.raises(ValueError, match="timezone-aware"):
        VirtualClock(datetime(2024, 1, 1))


def _item(next_attempt: float, mail_from: str = "a@example.test") -> QueueItem:
    return QueueItem(
        host="relay.test",
        destination="example.test",
        mail_from=mail_from,
        raw=b"Subject: x\r\n\r\nbody\r\n",
        recipients=[QueuedRecipient("b@example.test")],
        arrived=0.0,
        next_attempt=next_attempt,
    )


def test_queue_due_and_next_due() -> None:
    queue = DeliveryQueue("relay.test")
    later = queue.add(_item(600))
    now = queue.add(_item(0))
    assert queue.due(0) == [now]
    assert queue.next_due() == 0
    now.in_flight = True
    assert queue.due(0) == []
    assert queue.next_due() == 600
    assert queue.due(600) == [later]
    queue.remove(now)
    queue.remove(later)
    assert len(queue) == 0 and queue.next_due() is None


def test_recipient_notify_defaults_and_options() -> None:
    plain = QueuedRecipient("b@x.test")
    assert plain.wants("FAILURE") and plain.wants("DELAY") and not plain.wants("SUCCESS")
    assert plain.options() == []
    never = QueuedRecipient("b@x.test", notify=frozenset({"NEVER"}), orcpt="rfc822;b@x.test")
    assert not never.wants("FAILURE")
    assert never.options() == ["NOTIFY=NEVER", "ORCPT=rfc822;b@x.test"]


def test_bounce_items_are_recognised() -> None:
    assert _item(0, mail_from="").is_bounce
    assert not _item(0).is_bounce


def test_take_gives_due_items_in_due_order_up_to_the_limit() -> None:
    queue = DeliveryQueue("relay.test")
    items = [queue.add(_item(t)) for t in (30.0, 10.0, 20.0, 600.0)]
    assert queue.due(30) == [items[1], items[2], items[0]]
    first = queue.take(30, limit=2)
    assert first == [items[1], items[2]]
    assert all(i.in_flight for i in first)
    assert queue.take(30, limit=5) == [items[0]]  # the in-flight ones are not given again
    assert queue.take(30, limit=5) == []
    assert queue.take(600, limit=0) == []
    assert queue.take(600, limit=5) == [items[3]]


def test_release_plans_the_item_again_at_its_new_time() -> None:
    queue = DeliveryQueue("relay.test")
    item = queue.add(_item(0))
    (taken,) = queue.take(0, limit=1)
    taken.next_attempt = 300  # what a deferral does
    queue.release(taken)
    assert not taken.in_flight
    assert queue.take(299, limit=5) == []
    assert queue.take(300, limit=5) == [item]
    queue.remove(item)
    queue.release(item)  # delivered during the attempt: gone for good
    assert queue.take(10**9, limit=5) == [] and len(queue) == 0


def test_take_follows_a_next_attempt_changed_in_place() -> None:
    queue = DeliveryQueue("relay.test")
    moved_later, moved_earlier = queue.add(_item(100)), queue.add(_item(500))
    moved_later.next_attempt = 400
    moved_earlier.next_attempt = 50
    assert queue.take(100, limit=5) == []  # the old entry at 100 is followed to 400
    # Moved earlier: the schedule learns it from due() (the network's idle check).
    assert queue.due(50) == [moved_earlier]
    assert queue.take(50, limit=5) == [moved_earlier]
    assert queue.take(400, limit=5) == [moved_later]


def test_take_in_batches_keeps_due_order_and_drains_the_schedule() -> None:
    queue = DeliveryQueue("relay.test")
    items = [queue.add(_item(float(n % 97))) for n in range(2_000)]
    taken: list[QueueItem] = []
    while batch := queue.take(100, limit=32):
        taken.extend(batch)
    assert taken == sorted(items, key=lambda i: (i.next_attempt, i.id))
    assert queue._schedule == [] and queue._scheduled == {}
