"""Fake DNS zones: records built from Python or master-file text, and authoritative answers.

This module has no sockets. :class:`Zone` is one authoritative zone (an origin with its SOA,
NS and records, stored in a :class:`dns.zone.Zone`); :class:`ZoneSet` is the set of zones a
:class:`~pytest_smtp.fakedns.FakeDNS` serves, which places every record in the deepest zone
that covers its name (creating one when none does) and answers queries the way an
authoritative server does: NXDOMAIN when a name does not exist, NOERROR without records
(NODATA) when it exists without the asked type, CNAME chasing across the zones, wildcards, and
the zone's SOA in the authority section of every negative answer.

All names are absolute: ``"mx1.example.test"`` and ``"mx1.example.test."`` are the same name,
in record owners and in record values alike.

This module never imports pytest.
"""

from __future__ import annotations

import abc
import ipaddress
import re
import textwrap
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.node
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.reversename
import dns.rrset
import dns.tokenizer
import dns.zone
import dns.zonefile

__all__ = [
    "DEFAULT_TTL",
    "MAX_CNAME_HOPS",
    "NameLike",
    "RecordBuilder",
    "RecordValue",
    "Resolution",
    "Zone",
    "ZoneSet",
    "reverse_name",
    "to_name",
    "to_rdtype",
]

#: TTL, in seconds, of records added without one (and the ``$TTL`` of loaded text without one).
DEFAULT_TTL = 300

#: A DNS name: text such as ``"mx1.example.test"`` (trailing dot optional) or a ``dns.name.Name``.
NameLike = Union[str, dns.name.Name]  # noqa: UP007 -- a runtime alias on Python 3.10

#: One record's data: presentation text (as in a zone file) or a ``dns.rdata.Rdata``.
RecordValue = Union[str, dns.rdata.Rdata]  # noqa: UP007

_IN = dns.rdataclass.IN
_MAX_TTL = 2**31 - 1
#: How many CNAMEs a lookup follows before it gives up (the fake nameserver, the patched socket
#: functions and the relay's MX routing use this one limit).
MAX_CNAME_HOPS = 16
# Relative names in loaded text land under this origin when the caller gave none, so they can
# be reported instead of silently becoming top-level names.
_NO_ORIGIN = dns.name.from_text("origin-required.pytest-smtp.invalid.")
_LINE_RE = re.compile(r"^<string>:(\d+):\s*")
_META_TYPES = frozenset(
    {
        dns.rdatatype.ANY,
        dns.rdatatype.AXFR,
        dns.rdatatype.IXFR,
        dns.rdatatype.OPT,
        dns.rdatatype.TSIG,
        dns.rdatatype.TKEY,
        dns.rdatatype.MAILA,
        dns.rdatatype.MAILB,
        dns.rdatatype.NONE,
    }
)
_EXAMPLES: dict[dns.rdatatype.RdataType, str] = {
    dns.rdatatype.A: "'127.0.0.2'",
    dns.rdatatype.AAAA: "'::1'",
    dns.rdatatype.MX: "'10 mx1.example.test' (preference, then exchange)",
    dns.rdatatype.CNAME: "'target.example.test'",
    dns.rdatatype.PTR: "'host.example.test'",
    dns.rdatatype.NS: "'ns1.example.test'",
    dns.rdatatype.TXT: "'v=spf1 -all'",
    dns.rdatatype.SRV: "'10 5 587 mail.example.test' (priority weight port target)",
    dns.rdatatype.SOA: (
        "'ns.example.test hostmaster.example.test 1 3600 600 86400 300' "
        "(mname rname serial refresh retry expire minimum)"
    ),
}


def to_name(name: NameLike, what: str = "name") -> dns.name.Name:
    """``name`` as an absolute ``dns.name.Name``; ``ValueError`` naming the bad input."""
    if isinstance(name, dns.name.Name):
        result = name if name.is_absolute() else name.concatenate(dns.name.root)
    elif isinstance(name, str):
        if not name.strip() or name.strip() == "@":
            raise ValueError(f"{what} must be a DNS name such as 'mx1.example.test', not {name!r}")
        try:
            result = dns.name.from_text(name.strip(), origin=dns.name.root)
        except dns.exception.DNSException as exc:
            raise ValueError(
                f"{what} {name!r} is not a valid DNS name ({exc}); "
                "use a name such as 'mx1.example.test'"
            ) from None
    else:
        raise TypeError(
            f"{what} must be a str such as 'mx1.example.test' or a dns.name.Name, "
            f"not {type(name).__name__}"
        )
    return result


