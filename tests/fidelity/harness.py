"""The Postfix differential: every scenario through a real Postfix relay and through a
``MailNetwork`` relay; prints one JSON document.

Run as root in fresh network and mount namespaces (what ``test_fidelity.py`` does)::

    unshare --net --mount python tests/fidelity/harness.py

Inside, the loopback interface is brought up, ``/etc/resolv.conf`` is replaced (bind mount,
private to the namespace) by one naming a ``FakeDNS`` on 127.0.0.1:53, and the scenario hosts
listen on 127.0.10.x:25. So Postfix (Debian's, a private instance on 127.0.9.1:25) does what it
does on the Internet: MX lookups through its own resolver, port 25, its own queue and retries,
its own DSNs. The same scenarios then run through a ``MailNetwork`` (its own FakeDNS, virtual
time) with the same queue times. For each recipient both sides report: what the relay decided
(``action``, ``status``), which hosts received the mail, the DSNs the relay sent and what the
next hop saw of the DSN parameters.
"""

from __future__ import annotations

import faulthandler
import json
import os
import re
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fidelity_scenarios import (
    DELAY_WARNING,
    FIRST_RETRY,
    LIFETIME,
    MAX_BACKOFF,
    RELAY,
    SCENARIOS,
    SENDER_MX,
    HostSpec,
    Scenario,
)

from pytest_smtp.fakedns import FakeDNS
from pytest_smtp.relay import MailNetwork, parse_dsn
from pytest_smtp.relay.postfix import Postfix
from pytest_smtp.relay.queue import RetryPolicy
from pytest_smtp.smtp.server import SMTPServer

RELAY_IP = "127.0.9.1"
NX_ZONE = "nxzone.test"
ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
SETTLE_TIMEOUT = 120.0
# The whole run normally takes 10-20 s; past this, the watchdog reports where it stands
# (every thread's stack and Postfix's log so far) and exits, before any outer timeout.
WATCHDOG_SECONDS = 200.0


def enter_namespace() -> None:
    """Bring ``lo`` up and point the resolver at 127.0.0.1 (this namespace only)."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    resolv = Path(tempfile.mkdtemp(prefix="fidelity-")) / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
    subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)


def message_bytes(sc: Scenario, rcpts: tuple[str, ...]) -> bytes:
    received = "".join(
        f"Received: from hop{i}.fidelity.test by hop{i + 1}.fidelity.test; "
        "Thu, 1 Jan 2026 00:00:00 +0000\r\n"
        for i in range(sc.received)
    )
    text = (
        f"{received}From: <{sc.sender or 'mailer-daemon@sender.test'}>\r\n"
        f"To: {', '.join(f'<{r}>' for r in rcpts)}\r\nSubject: {sc.subject} {sc.name}\r\n"
        f"Message-ID: <{sc.name}@fidelity.test>\r\n\r\nHello from {sc.name}.\r\n"
    )
    return text.encode("utf-8")


def _status_of(text: str) -> str | None:
    found = ENHANCED.search(text)
    return found.group(1) if found else None


def submit(sc: Scenario, address: tuple[str, int]) -> dict[str, dict[str, Any]]:
    """Send the scenario's message to the relay; the recipients it refused, with the reply."""
    if sc.smuggle:
        return smuggle(sc, address)
    refused: dict[str, dict[str, Any]] = {}
    with smtplib.SMTP(*address, local_hostname="client.fidelity.test", timeout=30) as client:
        try:
            bad = client.sendmail(
                sc.sender,
                list(sc.rcpts),
                message_bytes(sc, sc.rcpts),
                list(sc.mail_options),
                list(sc.rcpt_options),
            )
        except smtplib.SMTPRecipientsRefused as exc:
            bad = exc.recipients
        except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
            text = exc.smtp_error.decode("utf-8", "replace")
            return {r: {"code": exc.smtp_code, "status": _status_of(text)} for r in sc.rcpts}
    for rcpt, (code, reply) in bad.items():
        refused[rcpt] = {"code": code, "status": _status_of(reply.decode("utf-8", "replace"))}
    return refused


