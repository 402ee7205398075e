"""The mail store: the receiving end of mail (the MDA), read back over POP3 and IMAP.

A :class:`MailStore` holds one :class:`Maildrop` per recipient address; a maildrop holds
folders (``INBOX`` always), a :class:`Folder` holds :class:`StoredMessage` objects with a UID,
flags and an internal date. The capturing SMTP server files every accepted message into the
maildrop of each accepted recipient; a test seeds it with :meth:`MailStore.deliver` and reads
what a POP3/IMAP client did to it with :meth:`MailStore.maildrop`.

The store is shared between the engine thread (SMTP deliveries, POP3/IMAP sessions) and the
test's thread, so every mutation happens under one re-entrant lock per store
(:attr:`MailStore.lock`, which callers may hold to make several steps atomic). Readers get
snapshots (copies of lists and dicts); the message objects themselves are shared, and their
``flags`` set is replaced, never mutated in place, so a reader never sees it change under it.

This module never imports pytest; deleting from the store never touches the SMTP capture log.
"""

from __future__ import annotations

import email.message
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from pytest_smtp._listeners import Listeners
from pytest_smtp.parsing import parse_message

__all__ = [
    "HIERARCHY_DELIMITER",
    "SYSTEM_FLAGS",
    "Folder",
    "FolderNotFound",
    "MailStore",
    "Maildrop",
    "StoreEvent",
    "StoredMessage",
    "normalize_address",
    "normalize_flag",
]

#: The IMAP system flags a message may carry (``\\Recent`` is session state, not a stored flag).
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")

#: The separator of folder hierarchy levels: ``Maildrop.rename("a", "b")`` renames ``a/x`` too.
HIERARCHY_DELIMITER = "/"

_SYSTEM_BY_LOWER = {f.lower(): f for f in SYSTEM_FLAGS}
# IMAP atom-specials (RFC 3501 section 9) and the characters that break a flag list.
_KEYWORD_BAD = re.compile(r'[\x00-\x20\x7f(){%*"\\\]]')
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_BAD_NAME_CHARS = re.compile(r"[\x00\r\n]")

# UIDVALIDITY values come from one process-wide counter started at the clock, so a folder that
# is deleted and created again (or a store that is reset) never reuses a value a client cached.
_uidvalidity = itertools.count(max(1, int(time.time()) & 0x7FFFFFFF))
_uidvalidity_lock = threading.Lock()


def _next_uidvalidity() -> int:
    with _uidvalidity_lock:
        value = next(_uidvalidity)
    return value & 0xFFFFFFFF or 1


def normalize_address(address: str) -> str:
    """The maildrop key of ``address``: stripped of spaces and ``<>``, domain lower-cased.

    The local part is kept as given (RFC 5321 leaves its case to the receiving host).
    Raises :class:`ValueError` for an empty address or one containing CR, LF or NUL.
    """
    if not isinstance(address, str):
        raise TypeError(
            f"a maildrop address must be a str such as 'bob@example.org', not {address!r}"
        )
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if not text or _BAD_NAME_CHARS.search(text):
        raise ValueError(
            f"a maildrop address must be a non-empty address without CR, LF or NUL such as "
            f"'bob@example.org', not {address!r}"
        )
    local, at, domain = text.rpartition("@")
    if at:
        return f"{local}@{domain.lower()}"
    return text


def normalize_flag(flag: str) -> str:
    """Canonical spelling of a flag: system flags case-insensitively (``\\\\seen`` → ``\\\\Seen``).

    Keywords (flags without a backslash) are kept as given. Raises :class:`ValueError` for
    ``\\\\Recent`` (set by the server only), an unknown system flag, or a keyword containing a
    space, a control character or one of ``(){%*"\\\\]``.
    """
    if not isinstance(flag, str):
        raise TypeError(f"a flag must be a str such as '\\\\Seen' or 'Processed', not {flag!r}")
    if flag.startswith("\\"):
        canonical = _SYSTEM_BY_LOWER.get(flag.lower())
        if canonical is None:
            raise ValueError(
                f"unknown system flag {flag!r}: use one of {', '.join(SYSTEM_FLAGS)} "
                f"(\\Recent is set by the server only) or a keyword without a backslash"
            )
        return canonical
    if not flag or _KEYWORD_BAD.search(flag):
        raise ValueError(
            f"invalid keyword flag {flag!r}: a keyword is a non-empty IMAP atom without spaces, "
            f'control characters or any of (){{%*"\\] such as "Processed" or "$Junk"'
        )
    return flag


