"""MailStore, Maildrop, Folder, StoredMessage: the receiving end, without sockets."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import pytest

from pytest_smtp.store import (
    SYSTEM_FLAGS,
    FolderNotFound,
    MailStore,
    StoreEvent,
    normalize_address,
    normalize_flag,
)

RAW = b"From: a@example.org\r\nTo: bob@example.org\r\nSubject: Hello\r\n\r\nBody line\r\n"


@pytest.fixture
def store() -> MailStore:
    return MailStore()


# -- addresses ----------------------------------------------------------------------------------
def test_address_domain_is_case_insensitive_local_part_kept() -> None:
    assert normalize_address(" <Bob@Example.ORG> ") == "Bob@example.org"
    assert normalize_address("alice") == "alice"


@pytest.mark.parametrize("bad", ["", "  ", "<>", "bob\r\n@x", "a\x00b"])
def test_bad_address_is_rejected_with_an_example(bad: str) -> None:
    with pytest.raises(ValueError, match=r"bob@example\.org"):
        normalize_address(bad)


def test_maildrop_is_shared_across_address_spellings(store: MailStore) -> None:
    store.deliver("bob@EXAMPLE.org", RAW)
    assert "bob@example.org" in store
    assert "Bob@example.org" not in store  # the local part is case-sensitive
    assert store.addresses() == ["bob@example.org"]
    assert store.maildrop("bob@Example.Org").address == "bob@example.org"
    assert len(store.maildrop("bob@example.org").inbox) == 1
    assert store.get("nobody@example.org") is None
    assert "nobody@example.org" not in store  # get() and `in` create nothing


# -- deliver --------------------------------------------------------------------------------------
def test_deliver_bytes_normalises_line_breaks_to_crlf(store: MailStore) -> None:
    message = store.deliver("bob@example.org", b"Subject: x\n\nline1\rline2\r\nline3\n")
    assert message.raw == b"Subject: x\r\n\r\nline1\r\nline2\r\nline3\r\n"
    assert message.size == len(message.raw)


def test_deliver_str_and_email_message(store: MailStore) -> None:
    text = store.deliver("bob@example.org", "Subject: caf\u00e9\n\nh\u00e9llo\n")
    assert text.raw == "Subject: caf\u00e9\r\n\r\nh\u00e9llo\r\n".encode()
    msg = EmailMessage()
    msg["Subject"] = "Built"
    msg["From"] = "a@example.org"
    msg.set_content("line one\nline two\n")
    built = store.deliver("bob@example.org", msg)
    assert b"\r\nline one\r\nline two\r\n" in built.raw
    assert b"\n" not in built.raw.replace(b"\r\n", b"")
    assert built.subject == "Built"


def test_deliver_rejects_other_types(store: MailStore) -> None:
    with pytest.raises(TypeError, match=r"bytes, str or an email\.message\.EmailMessage"):
        store.deliver("bob@example.org", 42)  # type: ignore[arg-type]


def test_uids_increase_and_internal_date_defaults_to_now(store: MailStore) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    first = store.deliver("bob@example.org", RAW)
    second = store.deliver("bob@example.org", RAW)
    assert (first.uid, second.uid) == (1, 2)
    assert store.maildrop("bob@example.org").inbox.uidnext == 3
    assert first.internal_date.tzinfo is not None
    assert first.internal_date >= before


def test_internal_date_must_be_aware(store: MailStore) -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert store.deliver("bob@example.org", RAW, internal_date=when).internal_date == when
    with pytest.raises(ValueError, match="timezone-aware"):
        store.deliver("bob@example.org", RAW, internal_date=datetime(2024, 5, 1))


def test_deliver_into_a_new_folder_with_flags(store: MailStore) -> None:
    message = store.deliver("bob@example.org", RAW, folder="Archive", flags=["\\seen", "Kw"])
    drop = store.maildrop("bob@example.org")
    assert list(drop.folders) == ["INBOX", "Archive"]
    assert drop.folder("Archive").messages == [message]
    assert message.flags == {"\\Seen", "Kw"}
    assert message.seen


def test_message_parses_lazily_and_caches(store: MailStore) -> None:
    message = store.deliver("bob@example.org", RAW)
    assert message.subject == "Hello"
    assert message.email is message.email
    assert message.email.get_content().strip() == "Body line"
    assert "subject='Hello'" in repr(message)


NESTED = b"To: a@b.test " + b"(" * 3000 + b")" * 3000 + b"\r\nSubject: deep\r\n\r\nx\r\n"


def test_crafted_headers_use_the_capped_parser_no_recursion_error(store: MailStore) -> None:
    message = store.deliver("bob@example.org", NESTED)
    to = message.email["To"]  # RecursionError here before the store used the capped parser
    assert str(to).startswith("a@b.test (((")
    assert not hasattr(to, "addresses")  # kept as text, not parsed
    assert message.subject == "deep"
    assert message.email.get_content() == "x\r\n"
    assert message.parse_defects == [
        "header 'To' of 6009 characters truncated to 4096 (limit 4096)",
        "header 'To' has comments nested 3000 deep (limit 32); kept as unstructured text",
    ]


def test_parse_defects_are_empty_for_ordinary_mail(store: MailStore) -> None:
    message = store.deliver("bob@example.org", RAW)
    assert message.parse_defects == []
    assert message.email["Subject"] == "Hello"
    assert message.parse_defects == []


# -- flags ----------------------------------------------------------------------------------------
def test_flag_normalisation() -> None:
    assert [normalize_flag(f.upper()) for f in SYSTEM_FLAGS] == list(SYSTEM_FLAGS)
    assert normalize_flag("$Label1") == "$Label1"
    with pytest.raises(ValueError, match="Recent"):
        normalize_flag("\\Recent")
    with pytest.raises(ValueError, match="unknown system flag"):
        normalize_flag("\\Bogus")
    for bad in ("", "two words", "par(en", 'quo"te', "br]"):
        with pytest.raises(ValueError, match="keyword"):
            normalize_flag(bad)


def test_flags_as_a_plain_string_is_a_clear_error(store: MailStore) -> None:
    with pytest.raises(TypeError, match="iterable of flags"):
        store.deliver("bob@example.org", RAW, flags="\\Seen")


def test_set_flags_modes_and_copy_on_write(store: MailStore) -> None:
    message = store.deliver("bob@example.org", RAW, flags=["\\Flagged"])
    folder = store.maildrop("bob@example.org").inbox
    held = message.flags
    assert folder.set_flags(message.uid, ["\\Seen"], "add") == {"\\Flagged", "\\Seen"}
    assert held == {"\\Flagged"}  # a reader's set never changes under it
    assert folder.set_flags(message.uid, ["\\flagged"], "remove") == {"\\Seen"}
    assert folder.set_flags(message.uid, ["Done"], "set") == {"Done"}
    assert message.flags == {"Done"}
    with pytest.raises(ValueError, match="'set', 'add' or 'remove'"):
        folder.set_flags(message.uid, [], "toggle")  # type: ignore[arg-type]


def test_set_flags_on_a_missing_uid_names_the_present_ones(store: MailStore) -> None:
    store.deliver("bob@example.org", RAW)
    folder = store.maildrop("bob@example.org").inbox
    with pytest.raises(KeyError, match=r"no message with UID 9 .*UIDs present: 1"):
        folder.set_flags(9, ["\\Seen"])


# -- expunge and remove ---------------------------------------------------------------------------
def test_expunge_removes_only_deleted(store: MailStore) -> None:
    for _ in range(4):
        store.deliver("bob@example.org", RAW)
    folder = store.maildrop("bob@example.org").inbox
    for uid in (1, 3, 4):
        folder.set_flags(uid, ["\\Deleted"], "add")
    assert folder.expunge([3, 2, 99]) == [3]
    assert [m.uid for m in folder.messages] == [1, 2, 4]
    assert folder.expunge() == [1, 4]
    assert [m.uid for m in folder.messages] == [2]
    assert folder.uidnext == 5  # UIDs are never reused


def test_remove_is_unconditional_and_skips_unknown_uids(store: MailStore) -> None:
    for _ in range(3):
        store.deliver("bob@example.org", RAW)
    folder = store.maildrop("bob@example.org").inbox
    snapshot = folder.messages
    assert folder.remove([2, 7]) == [2]
    assert [m.uid for m in folder.messages] == [1, 3]
    assert len(snapshot) == 3  # snapshots are copies
    assert folder.get(2) is None
    assert folder.get(3) is snapshot[2]


# -- folders --------------------------------------------------------------------------------------
def test_inbox_is_case_insensitive_and_always_there(store: MailStore) -> None:
    drop = store.maildrop("bob@example.org")
    assert drop.folder("inbox") is drop.inbox is drop.folder("InBoX")
    assert "Inbox" in drop
    with pytest.raises(ValueError, match="INBOX cannot be deleted"):
        drop.delete("inbox")


def test_missing_folder_error_lists_existing_ones(store: MailStore) -> None:
    drop = store.maildrop("bob@example.org")
    drop.create("Archive")
    with pytest.raises(FolderNotFound) as info:
        drop.folder("Arch")
    assert isinstance(info.value, KeyError)
    assert str(info.value) == (
        "no folder 'Arch' in the maildrop of 'bob@example.org'; folders: INBOX, Archive"
    )


def test_create_delete_and_uidvalidity_is_fresh(store: MailStore) -> None:
    drop = store.maildrop("bob@example.org")
    first = drop.create("Work")
    with pytest.raises(ValueError, match="exists already"):
        drop.create("Work")
    drop.delete("Work")
    assert "Work" not in drop
    again = drop.create("Work")
    assert again.uidvalidity != first.uidvalidity
    with pytest.raises(FolderNotFound):
        drop.delete("Nope")
    for bad in ("", "a\r\nb"):
        with pytest.raises(ValueError, match="folder name"):
            drop.create(bad)


def test_rename_moves_subfolders_and_keeps_uids(store: MailStore) -> None:
    drop = store.maildrop("bob@example.org")
    store.deliver("bob@example.org", RAW, folder="Work")
    store.deliver("bob@example.org", RAW, folder="Work/2024")
    drop.create("Workshop")  # shares the prefix but is not a subfolder
    validity = drop.folder("Work").uidvalidity
    renamed = drop.rename("Work", "Jobs")
    assert renamed.name == "Jobs"
    assert renamed.uidvalidity == validity
    assert list(drop.folders) == ["INBOX", "Jobs", "Jobs/2024", "Workshop"]
    assert [m.uid for m in drop.folder("Jobs/2024").messages] == [1]
    with pytest.raises(ValueError, match="exists"):
        drop.rename("Jobs", "Workshop")
    with pytest.raises(FolderNotFound):
        drop.rename("Work", "Other")


def test_rename_inbox_moves_its_messages_and_leaves_it_empty(store: MailStore) -> None:
    store.deliver("bob@example.org", RAW)
    drop = store.maildrop("bob@example.org")
    old_validity = drop.inbox.uidvalidity
    moved = drop.rename("INBOX", "Old")
    assert len(moved) == 1
    assert len(drop.inbox) == 0
    assert drop.inbox.uidvalidity != old_validity
    assert list(drop.folders) == ["INBOX", "Old"]
    with pytest.raises(ValueError, match="INBOX"):
        drop.rename("Old", "inbox")


# -- events ---------------------------------------------------------------------------------------
def test_events_in_order_and_unsubscribe(store: MailStore) -> None:
    events: list[StoreEvent] = []
    unsubscribe = store.subscribe(events.append)
    message = store.deliver("bob@example.org", RAW)
    drop = store.maildrop("bob@example.org")
    drop.inbox.set_flags(message.uid, ["\\Deleted"], "add")
    drop.inbox.set_flags(message.uid, ["\\Deleted"], "add")  # no change, no event
    drop.inbox.expunge()
    drop.create("A")
    drop.rename("A", "B")
    drop.delete("B")
    unsubscribe()
    store.deliver("bob@example.org", RAW)
    assert [(e.kind, e.folder, e.uids, e.action, e.old_name) for e in events] == [
        ("append", "INBOX", (1,), None, None),
        ("flags", "INBOX", (1,), None, None),
        ("expunge", "INBOX", (1,), None, None),
        ("folder", "A", (), "create", None),
        ("folder", "B", (), "rename", "A"),
        ("folder", "B", (), "delete", None),
    ]
    assert {e.address for e in events} == {"bob@example.org"}


def test_a_failing_listener_never_breaks_a_delivery(store: MailStore) -> None:
    def boom(event: StoreEvent) -> None:
        raise RuntimeError("listener bug")

    store.subscribe(boom)
    message = store.deliver("bob@example.org", RAW)
    assert store.maildrop("bob@example.org").inbox.messages == [message]
    assert len(store.listener_errors) == 1
    assert "listener bug" in store.listener_errors[0]


def test_reset_drops_maildrops_but_keeps_listeners(store: MailStore) -> None:
    events: list[StoreEvent] = []
    store.subscribe(events.append)
    store.deliver("bob@example.org", RAW)
    store.reset()
    assert store.addresses() == []
    assert len(store) == 0
    store.deliver("bob@example.org", RAW)
    assert len(events) == 2
    assert store.maildrop("bob@example.org").inbox.messages[0].uid == 1


# -- POP3 lock and threads ------------------------------------------------------------------------
def test_pop3_lock_is_exclusive_per_owner(store: MailStore) -> None:
    drop = store.maildrop("bob@example.org")
    first, second = object(), object()
    assert drop.try_lock(first)
    assert drop.try_lock(first)  # re-entrant for the same owner
    assert not drop.try_lock(second)
    drop.unlock(second)  # not the owner: no effect
    assert drop.locked
    drop.unlock(first)
    assert not drop.locked
    assert drop.try_lock(second)


def test_concurrent_deliveries_get_unique_uids(store: MailStore) -> None:
    start = threading.Event()

    def worker() -> None:
        start.wait(5)
        for _ in range(200):
            store.deliver("bob@example.org", RAW)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    start.set()
    for thread in threads:
        thread.join(10)
    uids = [m.uid for m in store.maildrop("bob@example.org").inbox.messages]
    assert uids == list(range(1, 801))


def test_reprs_say_what_is_inside(store: MailStore) -> None:
    store.deliver("bob@example.org", RAW)
    drop = store.maildrop("bob@example.org")
    assert repr(store) == "<MailStore {bob@example.org: 1}>"
    assert repr(drop) == "<Maildrop 'bob@example.org' {INBOX: 1}>"
    assert "1 messages" in repr(drop.inbox)


def test_every_spelling_of_an_address_finds_one_maildrop_past_the_key_cache() -> None:
    # maildrop() remembers how each spelling normalises; past _KEY_CACHE_SIZE spellings the
    # memory starts again, and every spelling still lands in the one maildrop of its address.
    from pytest_smtp.store import _KEY_CACHE_SIZE

    store = MailStore()
    spellings = [f"<user{i}@Example.TEST>" for i in range(_KEY_CACHE_SIZE + 10)]
    for spelling in spellings:
        store.deliver(spelling, b"Subject: s\r\n\r\nx\r\n")
    assert len(store._keys) <= _KEY_CACHE_SIZE
    for i in (0, _KEY_CACHE_SIZE + 9):
        drop = store.maildrop(f"user{i}@example.test")
        assert drop is store.maildrop(spellings[i])
        assert len(drop.messages) == 1
    assert len(store.addresses()) == len(spellings)


@pytest.mark.parametrize("bad", [["bob@example.test"], None, 5])
def test_a_maildrop_address_that_is_not_a_str_is_named_in_the_error(bad: object) -> None:
    with pytest.raises(TypeError, match="a maildrop address must be a str"):
        MailStore().maildrop(bad)  # type: ignore[arg-type]
