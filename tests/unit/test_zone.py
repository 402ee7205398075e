"""Fake DNS zones without sockets: building records, loading text, authoritative answers."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from pytest_smtp.fakedns import Zone, ZoneSet


def _n(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


def _texts(rrsets: list[dns.rrset.RRset]) -> list[str]:
    return [rr.to_text() for rr in rrsets]


@pytest.fixture
def zones() -> ZoneSet:
    zs = ZoneSet()
    zs.add_mx("example.test", "mx1.example.test", 10)
    zs.add_mx("example.test", "mx2.example.test", 20)
    zs.add_a("mx1.example.test", "127.0.0.2")
    zs.add_aaaa("mx1.example.test", "::1")
    zs.add_cname("www.example.test", "mx1.example.test")
    return zs


# -- building ---------------------------------------------------------------------------------
def test_records_go_to_an_automatic_zone_of_the_last_two_labels(zones: ZoneSet) -> None:
    assert list(zones.zones) == [_n("example.test")]
    zone = zones.zones[_n("example.test")]
    assert zone.soa[0].mname == _n("ns.example.test")
    assert zones.covers("anything.example.test")
    assert zones.covers("EXAMPLE.TEST.")
    assert not zones.covers("example.org")
    assert not zones.covers("test")


def test_a_deeper_explicit_zone_takes_its_names() -> None:
    zs = ZoneSet()
    zs.add_zone("sub.example.test")
    zs.add_a("host.sub.example.test", "127.0.0.3")
    zs.add_a("host.example.test", "127.0.0.4")
    found = zs.find_zone("host.sub.example.test")
    assert found is not None
    assert found.origin == _n("sub.example.test")
    other = zs.find_zone("host.example.test")
    assert other is not None
    assert other.origin == _n("example.test")


def test_two_add_a_calls_give_two_addresses(zones: ZoneSet) -> None:
    zones.add_a("mx1.example.test", ["127.0.0.5", "127.0.0.6"])
    answer = zones.resolve("mx1.example.test", "A").answer
    assert sorted(rd.address for rd in answer[0]) == ["127.0.0.2", "127.0.0.5", "127.0.0.6"]


def test_an_address_of_the_wrong_kind_is_refused_naming_the_other_method() -> None:
    zs = ZoneSet()
    with pytest.raises(ValueError, match=r"an A record needs an IPv4 address .*'::1'.*add_aaaa"):
        zs.add_a("mx1.example.test", "::1")
    with pytest.raises(
        ValueError, match=r"an AAAA record needs an IPv6 address .*'127.0.0.2'.*add_a "
    ):
        zs.add_aaaa("mx1.example.test", ["::2", "127.0.0.2"])
    zs.add_aaaa("mx1.example.test", ["0:0::2"])
    assert [rd.address for rd in zs.resolve("mx1.example.test", "AAAA").answer[0]] == ["::2"]


def test_add_records_dict_form() -> None:
    zs = ZoneSet()
    zs.add_records(
        {
            "example.test": {"MX": ["10 mx1.example.test"], "TXT": "v=spf1 -all"},
            "mx1.example.test": {"A": "127.0.0.2"},
        },
        ttl=60,
    )
    mx = zs.resolve("example.test", "MX").answer[0]
    assert mx.ttl == 60
    assert mx[0].exchange == _n("mx1.example.test")
    txt = zs.resolve("example.test", "TXT").answer[0]
    assert txt[0].strings == (b"v=spf1 -all",)


def test_txt_longer_than_255_bytes_is_split_into_strings() -> None:
    zs = ZoneSet()
    text = "v=DKIM1; k=rsa; p=" + "A" * 400
    zs.add_txt("sel._domainkey.example.test", text)
    rdata = zs.resolve("sel._domainkey.example.test", "TXT").answer[0][0]
    assert [len(s) for s in rdata.strings] == [255, len(text) - 255]
    assert b"".join(rdata.strings).decode() == text


def test_txt_in_zone_file_syntax_when_quoted() -> None:
    zs = ZoneSet()
    zs.add("example.test", "TXT", '"part one" "part two"')
    assert zs.resolve("example.test", "TXT").answer[0][0].strings == (b"part one", b"part two")


def test_null_mx_is_just_data() -> None:
    zs = ZoneSet()
    zs.add_mx("nomail.example.test", ".", 0)
    rdata = zs.resolve("nomail.example.test", "MX").answer[0][0]
    assert rdata.preference == 0
    assert rdata.exchange == dns.name.root


def test_ptr_from_an_ip_address_makes_a_reverse_zone() -> None:
    zs = ZoneSet()
    zs.add_ptr("127.0.0.2", "mx1.example.test")
    assert list(zs.zones) == [_n("0.0.127.in-addr.arpa")]
    result = zs.resolve("2.0.0.127.in-addr.arpa", "PTR")
    assert result.answer[0][0].target == _n("mx1.example.test")
    assert zs.resolve("3.0.0.127.in-addr.arpa", "PTR").rcode == dns.rcode.NXDOMAIN


def test_ipv6_ptr_zone_is_the_slash_64() -> None:
    zs = ZoneSet()
    zs.add_ptr("::1", "localhost.example.test")
    (origin,) = zs.zones
    assert origin.labels[-3:-1] == (b"ip6", b"arpa")
    assert len(origin) == 16 + 3  # 16 nibbles, ip6, arpa, root


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda z: z.add_a("x.example.test", "mx.example.test"), "IPv4 address"),
        (lambda z: z.add_aaaa("x.example.test", "127.0.0.1"), "IPv6 address"),
        (lambda z: z.add("x.example.test", "MX", "mx.example.test"), "'10 mx1.example.test'"),
        (lambda z: z.add("x.example.test", "BOGUS", "1"), "unknown DNS record type 'BOGUS'"),
        (lambda z: z.add("x.example.test", "ANY", "1"), "query type"),
        (lambda z: z.add("bad..name", "A", "127.0.0.1"), "not a valid DNS name"),
        (lambda z: z.add("", "A", "127.0.0.1"), "must be a DNS name"),
        (lambda z: z.add_a("x.example.test", "127.0.0.1", ttl=-1), "ttl must be"),
        (lambda z: z.add_mx("example.test", "mx.example.test", 70000), "preference"),
        (lambda z: z.add("x.example.test", "A", []), "at least one value"),
    ],
)
def test_bad_input_says_what_was_wrong(call: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        call(ZoneSet())  # type: ignore[operator]
    assert message in str(info.value)


def test_cname_cannot_coexist_with_other_data(zones: ZoneSet) -> None:
    with pytest.raises(ValueError, match="cannot coexist"):
        zones.add_cname("mx1.example.test", "other.example.test")
    with pytest.raises(ValueError, match="is an alias"):
        zones.add_a("www.example.test", "127.0.0.9")
    with pytest.raises(ValueError, match="zone origin"):
        zones.add_cname("example.test", "other.example.test")


def test_a_standalone_zone_refuses_names_outside_it() -> None:
    zone = Zone("example.test")
    with pytest.raises(ValueError, match="outside the zone"):
        zone.add_a("host.example.org", "127.0.0.2")
    zone.add_a("host.example.test", "127.0.0.2")
    zs = ZoneSet()
    assert zs.add_zone(zone) is zone
    assert zs.resolve("host.example.test", "A").answer[0][0].address == "127.0.0.2"


def test_remove(zones: ZoneSet) -> None:
    zones.remove("mx1.example.test", "AAAA")
    assert zones.resolve("mx1.example.test", "AAAA").answer == []
    assert zones.resolve("mx1.example.test", "A").answer
    zones.remove("mx1.example.test")
    assert zones.resolve("mx1.example.test", "A").rcode == dns.rcode.NXDOMAIN
    zones.remove("example.test")  # the apex keeps SOA and NS
    assert zones.resolve("example.test", "MX").rcode == dns.rcode.NOERROR
    assert zones.resolve("example.test", "SOA").answer
    with pytest.raises(KeyError, match=r"no AAAA records at mx1\.example\.test"):
        zones.remove("mx1.example.test", "AAAA")
    with pytest.raises(KeyError, match="no fake zone covers it"):
        zones.remove("host.example.org")
    zones.remove_zone("example.test")
    assert not zones.covers("example.test")


# -- master-file text -------------------------------------------------------------------------
ZONE_TEXT = """
$ORIGIN example.test.
$TTL 60
@        IN MX 10 mx1
         IN MX 20 mx2.example.test.