def _normalize_flags(flags: Iterable[str]) -> set[str]:
    if isinstance(flags, str):
        raise TypeError(
            f"flags must be an iterable of flags such as ['\\\\Seen'], not the string {flags!r}"
        )
    return {normalize_flag(f) for f in flags}


def _normalize_folder_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"a folder name must be a str such as 'Archive', not {name!r}")
    if not name or _BAD_NAME_CHARS.search(name):
        raise ValueError(
            f"a folder name must be non-empty and without CR, LF or NUL, such as 'Archive', "
            f"not {name!r}"
        )
    return "INBOX" if name.upper() == "INBOX" else name


# Addresses normalised once, by the MailStore: at most this many kept (cleared when full).
_KEY_CACHE_SIZE = 4096


def _crlf(raw: bytes) -> bytes:
    """Every line break as CRLF (the wire form POP3 and IMAP octet counts are based on).

    Already-CRLF input (what SMTP delivers) is returned as is: the store then shares the bytes
    of ``Message.raw`` instead of holding a second copy.
    """
    crlf = raw.count(b"\r\n")
    if crlf == raw.count(b"\n") == raw.count(b"\r"):
        return raw
    if b"\r" not in raw:
        return raw.replace(b"\n", b"\r\n")
    return _LINE_BREAK.sub(b"\r\n", raw)


def _message_bytes(message: bytes | bytearray | memoryview | str | email.message.Message) -> bytes:
    if isinstance(message, (bytes, bytearray, memoryview)):
        return _crlf(bytes(message))
    if isinstance(message, str):
        return _crlf(message.encode("utf-8", "surrogateescape"))
    if isinstance(message, email.message.Message):
        policy = message.policy.clone(linesep="\r\n")
        return _crlf(message.as_bytes(policy=policy))
    raise TypeError(
        f"a message must be bytes, str or an email.message.EmailMessage, "
        f"not {type(message).__name__}"
    )


