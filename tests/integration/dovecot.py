"""Helpers for the Dovecot differential tests and bench/bench_imap.py.

- :class:`Dovecot`: a private Dovecot (Debian's ``dovecot-imapd``/``dovecot-pop3d``) on
  127.0.0.1 for one test or benchmark: its own config in a temp dir (no system config is
  read), free ports, a passwd-file user db, Maildir mail in the temp dir. Stopped (and the temp
  dir removed) on exit.
- :func:`find_dovecot`: the binary, or ``None`` when the packages are not installed.
- :class:`RawIMAP`: a wire-level IMAP client that returns every untagged response of a command
  (literals inlined) and its tagged result, so two servers' answers can be compared exactly.
- :class:`RawPOP3`: the same for POP3 (single- and multi-line responses, dot-unstuffed).

Dovecot refuses to run its login processes as root and refuses uid 0 for mail access, so as
root the login processes run as ``dovenull`` and mail is accessed as ``nobody`` (both exist on
Debian; the mail directory is handed to that user). As another user everything runs as that
user, which Dovecot supports for unprivileged installs.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

__all__ = ["Dovecot", "DovecotError", "RawIMAP", "RawPOP3", "find_dovecot"]

_SEARCH_PATH = "/usr/sbin:/sbin:/usr/local/sbin"
_STARTED = "starting up for"
_PORT_TAKEN = "Address already in use"


def find_dovecot() -> str | None:
    """The path of the ``dovecot`` binary (also looked up in the sbin directories), or None."""
    path = os.environ.get("PATH", "")
    return shutil.which("dovecot", path=f"{path}:{_SEARCH_PATH}" if path else _SEARCH_PATH)


class DovecotError(RuntimeError):
    """Dovecot could not be started; the message carries its log."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _user_or(preferred: str, fallback: str) -> pwd.struct_passwd:
    for name in (preferred, fallback):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise DovecotError(
        f"running as root, Dovecot needs an unprivileged user: neither {preferred!r} nor "
        f"{fallback!r} exists (install dovecot-core, which creates dovenull)"
    )


