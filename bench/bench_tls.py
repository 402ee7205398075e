"""Per-test overhead of a STARTTLS + AUTH PLAIN test, pytest_smtp against smtpdfix, in one run.

Three generated modules of 100 tests run in ONE pytest process per repetition: empty tests
(the baseline), pytest_smtp ``smtp_server`` with ``@pytest.mark.smtp(tls="starttls",
auth={"u": "p"})`` and smtpdfix ``smtpd`` with ``SMTPD_USE_STARTTLS=1 SMTPD_ENFORCE_AUTH=1
SMTPD_LOGIN_NAME=u SMTPD_LOGIN_PASSWORD=p``. Each test connects with smtplib, does STARTTLS
(verifying the server's certificate against the fixture's CA), AUTH PLAIN, sends one small
message and asserts it arrived. The first test of each fixture is shown on its own: it carries
the key generation, next to the cost of one RSA-2048 key generation and of one trustme CA + leaf
measured in this process. Prints figures; passes or fails nothing.

Run: .venv/bin/python bench/bench_tls.py [--repetitions N] [--tests N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from _support import CLIENT_NAME, environment_line, fmt_ratio, median, run_pytest_modules, version
from bench_fixture import summarize

_BASELINE = """
import pytest


@pytest.mark.parametrize("n", range({tests}))
def test_empty(n):
    pass
"""

_HEAD = """
import os
import smtplib
import ssl

import pytest

MESSAGE = b"From: u@example.test\\r\\nTo: bob@example.test\\r\\nSubject: hi\\r\\n\\r\\nHello.\\r\\n"
_CONTEXT = []


def send(host, port, make_context, mechanism):
    # One client context per module, as a suite would keep it: the bench measures the server.
    if not _CONTEXT:
        _CONTEXT.append(make_context())
    with smtplib.SMTP(host, port, local_hostname="{client}") as client:
        client.starttls(context=_CONTEXT[0])
        client.ehlo()
        client.user, client.password = "u", "p"
        if mechanism == "PLAIN":
            client.auth("PLAIN", client.auth_plain)
        else:
            client.auth("LOGIN", client.auth_login)
        client.sendmail("u@example.test", ["bob@example.test"], MESSAGE)
"""

_OURS = (
    _HEAD
    + """

@pytest.mark.smtp(tls="starttls", auth={{"u": "p"}})
@pytest.mark.parametrize("n", range({tests}))
def test_send(smtp_server, smtp_tls, n):
    send(smtp_server.host, smtp_server.port, smtp_tls.client_context, "{mechanism}")
    message = smtp_server.mailbox.one()
    assert message.session.tls and message.session.auth_user == "u"
"""
)

_SMTPDFIX = (
    _HEAD
    + """

def _smtpdfix_context():
    return ssl.create_default_context(cafile=os.environ["SMTPD_SSL_CERTIFICATE_FILE"])


@pytest.mark.parametrize("n", range({tests}))
def test_send(smtpd, n):
    # LOGIN: smtpdfix 0.5.3 splits the PLAIN response on whitespace, not NUL, so it rejects
    # every standard AUTH PLAIN (RFC 4616) with 535.
    send(smtpd.hostname, smtpd.port, _smtpdfix_context, "LOGIN")
    assert len(smtpd.messages) == 1
"""
)

SMTPDFIX_ENV = {
    "SMTPD_USE_STARTTLS": "1",
    "SMTPD_ENFORCE_AUTH": "1",
    "SMTPD_LOGIN_NAME": "u",
    "SMTPD_LOGIN_PASSWORD": "p",
}


def key_generation_costs(samples: int = 5) -> tuple[float, float]:
    """Median ms of one RSA-2048 key generation (what smtpdfix makes) and of one trustme CA plus
    one leaf certificate (what pytest_smtp makes, once per process)."""
    import trustme
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_ms, trustme_ms = [], []
    for _ in range(samples):
        started = time.perf_counter()
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        rsa_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        trustme.CA().issue_cert("localhost", "127.0.0.1")
        trustme_ms.append((time.perf_counter() - started) * 1000)
    return statistics.median(rsa_ms), statistics.median(trustme_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repetitions", type=int, default=5, help="pytest runs (default 5)")
    parser.add_argument("--tests", type=int, default=100, help="tests per module (default 100)")
    args = parser.parse_args()
    print(environment_line())
    modules = {
        "test_a_baseline": ("empty test (baseline)", _BASELINE, ""),
        "test_b_ours": ("pytest_smtp STARTTLS+AUTH PLAIN", _OURS, "PLAIN"),
        "test_b_ours_login": ("pytest_smtp STARTTLS+AUTH LOGIN", _OURS, "LOGIN"),
    }
    if version("smtpdfix") is None:
        print("smtpdfix is not installed: skipped (pip install -e '.[bench]')")
    else:
        modules["test_c_smtpdfix"] = ("smtpdfix STARTTLS+AUTH LOGIN", _SMTPDFIX, "LOGIN")
    labels = {name: label for name, (label, _, _) in modules.items()}
    sources = {
        name: source.format(tests=args.tests, client=CLIENT_NAME, mechanism=mechanism)
        for name, (_, source, mechanism) in modules.items()
    }
    print(
        f"{args.tests} tests per module (STARTTLS + AUTH PLAIN + one message each), all modules "
        f"in one pytest process, {args.repetitions} repetitions (medians shown)"
    )
    times = run_pytest_modules(sources, repetitions=args.repetitions, env=SMTPDFIX_ENV)
    overheads = summarize(times, labels, "test_a_baseline", "test_b_ours", "test_c_smtpdfix")
    rsa_ms, trustme_ms = key_generation_costs()
    ours_first = median([rep[0] * 1000 for rep in times["test_b_ours"]])
    ours_typical = median([statistics.median(rep) * 1000 for rep in times["test_b_ours"]])
    print(
        f"first test: pytest_smtp {ours_first:.1f} ms ({ours_first - ours_typical:.1f} ms above "
        f"its median test); one RSA-2048 key generation {rsa_ms:.1f} ms; "
        f"one trustme CA + leaf {trustme_ms:.1f} ms"
    )
    verdict = "met" if ours_first - ours_typical <= rsa_ms else "NOT met"
    print(f"target: the first test pays at most one key generation -> {verdict}")
    if "test_c_smtpdfix" in overheads:
        for name in ("test_b_ours", "test_b_ours_login"):
            ratio = overheads[name] / overheads["test_c_smtpdfix"]
            verdict = "met" if ratio <= 0.2 else "NOT met"
            print(
                f"target: {labels[name]} overhead <= 1/5 of smtpdfix's -> "
                f"{fmt_ratio(ratio)}: {verdict}"
            )


if __name__ == "__main__":
    main()