def _aware(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(timezone.utc).replace(microsecond=0)
    if not isinstance(value, datetime):
        raise TypeError(f"internal_date must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"internal_date must be timezone-aware (e.g. datetime.now(timezone.utc)), "
            f"not the naive {value!r}"
        )
    return value


class FolderNotFound(KeyError):
    """A folder that does not exist was asked for; the message names the existing ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "folder not found"


class MessageNotFound(KeyError):
    """A UID that is not (or no longer) in the folder was asked for."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "message not found"


@dataclass(frozen=True)
class StoreEvent:
    """One change to a store, passed to the listeners of :meth:`MailStore.subscribe`.

    ``kind`` is ``"append"`` (``uids`` added to ``folder``), ``"expunge"`` (``uids`` removed),
    ``"flags"`` (flags of ``uids`` changed) or ``"folder"`` (``folder`` created, deleted or
    renamed; ``action`` says which and ``old_name`` is the previous name of a renamed folder).
    """

    kind: Literal["append", "expunge", "flags", "folder"]
    address: str
    folder: str
    uids: tuple[int, ...] = ()
    action: Literal["create", "delete", "rename"] | None = None
    old_name: str | None = None


class StoredMessage:
    """One message in a folder: its UID, bytes (CRLF line endings), flags and internal date."""

    __slots__ = (
        "_defects",
        "_email",
        "_imap_part",
        "flags",
        "internal_date",
        "raw",
        "recent",
        "uid",
    )

    def __init__(
        self, uid: int, raw: bytes, flags: set[str], internal_date: datetime, recent: bool = True
    ) -> None:
        self.uid = uid
        """Unique within its folder and strictly increasing (RFC 3501 UID)."""
        self.raw = raw
        """The message bytes, every line break a CRLF."""
        self.flags: set[str] = flags
        """Current flags (system flags and keywords). Change them with :meth:`Folder.set_flags`."""
        self.internal_date = internal_date
        """When the message was filed (timezone-aware), the IMAP INTERNALDATE."""
        self.recent = recent
        """IMAP ``\\Recent`` bookkeeping: True until an IMAP session has seen it."""
        self._email: email.message.EmailMessage | None = None
        self._defects: list[str] = []
        # The IMAP server's parsed MIME structure (retrieval.imap_mime.Part), kept here because
        # raw never changes and a per-session cache re-parsed every message of a big FETCH.
        self._imap_part: object = None

    @property
    def size(self) -> int:
        """Size in octets (``len(raw)``), as POP3 LIST and IMAP RFC822.SIZE report it."""
        return len(self.raw)

    @property
    def email(self) -> email.message.EmailMessage:
        """The parsed message, parsed on first use and cached.

        ``policy.default`` semantics through :func:`pytest_smtp.parsing.parse_message`, which
        caps what reaches the stdlib parser; each cut is listed in :attr:`parse_defects`.
        """
        parsed = self._email
        if parsed is None:
            parsed, self._defects = parse_message(self.raw)
            self._email = parsed
        return parsed

    @property
    def parse_defects(self) -> list[str]:
        """What the capped parser cut or kept as text (see :attr:`email`); empty until parsed.

        Header fields are parsed when first read, so the list can grow as they are.
        """
        return self._defects

    @property
    def subject(self) -> str | None:
        """The decoded Subject header, or None when there is none."""
        value = self.email["Subject"]
        return None if value is None else str(value)

    @property
    def seen(self) -> bool:
        """True when the message carries ``\\Seen``."""
        return "\\Seen" in self.flags

    def __repr__(self) -> str:
        flags = " ".join(sorted(self.flags))
        return (
            f"<StoredMessage uid={self.uid} size={self.size} flags=({flags}) "
            f"subject={self.subject!r}>"
        )


class Folder:
    """A folder (IMAP mailbox) of one maildrop: messages in UID order, UIDVALIDITY, UIDNEXT."""

    def __init__(self, maildrop: Maildrop, name: str) -> None:
        self._maildrop = maildrop
        self._lock = maildrop._lock
        self.name = name
        """The folder's name (``INBOX`` for the inbox, whatever case it was asked with)."""
        self.uidvalidity = _next_uidvalidity()
        """Constant for the life of the folder; a folder made again gets a new value."""
        self.uidnext = 1
        """The UID the next appended message will get."""
        self.subscribed = True
        """IMAP subscription state (LSUB); new folders start subscribed."""
        self._messages: dict[int, StoredMessage] = {}

    @property
    def address(self) -> str:
        """The address of the maildrop this folder belongs to."""
        return self._maildrop.address

    @property
    def messages(self) -> list[StoredMessage]:
        """Snapshot of the messages in sequence order (sequence number = index + 1)."""
        with self._lock:
            return list(self._messages.values())

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[StoredMessage]:
        return iter(self.messages)

    def __repr__(self) -> str:
        return (
            f"<Folder {self.name!r} of {self.address!r}: {len(self._messages)} messages, "
            f"uidvalidity={self.uidvalidity} uidnext={self.uidnext}>"
        )

    def get(self, uid: int) -> StoredMessage | None:
        """The message with that UID, or None."""
        return self._messages.get(uid)

    def append(
        self,
        raw: bytes,
        flags: Iterable[str] = (),
        internal_date: datetime | None = None,
    ) -> StoredMessage:
        """File ``raw`` (line breaks normalised to CRLF) with the next UID; returns it."""
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"Folder.append() takes the message as bytes, not {type(raw).__name__}; "
                f"MailStore.deliver() also accepts str and EmailMessage"
            )
        return self._file(_crlf(bytes(raw)), _normalize_flags(flags), _aware(internal_date))

    def _file(self, data: bytes, flag_set: set[str], date: datetime) -> StoredMessage:
        """Append what :meth:`append` has checked and normalised (CRLF bytes, canonical flags,
        an aware date)."""
        with self._lock:
            message = StoredMessage(self.uidnext, data, flag_set, date)
            self._messages[message.uid] = message
            self.uidnext += 1
            self._emit("append", (message.uid,))
        return message

    def set_flags(
        self, uid: int, flags: Iterable[str], mode: Literal["set", "add", "remove"] = "set"
    ) -> set[str]:
        """Replace (``set``), add to or remove from the flags of message ``uid``.

        Returns the new flag set. Raises :class:`MessageNotFound` (a KeyError) for a UID not
        in the folder and :class:`ValueError` for an unknown ``mode`` or a malformed flag.
        """
        if mode not in ("set", "add", "remove"):
            raise ValueError(f"mode must be 'set', 'add' or 'remove', not {mode!r}")
        wanted = _normalize_flags(flags)
        with self._lock:
            message = self._messages.get(uid)
            if message is None:
                raise MessageNotFound(self._missing(uid))
            if mode == "set":
                new = wanted
            elif mode == "add":
                new = message.flags | wanted
            else:
                new = message.flags - wanted
            if new != message.flags:
                # Replaced, not mutated: readers holding the old set never see it change.
                message.flags = new
                self._emit("flags", (uid,))
            return set(new)

    def expunge(self, uids: Iterable[int] | None = None) -> list[int]:
        """Remove the messages flagged ``\\Deleted`` (only those among ``uids`` if given).

        Returns the removed UIDs in ascending order.
        """
        with self._lock:
            if uids is None:
                candidates: Iterable[int] = list(self._messages)
            else:
                candidates = sorted(set(uids))
            removed = [
                uid
                for uid in candidates
                if (m := self._messages.get(uid)) is not None and "\\Deleted" in m.flags
            ]
            return self._remove(removed)

    def remove(self, uids: Iterable[int]) -> list[int]:
        """Remove messages whatever their flags (POP3's UPDATE state); unknown UIDs are skipped.

        Returns the UIDs actually removed, in ascending order.
        """
        with self._lock:
            present = [uid for uid in sorted(set(uids)) if uid in self._messages]
            return self._remove(present)

    def _remove(self, uids: list[int]) -> list[int]:
        for uid in uids:
            del self._messages[uid]
        if uids:
            self._emit("expunge", tuple(uids))
        return uids

    def _missing(self, uid: int) -> str:
        return (
            f"no message with UID {uid} in folder {self.name!r} of {self.address!r} "
            f"(UIDs present: {_describe_uids(list(self._messages))})"
        )

    def _emit(self, kind: Literal["append", "expunge", "flags"], uids: tuple[int, ...]) -> None:
        if self._maildrop._store._listeners:  # no event is built for nobody
            self._maildrop._emit(StoreEvent(kind, self.address, self.name, uids))


