"""How-to: test code that looks up MX records (docs/how-to/dns-mx.md)."""

from __future__ import annotations

import socket

import dns.resolver
import pytest


# The code under test: where does mail for a domain go? (RFC 5321 section 5.1)
class NoMailDomain(Exception):
    """The domain does not accept mail."""


def mail_hosts(domain: str) -> list[str]:
    try:
        answer = dns.resolver.resolve(domain, "MX")
    except dns.resolver.NoAnswer:
        return [domain]  # no MX but the name exists: the implicit MX is the domain itself
    except dns.resolver.NXDOMAIN:
        raise NoMailDomain(f"{domain} does not exist") from None
    records = sorted(answer, key=lambda r: r.preference)
    if len(records) == 1 and records[0].exchange == dns.name.root:
        raise NoMailDomain(f"{domain} publishes a null MX (RFC 7505)")
    return [str(r.exchange).rstrip(".") for r in records]


# The tests.
def test_mx_records_in_preference_order(smtp_dns):
    smtp_dns.add_mx("example.test", "backup.example.test", preference=20)
    smtp_dns.add_mx("example.test", "mx1.example.test", preference=10)
    assert mail_hosts("example.test") == ["mx1.example.test", "backup.example.test"]
    assert smtp_dns.queries.names() == ["example.test"]


def test_no_mx_means_the_implicit_mx(smtp_dns):
    smtp_dns.add_a("example.test", "127.0.0.2")  # the name exists, without MX: NODATA
    assert mail_hosts("example.test") == ["example.test"]


def test_a_missing_domain_is_not_a_mail_domain(smtp_dns):
    smtp_dns.add_a("example.test", "127.0.0.2")
    with pytest.raises(NoMailDomain, match="does not exist"):
        mail_hosts("typo.example.test")  # NXDOMAIN
    assert smtp_dns.queries[0].rcode == "NXDOMAIN"


def test_null_mx(smtp_dns):
    smtp_dns.add_mx("example.test", ".", preference=0)
    with pytest.raises(NoMailDomain, match="null MX"):
        mail_hosts("example.test")


def test_zone_file_text_and_getaddrinfo(smtp_dns):
    smtp_dns.load(
        """
        $ORIGIN example.test.
        @     MX 10 mx1
        mx1   A  127.0.0.2
        www   CNAME mx1
        """
    )
    host = mail_hosts("example.test")[0]
    # socket.getaddrinfo (and so smtplib, asyncio, aiosmtplib) sees the fake names too.
    assert socket.gethostbyname(host) == "127.0.0.2"
    assert socket.gethostbyname("www.example.test") == "127.0.0.2"
    # ...and every other name still resolves as usual.
    assert socket.gethostbyname("localhost").startswith("127.")
