"""FakeDNS.patch(): dnspython and socket lookups diverted for the fake names only, then restored."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import dns.asyncresolver
import dns.resolver
import pytest

from pytest_smtp.engine import EngineError, get_engine
from pytest_smtp.fakedns import FakeDNS
from pytest_smtp.fakedns.patch import active_servers


@pytest.fixture(scope="module")
def server() -> Iterator[FakeDNS]:
    with FakeDNS() as fake:
        yield fake
    assert fake.errors == []


@pytest.fixture
def fake(server: FakeDNS) -> FakeDNS:
    server.reset()
    server.add_mx("example.test", "mx1.example.test", 10)
    server.add_a("mx1.example.test", ["127.0.0.2", "127.0.0.3"])
    server.add_aaaa("mx1.example.test", "::1")
    server.add_cname("www.example.test", "mx1.example.test")
    server.add_a("v4only.example.test", "127.0.0.4")
    return server


def _originals() -> tuple[object, ...]:
    return (
        socket.getaddrinfo,
        socket.gethostbyname,
        socket.gethostbyname_ex,
        dns.resolver.default_resolver,
        dns.asyncresolver.default_resolver,
        dns.resolver.BaseResolver.read_resolv_conf,
    )


def test_getaddrinfo_for_a_fake_name_asks_the_fake_nameserver(fake: FakeDNS) -> None:
    with fake.patch():
        infos = socket.getaddrinfo("mx1.example.test", 25, type=socket.SOCK_STREAM)
    assert [(i[0], i[1], i[2], i[4]) for i in infos] == [
        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, ("127.0.0.2", 25)),
        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, ("127.0.0.3", 25)),
        (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, ("::1", 25, 0, 0)),
    ]
    assert [(q.name, q.rdtype) for q in fake.queries] == [
        ("mx1.example.test", "A"),
        ("mx1.example.test", "AAAA"),
    ]


def test_getaddrinfo_family_service_names_and_socket_types(fake: FakeDNS) -> None:
    with fake.patch():
        v6 = socket.getaddrinfo("mx1.example.test", "smtp", socket.AF_INET6, socket.SOCK_STREAM)
        every_type = socket.getaddrinfo("v4only.example.test", None, socket.AF_INET)
        udp = socket.getaddrinfo("v4only.example.test", "53", proto=socket.IPPROTO_UDP)
    assert [i[4] for i in v6] == [("::1", 25, 0, 0)]
    assert [(i[1], i[2]) for i in every_type] == [
        (socket.SOCK_STREAM, socket.IPPROTO_TCP),
        (socket.SOCK_DGRAM, socket.IPPROTO_UDP),
        (socket.SOCK_RAW, 0),
    ]
    assert every_type[0][4] == ("127.0.0.4", 0)
    assert [(i[1], i[4]) for i in udp] == [(socket.SOCK_DGRAM, ("127.0.0.4", 53))]


def test_getaddrinfo_follows_cnames_and_reports_the_canonical_name(fake: FakeDNS) -> None:
    with fake.patch():
        infos = socket.getaddrinfo(
            "www.example.test", 25, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_CANONNAME
        )
    assert [i[3] for i in infos] == ["mx1.example.test", ""]
    assert [i[4][0] for i in infos] == ["127.0.0.2", "127.0.0.3"]


def test_cname_out_of_the_fake_zones_is_resolved_by_the_original(fake: FakeDNS) -> None:
    fake.add_cname("local.example.test", "localhost")
    with fake.patch():
        infos = socket.getaddrinfo("local.example.test", 25, socket.AF_INET, socket.SOCK_STREAM)
    assert infos == socket.getaddrinfo("localhost", 25, socket.AF_INET, socket.SOCK_STREAM)


def test_getaddrinfo_errors_match_the_c_library(fake: FakeDNS) -> None:
    fake.add_mx("mailonly.example.test", "mx1.example.test")
    fake.fault("broken.example.test", "servfail")
    with fake.patch():
        with pytest.raises(socket.gaierror) as nxdomain:
            socket.getaddrinfo("nope.example.test", 25)
        with pytest.raises(socket.gaierror) as nodata:
            socket.getaddrinfo("mailonly.example.test", 25)
        with pytest.raises(socket.gaierror) as servfail:
            socket.getaddrinfo("broken.example.test", 25)
        with pytest.raises(socket.gaierror) as family:
            socket.getaddrinfo("mx1.example.test", 25, socket.AF_UNIX)
    assert nxdomain.value.errno == socket.EAI_NONAME
    assert nodata.value.errno == getattr(socket, "EAI_NODATA", socket.EAI_NONAME)
    assert servfail.value.errno == socket.EAI_AGAIN
    assert family.value.errno == socket.EAI_FAMILY


def test_other_names_go_to_the_original_functions_and_never_to_the_fake(fake: FakeDNS) -> None:
    expected = socket.getaddrinfo("localhost", 25, socket.AF_INET, socket.SOCK_STREAM)
    with fake.patch():
        assert socket.getaddrinfo("localhost", 25, socket.AF_INET, socket.SOCK_STREAM) == expected
        assert socket.getaddrinfo("127.0.0.2", 25, socket.AF_INET)[0][4] == ("127.0.0.2", 25)
        assert socket.getaddrinfo(b"127.0.0.1", 25, socket.AF_INET)[0][4] == ("127.0.0.1", 25)
        assert socket.gethostbyname("localhost").startswith("127.")
        assert not fake.is_fake("localhost")
    assert list(fake.queries) == []


def test_gethostbyname_and_gethostbyname_ex(fake: FakeDNS) -> None:
    with fake.patch():
        assert socket.gethostbyname("mx1.example.test") == "127.0.0.2"
        assert socket.gethostbyname_ex("www.example.test") == (
            "mx1.example.test",
            ["www.example.test"],
            ["127.0.0.2", "127.0.0.3"],
        )
        with pytest.raises(socket.gaierror):
            socket.gethostbyname("nope.example.test")


def test_dnspython_defaults_and_new_resolvers_ask_the_fake(fake: FakeDNS) -> None:
    before = _originals()
    with fake.patch():
        assert dns.resolver.resolve("example.test", "MX")[0].exchange.to_text() == (
            "mx1.example.test."
        )
        assert dns.resolver.get_default_resolver().nameservers == [fake.host]
        created = dns.resolver.Resolver()
        assert (created.nameservers, created.port) == ([fake.host], fake.port)
        created_async = dns.asyncresolver.Resolver()
        assert (created_async.nameservers, created_async.port) == ([fake.host], fake.port)
        # configure=False means "I configure it myself": left alone.
        assert dns.resolver.Resolver(configure=False).nameservers == []
        assert created.resolve("www.example.test", "A")[0].address == "127.0.0.2"
    assert _originals() == before


def test_patch_uses_the_servers_lifetime(fake: FakeDNS) -> None:
    fake.lifetime = 0.5
    with fake.patch():
        assert dns.resolver.get_default_resolver().lifetime == 0.5
        assert dns.resolver.Resolver().lifetime == 0.5
        # Changed inside the block (as a test does under the fixture): defaults follow.
        fake.lifetime = 0.25
        assert dns.resolver.get_default_resolver().lifetime == 0.25
        assert dns.asyncresolver.get_default_resolver().lifetime == 0.25


@pytest.mark.asyncio
async def test_asyncio_getaddrinfo_and_async_default_resolver(fake: FakeDNS) -> None:
    with fake.patch():
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo("mx1.example.test", 25, family=socket.AF_INET)
        answer = await dns.asyncresolver.resolve("example.test", "MX")
    assert {i[4] for i in infos} == {("127.0.0.2", 25), ("127.0.0.3", 25)}
    assert str(answer[0].exchange) == "mx1.example.test."


def test_lookups_from_another_thread(fake: FakeDNS) -> None:
    results: list[str] = []
    with fake.patch():
        thread = threading.Thread(
            target=lambda: results.append(socket.gethostbyname("www.example.test"))
        )
        thread.start()
        thread.join(10)
    assert results == ["127.0.0.2"]


def test_a_lookup_on_the_engines_own_loop_is_answered_in_process(fake: FakeDNS) -> None:
    async def lookup() -> str:
        return socket.gethostbyname("mx1.example.test")

    with fake.patch():
        assert get_engine().call(lookup(), timeout=10) == "127.0.0.2"
    assert fake.queries[-1].transport == "local"


def test_everything_is_restored_when_the_block_raises(fake: FakeDNS) -> None:
    before = _originals()
    with pytest.raises(RuntimeError, match="boom"), fake.patch():
        raise RuntimeError("boom")
    assert _originals() == before
    assert active_servers() == ()


def test_nested_and_repeated_patches(fake: FakeDNS) -> None:
    before = _originals()
    with fake.patch():
        inner_default = None
        with fake.patch():
            inner_default = dns.resolver.default_resolver
            assert socket.gethostbyname("mx1.example.test") == "127.0.0.2"
        assert socket.gethostbyname("mx1.example.test") == "127.0.0.2"
        assert dns.resolver.default_resolver is not inner_default
        assert active_servers() == (fake,)
    assert _originals() == before
    with fake.patch():
        assert socket.gethostbyname("mx1.example.test") == "127.0.0.2"
    assert _originals() == before


def test_two_servers_the_innermost_wins_for_its_names(fake: FakeDNS) -> None:
    before = _originals()
    fake.add_a("host.outer.test", "127.0.0.5")
    with FakeDNS() as other:
        other.add_a("mx1.example.test", "127.0.0.9")
        with fake.patch(), other.patch():
            assert socket.gethostbyname("mx1.example.test") == "127.0.0.9"
            assert socket.gethostbyname("host.outer.test") == "127.0.0.5"
            # The inner server owns example.test now: its zone has no v4only.
            with pytest.raises(socket.gaierror):
                socket.gethostbyname("v4only.example.test")
            assert dns.resolver.get_default_resolver().port == other.port
    assert _originals() == before


def test_exits_out_of_order_still_restore_everything(fake: FakeDNS) -> None:
    before = _originals()
    with FakeDNS() as other:
        first = fake.patch()
        second = other.patch()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert dns.resolver.get_default_resolver().port == other.port
        second.__exit__(None, None, None)
    assert _originals() == before


def test_a_leaked_hook_passes_names_through(fake: FakeDNS) -> None:
    with fake.patch():
        hook = socket.getaddrinfo
    expected = socket.getaddrinfo("localhost", 25, socket.AF_INET, socket.SOCK_STREAM)
    assert hook("localhost", 25, socket.AF_INET, socket.SOCK_STREAM) == expected


def test_patching_a_server_that_is_not_started_fails_cleanly() -> None:
    before = _originals()
    with pytest.raises(EngineError, match="not started"), FakeDNS().patch():
        pass
    assert _originals() == before
