"""Server memory growth for one large message (default 20 MiB), against bare aiosmtpd and the
peers, in one run.

Each server runs alone in a child process (``--serve KIND``); this process is the client, so
the client's own copies of the message are never counted. The child starts its server, sends
itself nothing, warms up with one small message from the parent, then measures either
``tracemalloc`` (peak of traced Python allocations above the level before the large message:
what the server allocates, wherever it happens) or RSS (peak resident set above the level before
the message, the kernel's view: includes allocator slack, excludes nothing). The message stays
stored, so 1x the message size is the floor. Prints figures; passes or fails nothing.

Run: .venv/bin/python bench/bench_memory.py [--size-mib N]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from _support import CLIENT_NAME, environment_line, version
from peers import Running, bare_aiosmtpd, localserver, ours, smtpdfix_server

MIB = 1024 * 1024


@contextmanager
def _ours() -> Iterator[Running]:
    with ours(max_size=64 * MIB) as running:
        yield running


@contextmanager
def _bare() -> Iterator[Running]:
    with bare_aiosmtpd(data_size_limit=64 * MIB) as running:
        yield running


#: kind -> (label, server, distribution that must be installed or None)
SERVERS: dict[str, tuple[str, Callable[[], AbstractContextManager[Running]], str | None]] = {
    "ours": ("pytest_smtp SMTPServer", _ours, None),
    "bare": ("bare aiosmtpd Controller", _bare, None),
    "smtpdfix": ("smtpdfix", smtpdfix_server, "smtpdfix"),
    "localserver": ("pytest-localserver", localserver, "pytest-localserver"),
}


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset VmHWM (Linux >= 4.0: write 5 to clear_refs); False when the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


def serve(kind: str, mode: str) -> None:
    """Child process: run one server, measure around the one large message, print JSON."""
    with SERVERS[kind][1]() as (host, port, stored):
        print(json.dumps({"host": host, "port": port}), flush=True)
        # The parent sends one small message (warm-up), says "ready", sends the large one,
        # then says "done": every server stores a message before it answers 250.
        if sys.stdin.readline().strip() != "ready":
            raise SystemExit("protocol error: expected 'ready'")
        gc.collect()
        result: dict[str, Any] = {}
        if mode == "tracemalloc":
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
        else:
            base = _rss_kib("VmRSS") * 1024
            result["peak_reset"] = _reset_peak_rss()
        print("go", flush=True)
        if sys.stdin.readline().strip() != "done":
            raise SystemExit("protocol error: expected 'done'")
        if mode == "tracemalloc":
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        else:
            current = _rss_kib("VmRSS") * 1024
            peak = _rss_kib("VmHWM") * 1024
        result.update(stored=stored(), peak=peak - base, retained=current - base)
        print(json.dumps(result), flush=True)


def large_message(size: int) -> bytes:
    """A message of ``size`` bytes: headers and base64-like 76-character lines."""
    head = (
        b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: large\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
    )
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return (head + body)[: size - 2] + b"\r\n"


def measure(kind: str, mode: str, message: bytes) -> dict[str, Any]:
    """Run the child for ``kind`` and send it ``message``; the child's JSON result."""
    import smtplib

    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--mode", mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        where = json.loads(child.stdout.readline())
        with smtplib.SMTP(where["host"], where["port"], local_hostname=CLIENT_NAME) as client:
            client.sendmail("alice@example.test", ["bob@example.test"], b"Subject: warm\r\n\r\nx")
            child.stdin.write("ready\n")
            child.stdin.flush()
            if child.stdout.readline().strip() != "go":
                raise RuntimeError(f"{kind}: the server process did not get ready")
            client.sendmail("alice@example.test", ["bob@example.test"], message)
        child.stdin.write("done\n")
        child.stdin.flush()
        result: dict[str, Any] = json.loads(child.stdout.readline())
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    if result["stored"] != 2:
        raise RuntimeError(f"{kind}: {result['stored']} of 2 messages stored")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=float, default=20.0, help="message size (MiB)")
    parser.add_argument("--serve", choices=list(SERVERS), help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["tracemalloc", "rss"], default="tracemalloc")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.mode)
        return
    print(environment_line())
    size = int(args.size_mib * MIB)
    message = large_message(size)
    print(
        f"one {size / MIB:.0f} MiB message, server alone in a child process, growth above the "
        "level before the message (x = multiple of the message size; the stored copy is 1x)"
    )
    header = f"{'server':26} {'tracemalloc peak':>18} {'retained':>14} {'RSS peak':>16}"
    print(header)
    ratios: dict[str, float] = {}
    for kind, (label, _, dist) in SERVERS.items():
        if dist is not None and version(dist) is None:
            print(f"{dist} is not installed: skipped (pip install -e '.[bench]')")
            continue
        traced = measure(kind, "tracemalloc", message)
        rss = measure(kind, "rss", message)
        ratios[kind] = traced["peak"] / size
        rss_text = (
            f"{rss['peak'] / MIB:6.0f} MiB {rss['peak'] / size:4.1f}x"
            if rss["peak_reset"]
            else "n/a (no clear_refs)"
        )
        print(
            f"{label:26} {traced['peak'] / MIB:7.1f} MiB {ratios[kind]:5.2f}x "
            f"{traced['retained'] / MIB:6.1f} MiB {traced['retained'] / size:4.1f}x {rss_text}"
        )
    ours = ratios["ours"]
    for issue, limit in (("2", 3), ("8", 2)):
        verdict = "met" if ours <= limit else "NOT met"
        print(f"target issue {issue}: tracemalloc peak <= {limit}x -> {ours:.2f}x: {verdict}")
    if "bare" in ratios:
        print(f"pytest_smtp / bare aiosmtpd peak: {ours / ratios['bare']:.2f}x")


if __name__ == "__main__":
    main()