def smuggle(sc: Scenario, address: tuple[str, int]) -> dict[str, dict[str, Any]]:
    """One transaction for the first recipient whose DATA hides a second one behind a bare
    ``<LF>.<LF>``; what the relay answered is not judged here, only what it delivered."""
    first, hidden = sc.rcpts
    payload = (
        f"From: <{sc.sender}>\r\nTo: <{first}>\r\nSubject: {sc.name}\r\n\r\nHello.\n.\n"
        f"MAIL FROM:<{sc.sender}>\nRCPT TO:<{hidden}>\nDATA\nFrom: <{sc.sender}>\n"
        f"To: <{hidden}>\nSubject: smuggled\n\nSmuggled.\n.\n"
    ).encode()
    with socket.create_connection(address, timeout=30) as sock:
        stream = sock.makefile("rb")

        def reply() -> bytes:
            lines = []
            while True:
                line = stream.readline()
                lines.append(line)
                if not line or line[3:4] != b"-":
                    return b"".join(lines)

        reply()
        for command in (
            b"EHLO client.fidelity.test",
            f"MAIL FROM:<{sc.sender}>".encode(),
            f"RCPT TO:<{first}>".encode(),
            b"DATA",
        ):
            sock.sendall(command + b"\r\n")
            reply()
        sock.sendall(payload + b"\r\n.\r\nQUIT\r\n")
        while stream.readline():
            pass
    return {}


def _options(values: tuple[str, ...]) -> dict[str, str]:
    return {k.upper(): v for k, _, v in (o.partition("=") for o in values)}


def observe(
    sc: Scenario,
    rcpt: str,
    hosts: dict[str, SMTPServer],
    sender_mx: SMTPServer,
) -> dict[str, Any]:
    """What the world shows for ``rcpt``: hosts that received it, the relay's DSNs, the DSN
    parameters the next hop saw."""
    got: list[str] = []
    seen: dict[str, str] = {}
    for name, server in hosts.items():
        messages = [m for m in server.mailbox if rcpt in m.rcpt_tos]
        if messages:
            got.append(name)
            wanted = set(sc.params)
            envelope = messages[0].envelope
            params = {**_options(envelope.mail_options), **_options(envelope.options_for(rcpt))}
            seen = {k: v for k, v in sorted(params.items()) if k in wanted}
    dsns: list[dict[str, Any]] = []
    for message in sender_mx.mailbox:
        if message.mail_from != "":
            continue
        try:
            report = parse_dsn(message.raw)
        except (LookupError, ValueError) as exc:
            if rcpt in message.raw.decode("utf-8", "replace"):
                dsns.append({"error": f"unparsable DSN: {type(exc).__name__}"})
            continue
        try:
            block = report.recipient(rcpt)
        except LookupError:
            continue
        if report.reporting_mta != RELAY:
            continue
        dsns.append(
            {
                "action": block.action,
                "status": block.status,
                "returned": report.returned_kind,
                "envid": report.envid,
                "orcpt": block.original_recipient,
            }
        )
    return {
        "hosts": (["one of the MX hosts"] * len(got)) if sc.any_host else sorted(got),
        "dsn": dsns,
        "seen": seen,
    }


