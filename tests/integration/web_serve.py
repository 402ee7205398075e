"""``python -m pytest_smtp serve --http`` as a real process, for the web and remote-mode tests."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Serve:
    """A running ``serve --http``: its SMTP port, web URL (no token) and token."""

    proc: subprocess.Popen[str]
    smtp_port: int
    url: str
    token: str

    @property
    def remote(self) -> str:
        """What ``--smtp-remote`` takes."""
        return f"{self.url}?token={self.token}"


@contextmanager
def serve_http(*args: str, token: str = "s3cret-token") -> Iterator[Serve]:
    """Start ``serve --http 127.0.0.1:0 --token TOKEN ARGS``; SIGTERM it at the end."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_smtp",
            "serve",
            "--http",
            "127.0.0.1:0",
            "--token",
            token,
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # Each line is printed once the server behind it listens: readline is the wait.
        listening = proc.stdout.readline()
        web = proc.stdout.readline()
        remote = proc.stdout.readline()
        assert listening.startswith("listening on 127.0.0.1:"), listening + proc.stderr.read()
        assert web.startswith("web view on http://127.0.0.1:"), web + proc.stderr.read()
        url = web.split()[3]
        assert url.endswith(f"?token={token}") and remote.strip().endswith(url)
        port = int(listening.split()[2].rsplit(":", 1)[1])
        yield Serve(proc, port, url.split("?", 1)[0], token)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