def to_rdtype(rdtype: str | int | dns.rdatatype.RdataType) -> dns.rdatatype.RdataType:
    """``rdtype`` ("MX", "a", 15, ``RdataType.MX``) as a record type; ``ValueError`` if unknown."""
    try:
        if isinstance(rdtype, str):
            result = dns.rdatatype.from_text(rdtype.strip().upper())
        elif isinstance(rdtype, int):
            result = dns.rdatatype.RdataType.make(rdtype)
        else:
            raise TypeError
    except (dns.exception.DNSException, ValueError, TypeError):
        raise ValueError(
            f"unknown DNS record type {rdtype!r}; use a type name such as 'A', 'AAAA', 'MX', "
            "'TXT', 'CNAME', 'PTR', 'NS', 'SOA' or 'SRV'"
        ) from None
    return result


def reverse_name(address: str) -> dns.name.Name:
    """The ``in-addr.arpa`` / ``ip6.arpa`` name of an IP address (for PTR records)."""
    try:
        return dns.reversename.from_address(address)
    except (dns.exception.DNSException, ValueError):
        raise ValueError(f"{address!r} is not an IP address such as '127.0.0.2' or '::1'") from None


def _check_ttl(ttl: int) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= _MAX_TTL:
        raise ValueError(f"ttl must be an int of seconds from 0 to {_MAX_TTL}, not {ttl!r}")
    return ttl


def _txt_rdata(rdtype: dns.rdatatype.RdataType, text: str) -> dns.rdata.Rdata:
    # One TXT record holds several <=255-byte strings; long SPF/DKIM values are split the way
    # a zone file author splits them, and a resolver joins them back.
    data = text.encode("utf-8")
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return dns.rdtypes.ANY.TXT.TXT(_IN, rdtype, chunks)


def make_rdata(rdtype: dns.rdatatype.RdataType, value: RecordValue) -> dns.rdata.Rdata:
    """One record's data from presentation text (names in it are absolute) or an ``Rdata``.

    For TXT (and SPF) a ``str`` is the record's text itself, unless it starts with a double
    quote, in which case it is zone-file syntax (``'"part one" "part two"'``).
    """
    type_text = dns.rdatatype.to_text(rdtype)
    if isinstance(value, dns.rdata.Rdata):
        if value.rdtype != rdtype:
            raise ValueError(
                f"a {dns.rdatatype.to_text(value.rdtype)} record was given where a {type_text} "
                "record is expected"
            )
        return value
    if not isinstance(value, str):
        raise TypeError(
            f"a {type_text} record value must be a str such as "
            f"{_EXAMPLES.get(rdtype, 'in zone-file syntax')}, not {type(value).__name__}"
        )
    if rdtype in (dns.rdatatype.TXT, dns.rdatatype.SPF) and not value.lstrip().startswith('"'):
        return _txt_rdata(rdtype, value)
    try:
        return dns.rdata.from_text(_IN, rdtype, value, origin=dns.name.root, relativize=False)
    except (dns.exception.DNSException, ValueError) as exc:
        example = _EXAMPLES.get(rdtype, "the record's zone-file syntax")
        raise ValueError(
            f"bad {type_text} record value {value!r} ({exc}); a {type_text} value looks like "
            f"{example}"
        ) from None


def _values(value: RecordValue | Iterable[RecordValue]) -> list[RecordValue]:
    if isinstance(value, (str, dns.rdata.Rdata)):
        return [value]
    try:
        values = list(value)
    except TypeError:
        raise TypeError(
            f"a record value must be a str, a dns.rdata.Rdata or a list of them, "
            f"not {type(value).__name__}"
        ) from None
    if not values:
        raise ValueError("an empty list of record values adds nothing; give at least one value")
    return values


#: Per address record type: the ``ipaddress`` class of its values, what a value looks like, and
#: where an address of the other kind (or a name) goes instead.
_ADDRESS_TYPES: dict[str, tuple[type[ipaddress.IPv4Address | ipaddress.IPv6Address], str, str]] = {
    "A": (
        ipaddress.IPv4Address,
        "an IPv4 address such as '127.0.0.2'",
        "use add_aaaa for IPv6, add_cname for an alias",
    ),
    "AAAA": (ipaddress.IPv6Address, "an IPv6 address such as '::1'", "use add_a for IPv4"),
}


