"""Run every benchmark script in bench/ in turn, then print a summary of the target lines.

Each script runs in its own process with a time limit; one that fails or times out is reported
and the rest still run. Prints figures; passes or fails nothing (exit status 0 unless a script
could not run at all).

Run: .venv/bin/python bench/run_all.py [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Arguments that make each script shorter, for a smoke run (--quick).
QUICK_ARGS = {
    "bench_fixture.py": ["--repetitions", "3"],
    "bench_instructions.py": ["--long", "60", "--servers", "floor", "ours"],
    "bench_tls.py": ["--repetitions", "2"],
    "bench_throughput.py": ["--repetitions", "1", "--messages", "500"],
    "bench_transaction.py": ["--rounds", "3"],
    "bench_memory.py": ["--size-mib", "5"],
    "bench_dns.py": ["--queries", "500", "--iterations", "200"],
    "bench_imap.py": ["--iterations", "200", "--repeat", "3"],
    "bench_parse.py": ["--repetitions", "5"],
}

#: Seconds a script may take before it is stopped.
TIME_LIMIT = 150.0


def scripts(only: list[str]) -> list[Path]:
    """The bench_*.py scripts, in name order (or those whose name contains one of ``only``)."""
    found = sorted(HERE.glob("bench_*.py"))
    if only:
        found = [path for path in found if any(word in path.name for word in only)]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    parser.add_argument("--only", nargs="*", default=[], help="run only scripts matching these")
    args = parser.parse_args()
    summary: list[str] = []
    started_all = time.perf_counter()
    for path in scripts(args.only):
        extra = QUICK_ARGS.get(path.name, []) if args.quick else []
        command = [sys.executable, str(path), *extra]
        print(f"\n=== {path.name} {' '.join(extra)}".rstrip(), flush=True)
        started = time.perf_counter()
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=TIME_LIMIT, check=False
            )
        except subprocess.TimeoutExpired:
            summary.append(f"{path.name}: stopped after {TIME_LIMIT:.0f} s")
            print(f"stopped after {TIME_LIMIT:.0f} s", flush=True)
            continue
        elapsed = time.perf_counter() - started
        print(done.stdout, end="", flush=True)
        if done.returncode != 0:
            print(done.stderr, end="", file=sys.stderr, flush=True)
            summary.append(f"{path.name}: FAILED (exit {done.returncode}) after {elapsed:.0f} s")
            continue
        targets = [line for line in done.stdout.splitlines() if line.startswith("target")]
        summary.append(f"{path.name} ({elapsed:.0f} s)")
        summary.extend(f"  {line}" for line in targets)
    print(f"\n=== summary ({time.perf_counter() - started_all:.0f} s in all)")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
