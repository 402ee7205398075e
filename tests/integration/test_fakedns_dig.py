"""dig (Debian package dnsutils) gets the same answers from FakeDNS as dnspython, UDP and TCP."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from pytest_smtp.fakedns import FakeDNS

pytestmark = pytest.mark.external


@pytest.fixture(scope="module")
def dig() -> str:
    path = shutil.which("dig")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("dig is required under CI: install the Debian package dnsutils")
        pytest.skip("dig is not installed (apt-get install dnsutils)")
    return path


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDNS]:
    with FakeDNS() as server:
        server.add_mx("example.test", "mx1.example.test", 10)
        server.add_mx("example.test", "mx2.example.test", 20)
        server.add_a("mx1.example.test", "127.0.0.2")
        server.add_cname("www.example.test", "mx1.example.test")
        server.add_txt("example.test", "v=spf1 ip4:127.0.0.0/8 -all")
        for i in range(12):
            server.add_txt("big.example.test", f"record {i:02d} " + "x" * 90)
        yield server
    assert server.errors == []


def _dig(dig: str, fake: FakeDNS, *args: str) -> str:
    host, port = fake.nameserver
    done = subprocess.run(
        [dig, f"@{host}", "-p", str(port), "+time=5", "+tries=1", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _status(output: str) -> str:
    found = re.search(r"status: (\w+)", output)
    assert found, output
    return found.group(1)


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
@pytest.mark.parametrize(
    ("name", "rdtype"),
    [("example.test", "MX"), ("www.example.test", "A"), ("example.test", "TXT")],
)
def test_dig_and_dnspython_agree(
    dig: str, fake: FakeDNS, transport: str, name: str, rdtype: str
) -> None:
    fake.queries.clear()
    out = _dig(dig, fake, transport, "+short", name, rdtype)
    answer = fake.sync_resolver().resolve(name, rdtype)
    expected = [rr.to_text() for rr in answer.response.answer for rr in rr]
    assert out.split("\n")[:-1] == expected
    assert fake.queries[0].transport == {"+notcp": "udp", "+tcp": "tcp"}[transport]


def test_dig_sees_nxdomain_and_nodata(dig: str, fake: FakeDNS) -> None:
    nxdomain = _dig(dig, fake, "nope.example.test", "MX")
    assert _status(nxdomain) == "NXDOMAIN"
    assert "SOA" in nxdomain.split("AUTHORITY SECTION:")[1]
    nodata = _dig(dig, fake, "mx1.example.test", "MX")
    assert _status(nodata) == "NOERROR"
    assert "ANSWER: 0" in nodata
    assert "flags: qr aa" in nodata


def test_dig_sees_refused_outside_the_zones(dig: str, fake: FakeDNS) -> None:
    assert _status(_dig(dig, fake, "gmail.com", "MX")) == "REFUSED"


def test_dig_truncation_and_tcp_fallback(dig: str, fake: FakeDNS) -> None:
    truncated = _dig(dig, fake, "+ignore", "+noedns", "big.example.test", "TXT")
    assert re.search(r"flags: [^;]*\btc\b", truncated), truncated
    fake.queries.clear()
    full = _dig(dig, fake, "+noedns", "+short", "big.example.test", "TXT")
    assert len(full.splitlines()) == 12
    assert [q.transport for q in fake.queries] == ["udp", "tcp"]


def test_dig_sees_injected_faults(dig: str, fake: FakeDNS) -> None:
    fake.fault("example.test", "MX", "servfail", times=1)
    assert _status(_dig(dig, fake, "example.test", "MX")) == "SERVFAIL"
    assert _status(_dig(dig, fake, "example.test", "MX")) == "NOERROR"