def _ip_addresses(rdtype: str, address: str | Iterable[str]) -> list[str]:
    """``address`` (one or several) in canonical text, each checked to fit ``rdtype``."""
    kind, looks_like, instead = _ADDRESS_TYPES[rdtype]
    texts: list[str] = []
    for value in [address] if isinstance(address, str) else address:
        try:
            texts.append(str(kind(value)))
        except (ipaddress.AddressValueError, ValueError):
            raise ValueError(
                f"an {rdtype} record needs {looks_like}, not {value!r} ({instead})"
            ) from None
    return texts


class RecordBuilder(abc.ABC):
    """The record-adding methods shared by :class:`Zone`, :class:`ZoneSet` and ``FakeDNS``.

    Adding to a name and type that already has records adds to that record set (two
    ``add_a`` calls give two addresses); SOA is the exception, it is replaced.
    """

    @abc.abstractmethod
    def _add_rdatas(
        self,
        name: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        rdatas: list[dns.rdata.Rdata],
        ttl: int,
    ) -> None:
        """Store ``rdatas`` under ``name``/``rdtype`` (each class keeps records its own way)."""

    def add(
        self,
        name: NameLike,
        rdtype: str | int,
        value: RecordValue | Iterable[RecordValue],
        ttl: int = DEFAULT_TTL,
    ) -> None:
        """Add records of any type dnspython knows: ``add("host.example.test", "A", "127.0.0.2")``.

        ``value`` is zone-file syntax (``"10 mx1.example.test"`` for MX), a
        ``dns.rdata.Rdata``, or a list of either for several records. Names are absolute.
        """
        owner = to_name(name)
        type_ = to_rdtype(rdtype)
        if type_ in _META_TYPES:
            raise ValueError(
                f"{dns.rdatatype.to_text(type_)} is a query type, not a record type; "
                "add records of a type such as 'A', 'MX' or 'TXT'"
            )
        rdatas = [make_rdata(type_, v) for v in _values(value)]
        self._add_rdatas(owner, type_, rdatas, _check_ttl(ttl))

    def add_mx(
        self, domain: NameLike, exchange: NameLike, preference: int = 10, ttl: int = DEFAULT_TTL
    ) -> None:
        """Add an MX record: mail for ``domain`` goes to ``exchange``. A null MX (RFC 7505) is
        ``add_mx(domain, ".", 0)``."""
        if isinstance(preference, bool) or not isinstance(preference, int):
            raise TypeError(f"preference must be an int from 0 to 65535, not {preference!r}")
        if not 0 <= preference <= 65535:
            raise ValueError(f"preference must be from 0 to 65535, not {preference}")
        target = to_name(exchange, "exchange") if exchange != "." else dns.name.root
        self.add(domain, "MX", f"{preference} {target}", ttl)

    def add_a(self, name: NameLike, address: str | Iterable[str], ttl: int = DEFAULT_TTL) -> None:
        """Add A records: ``add_a("mx1.example.test", "127.0.0.2")`` (or a list of addresses)."""
        self.add(name, "A", _ip_addresses("A", address), ttl)

    def add_aaaa(
        self, name: NameLike, address: str | Iterable[str], ttl: int = DEFAULT_TTL
    ) -> None:
        """Add AAAA records: ``add_aaaa("mx1.example.test", "::1")`` (or a list of addresses)."""
        self.add(name, "AAAA", _ip_addresses("AAAA", address), ttl)

    def add_txt(self, name: NameLike, text: str, ttl: int = DEFAULT_TTL) -> None:
        """Add one TXT record holding ``text`` verbatim (split into 255-byte strings on the
        wire when longer): ``add_txt("example.test", "v=spf1 -all")``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str such as 'v=spf1 -all', not {type(text).__name__}")
        self._add_rdatas(
            to_name(name),
            dns.rdatatype.TXT,
            [_txt_rdata(dns.rdatatype.TXT, text)],
            _check_ttl(ttl),
        )

    def add_cname(self, name: NameLike, target: NameLike, ttl: int = DEFAULT_TTL) -> None:
        """Make ``name`` an alias of ``target`` (a name with a CNAME can hold no other data)."""
        self.add(name, "CNAME", str(to_name(target, "target")), ttl)

    def add_ptr(self, name: NameLike, target: NameLike, ttl: int = DEFAULT_TTL) -> None:
        """Add a PTR record. ``name`` may be an IP address: ``add_ptr("127.0.0.2",
        "mx1.example.test")`` fills the reverse zone ``0.0.127.in-addr.arpa``."""
        owner: NameLike = name
        if isinstance(name, str):
            try:
                ipaddress.ip_address(name)
            except ValueError:
                pass
            else:
                owner = reverse_name(name)
        self.add(owner, "PTR", str(to_name(target, "target")), ttl)

    def add_records(
        self,
        records: Mapping[str, Mapping[str, RecordValue | Sequence[RecordValue]]],
        ttl: int = DEFAULT_TTL,
    ) -> None:
        """Add records from a dict: ``{name: {type: value or [values]}}``, for example
        ``{"example.test": {"MX": ["10 mx1.example.test"], "TXT": "v=spf1 -all"},
        "mx1.example.test": {"A": "127.0.0.2"}}``. Values are as for :meth:`add`."""
        if not isinstance(records, Mapping):
            raise TypeError(
                "records must be a dict {name: {type: value}} such as "
                "{'mx1.example.test': {'A': '127.0.0.2'}}, not " + type(records).__name__
            )
        for name, by_type in records.items():
            if not isinstance(by_type, Mapping):
                raise TypeError(
                    f"records[{name!r}] must be a dict {{type: value}} such as "
                    f"{{'A': '127.0.0.2'}}, not {type(by_type).__name__}"
                )
            for rdtype, value in by_type.items():
                self.add(name, rdtype, value, ttl)


class Zone(RecordBuilder):
    """One authoritative zone: an origin, its SOA and NS, and records at or below the origin.

    A new zone gets a default SOA (``ns.ORIGIN hostmaster.ORIGIN 1 3600 600 86400 300``) and NS
    (``ns.ORIGIN``) unless records of those types are added at the origin, which replace them.
    The records live in :attr:`zone`, a ``dns.zone.Zone`` (absolute names).
    """

    def __init__(self, origin: NameLike, *, ttl: int = DEFAULT_TTL) -> None:
        self.origin: dns.name.Name = to_name(origin, "origin")
        """The zone's apex."""
        if self.origin == dns.name.root:
            raise ValueError(
                "a fake zone cannot be the root zone '.'; use a name such as 'example.test'"
            )
        self.zone: dns.zone.Zone = dns.zone.Zone(self.origin, relativize=False)
        """The records, as a ``dns.zone.Zone`` with absolute names."""
        self._lock: threading.RLock = threading.RLock()
        ttl = _check_ttl(ttl)
        ns = dns.name.from_text("ns", origin=self.origin)
        soa = dns.rdata.from_text(
            _IN, dns.rdatatype.SOA, f"{ns} hostmaster.{self.origin} 1 3600 600 86400 {DEFAULT_TTL}"
        )
        node = self.zone.find_node(self.origin, create=True)
        node.find_rdataset(_IN, dns.rdatatype.SOA, create=True).add(soa, ttl)
        node.find_rdataset(_IN, dns.rdatatype.NS, create=True).add(
            dns.rdata.from_text(_IN, dns.rdatatype.NS, str(ns)), ttl
        )
        self._default_ns = True

    def __repr__(self) -> str:
        return f"<Zone {self.origin} ({len(self.zone.nodes)} names)>"

    def contains(self, name: NameLike) -> bool:
        """True when ``name`` is the origin or below it."""
        return to_name(name).is_subdomain(self.origin)

    def _add_rdatas(
        self,
        name: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        rdatas: list[dns.rdata.Rdata],
        ttl: int,
    ) -> None:
        if not name.is_subdomain(self.origin):
            raise ValueError(
                f"{name} is outside the zone {self.origin}; add it to that zone's "
                "parent set of zones (ZoneSet / FakeDNS) instead"
            )
        type_text = dns.rdatatype.to_text(rdtype)
        with self._lock:
            if rdtype == dns.rdatatype.SOA and name != self.origin:
                raise ValueError(
                    f"an SOA record belongs at the zone origin {self.origin}, not at {name}"
                )
            if len(rdatas) > 1 and rdtype in (dns.rdatatype.SOA, dns.rdatatype.CNAME):
                raise ValueError(f"a name holds at most one {type_text} record, not {len(rdatas)}")
            if rdtype == dns.rdatatype.CNAME and name == self.origin:
                raise ValueError(
                    f"the zone origin {name} holds SOA and NS records, so it cannot "
                    "be a CNAME; alias a name below it instead"
                )
            node = self.zone.get_node(name)
            kind = dns.node.NodeKind.classify(rdtype, dns.rdatatype.NONE)
            if node is not None and kind != dns.node.NodeKind.NEUTRAL:
                for existing in node.rdatasets:
                    other = dns.node.NodeKind.classify_rdataset(existing)
                    if other == dns.node.NodeKind.NEUTRAL or other == kind:
                        continue
                    what = dns.rdatatype.to_text(existing.rdtype)
                    if rdtype == dns.rdatatype.CNAME:
                        raise ValueError(
                            f"{name} already has {what} records and a CNAME cannot coexist with "
                            "other data (RFC 1034); remove them first or alias another name"
                        )
                    raise ValueError(
                        f"{name} is an alias (CNAME) and cannot also hold {type_text} records "
                        f"(RFC 1034); add them to the CNAME's target or remove the CNAME first"
                    )
            node = self.zone.find_node(name, create=True)
            if rdtype == dns.rdatatype.SOA or (
                rdtype == dns.rdatatype.NS and name == self.origin and self._default_ns
            ):
                node.delete_rdataset(_IN, rdtype)
                if rdtype == dns.rdatatype.NS:
                    self._default_ns = False
            rdataset = node.find_rdataset(_IN, rdtype, create=True)
            for rdata in rdatas:
                rdataset.add(rdata, ttl)

    def remove(self, name: NameLike, rdtype: str | int | None = None) -> None:
        """Remove the records of ``rdtype`` at ``name``, or every record there when ``rdtype``
        is None. The origin's SOA and NS stay (remove the whole zone from its ZoneSet instead).
        ``KeyError`` when there is nothing to remove."""
        owner = to_name(name)
        with self._lock:
            node = self.zone.get_node(owner)
            if rdtype is None:
                if node is None:
                    raise KeyError(f"no records at {owner} in zone {self.origin}")
                if owner == self.origin:
                    keep = (dns.rdatatype.SOA, dns.rdatatype.NS)
                    for rds in list(node.rdatasets):
                        if rds.rdtype not in keep:
                            node.delete_rdataset(_IN, rds.rdtype, rds.covers)
                else:
                    self.zone.delete_node(owner)
                return
            type_ = to_rdtype(rdtype)
            if owner == self.origin and type_ in (dns.rdatatype.SOA, dns.rdatatype.NS):
                raise ValueError(f"the zone origin {owner} must keep its {rdtype} records")
            if node is None or node.get_rdataset(_IN, type_) is None:
                raise KeyError(f"no {dns.rdatatype.to_text(type_)} records at {owner}")
            node.delete_rdataset(_IN, type_)
            if not node.rdatasets:
                self.zone.delete_node(owner)

    @property
    def soa(self) -> dns.rrset.RRset:
        """The SOA record set at the origin."""
        rds = self.zone.get_rdataset(self.origin, dns.rdatatype.SOA)
        assert rds is not None  # every Zone is created with one and it cannot be removed
        return dns.rrset.from_rdata_list(self.origin, rds.ttl, list(rds))

    def rrsets(self) -> Iterator[dns.rrset.RRset]:
        """Every record set in the zone, origin first."""
        with self._lock:
            items = [
                (name, rds)
                for name, node in sorted(self.zone.nodes.items())
                for rds in node.rdatasets
            ]
        for name, rds in items:
            yield dns.rrset.from_rdata_list(name, rds.ttl, list(rds))

    def to_text(self) -> str:
        """The zone in master-file syntax (absolute names)."""
        return "".join(rrset.to_text() + "\n" for rrset in self.rrsets())

    # -- answering (called with the lock held) --------------------------------------------
    def _has_descendant(self, name: dns.name.Name) -> bool:
        return any(n != name and n.is_subdomain(name) for n in self.zone.nodes)

    def _exists(self, name: dns.name.Name) -> bool:
        # An empty non-terminal (a name with nothing but names below it) exists: NODATA, not
        # NXDOMAIN (RFC 8020).
        return name in self.zone.nodes or self._has_descendant(name)

    def _find(self, name: dns.name.Name) -> tuple[dns.node.Node | None, bool]:
        """The node answering for ``name`` (possibly a wildcard's) and whether ``name`` exists."""
        node = self.zone.nodes.get(name)
        if node is not None:
            return node, True
        if self._has_descendant(name):
            return None, True
        encloser = name.parent()
        while encloser != self.origin and not self._exists(encloser):
            encloser = encloser.parent()
        wildcard = self.zone.nodes.get(dns.name.Name((b"*", *encloser.labels)))
        return wildcard, wildcard is not None

    def _negative_soa(self) -> dns.rrset.RRset:
        soa = self.soa
        minimum = min(soa.ttl, min(rd.minimum for rd in soa))
        return dns.rrset.from_rdata_list(self.origin, minimum, list(soa))