def _describe_uids(uids: list[int]) -> str:
    if not uids:
        return "none"
    if len(uids) > 10:
        return f"{', '.join(map(str, uids[:10]))}, ... ({len(uids)} in all)"
    return ", ".join(map(str, uids))


class Maildrop:
    """The folders of one address. ``INBOX`` always exists and cannot be deleted."""

    def __init__(self, store: MailStore, address: str) -> None:
        self._store = store
        self._lock = store.lock
        self.address = address
        """The normalised address: local part as given, domain lower-cased."""
        self._folders: dict[str, Folder] = {"INBOX": Folder(self, "INBOX")}
        self._lock_owner: object | None = None

    @property
    def folders(self) -> dict[str, Folder]:
        """Snapshot ``{name: Folder}``, INBOX first, then in creation order."""
        with self._lock:
            return dict(self._folders)

    @property
    def inbox(self) -> Folder:
        """The INBOX folder."""
        return self._folders["INBOX"]

    @property
    def messages(self) -> list[StoredMessage]:
        """Shortcut for ``inbox.messages``."""
        return self.inbox.messages

    def __repr__(self) -> str:
        with self._lock:
            parts = ", ".join(f"{n}: {len(f)}" for n, f in self._folders.items())
        return f"<Maildrop {self.address!r} {{{parts}}}>"

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            return _normalize_folder_name(name) in self._folders
        except ValueError:
            return False

    def folder(self, name: str) -> Folder:
        """The folder called ``name`` (``INBOX`` in any case); :class:`FolderNotFound` if none."""
        key = _normalize_folder_name(name)
        with self._lock:
            found = self._folders.get(key)
            if found is None:
                raise FolderNotFound(self._missing(name))
            return found

    def create(self, name: str) -> Folder:
        """Create an empty folder; :class:`ValueError` if it exists already."""
        key = _normalize_folder_name(name)
        with self._lock:
            if key in self._folders:
                raise ValueError(f"folder {key!r} of {self.address!r} exists already")
            created = self._folders[key] = Folder(self, key)
            self._emit(StoreEvent("folder", self.address, key, action="create"))
            return created

    def delete(self, name: str) -> None:
        """Delete a folder and its messages (``INBOX`` cannot be deleted: ValueError)."""
        key = _normalize_folder_name(name)
        if key == "INBOX":
            raise ValueError("INBOX cannot be deleted (RFC 3501); expunge its messages instead")
        with self._lock:
            if key not in self._folders:
                raise FolderNotFound(self._missing(name))
            del self._folders[key]
            self._emit(StoreEvent("folder", self.address, key, action="delete"))

    def rename(self, old: str, new: str) -> Folder:
        """Rename folder ``old`` (and its ``old/...`` subfolders) to ``new``; returns it.

        Renaming INBOX moves its messages to a new folder ``new`` and leaves INBOX empty, as
        RFC 3501 says. ValueError if ``new`` exists; :class:`FolderNotFound` if ``old`` does not.
        """
        old_key = _normalize_folder_name(old)
        new_key = _normalize_folder_name(new)
        with self._lock:
            if old_key not in self._folders:
                raise FolderNotFound(self._missing(old))
            if new_key in self._folders:
                raise ValueError(f"cannot rename {old_key!r} to {new_key!r}: {new_key!r} exists")
            if new_key == "INBOX":
                raise ValueError("cannot rename a folder to INBOX: INBOX always exists")
            prefix = old_key + HIERARCHY_DELIMITER
            moves = [(old_key, new_key)]
            if old_key != "INBOX":
                moves += [
                    (name, new_key + HIERARCHY_DELIMITER + name[len(prefix) :])
                    for name in self._folders
                    if name.startswith(prefix)
                ]
            for _, target in moves[1:]:
                if target in self._folders:
                    raise ValueError(
                        f"cannot rename {old_key!r} to {new_key!r}: its subfolder would "
                        f"become {target!r}, which exists"
                    )
            # Rebuild the dict so the order (INBOX first, then creation order) is kept.
            renamed = dict(moves)
            folders: dict[str, Folder] = {}
            for name, folder in self._folders.items():
                new_name = renamed.get(name)
                if new_name is not None:
                    folder.name = new_name
                    folders[new_name] = folder
                    if name == "INBOX":
                        folders["INBOX"] = Folder(self, "INBOX")
                else:
                    folders[name] = folder
            if old_key == "INBOX":
                # INBOX keeps its place at the front.
                folders = {"INBOX": folders.pop("INBOX"), **folders}
            self._folders = folders
            for source, target in moves:
                self._emit(
                    StoreEvent("folder", self.address, target, action="rename", old_name=source)
                )
            return folders[new_key]

    # -- POP3 exclusive access (RFC 1939 section 8) -----------------------------------------
    def try_lock(self, owner: object) -> bool:
        """Take the exclusive POP3 lock for ``owner``; False if another owner holds it."""
        with self._lock:
            if self._lock_owner is None or self._lock_owner is owner:
                self._lock_owner = owner
                return True
            return False

    def unlock(self, owner: object) -> None:
        """Release the lock if ``owner`` holds it (anything else is a no-op)."""
        with self._lock:
            if self._lock_owner is owner:
                self._lock_owner = None

    @property
    def locked(self) -> bool:
        """True while a POP3 session holds the maildrop."""
        return self._lock_owner is not None

    def _missing(self, name: str) -> str:
        return (
            f"no folder {name!r} in the maildrop of {self.address!r}; "
            f"folders: {', '.join(self._folders)}"
        )

    def _emit(self, event: StoreEvent) -> None:
        self._store._emit(event)