# -- the Postfix world -------------------------------------------------------------------------
class PostfixWorld:
    def __init__(self) -> None:
        self.dns = FakeDNS(host="127.0.0.1", port=53)
        self.servers: dict[str, SMTPServer] = {}
        self.scenario_hosts: dict[str, dict[str, SMTPServer]] = {}
        self._next = 1
        self.postfix = Postfix(
            RELAY,
            host=RELAY_IP,
            port=25,
            main_cf={
                "maximal_queue_lifetime": f"{LIFETIME}s",
                "bounce_queue_lifetime": f"{LIFETIME}s",
                "minimal_backoff_time": f"{FIRST_RETRY}s",
                "maximal_backoff_time": f"{MAX_BACKOFF}s",
                "queue_run_delay": f"{FIRST_RETRY}s",
                "delay_warning_time": f"{DELAY_WARNING}s",
                "smtp_connect_timeout": "5s",
                "smtp_helo_timeout": "10s",
                # Loopback MX addresses are what this world has (Postfix would skip nothing
                # else), and the relay must not wait for unanswered PTR lookups.
                "smtpd_peername_lookup": False,
            },
        )

    def _ip(self) -> str:
        ip = f"127.0.10.{self._next}"
        self._next += 1
        return ip

    def add_host(self, spec: HostSpec, domains: list[str]) -> SMTPServer | None:
        ip = self._ip()
        self.dns.add_a(spec.name, ip)
        if spec.down:
            return None
        server = SMTPServer(
            host=ip, port=25, hostname=spec.name, smtputf8=spec.smtputf8, dsn=spec.dsn
        )
        server.start()
        self.servers[spec.name] = server
        return server

    def run(self) -> dict[str, Any]:
        self.dns.start()
        self.dns.add_a(RELAY, RELAY_IP)
        self.dns.add_zone(NX_ZONE)
        sender = SMTPServer(host=self._ip(), port=25, hostname=SENDER_MX)
        self.dns.add_a(SENDER_MX, sender.options.host)
        self.dns.add_mx("sender.test", SENDER_MX, 10)
        sender.start()
        for sc in SCENARIOS:
            self.scenario_hosts[sc.name] = build(sc, self.dns, self.add_host)
        started = time.monotonic()
        self.postfix.start()
        try:
            refused = {sc.name: submit(sc, self.postfix.address) for sc in SCENARIOS}
            accepted = sum(1 for sc in SCENARIOS if len(refused[sc.name]) < len(sc.rcpts))
            self.wait_idle(accepted)
            elapsed = time.monotonic() - started
            results = {
                sc.name: {
                    rcpt: self.outcome(sc, rcpt, refused[sc.name], sender) for rcpt in sc.rcpts
                }
                for sc in SCENARIOS
            }
        finally:
            self.postfix.stop()
            for server in [*self.servers.values(), sender]:
                server.stop()
            self.dns.stop()
        return {"results": results, "seconds": round(elapsed, 1), "log": self.postfix.log}

    def wait_idle(self, accepted: int) -> None:
        """Until every message Postfix took in (and every DSN it made) has left its queue."""
        # In: accepted by smtpd, or a DSN the bounce daemon queued. Out: removed from the
        # queue, or refused by cleanup (hop count) before it was queued.
        came = re.compile(
            r"postfix/(?:smtpd\[\d+\]: ([0-9A-F]+): client=|qmgr\[\d+\]: ([0-9A-F]+): from=|"
            r"bounce\[\d+\]: [0-9A-F]+: sender [a-z ]+notification: ([0-9A-F]+))"
        )
        left = re.compile(
            r"postfix/(?:qmgr\[\d+\]: ([0-9A-F]+): removed|"
            r"cleanup\[\d+\]: warning: ([0-9A-F]+): message rejected)"
        )

        def idle(lines: list[str]) -> bool:
            log = "\n".join(lines)
            ids = {"".join(found) for found in came.findall(log)}
            done = {"".join(found) for found in left.findall(log)}
            return len(ids) >= accepted and ids <= done

        if not self.postfix.wait_until(idle, SETTLE_TIMEOUT):
            raise RuntimeError(f"Postfix did not settle:\n{self.postfix.log}")

    def outcome(
        self, sc: Scenario, rcpt: str, refused: dict[str, dict[str, Any]], sender: SMTPServer
    ) -> dict[str, Any]:
        seen = observe(sc, rcpt, self.scenario_hosts[sc.name], sender)
        if rcpt in refused:
            return {"action": "refused", "status": refused[rcpt]["status"], **seen}
        attempts = [d for d in self.postfix.deliveries() if d.recipient == rcpt]
        if not attempts:
            return {"action": "none", "status": None, **seen}
        last = attempts[-1]
        expired = re.search(rf"{last.queue_id}: from=<[^>]*>, status=expired", self.postfix.log)
        action = {"sent": "delivered", "bounced": "failed", "expired": "failed"}.get(
            last.outcome, "failed" if expired else "pending"
        )
        return {"action": action, "status": last.status, **seen}