@dataclass
class Resolution:
    """The outcome of a lookup in a :class:`ZoneSet`, before it becomes a DNS message."""

    rcode: dns.rcode.Rcode
    """NOERROR (answer or NODATA), NXDOMAIN, or REFUSED (no fake zone covers the name)."""
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    """The answer section: CNAME chain first, then the records asked for."""
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    """The SOA of the zone of a negative answer."""
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    """Addresses of MX, NS and SRV targets that are in the zones."""
    authoritative: bool = False
    """True when a fake zone covers the name asked for."""


def _auto_origin(name: dns.name.Name) -> dns.name.Name:
    """The origin of the zone created for a name no zone covers yet.

    Forward names get their last two labels (``mx1.example.test`` -> ``example.test``); reverse
    names a /24 (``2.0.0.127.in-addr.arpa`` -> ``0.0.127.in-addr.arpa``) or a /64 for IPv6.
    """
    labels = name.labels[:-1]  # without the root label
    lowered = tuple(label.lower() for label in labels)
    if lowered[-2:] == (b"in-addr", b"arpa"):
        keep = 5
    elif lowered[-2:] == (b"ip6", b"arpa"):
        keep = 18
    else:
        keep = 2
    return dns.name.Name((*labels[-keep:], b"")) if len(labels) > keep else name