class Dovecot:
    """A private Dovecot serving IMAP and POP3 on 127.0.0.1; a context manager.

    ``users`` maps login names (addresses) to passwords. ``host``, ``imap_port`` and
    ``pop3_port`` say where it listens once started; :attr:`log` holds its log lines.
    """

    def __init__(self, users: Mapping[str, str], *, binary: str | None = None) -> None:
        found = binary or find_dovecot()
        if found is None:
            raise DovecotError(
                "dovecot is not installed: apt-get install dovecot-imapd dovecot-pop3d"
            )
        for user, password in users.items():
            if not user or ":" in user + password or "\n" in user + password:
                raise ValueError(
                    f"Dovecot passwd-file users need a non-empty name and no ':' or newline in "
                    f"name or password, such as 'bob@example.org': 'secret'; got {user!r}"
                )
        self.binary = found
        """The dovecot binary."""
        self.users = dict(users)
        """Login name → password."""
        self.host = "127.0.0.1"
        """The address it listens on."""
        self.imap_port = 0
        """The IMAP port (set by :meth:`start`)."""
        self.pop3_port = 0
        """The POP3 port (set by :meth:`start`)."""
        self.log: list[str] = []
        """Every line Dovecot logged (its log goes to stderr, read by a thread)."""
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def imap_address(self) -> tuple[str, int]:
        """``(host, imap_port)``."""
        return (self.host, self.imap_port)

    @property
    def pop3_address(self) -> tuple[str, int]:
        """``(host, pop3_port)``."""
        return (self.host, self.pop3_port)

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 20.0) -> None:
        """Write the config, start ``dovecot -F`` and wait until its listeners are up.

        Ports are picked free just before the start; if another process takes one in between,
        the start is retried with new ports (three attempts).
        """
        # A short path: Dovecot's UNIX sockets live in base_dir and sun_path is 108 bytes.
        self._dir = Path(tempfile.mkdtemp(prefix="dovecot-"))
        self._dir.chmod(0o755)  # the unprivileged login/mail users traverse it
        try:
            for _ in range(3):
                self._launch(timeout)
                if self._process is not None:
                    return
            raise DovecotError("Dovecot could not bind its ports:\n" + "\n".join(self.log))
        except BaseException:
            self.stop()
            raise

    def _launch(self, timeout: float) -> None:
        assert self._dir is not None
        self.imap_port, self.pop3_port = _free_port(), _free_port()
        while self.pop3_port == self.imap_port:
            self.pop3_port = _free_port()
        config = self._write_config(self._dir)
        self.log = []
        self._ready.clear()
        process = subprocess.Popen(
            [self.binary, "-F", "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"},
        )
        self._reader = threading.Thread(
            target=self._read_log, args=(process,), name="dovecot-log", daemon=True
        )
        self._reader.start()
        if not self._ready.wait(timeout):
            self._terminate(process)
            raise DovecotError(f"Dovecot did not start within {timeout} s:\n" + "\n".join(self.log))
        if process.poll() is not None or not any(_STARTED in line for line in self.log):
            self._terminate(process)
            if any(_PORT_TAKEN in line for line in self.log):
                return  # a port was taken between picking and binding: try new ones
            raise DovecotError("Dovecot failed to start:\n" + "\n".join(self.log))
        self._process = process

    def _read_log(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.log.append(line)
            # The master binds every listener before it logs "starting up" (and logs
            # "Failed to start listeners" instead when it cannot).
            if _STARTED in line or "Fatal:" in line:
                self._ready.set()
        self._ready.set()

    def _write_config(self, root: Path) -> Path:
        for sub in ("run", "state", "mail"):
            (root / sub).mkdir(exist_ok=True)
        passwd = root / "passwd"
        passwd.write_text(
            "".join(f"{user}:{{PLAIN}}{password}::::::\n" for user, password in self.users.items())
        )
        if os.geteuid() == 0:
            login = _user_or("dovenull", "nobody")
            internal = _user_or("dovecot", "nobody")
            mail = _user_or("nobody", "dovenull")
            os.chown(root / "mail", mail.pw_uid, mail.pw_gid)
        else:
            login = internal = mail = pwd.getpwuid(os.geteuid())
        text = f"""\
protocols = imap pop3
listen = {self.host}
base_dir = {root}/run
state_dir = {root}/state
log_path = /dev/stderr
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# Failed logins must not slow the next logins down (tests fail logins on purpose): no
# failure delay, no per-IP penalty.
auth_failure_delay = 0
default_internal_user = {internal.pw_name}
default_login_user = {login.pw_name}
first_valid_uid = {min(mail.pw_uid, 1)}
mail_uid = {mail.pw_uid}
mail_gid = {mail.pw_gid}
mail_location = maildir:{root}/mail/%u
mail_fsync = never
mail_max_userip_connections = 100
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid={mail.pw_uid} gid={mail.pw_gid} home={root}/mail/%u
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {self.host}
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""
        config = root / "dovecot.conf"
        config.write_text(text)
        return config

    def stop(self) -> None:
        """Stop Dovecot (SIGTERM; its master stops every child) and remove the temp dir."""
        process, self._process = self._process, None
        if process is not None:
            self._terminate(process)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _terminate(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if self._reader is not None:
            self._reader.join(10)
            self._reader = None
        if process.stderr is not None:
            process.stderr.close()


# -- wire-level clients --------------------------------------------------------------------------

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n\Z")


class RawIMAP:
    """A wire-level IMAP client: :meth:`command` returns the raw untagged responses and result.

    Literals in responses are inlined (``{n}\\r\\n`` followed by the n octets), so each
    response is one ``bytes`` value. Synchronising literals in commands are sent after the
    server's continuation request.
    """

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self.read_response()
        """The greeting, e.g. ``b"* OK [CAPABILITY ...] ready"``."""
        self._tag = 0

    def read_response(self) -> bytes:
        """One response line with its literals inlined."""
        parts: list[bytes] = []
        while True:
            line = self.file.readline()
            if not line.endswith(b"\n"):
                raise ConnectionError(f"connection closed mid-response: {b''.join(parts) + line!r}")
            parts.append(line)
            match = _LITERAL.search(line)
            if match is None:
                return b"".join(parts)[:-2]
            parts.append(self._read_exact(int(match.group(1))))

    def _read_exact(self, size: int) -> bytes:
        data = self.file.read(size)
        if len(data) != size:
            raise ConnectionError(f"connection closed inside a {size}-octet literal")
        return data

    def command(self, *pieces: bytes) -> tuple[list[bytes], bytes]:
        """Send one command; ``pieces`` after the first are synchronising literals.

        Returns ``(untagged responses, tagged response without its tag)``.
        """
        self._tag += 1
        tag = b"T%d" % self._tag
        first, *literals = pieces
        line = tag + b" " + first
        untagged: list[bytes] = []
        for literal in literals:
            self.sock.sendall(line + b"{%d}\r\n" % len(literal))
            while True:
                response = self.read_response()
                if response.startswith(b"+"):
                    break
                if response.startswith(tag + b" "):
                    return untagged, response[len(tag) + 1 :]
                untagged.append(response)
            line = literal
        self.sock.sendall(line + b"\r\n")
        while True:
            response = self.read_response()
            if response.startswith(tag + b" "):
                return untagged, response[len(tag) + 1 :]
            untagged.append(response)

    def close(self) -> None:
        """LOGOUT (best effort) and close the socket."""
        with contextlib.suppress(OSError):
            self.command(b"LOGOUT")
        self.file.close()
        self.sock.close()

    def __enter__(self) -> RawIMAP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RawPOP3:
    """A wire-level POP3 client: status lines and dot-unstuffed multi-line bodies, as bytes."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self._line()
        """The greeting line."""

    def _line(self) -> bytes:
        line = self.file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError(f"POP3 connection closed or bare LF: {line!r}")
        return line[:-2]

    def command(self, line: bytes, multiline: bool = False) -> tuple[bytes, bytes | None]:
        """Send ``line``; returns the status line and, for a multi-line ``+OK``, the body.

        The body is the octets between the status line and the terminating ``.``, every line
        with its CRLF and dot-stuffing removed (RFC 1939 section 3).
        """
        self.sock.sendall(line + b"\r\n")
        status = self._line()
        if not multiline or not status.startswith(b"+OK"):
            return status, None
        body: list[bytes] = []
        while True:
            raw = self.file.readline()
            if not raw.endswith(b"\r\n"):
                raise ConnectionError(f"POP3 multi-line response cut short: {raw!r}")
            if raw == b".\r\n":
                return status, b"".join(body)
            body.append(raw[1:] if raw.startswith(b".") else raw)

    def close(self) -> None:
        """Close the socket without QUIT (QUIT is part of what the tests compare)."""
        self.file.close()
        self.sock.close()
