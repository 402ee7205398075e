"""Reference: FakeDNS without pytest fixtures (docs/reference/fakedns.md)."""

from __future__ import annotations

import asyncio
import socket

import dns.resolver

from pytest_smtp.fakedns import FakeDNS


def test_fake_dns_outside_the_fixture():
    with FakeDNS() as fake:  # a real nameserver on 127.0.0.1, UDP and TCP, one port
        fake.add_mx("example.test", "mx1.example.test")
        fake.add_a("mx1.example.test", "127.0.0.2")

        # Ask it directly, without patching anything:
        resolver = fake.sync_resolver()
        assert resolver.resolve("mx1.example.test", "A")[0].address == "127.0.0.2"

        # An asyncio resolver for code running on an event loop:
        answer = asyncio.run(fake.resolver().resolve("example.test", "MX"))
        assert str(answer[0].exchange) == "mx1.example.test."

        # Or patch it in for code that uses the default resolver and getaddrinfo:
        with fake.patch():
            assert dns.resolver.resolve("example.test", "MX")[0].preference == 10
            assert socket.gethostbyname("mx1.example.test") == "127.0.0.2"

        assert [(q.name, q.rdtype, q.transport) for q in fake.queries] == [
            ("mx1.example.test", "A", "udp"),
            ("example.test", "MX", "udp"),
            ("example.test", "MX", "udp"),
            ("mx1.example.test", "A", "udp"),
        ]