class _LoadTransaction(dns.zonefile.RRsetsReaderTransaction):
    """dnspython's rrset collector, with the SOA records of the text kept aside in :attr:`soas`.

    dnspython's transaction refuses an SOA away from its origin, and a text may start several
    zones: so each SOA is taken before it reaches that check, in the public ``add`` that the
    zone-file reader calls once per record (``add(name, ttl, rdata)``).
    """

    def __init__(self, manager: dns.zonefile.RRSetsReaderManager) -> None:
        super().__init__(manager, True, False)  # type: ignore[no-untyped-call]
        self.soas: dict[dns.name.Name, dns.rrset.RRset] = {}
        """The SOA of each owner (the last one given: a zone keeps one)."""

    def add(self, *args: Any) -> None:
        if len(args) == 3 and isinstance(args[2], dns.rdata.Rdata):
            name, ttl, rdata = args
            if rdata.rdtype == dns.rdatatype.SOA:
                earlier = self.soas.get(name)
                if earlier is not None:  # as in an rdataset: the last SOA, the lowest TTL
                    ttl = min(ttl, earlier.ttl)
                self.soas[name] = dns.rrset.from_rdata(name, ttl, rdata)
                return
        super().add(*args)


class _LoadManager(dns.zonefile.RRSetsReaderManager):
    def writer(self, replacement: bool = False) -> _LoadTransaction:
        return _LoadTransaction(self)


