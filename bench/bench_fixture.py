"""Per-test overhead of an SMTP server fixture, against the floor and the peers, in one run.

Generated modules of 100 tests run in ONE pytest process per repetition: empty tests (the
baseline), then pytest_smtp ``smtp_server``, the floor (bench/peers.py's minimal responder
behind a fixture that only empties its list), smtpdfix ``smtpd`` and pytest-localserver
``smtpserver``, each test of which sends one small message with smtplib and asserts it
arrived. Per-test cost = wall time of setup + call + teardown; the overhead of a fixture is
its mean per test minus the baseline's, in the same process (and, for the floor ratio, its
median test minus the baseline's).
Figures are medians over the repetitions. Prints figures; passes or fails nothing.

A test that takes ``smtp_server`` and sends nothing (the idle target) is measured against the
empty test run just before it, in a module where the two alternate (see ``_pairs_module``).

The one-message target depends on the machine: at most 1/4 of smtpdfix's overhead with two CPU
burners (``--burners 2`` starts them for the run), at most 1/6 on a quiet machine. The target
line also prints the floor's own ratio to smtpdfix: what no server in this process can beat.

Run: .venv/bin/python bench/bench_fixture.py [--repetitions N] [--tests N] [--burners N]
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from _support import (
    CLIENT_NAME,
    ModuleTimes,
    cpu_burners,
    environment_line,
    fmt_ratio,
    median,
    run_pytest_modules,
    version,
)

_BASELINE = """
import pytest


@pytest.mark.parametrize("n", range({tests}))
def test_empty(n):
    pass
"""

_HEAD = """
import smtplib

import pytest

MESSAGE = (
    b"From: alice@example.test\\r\\nTo: bob@example.test\\r\\nSubject: hello\\r\\n"
    b"\\r\\nHello Bob.\\r\\n"
)
"""

_OURS = (
    _HEAD
    + """

@pytest.mark.parametrize("n", range({tests}))
def test_send(smtp_server, n):
    with smtplib.SMTP(smtp_server.host, smtp_server.port, local_hostname="{client}") as client:
        client.sendmail("alice@example.test", ["bob@example.test"], MESSAGE)
    assert len(smtp_server.mailbox) == 1