def build(
    sc: Scenario,
    dns: Any,
    add_host: Callable[[HostSpec, list[str]], SMTPServer | None],
) -> dict[str, SMTPServer]:
    """Publish the scenario's DNS and start its hosts; returns the listening ones by name."""
    servers: dict[str, SMTPServer] = {}
    for spec in sc.hosts:
        domains = [d for d, host, _ in sc.mx if host == spec.name]
        domains += [d for d in sc.implicit if d == spec.name]
        server = add_host(spec, domains)
        if server is not None:
            for method, args, *kwargs in spec.faults:
                getattr(server.faults, method)(*args, **(kwargs[0] if kwargs else {}))
            servers[spec.name] = server
    for domain, host, preference in sc.mx:
        dns.add_mx(domain, host, preference)
    for domain in sc.null_mx:
        dns.add_mx(domain, ".", 0)
    for name, rdtype, action in sc.dns_faults:
        dns.fault(name, rdtype, action)
    return servers


# -- the MailNetwork world ---------------------------------------------------------------------
def network_world() -> dict[str, Any]:
    results: dict[str, Any] = {}
    started = time.monotonic()
    with FakeDNS() as dns:
        dns.add_zone(NX_ZONE)
        retry = RetryPolicy(
            first_retry=FIRST_RETRY,
            max_backoff=MAX_BACKOFF,
            lifetime=LIFETIME,
            delay_warning=DELAY_WARNING,
        )
        with MailNetwork(dns, retry=retry) as net:
            relay = net.add_relay(RELAY, networks=["127.0.0.0/8"])
            net.add_domain("sender.test", mx=[SENDER_MX])

            def add_host(spec: HostSpec, domains: list[str]) -> SMTPServer | None:
                # Like the Postfix world's MX hosts (capturing servers), these judge nothing
                # but what their faults say: only the relay's loop detection is compared.
                host = net.add_host(
                    spec.name,
                    domains=domains,
                    hop_limit=10_000,
                    smtputf8=spec.smtputf8,
                    dsn=spec.dsn,
                )
                if spec.down:
                    host.server.stop()
                    return None
                return host.server

            hosts = {sc.name: build(sc, dns, add_host) for sc in SCENARIOS}
            refused = {sc.name: submit(sc, relay.address) for sc in SCENARIOS}
            net.run_until_idle()
            net.advance(seconds=LIFETIME * 4)
            sender = net.host(SENDER_MX).server
            for sc in SCENARIOS:
                results[sc.name] = {}
                for rcpt in sc.rcpts:
                    seen = observe(sc, rcpt, hosts[sc.name], sender)
                    if rcpt in refused[sc.name]:
                        outcome = {"action": "refused", "status": refused[sc.name][rcpt]["status"]}
                    else:
                        first = [j for j in net.journeys(rcpt) if not j.generated]
                        if not first:
                            outcome = {"action": "none", "status": None}
                        else:
                            j = first[0]
                            action = {
                                "delivered": "delivered",
                                "bounced": "failed",
                                "dropped": "dropped",
                            }.get(j.status, "pending")
                            outcome = {"action": action, "status": j.status_code}
                    results[sc.name][rcpt] = {**outcome, **seen}
            errors = list(net.errors)
    return {"results": results, "seconds": round(time.monotonic() - started, 1), "errors": errors}


def watchdog(world: PostfixWorld, seconds: float) -> threading.Event:
    """After ``seconds`` without :meth:`threading.Event.set`, write every thread's stack and
    Postfix's log to stderr and exit with status 3 (a hang then says where it hung)."""
    done = threading.Event()

    def watch() -> None:
        if done.wait(seconds):
            return
        sys.stderr.write(f"harness: no result after {seconds:.0f} s; every thread:\n")
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.write(f"\nPostfix log so far:\n{world.postfix.log}\n")
        sys.stderr.flush()
        os._exit(3)

    threading.Thread(target=watch, name="harness-watchdog", daemon=True).start()
    return done


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("harness.py runs as root inside `unshare --net --mount`")
    enter_namespace()
    world = PostfixWorld()
    done = watchdog(world, WATCHDOG_SECONDS)
    postfix = world.run()
    ours = network_world()
    done.set()
    json.dump({"postfix": postfix, "ours": ours}, sys.stdout, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
