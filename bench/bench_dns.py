"""Benchmark the fake DNS: queries per second over UDP through dnspython, and the per-test cost
of the smtp_dns fixture (reset() + patch() enter/exit). Prints figures; passes or fails nothing.

Run: .venv/bin/python bench/bench_dns.py [--queries N] [--iterations N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import dns.message
import dns.query

from pytest_smtp.fakedns import FakeDNS


def bench_queries(fake: FakeDNS, count: int) -> float:
    """Sequential dnspython queries over UDP (one socket per query, like the stub resolver)."""
    host, port = fake.nameserver
    query = dns.message.make_query("example.test", "MX")
    started = time.perf_counter()
    for _ in range(count):
        dns.query.udp(query, host, port=port, timeout=5)
    return count / (time.perf_counter() - started)


def bench_resolver(fake: FakeDNS, count: int) -> float:
    """The full sync stub resolver (dns.resolver.Resolver.resolve)."""
    resolver = fake.sync_resolver()
    started = time.perf_counter()
    for _ in range(count):
        resolver.resolve("example.test", "MX")
    return count / (time.perf_counter() - started)


def bench_async_resolver(fake: FakeDNS, count: int, concurrency: int = 16) -> float:
    """dns.asyncresolver with ``concurrency`` lookups in flight."""

    async def run() -> float:
        resolver = fake.resolver()
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with semaphore:
                await resolver.resolve("example.test", "MX")

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return count / (time.perf_counter() - started)

    return asyncio.run(run())


def bench_fixture(fake: FakeDNS, iterations: int) -> list[float]:
    """Per-test cost: what the smtp_dns fixture does around each test."""
    costs = []
    for _ in range(iterations):
        fake.add_mx("example.test", "mx1.example.test")  # a test leaves state behind
        started = time.perf_counter()
        fake.reset()
        with fake.patch():
            pass
        costs.append(time.perf_counter() - started)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--iterations", type=int, default=1000)
    args = parser.parse_args()
    with FakeDNS() as fake:
        fake.add_mx("example.test", "mx1.example.test")
        fake.add_a("mx1.example.test", "127.0.0.2")
        bench_queries(fake, 100)  # warm up
        print(f"dns.query.udp, sequential:      {bench_queries(fake, args.queries):8.0f} queries/s")
        print(
            f"dns.resolver.Resolver.resolve:  {bench_resolver(fake, args.queries):8.0f} queries/s"
        )
        rate = bench_async_resolver(fake, args.queries)
        print(f"dns.asyncresolver, 16 in flight: {rate:7.0f} queries/s")
        costs = bench_fixture(fake, args.iterations)
        costs_ms = sorted(c * 1000 for c in costs)
        mean, median = statistics.mean(costs_ms), statistics.median(costs_ms)
        p99 = costs_ms[int(len(costs_ms) * 0.99) - 1]
        print(
            f"fixture per test (reset + patch enter/exit, {args.iterations} iterations): "
            f"mean {mean:.3f} ms, median {median:.3f} ms, p99 {p99:.3f} ms (target <= 1 ms)"
        )


if __name__ == "__main__":
    main()