mx1      IN A  127.0.0.2
mx2      120 IN AAAA ::1
www      IN CNAME mx1
_dmarc   IN TXT "v=DMARC1; p=reject"
$ORIGIN other.test.
mail     IN A  127.0.0.7
"""


def test_load_master_file_text_with_origin_and_ttl_directives() -> None:
    zs = ZoneSet()
    zs.load(ZONE_TEXT)
    assert set(zs.zones) == {_n("example.test"), _n("other.test")}
    mx = zs.resolve("example.test", "MX").answer[0]
    assert mx.ttl == 60
    assert sorted(str(rd.exchange) for rd in mx) == ["mx1.example.test.", "mx2.example.test."]
    assert zs.resolve("mx2.example.test", "AAAA").answer[0].ttl == 120
    assert zs.resolve("_dmarc.example.test", "TXT").answer[0][0].strings == (b"v=DMARC1; p=reject",)
    assert zs.resolve("mail.other.test", "A").answer[0][0].address == "127.0.0.7"


def test_load_with_origin_argument_and_default_ttl() -> None:
    zs = ZoneSet()
    zs.load("@ MX 10 mx1\nmx1 A 127.0.0.2\n", origin="mail.example")
    assert list(zs.zones) == [_n("mail.example")]
    mx = zs.resolve("mail.example", "MX").answer[0]
    assert mx.ttl == 300
    assert mx[0].exchange == _n("mx1.mail.example")


def test_loaded_soa_and_ns_replace_the_defaults() -> None:
    zs = ZoneSet()
    zs.load(
        "$ORIGIN example.test.\n"
        "@ 3600 SOA ns1 admin 7 3600 600 86400 30\n"
        "@ NS ns1\n"
        "ns1 A 127.0.0.53\n"
    )
    zone = zs.zones[_n("example.test")]
    assert zone.soa[0].serial == 7
    ns = zs.resolve("example.test", "NS").answer[0]
    assert [str(rd.target) for rd in ns] == ["ns1.example.test."]
    negative = zs.resolve("nope.example.test", "A")
    assert negative.authority[0].ttl == 30  # min(SOA TTL, SOA minimum), RFC 2308


def test_load_relative_names_without_origin_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"relative name www but has no origin: pass origin="):
        ZoneSet().load("www A 127.0.0.1\n")


def test_load_syntax_error_names_the_users_line() -> None:
    with pytest.raises(ValueError, match=r"cannot load zone text: near line 2: unknown rdatatype"):
        ZoneSet().load("a.example.test. A 127.0.0.1\nb.example.test. BOGUS 1\n")


def test_zone_to_text_round_trips(zones: ZoneSet) -> None:
    again = ZoneSet()
    again.load(zones.to_text())
    assert again.to_text() == zones.to_text()


# -- answers ----------------------------------------------------------------------------------
def test_nxdomain_versus_nodata(zones: ZoneSet) -> None:
    missing = zones.resolve("nope.example.test", "MX")
    assert missing.rcode == dns.rcode.NXDOMAIN
    assert missing.answer == []
    assert _texts(missing.authority) == [
        "example.test. 300 IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 300"
    ]
    nodata = zones.resolve("mx1.example.test", "MX")  # the name exists, without MX
    assert nodata.rcode == dns.rcode.NOERROR
    assert nodata.answer == []
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA


def test_empty_non_terminal_is_nodata_not_nxdomain() -> None:
    zs = ZoneSet()
    zs.add_txt("sel._domainkey.example.test", "v=DKIM1")
    result = zs.resolve("_domainkey.example.test", "TXT")
    assert result.rcode == dns.rcode.NOERROR
    assert result.answer == []


def test_cname_is_chased_inside_and_across_zones(zones: ZoneSet) -> None:
    result = zones.resolve("www.example.test", "A")
    assert _texts(result.answer) == [
        "www.example.test. 300 IN CNAME mx1.example.test.",
        "mx1.example.test. 300 IN A 127.0.0.2",
    ]
    zones.add_cname("alias.other.test", "www.example.test")
    chain = zones.resolve("alias.other.test", "A").answer
    assert [rr.rdtype for rr in chain] == [
        dns.rdatatype.CNAME,
        dns.rdatatype.CNAME,
        dns.rdatatype.A,
    ]
    # Asking for the CNAME itself does not chase it.
    assert _texts(zones.resolve("www.example.test", "CNAME").answer) == [
        "www.example.test. 300 IN CNAME mx1.example.test."
    ]


def test_cname_to_a_missing_name_answers_nxdomain_with_the_chain(zones: ZoneSet) -> None:
    zones.add_cname("dangling.example.test", "gone.example.test")
    result = zones.resolve("dangling.example.test", "A")
    assert result.rcode == dns.rcode.NXDOMAIN  # the rcode is about the last name (RFC 6604)
    assert [rr.rdtype for rr in result.answer] == [dns.rdatatype.CNAME]


def test_cname_leaving_the_zones_and_cname_loops_stop(zones: ZoneSet) -> None:
    zones.add_cname("out.example.test", "mail.example.org")
    result = zones.resolve("out.example.test", "A")
    assert result.rcode == dns.rcode.NOERROR
    assert _texts(result.answer) == ["out.example.test. 300 IN CNAME mail.example.org."]
    zones.add_cname("a.example.test", "b.example.test")
    zones.add_cname("b.example.test", "a.example.test")
    looped = zones.resolve("a.example.test", "A")
    assert len(looped.answer) == 2


def test_wildcard_synthesises_records_for_missing_names() -> None:
    zs = ZoneSet()
    zs.add_mx("*.example.test", "mx1.example.test")
    zs.add_a("host.example.test", "127.0.0.2")
    result = zs.resolve("anything.example.test", "MX")
    assert _texts(result.answer) == ["anything.example.test. 300 IN MX 10 mx1.example.test."]
    # An existing name is not covered by the wildcard: NODATA.
    assert zs.resolve("host.example.test", "MX").answer == []


def test_names_outside_every_zone_are_refused(zones: ZoneSet) -> None:
    result = zones.resolve("gmail.com", "MX")
    assert result.rcode == dns.rcode.REFUSED
    assert not result.authoritative


def test_mx_answer_carries_target_addresses_as_additional(zones: ZoneSet) -> None:
    result = zones.resolve("example.test", "MX")
    assert _texts(result.additional) == [
        "mx1.example.test. 300 IN A 127.0.0.2",
        "mx1.example.test. 300 IN AAAA ::1",
    ]


def test_any_query_returns_every_type(zones: ZoneSet) -> None:
    types = {rr.rdtype for rr in zones.resolve("mx1.example.test", "ANY").answer}
    assert types == {dns.rdatatype.A, dns.rdatatype.AAAA}


def test_answer_builds_an_authoritative_message(zones: ZoneSet) -> None:
    query = dns.message.make_query("example.test", "MX")
    response = zones.answer(query)
    assert response.id == query.id
    assert response.flags & dns.flags.AA
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer[0].rdtype == dns.rdatatype.MX


def test_answer_refuses_zone_transfers_and_rejects_other_opcodes(zones: ZoneSet) -> None:
    axfr = zones.answer(dns.message.make_query("example.test", "AXFR"))
    assert axfr.rcode() == dns.rcode.REFUSED
    notify = dns.message.make_query("example.test", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert zones.answer(notify).rcode() == dns.rcode.NOTIMP
    two = dns.message.make_query("example.test", "MX")
    two.question.append(two.question[0])
    assert zones.answer(two).rcode() == dns.rcode.FORMERR


def test_load_dedents_an_indented_triple_quoted_string() -> None:
    zs = ZoneSet()
    zs.load(
        """
        $ORIGIN example.test.
        @    MX 10 mx1
        mx1  A  127.0.0.2
             AAAA ::1
        """
    )
    assert zs.resolve("mx1.example.test", "AAAA").answer[0][0].address == "::1"


# -- what the zone loader relies on in dnspython (public API only) -----------------------------
def test_loader_takes_each_soa_aside_in_the_public_add_so_several_zones_load() -> None:
    """dnspython's zone-file reader refuses an SOA away from the transaction's origin. The
    loader (``zone._LoadTransaction``) takes SOA records aside in ``Transaction.add``, which
    the reader calls once per record as ``add(name, ttl, rdata)``: if dnspython stops calling
    it that way, the loader's SOA records reach that check again and this test fails."""
    import dns.rdataclass
    import dns.tokenizer
    import dns.zonefile

    from pytest_smtp.fakedns import zone

    text = (
        "a.test. 300 IN SOA ns.a.test. h.a.test. 1 3600 600 86400 300\n"
        "a.test. 200 IN SOA ns.a.test. h.a.test. 2 3600 600 86400 300\n"
        "www.a.test. 60 IN A 127.0.0.1\n"
        "b.test. 300 IN SOA ns.b.test. h.b.test. 1 3600 600 86400 300\n"
    )
    # Without the loader's transaction dnspython refuses it.
    plain = dns.zonefile.RRSetsReaderManager(dns.name.root, False, dns.rdataclass.IN)
    with pytest.raises(ValueError, match="non-origin SOA"), plain.writer(True) as txn:
        dns.zonefile.Reader(
            dns.tokenizer.Tokenizer(text), dns.rdataclass.IN, txn, allow_directives=True
        ).read()
    assert [rrset.to_text() for rrset in zone._parse_master_text(text)] == [
        # One SOA per owner, the last one given, with the lowest TTL (as an rdataset keeps it).
        "a.test. 200 IN SOA ns.a.test. h.a.test. 2 3600 600 86400 300",
        "b.test. 300 IN SOA ns.b.test. h.b.test. 1 3600 600 86400 300",
        "www.a.test. 60 IN A 127.0.0.1",
    ]