def _parse_master_text(text: str) -> list[dns.rrset.RRset]:
    """Every rrset of master-file text, whatever its owner, SOAs first (dnspython's zone
    reader, with directives; the zone origin is the root so that no name is skipped)."""
    manager = _LoadManager(origin=dns.name.root, relativize=False, rdclass=_IN)
    with manager.writer(True) as txn:
        tokenizer = dns.tokenizer.Tokenizer(text, "<string>")
        reader = dns.zonefile.Reader(
            tokenizer, _IN, txn, allow_directives=True, default_ttl=DEFAULT_TTL
        )
        reader.read()
    return [*txn.soas.values(), *manager.rrsets]


class ZoneSet(RecordBuilder):
    """The zones served by one fake nameserver, and the authoritative answers they give.

    A record goes to the deepest zone whose origin covers its name; when none does, a zone is
    created for it (see :meth:`zone_for`). An SOA record at a name that is not yet an origin
    starts a new zone there. Names outside every zone get REFUSED: nothing is forwarded.
    """

    def __init__(self) -> None:
        self._zones: dict[dns.name.Name, Zone] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<ZoneSet {', '.join(str(o) for o in self._zones) or 'empty'}>"

    def __len__(self) -> int:
        return len(self._zones)

    @property
    def zones(self) -> dict[dns.name.Name, Zone]:
        """A copy of the zones, by origin."""
        with self._lock:
            return dict(self._zones)

    def clear(self) -> None:
        """Remove every zone."""
        with self._lock:
            self._zones.clear()

    def _covering(self, name: dns.name.Name) -> Zone | None:
        zones = self._zones
        while True:
            zone = zones.get(name)
            if zone is not None:
                return zone
            if len(name) <= 1:
                return None
            name = name.parent()

    def find_zone(self, name: NameLike) -> Zone | None:
        """The deepest zone covering ``name``, or None."""
        return self._covering(to_name(name))

    def covers(self, name: NameLike) -> bool:
        """True when ``name`` is inside one of the zones (so the fake nameserver answers it)."""
        try:
            owner = to_name(name)
        except (ValueError, TypeError):
            return False
        return self._covering(owner) is not None

    def zone_for(self, name: NameLike) -> Zone:
        """The deepest zone covering ``name``, created when there is none: the origin is the
        last two labels of a forward name, the /24 (IPv4) or /64 (IPv6) of a reverse name."""
        owner = to_name(name)
        with self._lock:
            zone = self._covering(owner)
            if zone is None:
                zone = self.add_zone(_auto_origin(owner))
            return zone

    def add_zone(self, zone: Zone | NameLike) -> Zone:
        """Serve ``zone`` (a :class:`Zone`, or an origin for a new empty one). A zone already
        served at that origin is replaced. Returns the zone."""
        if not isinstance(zone, Zone):
            zone = Zone(zone)
        with self._lock:
            # One lock for the set and its zones: answers read several zones at once.
            zone._lock = self._lock
            self._zones[zone.origin] = zone
        return zone

    def remove_zone(self, origin: NameLike) -> None:
        """Stop serving the zone at ``origin`` (``KeyError`` when there is none)."""
        name = to_name(origin, "origin")
        with self._lock:
            if name not in self._zones:
                served = ", ".join(str(o) for o in self._zones) or "none"
                raise KeyError(f"no zone at {name}; zones served: {served}")
            del self._zones[name]

    def _add_rdatas(
        self,
        name: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        rdatas: list[dns.rdata.Rdata],
        ttl: int,
    ) -> None:
        with self._lock:
            if rdtype == dns.rdatatype.SOA and name not in self._zones:
                zone = self.add_zone(name)
            else:
                zone = self.zone_for(name)
            zone._add_rdatas(name, rdtype, rdatas, ttl)

    def remove(self, name: NameLike, rdtype: str | int | None = None) -> None:
        """Remove the records of ``rdtype`` at ``name`` (all types when None); see
        :meth:`Zone.remove`. ``KeyError`` when nothing is there."""
        owner = to_name(name)
        with self._lock:
            zone = self._covering(owner)
            if zone is None:
                raise KeyError(f"no records at {owner}: no fake zone covers it")
            zone.remove(owner, rdtype)

    def load(self, text: str, origin: NameLike | None = None) -> None:
        """Add the records of master-file ``text`` (``$ORIGIN``, ``$TTL``, ``@``, relative names).

        ``origin`` is the initial ``$ORIGIN`` and makes sure a zone exists there; without it
        the text must use absolute names or set ``$ORIGIN`` before its first relative name.
        An SOA in the text starts (or replaces the SOA of) a zone at its owner; NS records at
        an origin replace the default NS. A missing ``$TTL`` means 300 s. The text is dedented
        first, so an indented triple-quoted string works.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be master-file text (str), not {type(text).__name__}")
        start = to_name(origin, "origin") if origin is not None else _NO_ORIGIN
        try:
            # Dedent: a triple-quoted string in a test is indented as a whole, and a leading
            # blank in a zone file means "same owner as the previous line".
            parsed = _parse_master_text(f"$ORIGIN {start}\n{textwrap.dedent(text)}")
        except dns.exception.DNSException as exc:
            message = str(exc)
            found = _LINE_RE.match(message)
            if found:
                # dnspython counts the line after a bad record's end: "near" is honest.
                message = f"near line {int(found.group(1)) - 1}: {message[found.end() :]}"
            raise ValueError(f"cannot load zone text: {message}") from None
        rrsets = [(rrset.name, rrset) for rrset in parsed]
        for name, _rds in rrsets:
            if name.is_subdomain(_NO_ORIGIN):
                relative = name.relativize(_NO_ORIGIN)
                raise ValueError(
                    f"the zone text uses the relative name {relative!s} but has no origin: "
                    "pass origin='example.test' or begin the text with '$ORIGIN example.test.'"
                )
        # SOAs first so that they start zones before other records are placed.
        rrsets.sort(key=lambda item: item[1].rdtype != dns.rdatatype.SOA)
        with self._lock:
            if origin is not None and start not in self._zones:
                self.add_zone(start)
            for name, rds in rrsets:
                self._add_rdatas(name, rds.rdtype, list(rds), rds.ttl)

    def to_text(self) -> str:
        """Every zone in master-file syntax."""
        with self._lock:
            zones = [self._zones[o] for o in sorted(self._zones)]
            return "".join(f"; zone {z.origin}\n{z.to_text()}" for z in zones)

    # -- answering -------------------------------------------------------------------------
    def resolve(self, qname: NameLike, rdtype: str | int) -> Resolution:
        """Look ``qname``/``rdtype`` up the way an authoritative server answers it."""
        name = to_name(qname)
        qtype = to_rdtype(rdtype)
        with self._lock:
            return self._resolve(name, qtype)

    def _resolve(self, name: dns.name.Name, qtype: dns.rdatatype.RdataType) -> Resolution:
        zone = self._covering(name)
        if zone is None:
            return Resolution(dns.rcode.REFUSED)
        result = Resolution(dns.rcode.NOERROR, authoritative=True)
        seen = {name}
        for _ in range(MAX_CNAME_HOPS):
            node, exists = zone._find(name)
            if not exists:
                result.rcode = dns.rcode.NXDOMAIN
                result.authority.append(zone._negative_soa())
                return result
            if node is not None and qtype == dns.rdatatype.ANY:
                for rds in node.rdatasets:
                    result.answer.append(dns.rrset.from_rdata_list(name, rds.ttl, list(rds)))
                return result
            rds = node.get_rdataset(_IN, qtype) if node is not None else None
            if rds is not None:
                result.answer.append(dns.rrset.from_rdata_list(name, rds.ttl, list(rds)))
                self._add_glue(result, rds)
                return result
            cname = node.get_rdataset(_IN, dns.rdatatype.CNAME) if node is not None else None
            if cname is None:
                result.authority.append(zone._negative_soa())
                return result
            result.answer.append(dns.rrset.from_rdata_list(name, cname.ttl, list(cname)))
            name = cname[0].target
            next_zone = self._covering(name)
            if next_zone is None or name in seen:
                # The chain leaves the fake zones (or loops): the client follows it, as with
                # any authoritative server.
                return result
            seen.add(name)
            zone = next_zone
        return result

    def _add_glue(self, result: Resolution, rds: dns.rdataset.Rdataset) -> None:
        if rds.rdtype not in (dns.rdatatype.MX, dns.rdatatype.NS, dns.rdatatype.SRV):
            return
        for rdata in rds:
            target = getattr(rdata, "exchange", None) or getattr(rdata, "target", None)
            if not isinstance(target, dns.name.Name):
                continue
            zone = self._covering(target)
            node = zone.zone.nodes.get(target) if zone is not None else None
            if node is None:
                continue
            for type_ in (dns.rdatatype.A, dns.rdatatype.AAAA):
                glue = node.get_rdataset(_IN, type_)
                if glue is not None:
                    rrset = dns.rrset.from_rdata_list(target, glue.ttl, list(glue))
                    if rrset not in result.additional:
                        result.additional.append(rrset)

    def negative(self, qname: NameLike, rcode: dns.rcode.Rcode) -> Resolution:
        """A negative answer with ``rcode``, carrying the covering zone's SOA when there is one
        (used for injected NXDOMAIN)."""
        name = to_name(qname)
        with self._lock:
            zone = self._covering(name)
            result = Resolution(rcode, authoritative=zone is not None)
            if zone is not None:
                result.authority.append(zone._negative_soa())
            return result

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        """The response to a DNS query message (no size limit applied; see the server)."""
        response = make_response(query)
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if query.edns > 0:
            response.set_rcode(dns.rcode.BADVERS)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        if question.rdclass not in (_IN, dns.rdataclass.ANY) or question.rdtype in (
            dns.rdatatype.AXFR,
            dns.rdatatype.IXFR,
        ):
            response.set_rcode(dns.rcode.REFUSED)
            return response
        with self._lock:
            result = self._resolve(question.name, question.rdtype)
        return fill_response(response, result)


#: The EDNS UDP payload size the fake nameserver advertises (the DNS Flag Day 2020 value).
EDNS_PAYLOAD = 1232


def make_response(query: dns.message.Message) -> dns.message.Message:
    """An empty response to ``query`` (question copied, EDNS mirrored)."""
    return dns.message.make_response(query, our_payload=EDNS_PAYLOAD)


def fill_response(response: dns.message.Message, result: Resolution) -> dns.message.Message:
    """Copy a :class:`Resolution` into a response message skeleton; returns it."""
    response.set_rcode(result.rcode)
    if result.authoritative:
        response.flags |= dns.flags.AA
    response.answer.extend(result.answer)
    response.authority.extend(result.authority)
    response.additional.extend(result.additional)
    return response
