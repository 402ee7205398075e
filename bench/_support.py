"""Helpers shared by the benchmark scripts (not a benchmark itself; run_all.py skips it).

Everything here is about measuring fairly: peers are measured in the same run as pytest_smtp,
on loopback, with the same client code, and figures are medians of repetitions.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "CLIENT_NAME",
    "END_MODULE",
    "ModuleTimes",
    "environment_line",
    "fmt_ratio",
    "free_port",
    "median",
    "run_pytest_modules",
    "small_message",
    "thread_cpu",
    "version",
]

#: The name every client gives in EHLO: smtplib would otherwise call socket.getfqdn(), which can
#: wait on DNS and would add the same noise to every fixture.
CLIENT_NAME = "bench-client.example.test"

#: A module that always runs last, so session-scope teardown never lands on a measured test.
END_MODULE = "test_zz_end"

_TIMING_CONFTEST = '''
"""Per-test wall time (setup + call + teardown) by module, written as JSON at session end."""
import json
import os
import time

import pytest

_TIMES = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    started = time.perf_counter()
    yield
    _TIMES.setdefault(item.path.stem, []).append(time.perf_counter() - started)


def pytest_sessionfinish(session, exitstatus):
    with open(os.environ["BENCH_TIMES_FILE"], "w", encoding="utf-8") as out:
        json.dump({"exitstatus": int(exitstatus), "times": _TIMES}, out)
'''

#: Per module: one list of per-test seconds per repetition.
ModuleTimes = dict[str, list[list[float]]]


def small_message(index: int = 0) -> bytes:
    """A small, realistic message (about 300 bytes)."""
    return (
        "From: Alice <alice@example.test>\r\n"
        "To: Bob <bob@example.test>\r\n"
        f"Subject: bench message {index}\r\n"
        f"Message-ID: <bench-{index}@example.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Hello Bob,\r\n"
        "this is a small message sent by the benchmark.\r\n"
    ).encode()


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (for servers that cannot take port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values (a peer that is not installed)."""
    return statistics.median(values) if values else float("nan")


def fmt_ratio(value: float) -> str:
    """``0.21x`` style, or ``n/a``."""
    return "n/a" if value != value else f"{value:.2f}x"


def version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def thread_cpu() -> dict[int, int] | None:
    """CPU time each thread of this process has run so far, in nanoseconds, by native thread
    id (Linux ``/proc/self/task/*/schedstat``); None where that is not available. The
    difference of two calls tells which thread did the work in between: the client (the main
    thread) or the server (the others)."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    times: dict[int, int] = {}
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/schedstat") as stat:
                times[int(task)] = int(stat.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return times


@contextmanager
def cpu_burners(count: int) -> Iterator[None]:
    """``count`` busy loops (processes) for the duration of the block: a busy machine on
    demand, as ``./run.sh stress`` makes one for the suite. ``count=0`` does nothing."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
        for burner in burners:
            burner.wait()


def environment_line() -> str:
    """Python, CPU count and the versions of everything measured, for the report header."""
    parts = [f"Python {platform.python_version()}", f"{os.cpu_count()} CPUs"]
    for dist in ("pytest-smtp-suite", "pytest", "aiosmtpd", "smtpdfix", "pytest-localserver"):
        parts.append(f"{dist} {version(dist) or 'not installed'}")
    return ", ".join(parts)


def run_pytest_modules(
    modules: Mapping[str, str],
    *,
    repetitions: int,
    plugin_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 240.0,
) -> ModuleTimes:
    """Write ``modules`` (name -> source) into a temporary directory and run them all in ONE
    pytest process per repetition; return every test's wall time, per module and repetition.

    The order of the modules is rotated between repetitions so no module always runs first
    (warm caches) or last; :data:`END_MODULE` always runs last to absorb session teardown.
    Raises RuntimeError with pytest's output when any test fails: a failed send is not a figure.
    """
    names = list(modules)
    result: ModuleTimes = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="pytest_smtp-bench-") as tmp:
        folder = Path(tmp)
        # An ini file of its own: the project's pyproject.toml must not apply to the bench run.
        (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        (folder / "conftest.py").write_text(textwrap.dedent(_TIMING_CONFTEST), encoding="utf-8")
        for name, source in modules.items():
            (folder / f"{name}.py").write_text(source, encoding="utf-8")
        (folder / f"{END_MODULE}.py").write_text("def test_end():\n    pass\n", encoding="utf-8")
        times_file = folder / "times.json"
        for rep in range(repetitions):
            shift = rep % len(names)
            order = names[shift:] + names[:shift] + [END_MODULE]
            command = [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                # Plugins irrelevant to the measured fixtures, off so they add no noise.
                "-p",
                "no:xdist",
                "-p",
                "no:asyncio",
                "-p",
                "no:anyio",
                "-p",
                "no:hypothesispytest",
                *plugin_args,
                *(f"{name}.py" for name in order),
            ]
            run_env = dict(os.environ)
            run_env.update(env or {})
            run_env["BENCH_TIMES_FILE"] = str(times_file)
            done = subprocess.run(
                command,
                cwd=folder,
                env=run_env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"benchmark pytest run failed (exit {done.returncode}):\n"
                    f"{' '.join(command)}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
                )
            data = json.loads(times_file.read_text(encoding="utf-8"))
            for name in names:
                result[name].append(data["times"][name])
    return result
