"""``python -m pytest_smtp serve`` as a real process, driven by smtplib."""

from __future__ import annotations

import signal
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest_smtp", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_prints_transactions_and_saves_messages(tmp_path: Path) -> None:
    proc = _start("--hostname", "cli.test", "--max-size", "1K", "--save-dir", str(tmp_path))
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("listening on 127.0.0.1:") and first.rstrip().endswith("cli.test")
        port = int(first.split()[2].rsplit(":", 1)[1])
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("a@x.test", ["b@y.test"], "Subject: from the cli\r\n\r\nhi")
            with pytest.raises(smtplib.SMTPSenderRefused):
                client.sendmail("a@x.test", ["b@y.test"], "x" * 5000)
        accepted = proc.stdout.readline()
        rejected = proc.stdout.readline()
        assert "accepted at eod" in accepted and "'from the cli'" in accepted
        assert "rejected at mail 552 5.3.4" in rejected
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    [saved] = tmp_path.glob("*.eml")
    assert b"Subject: from the cli" in saved.read_bytes()


def test_bad_option_is_a_clear_error_and_exit_2() -> None:
    proc = _start("--tls", "sometimes")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "tls must be None, 'starttls' or 'implicit'" in err
