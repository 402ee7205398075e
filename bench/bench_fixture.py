"""Per-test overhead of an SMTP server fixture, against the peers, in one run.

Four generated modules of 100 tests run in ONE pytest process per repetition:
empty tests (the baseline), pytest_smtp ``smtp_server``, smtpdfix ``smtpd`` and
pytest-localserver ``smtpserver``; each non-empty test sends one small message with smtplib and
asserts it arrived. Per-test cost = wall time of setup + call + teardown; the overhead of a
fixture is its mean per test minus the baseline's, in the same process. Figures are medians over
the repetitions. Prints figures; passes or fails nothing.

Run: .venv/bin/python bench/bench_fixture.py [--repetitions N] [--tests N]
"""

from __future__ import annotations

import argparse
import statistics

from _support import (
    CLIENT_NAME,
    ModuleTimes,
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
    print(f"{'fixture':34} {'ms/test':>8} {'overhead':>9} {'first test':>11} {'median test':>12}")
    for name, label in labels.items():
        means = [statistics.mean(rep) * 1000 for rep in times[name]]
        over = [m - b for m, b in zip(means, base_means, strict=True)]
        firsts = [rep[0] * 1000 for rep in times[name]]
        medians = [statistics.median(rep) * 1000 for rep in times[name]]
        overheads[name] = median(over)
        print(
            f"{label:34} {median(means):8.2f} {median(over):9.2f} "
            f"{median(firsts):8.1f} ms {median(medians):9.2f} ms"
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
    print(
        f"{args.tests} tests per module, all modules in one pytest process, "
        f"{args.repetitions} repetitions (medians shown; overhead = mean per test - baseline)"
    )
    times = run_pytest_modules(modules, repetitions=args.repetitions)
    overheads = summarize(times, labels, "test_a_baseline", "test_b_ours", "test_c_smtpdfix")
    if "test_c_smtpdfix" in overheads:
        ratio = overheads["test_b_ours"] / overheads["test_c_smtpdfix"]
        verdict = "met" if ratio <= 0.25 else "NOT met"
        print(f"target: overhead <= 1/4 of smtpdfix's -> {fmt_ratio(ratio)}: {verdict}")


if __name__ == "__main__":
    main()