"""
)


def _pairs_module(tests: int) -> str:
    """Empty tests and tests that only take ``smtp_server``, alternating (e0, i0, e1, i1, ...)
    in one module: each idle test is compared with the empty test run just before it, so
    the drift of a shared machine over a run cancels out (the idle target is ~0.1 ms; two
    modules' medians drift apart by more than that between runs)."""
    parts = ["import pytest\n"]
    for n in range(tests):
        parts.append(f"\ndef test_empty_{n}():\n    pass\n")
        parts.append(f"\ndef test_idle_{n}(smtp_server):\n    pass\n")
    return "".join(parts)


_FLOOR = (
    _HEAD
    + """
from peers import floor


@pytest.fixture(scope="session")
def _floor():
    with floor() as running:
        yield running


@pytest.fixture
def floor_server(_floor):
    _floor[2].clear()
    return _floor


@pytest.mark.parametrize("n", range({tests}))
def test_send(floor_server, n):
    host, port, stored = floor_server
    with smtplib.SMTP(host, port, local_hostname="{client}") as client:
        client.sendmail("alice@example.test", ["bob@example.test"], MESSAGE)
    assert len(stored) == 1
"""
)

_SMTPDFIX = (
    _HEAD
    + """

@pytest.mark.parametrize("n", range({tests}))
def test_send(smtpd, n):
    with smtplib.SMTP(smtpd.hostname, smtpd.port, local_hostname="{client}") as client:
        client.sendmail("alice@example.test", ["bob@example.test"], MESSAGE)
    assert len(smtpd.messages) == 1
"""
)

_LOCALSERVER = (
    _HEAD
    + """

@pytest.mark.parametrize("n", range({tests}))
def test_send(smtpserver, n):
    host, port = smtpserver.addr
    with smtplib.SMTP(host, port, local_hostname="{client}") as client:
        client.sendmail("alice@example.test", ["bob@example.test"], MESSAGE)
    assert len(smtpserver.outbox) == 1
"""
)

#: module name -> (label, source template, distribution that must be installed or None)
FIXTURES = {
    "test_a_baseline": ("empty test (baseline)", _BASELINE, None),
    "test_b_ours": ("pytest_smtp smtp_server", _OURS, None),
    "test_b_floor": ("floor (minimal responder)", _FLOOR, None),
    "test_c_smtpdfix": ("smtpdfix smtpd", _SMTPDFIX, "smtpdfix"),
    "test_d_localserver": ("pytest-localserver smtpserver", _LOCALSERVER, "pytest-localserver"),
}


def summarize(
    times: ModuleTimes, labels: dict[str, str], baseline: str, ours: str, reference: str
) -> dict[str, float]:
    """Print one line per module and the ratio of ours to ``reference``; return the medians of
    the overheads (ms per test) by module name."""
    reps = len(times[baseline])
    base_means = [statistics.mean(rep) * 1000 for rep in times[baseline]]
    overheads: dict[str, float] = {}
    # Typical (median) test over the typical empty test, per repetition: the bursts of a
    # shared machine land in the means, rarely in the medians; the floor ratio uses these.
    base_medians = [statistics.median(rep) * 1000 for rep in times[baseline]]
    typical_over = {
        name: [
            statistics.median(rep) * 1000 - b
            for rep, b in zip(times[name], base_medians, strict=True)
        ]
        for name in labels
    }
    floor_typ = typical_over.get("test_b_floor")
    print(
        f"{'fixture':36} {'ms/test':>8} {'overhead':>9} {'first test':>11} {'median test':>12} "
        f"{'typ. over':>10} {'x floor':>8}"
    )
    for name, label in labels.items():
        means = [statistics.mean(rep) * 1000 for rep in times[name]]
        over = [m - b for m, b in zip(means, base_means, strict=True)]
        firsts = [rep[0] * 1000 for rep in times[name]]
        medians = [statistics.median(rep) * 1000 for rep in times[name]]
        overheads[name] = median(over)
        typical = typical_over[name]
        x_floor = (
            fmt_ratio(median([t / f for t, f in zip(typical, floor_typ, strict=True)]))
            if floor_typ is not None and name != baseline
            else ""
        )
        print(
            f"{label:36} {median(means):8.2f} {median(over):9.3f} "
            f"{median(firsts):8.1f} ms {median(medians):9.2f} ms {median(typical):7.3f} ms "
            f"{x_floor:>8}"
        )
    if reference in times:
        ratios = [
            (statistics.mean(o) - statistics.mean(b)) / (statistics.mean(r) - statistics.mean(b))
            for o, r, b in zip(times[ours], times[reference], times[baseline], strict=True)
        ]
        print(
            f"ratio {labels[ours]} / {labels[reference]} overhead: "
            f"{fmt_ratio(overheads[ours] / overheads[reference])} (ratio of medians); "
            f"per repetition {min(ratios):.2f}-{max(ratios):.2f} over {reps} repetitions"
        )
        # Medians of single tests resist the bursts of a shared machine; the means above carry
        # them (and the first test), so both are shown.
        base_typical = median([statistics.median(rep) for rep in times[baseline]])
        typical = {
            name: median([statistics.median(rep) for rep in times[name]]) - base_typical
            for name in (ours, reference)
        }
        print(
            f"ratio of typical (median) tests over baseline: "
            f"{fmt_ratio(typical[ours] / typical[reference])}"
        )
    return overheads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repetitions", type=int, default=9, help="pytest runs (default 9)")
    parser.add_argument("--tests", type=int, default=100, help="tests per module (default 100)")
    parser.add_argument(
        "--burners",
        type=int,
        default=0,
        help="CPU busy loops running beside the bench (2: the busy-machine target; default 0)",
    )
    args = parser.parse_args()
    print(environment_line())
    modules: dict[str, str] = {}
    labels: dict[str, str] = {}
    for name, (label, template, dist) in FIXTURES.items():
        if dist is not None and version(dist) is None:
            print(f"{dist} is not installed: skipped (pip install -e '.[bench]')")
            continue
        modules[name] = template.format(tests=args.tests, client=CLIENT_NAME)
        labels[name] = label
    modules["test_a_pairs"] = _pairs_module(args.tests)
    print(
        f"{args.tests} tests per module, all modules in one pytest process, "
        f"{args.repetitions} repetitions (medians shown; overhead = mean per test - baseline)"
    )
    bench = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(p for p in (bench, os.environ.get("PYTHONPATH", "")) if p)
    load = os.getloadavg()[0]
    with cpu_burners(args.burners):
        times = run_pytest_modules(modules, repetitions=args.repetitions, env={"PYTHONPATH": path})
    overheads = summarize(times, labels, "test_a_baseline", "test_b_ours", "test_c_smtpdfix")
    if "test_c_smtpdfix" in overheads:
        reference = overheads["test_c_smtpdfix"]
        ratio = overheads["test_b_ours"] / reference
        busy = args.burners >= 2
        bound, name = (1 / 4, "1/4") if busy else (1 / 6, "1/6")
        machine = (
            f"{args.burners} CPU burners"
            if busy
            else f"quiet machine: {args.burners} burners, load average {load:.1f} at the start"
        )
        verdict = "met" if ratio <= bound else "NOT met"
        floor_ratio = overheads["test_b_floor"] / reference
        if floor_ratio > bound:
            verdict += f" (out of reach here: the floor itself is over {name})"
        print(
            f"target ({machine}): overhead <= {name} of smtpdfix's -> {fmt_ratio(ratio)}: "
            f"{verdict}; the floor: {fmt_ratio(floor_ratio)}"
        )
    # Per repetition: the median over the pairs of (idle test - the empty test before it).
    paired = [
        statistics.median(idle - empty for empty, idle in zip(rep[0::2], rep[1::2], strict=True))
        * 1000
        for rep in times["test_a_pairs"]
    ]
    idle = median(paired)
    verdict = "met" if idle <= 0.1 else "NOT met"
    print(
        f"target: smtp_server sending nothing <= 0.1 ms over an empty test (each idle test "
        f"against the empty test before it, {args.tests} pairs) -> {idle:.3f} ms "
        f"(per repetition {min(paired):.3f}-{max(paired):.3f}): {verdict}"
    )


if __name__ == "__main__":
    main()
