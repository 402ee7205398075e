"""A real Postfix for tests: a private instance under a temporary directory, and a hop of a
:class:`~pytest_smtp.relay.MailNetwork`.

:class:`Postfix` runs Debian's ``postfix`` (package ``postfix``) with its own configuration
directory (``main.cf``/``master.cf`` written here), its own queue and data directories, its
log read from ``postfix start-fg`` (``maillog_file = /dev/stdout``), listening on one loopback
address and port. Nothing under ``/etc/postfix`` is read or changed, no service runs
chrooted, and no system Postfix is needed or touched. Postfix's master daemon starts as root
and hands work to the ``postfix`` user, so this needs root (as in CI containers); it says so
when it is not.

:class:`PostfixHop` puts such an instance into a mail network as one hop (see
:meth:`~pytest_smtp.relay.MailNetwork.add_postfix`). The network's hosts listen on
127.0.0.x with ephemeral ports and the fake DNS answers on an ephemeral port, where Postfix
can reach neither through its own resolver (``/etc/resolv.conf``, port 53) nor by MX and port
25. So the hop gives Postfix a ``tcp:`` transport table served here: each lookup of a domain
resolves its route *at that moment* through the network's fake DNS, with the same routing
rules as the network's own relays (:func:`~pytest_smtp.relay.routing.resolve_route`: MX
preference order, implicit MX, null MX, NXDOMAIN, DNS failures, MX pointing back at the hop),
and answers ``smtp:[ip]:port, [ip]:port`` (every usable exchange, best first, which Postfix
3.5+ tries in order), ``error:5.x.x reason`` (bounce) or ``retry:4.x.x reason`` (defer).
Everything after the route (sessions, replies, queueing, retries, DSNs) is Postfix's own.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote

from ..engine import get_engine
from ..mail.proxy import ProxyHeader
from .routing import RoutingError, resolve_route

__all__ = [
    "POSTFIX_PACKAGE",
    "Postfix",
    "PostfixDelivery",
    "PostfixError",
    "PostfixHop",
    "TransportTable",
    "find_postfix",
    "main_cf_value",
]

POSTFIX_PACKAGE = "postfix"
"""The Debian package that provides the ``postfix`` commands."""

_SEARCH_PATH = "/usr/sbin:/sbin:/usr/local/sbin"
_DAEMON_DIRECTORY = "/usr/lib/postfix/sbin"
_PARAMETER = re.compile(r"[a-z][a-z0-9_]*\Z")

# Parameters the instance decides itself (where it lives, what it listens on).
_RESERVED = frozenset(
    {
        "config_directory",
        "queue_directory",
        "data_directory",
        "maillog_file",
        "maillog_file_prefixes",
        "inet_interfaces",
        "myhostname",
        "command_directory",
        "daemon_directory",
        "shlib_directory",
        "meta_directory",
        "mail_owner",
        "setgid_group",
    }
)

# One line per service; chroot ("n" in the fifth column) is off everywhere: the instance lives
# in a temporary directory, not under a chroot jail prepared by the system's init scripts.
_MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


_ENV = {"PATH": f"{_SEARCH_PATH}:/usr/bin:/bin", "LANG": "C"}
_STARTED = re.compile(r"postfix/master\[\d+\]: daemon started")
_PORT_TAKEN = "Address already in use"
# qmgr found a queue file still locked by the delivery agent that just tried it (a race of
# second-long test backoffs): Postfix parks it in the incoming queue, stamped 60 s ahead, and
# scans that queue only when kicked or woken (qmgr's wakeup is 300 s). See Postfix._unstick.
_SKIPPED = re.compile(r"postfix/qmgr\[\d+\]: ([0-9A-F]+): skipped, still being delivered")
_UNSTICK_AFTER = 0.5


def _delivery_pattern(recipient: str, outcomes: str) -> str:
    return (
        r"postfix/\S+\[\d+\]: (?P<id>[0-9A-F]+): to=<(?P<rcpt>" + recipient + r")>,"
        r"(?: orig_to=<[^>]*>,)? relay=(?P<relay>[^,]+), .*?dsn=(?P<dsn>[0-9.]+), "
        r"status=(?P<status>" + outcomes + r") \((?P<text>.*)\)$"
    )


def _delivery(found: re.Match[str]) -> PostfixDelivery:
    return PostfixDelivery(
        found["id"], found["rcpt"], found["relay"], found["dsn"], found["status"], found["text"]
    )


@dataclasses.dataclass(frozen=True)
class PostfixDelivery:
    """One delivery attempt for one recipient, as Postfix logged it."""

    queue_id: str
    recipient: str
    relay: str
    """``host[ip]:port``, or ``none`` (no connection: a routing error or expiry)."""
    status: str
    """The RFC 3463 code (``dsn=``)."""
    outcome: str
    """``sent``, ``deferred``, ``bounced`` or ``expired``."""
    text: str
    """Postfix's explanation (the remote reply, or its own)."""