class MailStore:
    """Maildrops by address: the receiving end, shared by SMTP, POP3, IMAP and the test."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        """The store's lock; hold it to make several operations atomic (IMAP MOVE)."""
        self._maildrops: dict[str, Maildrop] = {}
        self._keys: dict[str, str] = {}  # address as given -> normalize_address(address)
        self._listeners: Listeners[StoreEvent] = Listeners("store")
        self.listener_errors: list[str] = self._listeners.errors
        """Tracebacks of exceptions raised by listeners (they never break a delivery)."""

    def deliver(
        self,
        address: str,
        message: bytes | str | email.message.Message,
        folder: str = "INBOX",
        flags: Iterable[str] = (),
        internal_date: datetime | None = None,
    ) -> StoredMessage:
        """File ``message`` into ``folder`` of ``address``'s maildrop; returns the stored message.

        The maildrop and folder are created when missing. ``message`` may be bytes, str or an
        ``EmailMessage``; line breaks become CRLF.
        """
        flag_set = set() if flags == () else _normalize_flags(flags)
        return self._deliver_checked(
            address, _message_bytes(message), folder, flag_set, _aware(internal_date)
        )

    def _deliver_checked(
        self, address: str, raw: bytes, folder: str, flag_set: set[str], date: datetime
    ) -> StoredMessage:
        """:meth:`deliver` once the message is CRLF bytes, the flags canonical and the date
        aware (the SMTP server calls it directly for a message it has checked already)."""
        with self.lock:
            drop = self.maildrop(address)
            key = "INBOX" if folder == "INBOX" else _normalize_folder_name(folder)
            target = drop._folders.get(key)
            if target is None:
                target = drop.create(key)
            return target._file(raw, flag_set, date)

    def maildrop(self, address: str) -> Maildrop:
        """The maildrop of ``address`` (domain case-insensitive), created empty when missing."""
        key = self._keys.get(address) if isinstance(address, str) else None
        if key is None:  # normalize_address names what is wrong with a bad address
            key = normalize_address(address)
            if len(self._keys) >= _KEY_CACHE_SIZE:
                self._keys.clear()
            self._keys[address] = key
        with self.lock:
            drop = self._maildrops.get(key)
            if drop is None:
                drop = self._maildrops[key] = Maildrop(self, key)
            return drop

    def get(self, address: str) -> Maildrop | None:
        """The maildrop of ``address`` if it exists, without creating one."""
        return self._maildrops.get(normalize_address(address))

    def addresses(self) -> list[str]:
        """The addresses that have a maildrop, in creation order."""
        with self.lock:
            return list(self._maildrops)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        try:
            return normalize_address(address) in self._maildrops
        except ValueError:
            return False

    def __len__(self) -> int:
        return len(self._maildrops)

    def __repr__(self) -> str:
        with self.lock:
            parts = ", ".join(
                f"{a}: {sum(len(f) for f in d._folders.values())}"
                for a, d in self._maildrops.items()
            )
        return f"<MailStore {{{parts}}}>"

    def reset(self) -> None:
        """Drop every maildrop (the per-test reset). Listeners stay subscribed."""
        with self.lock:
            self._maildrops = {}
            self.listener_errors.clear()

    def subscribe(self, fn: Callable[[StoreEvent], None]) -> Callable[[], None]:
        """Call ``fn(event)`` after every change; returns a function that unsubscribes it.

        Listeners run synchronously in the thread that made the change, with the store's lock
        held: keep them short, and hop to another loop with ``loop.call_soon_threadsafe``.
        """
        return self._listeners.add(fn, "subscribe")

    def _emit(self, event: StoreEvent) -> None:
        self._listeners.emit(event)