class PostfixError(RuntimeError):
    """Postfix is missing, cannot run here, or failed; the message carries its log."""


def find_postfix() -> str | None:
    """The path of the ``postfix`` command (also looked up in the sbin directories), or None."""
    path = os.environ.get("PATH", "")
    return shutil.which("postfix", path=f"{path}:{_SEARCH_PATH}" if path else _SEARCH_PATH)


def main_cf_value(name: str, value: Any) -> str:
    """``value`` as ``main.cf`` text: ``True``/``False`` as ``yes``/``no``, lists joined with
    ``", "``; ``ValueError`` for a bad parameter name or a value with a line break."""
    if not isinstance(name, str) or not _PARAMETER.match(name):
        raise ValueError(
            f"a main.cf parameter name is lower-case letters, digits and '_', such as "
            f"'maximal_queue_lifetime'; got {name!r}"
        )
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, (list, tuple, set, frozenset)):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, (str, int, float)):
        text = str(value)
    else:
        raise TypeError(
            f"main.cf value of {name} must be a str, int, bool or list, not {type(value).__name__}"
        )
    if "\n" in text or "\r" in text:
        raise ValueError(f"main.cf value of {name} must be one line, got {text!r}")
    return text


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Postfix:
    """A private Postfix instance listening on ``host:port``; a context manager.

    ``hostname`` is its ``myhostname`` (greeting, ``Received:``, ``HELO``). ``main_cf`` adds or
    overrides ``main.cf`` parameters (``maximal_queue_lifetime="1h"``, ``smtputf8_enable=False``);
    the directories, ``inet_interfaces`` and ``myhostname`` are set by the instance. ``port=0``
    picks a free port. By default the instance relays for 127.0.0.0/8, is final for no
    domain, and its log is read into :attr:`log`.
    """

    def __init__(
        self,
        hostname: str = "postfix.test",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        main_cf: Mapping[str, Any] | None = None,
        master_cf_extra: str = "",
    ) -> None:
        self.hostname = hostname
        """``myhostname``."""
        self.host = host
        """The address its SMTP server listens on."""
        self.port = port
        """The SMTP port (chosen by :meth:`start` when 0)."""
        self.main_cf: dict[str, str] = {}
        """The extra ``main.cf`` parameters, as written."""
        for name, value in (main_cf or {}).items():
            if name in _RESERVED:
                raise TypeError(
                    f"main.cf parameter {name} is set by the private instance; remove it"
                )
            self.main_cf[name] = main_cf_value(name, value)
        self.master_cf_extra = master_cf_extra
        self.directory: Path | None = None
        """The instance's directory (config, queue, data, log) while it runs."""
        self.binary = ""
        self._running = False
        self._process: subprocess.Popen[bytes] | None = None
        self._lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._unstickers: list[threading.Timer] = []

    # -- where things are ------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``: where to connect with ``smtplib.SMTP(*postfix.address)``."""
        return (self.host, self.port)

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._running

    @property
    def log(self) -> str:
        """Everything Postfix logged so far, one line each (kept after :meth:`stop`)."""
        with self._changed:
            return "\n".join(self._lines)

    def _dir(self) -> Path:
        if self.directory is None:
            raise PostfixError("this Postfix instance is not running")
        return self.directory

    # -- running ---------------------------------------------------------------------------
    def __enter__(self) -> Postfix:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        """Write the configuration, run ``postfix -c DIR start-fg`` and wait until the master
        daemon says it started (it has bound its listeners by then), then for smtpd's greeting.

        The log (``maillog_file = /dev/stdout``) is read from the process's output by a
        thread, so waiting for a log line is woken by the line, never by polling.
        """
        if self._running:
            raise PostfixError("this Postfix instance is already running")
        binary = find_postfix()
        if binary is None:
            raise PostfixError(
                f"Postfix is not installed: install the Debian package {POSTFIX_PACKAGE!r} "
                f"(DEBIAN_FRONTEND=noninteractive apt-get install -y {POSTFIX_PACKAGE}; "
                "choose 'No configuration')"
            )
        if os.geteuid() != 0:
            raise PostfixError(
                "a private Postfix needs root: its master daemon starts as root and runs the "
                "services as the 'postfix' user; run the tests as root (as in a CI container)"
            )
        self.binary = binary
        # A short path: Postfix's UNIX sockets live under the queue directory.
        self.directory = Path(tempfile.mkdtemp(prefix="pfx-"))
        self.directory.chmod(0o755)
        try:
            for _ in range(3):
                if self._launch(timeout):
                    self._running = True
                    return
            raise PostfixError(f"Postfix could not bind a port on {self.host}:\n{self.log}")
        except BaseException:
            self._cleanup(timeout)
            raise

    def _launch(self, timeout: float) -> bool:
        root = self._dir()
        port = self.port or _free_port(self.host)
        self._write_config(root, port)
        with self._changed:
            self._lines = []
            self._ended = False
        process = subprocess.Popen(
            [self.binary, "-c", str(root), "start-fg"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=_ENV,
        )
        self._process = process
        threading.Thread(
            target=self._read, args=(process,), name="postfix-log", daemon=True
        ).start()
        if not self.wait_for_log(_STARTED, timeout):
            self._reap(process, timeout)
            if _PORT_TAKEN in self.log and not self.port:
                return False
            raise PostfixError(f"postfix -c {root} start-fg failed:\n{self.log}")
        self.port = port
        try:
            with socket.create_connection(self.address, timeout=timeout) as sock:
                sock.settimeout(timeout)
                if self.main_cf.get("smtpd_upstream_proxy_protocol") == "haproxy":
                    # Behind a (pretend) load balancer, smtpd greets only after a PROXY header:
                    # this check's own connection, named as it is.
                    (here, there) = (sock.getsockname()[:2], sock.getpeername()[:2])
                    header = ProxyHeader(
                        family="TCP6" if ":" in here[0] else "TCP4",
                        source=(here[0], here[1]),
                        destination=(there[0], there[1]),
                    )
                    sock.sendall(header.encode())
                greeting = sock.recv(512)
                sock.sendall(b"QUIT\r\n")
        except OSError as exc:
            self._reap(process, timeout)
            raise PostfixError(
                f"Postfix started but {self.host}:{port} did not greet ({exc}):\n{self.log}"
            ) from None
        if not greeting.startswith(b"220"):
            self._reap(process, timeout)
            raise PostfixError(f"Postfix greeted with {greeting!r}:\n{self.log}")
        return True

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        with process.stdout:  # closed at EOF: the pipe's file is this thread's to close
            for raw in process.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                skipped = _SKIPPED.search(line)
                with self._changed:
                    self._lines.append(line)
                    self._changed.notify_all()
                    if skipped is not None:
                        timer = threading.Timer(_UNSTICK_AFTER, self._unstick, (skipped[1],))
                        timer.daemon = True
                        self._unstickers.append(timer)
                        timer.start()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for_log(
        self, pattern: str | re.Pattern[str], timeout: float = 30.0
    ) -> re.Match[str] | None:
        """The first log line matching ``pattern`` (``re.search``), waiting up to ``timeout``
        seconds for it; None when the time runs out or Postfix stops first. Woken by each
        new line."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        found: list[re.Match[str]] = []

        def check(lines: list[str]) -> bool:
            found.extend(m for line in lines if (m := regex.search(line)) is not None)
            return bool(found)

        return found[0] if self.wait_until(check, timeout, incremental=True) else None

    def wait_until(
        self,
        check: Callable[[list[str]], bool],
        timeout: float = 30.0,
        *,
        incremental: bool = False,
    ) -> bool:
        """Wait until ``check(lines)`` is true, re-checked on each new log line (all lines so
        far, or with ``incremental`` only the new ones); False when ``timeout`` seconds pass
        or Postfix stops first."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                if check(self._lines[seen:] if incremental else list(self._lines)):
                    return True
                seen = len(self._lines)
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    return False
                self._changed.wait(remaining)

    def wait_for_delivery(
        self, recipient: str, timeout: float = 30.0, *, final: bool = True
    ) -> PostfixDelivery:
        """The first logged delivery attempt for ``recipient`` (with ``final``, the first that
        is not ``deferred``: sent, bounced or expired); ``PostfixError`` with the log when none
        comes within ``timeout`` seconds."""
        outcomes = "sent|bounced|expired" if final else r"\w+"
        pattern = _delivery_pattern(re.escape(recipient), outcomes)
        found = self.wait_for_log(pattern, timeout)
        if found is None:
            raise PostfixError(
                f"Postfix logged no {'final ' if final else ''}delivery for <{recipient}> within "
                f"{timeout} s:\n{self.log}"
            )
        return _delivery(found)

    def _reap(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        if self.directory is not None and process.poll() is None:
            self._command("stop", check=False, timeout=timeout)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def _write_config(self, root: Path, port: int) -> None:
        for sub in ("queue", "data"):
            (root / sub).mkdir(exist_ok=True)
        os.chown(root / "data", *_postfix_ids())
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": f"{root}/queue",
            "data_directory": f"{root}/data",
            "command_directory": "/usr/sbin",
            "daemon_directory": _DAEMON_DIRECTORY,
            "shlib_directory": "/usr/lib/postfix",
            "meta_directory": "/etc/postfix",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "maillog_file": "/dev/stdout",
            "myhostname": self.hostname,
            "mydomain": self.hostname.partition(".")[2] or self.hostname,
            "myorigin": "$myhostname",
            "mydestination": "",
            # inet_interfaces must name configured interface addresses; 127.0.0.x other than
            # 127.0.0.1 is routed to lo but not configured on it, so the listener binds
            # host:port itself (master.cf) and proxy_interfaces tells Postfix that address is
            # its own (an MX pointing there "loops back to myself").
            "inet_interfaces": "loopback-only",
            "proxy_interfaces": "" if self.host == "127.0.0.1" else self.host,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "biff": "no",
            "smtp_bind_address": self.host,
            "append_dot_mydomain": "no",
            "smtp_tls_security_level": "may",
            "smtpd_banner": "$myhostname ESMTP Postfix",
        }
        settings.update(self.main_cf)
        (root / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        listen = f"{self.host}:{port}"
        (root / "master.cf").write_text(_MASTER_CF.format(listen=listen) + self.master_cf_extra)

    def _command(
        self, *args: str, check: bool = True, timeout: float = 30.0, program: str = "postfix"
    ) -> subprocess.CompletedProcess[str]:
        root = self._dir()
        binary = self.binary if program == "postfix" else str(Path(self.binary).parent / program)
        # Postfix commands print their errors only to a terminal (else only to syslog, which a
        # container may not have): give them a pseudo-terminal as stderr and read it back.
        leader, follower = os.openpty()
        try:
            try:
                done = subprocess.run(
                    [binary, "-c", str(root), *args],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=follower,
                    text=True,
                    timeout=timeout,
                    env=_ENV,
                    check=False,
                )
            finally:
                os.close(follower)
            done.stderr = _drain(leader)
        finally:
            os.close(leader)
        if check and done.returncode != 0:
            raise PostfixError(
                f"{program} {' '.join(args)} failed ({done.returncode}): "
                f"{done.stdout}{done.stderr}\n--- maillog ---\n{self.log}"
            )
        return done

    def _unstick(self, queue_id: str) -> None:
        """Give a message qmgr skipped as "still being delivered" its next try now.

        qmgr moves such a file to the incoming queue with its time stamp 60 s ahead, and scans
        that queue only when new mail arrives or its master wakes it (every 300 s): with
        second-long test backoffs the message would sit out minutes its real schedule does not
        have. This stamps the file "now" and kicks qmgr to scan the incoming queue (``postkick
        public qmgr I``): that message alone is tried again, no other message's schedule
        moves. If the lock is still held, qmgr skips it again and this runs again.
        """
        if not self._running or self.directory is None:
            return
        path = self.directory / "queue" / "incoming" / queue_id
        try:
            os.utime(path)
            self._command("public", "qmgr", "I", program="postkick", check=False, timeout=10)
        except (OSError, subprocess.SubprocessError, PostfixError):
            return  # delivered or removed meanwhile, or the instance is stopping

    def flush(self) -> None:
        """``postqueue -f``: attempt every deferred message now."""
        self._command("-f", program="postqueue")

    def reload(self) -> None:
        """``postfix reload``: re-read ``main.cf``/``master.cf`` (tables are read per lookup)."""
        self._command("reload")

    def set(self, **main_cf: Any) -> None:
        """Change ``main.cf`` parameters of the running instance and reload it."""
        for name, value in main_cf.items():
            if name in _RESERVED:
                raise TypeError(f"main.cf parameter {name} is set by the private instance")
            self.main_cf[name] = main_cf_value(name, value)
        root = self._dir()
        self._write_config(root, self.port)
        self.reload()

    def queue(self) -> list[dict[str, Any]]:
        """The messages in its queue (``postqueue -j``: one dict per message, with
        ``queue_name``, ``queue_id``, ``sender`` and ``recipients``)."""
        done = self._command("-j", program="postqueue")
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def deliveries(self) -> list[PostfixDelivery]:
        """Every delivery attempt Postfix logged (``to=<...>, relay=..., dsn=..., status=...``),
        in log order: sent, deferred, bounced or expired, per recipient."""
        regex = re.compile(_delivery_pattern(r"[^>]*", r"\w+"))
        with self._changed:
            lines = list(self._lines)
        return [_delivery(m) for line in lines if (m := regex.search(line)) is not None]

    def stop(self, timeout: float = 30.0) -> None:
        """``postfix stop``, wait for the master daemon to exit, remove the directory (the
        log stays readable)."""
        if self.directory is None:
            return
        self._cleanup(timeout)

    def _cleanup(self, timeout: float) -> None:
        with self._changed:
            unstickers, self._unstickers = self._unstickers, []
        for timer in unstickers:
            timer.cancel()
        try:
            if self._process is not None:
                self._reap(self._process, timeout)
        finally:
            self._process = None
            self._running = False
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)
                self.directory = None

    def __repr__(self) -> str:
        state = f"{self.host}:{self.port}" if self._running else "stopped"
        return f"<Postfix {self.hostname} {state}>"


def _drain(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def _postfix_ids() -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam("postfix")
    except KeyError:
        raise PostfixError(
            f"the 'postfix' user does not exist: install the Debian package {POSTFIX_PACKAGE!r}"
        ) from None
    return entry.pw_uid, entry.pw_gid


class _TableHandler(socketserver.StreamRequestHandler):
    server: _TableServer

    def handle(self) -> None:
        for raw in self.rfile:
            request = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb, _, key = request.partition(" ")
            if verb != "get":
                answer = "500 unsupported request"
            else:
                try:
                    value = self.server.lookup(unquote(key))
                except Exception as exc:  # a table must answer; Postfix defers on 400
                    answer = "400 " + quote(f"lookup failed: {exc}", safe="")
                else:
                    answer = "500 not found" if value is None else "200 " + quote(value, safe="")
            self.wfile.write(answer.encode() + b"\n")
            self.wfile.flush()


class _TableServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, lookup: Callable[[str], str | None]) -> None:
        super().__init__(("127.0.0.1", 0), _TableHandler)
        self.lookup = lookup


class TransportTable:
    """A Postfix ``tcp:`` lookup table (tcp_table(5)) answered by ``lookup(key)``: a value,
    or None for "not found". Runs in a thread; use ``transport_maps = table.map``."""

    def __init__(self, lookup: Callable[[str], str | None]) -> None:
        self._server = _TableServer(lookup)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="postfix-tcp-table", daemon=True
        )
        self._thread.start()

    @property
    def map(self) -> str:
        """The ``tcp:127.0.0.1:PORT`` table name for ``main.cf``."""
        return f"tcp:127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        """Stop answering."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class PostfixHop(Postfix):
    """A :class:`Postfix` that is one hop of a mail network: it relays for the network's
    addresses and routes every domain through the network's fake DNS (see the module
    docstring). Made by :meth:`~pytest_smtp.relay.MailNetwork.add_postfix`."""

    def __init__(
        self,
        name: str,
        ip: str,
        *,
        resolver: Any,
        port_of: Callable[[str, str], int | None],
        seed: int = 0,
        main_cf: Mapping[str, Any] | None = None,
    ) -> None:
        options = dict(main_cf or {})
        for name_ in ("transport_maps", "relayhost", "default_transport"):
            if name_ in options:
                raise TypeError(
                    f"main.cf parameter {name_} is set by the network hop (routes come from "
                    "the fake DNS); remove it"
                )
        super().__init__(name, host=ip, main_cf=options)
        self.name = name
        """The host name (its A record points at :attr:`host`)."""
        self.seed = seed
        self.lookups: list[tuple[str, str]] = []
        """Every transport lookup Postfix made: ``(address, answer)``."""
        self._resolver = resolver
        self._port_of = port_of
        self._table: TransportTable | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start the transport table, then Postfix."""
        self._table = TransportTable(self.route)
        self.main_cf["transport_maps"] = self._table.map
        # A domain the table does not know goes nowhere real (never the Internet's DNS).
        self.main_cf["default_transport"] = "error:5.4.4 no route outside this mail network"
        # With DNS, Postfix accepts mail for a domain it cannot route and bounces it later;
        # an error: route would otherwise be refused at RCPT already ("unlisted recipient").
        self.main_cf.setdefault("smtpd_reject_unlisted_recipient", "no")
        try:
            super().start(timeout)
        except BaseException:
            self._table.close()
            self._table = None
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """Stop Postfix, then the table."""
        try:
            super().stop(timeout)
        finally:
            if self._table is not None:
                self._table.close()
                self._table = None

    def route(self, key: str) -> str | None:
        """The transport-table answer for ``key``: an address routes by its domain; ``*``
        (the wildcard entry) is "not found". Postfix asks a ``tcp:`` table for whole
        addresses only (it is not a fixed-key table, so no domain or parent lookups)."""
        domain = key.rpartition("@")[2].lower().rstrip(".")
        if not domain or domain == "*" or domain.startswith((".", "[")):
            return None
        answer = self._route(domain)
        self.lookups.append((key, answer))
        return answer

    def _route(self, domain: str) -> str:
        def is_self(name_or_ip: str) -> bool:
            return name_or_ip.lower() == self.name or name_or_ip == self.host

        rng = random.Random(f"{self.seed}:{self.name}:{domain}")
        try:
            route = get_engine().call(
                resolve_route(self._resolver, domain, rng=rng, is_self=is_self), timeout=30
            )
        except RoutingError as exc:
            return f"{'error' if exc.permanent else 'retry'}:{exc.status} {exc.text}"
        hops = [
            f"[{ip}]:{port}"
            for exchange in route.usable
            for ip in exchange.addresses
            if (port := self._port_of(exchange.name, ip)) is not None
        ]
        if not hops:
            return f"retry:4.4.1 no host of this mail network listens for {domain}"
        return "smtp:" + ", ".join(hops)

    def __repr__(self) -> str:
        state = f"{self.host}:{self.port}" if self.running else "stopped"
        return f"<PostfixHop {self.name} {state}>"
