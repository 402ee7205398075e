"""The fixtures: wiring and per-test reset only; everything else lives in the engine."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import warnings
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from ._stash import CONFIG_KEY, SERVERS_KEY, SMTPConfig
from .smtp.options import OptionError, ServerOptions
from .smtp.server import SMTPServer
from .smtp.tls import TestCA, default_ca

if TYPE_CHECKING:
    # Imported where used: a run that never asks for DNS or POP3/IMAP does not load them.
    from .fakedns import FakeDNS
    from .mail import Mailbox
    from .relay import MailNetwork
    from .retrieval.imap import IMAPServer
    from .retrieval.pop3 import POP3Server

__all__ = [
    "SMTPServerFactory",
    "smtp_dns",
    "smtp_imap",
    "smtp_imap_factory",
    "smtp_mail_network",
    "smtp_mailbox",
    "smtp_pop3",
    "smtp_pop3_factory",
    "smtp_relay_chain",
    "smtp_server",
    "smtp_server_factory",
    "smtp_tls",
]


class SMTPServerFactory(Protocol):
    """``smtp_server_factory(**options) -> SMTPServer``: a new, started server for this test."""

    def __call__(self, **options: Any) -> SMTPServer: ...


class _Session:
    """Session-wide state: one server per option set, stopped at the end of the session."""

    def __init__(self, config: SMTPConfig) -> None:
        self.config = config
        self.servers: dict[ServerOptions, SMTPServer] = {}
        # The last server handed out: most tests of a session ask for the same options, and
        # an identity check is cheaper than hashing every field of ServerOptions.
        self._last: tuple[ServerOptions, SMTPServer] | None = None
        self.remote: Any = None
        if config.values.get("remote"):
            from .remote import RemoteAPI

            self.remote = RemoteAPI(config.values["remote"])

    def new_server(self, options: ServerOptions, dns: FakeDNS | None = None) -> SMTPServer:
        """A server not yet started: local, or on the ``--smtp-remote`` instance."""
        if self.remote is None:
            return SMTPServer(options=options, dns=dns)
        from .remote import RemoteSMTPServer

        default = ServerOptions()
        given = {
            f.name: getattr(options, f.name)
            for f in dataclasses.fields(options)
            if f.name not in ("host", "port")
            and getattr(options, f.name) != getattr(default, f.name)
        }
        sendable = {
            k: list(v) if isinstance(v, (tuple, frozenset)) else v for k, v in given.items()
        }
        return RemoteSMTPServer(self.remote, **sendable)  # type: ignore[return-value]

    def server(self, options: ServerOptions, dns: FakeDNS | None = None) -> SMTPServer:
        last = self._last
        if last is not None and last[0] is options and last[1].running:
            return last[1]
        server = self.servers.get(options)
        if server is None or not server.running:
            server = self.new_server(options, dns).start()
            self.servers[options] = server
        self._last = (options, server)
        return server

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()


def _config(node: pytest.Item) -> SMTPConfig:
    return node.config.stash[CONFIG_KEY]


#: The tests whose run protocol is under way, innermost last (a pytester run inside a test
#: nests one): how the fixtures find their test without taking ``request``. A fixture that
#: takes ``request`` costs pytest 9 about 50 us more per test than one that does not (it
#: builds a ``RequestFixtureDef``, with an ``inspect.signature``, each time ``request`` is
#: looked up: three times per test), which is most of what a test that only takes
#: ``smtp_server`` would cost.
_running: list[pytest.Item] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, Any, None]:
    """Keep :data:`_running` (every test: one append and one pop)."""
    _running.append(item)
    try:
        yield
    finally:
        _running.pop()


def _running_test() -> pytest.Item:
    """The test whose fixture is being set up."""
    if not _running:
        raise RuntimeError(
            "a pytest_smtp fixture was set up outside a test's run protocol; request it from a "
            "test or from a fixture of one"
        )
    return _running[-1]


def _request_of(node: pytest.Item) -> pytest.FixtureRequest:
    """The test's own fixture request, for a fixture only some servers need (``smtp_dns``)."""
    request: pytest.FixtureRequest | None = getattr(node, "_request", None)
    if request is None:
        raise RuntimeError(f"{node.nodeid}: this kind of test has no fixture request")
    return request


#: The run's :class:`_Session`, on ``config.stash``: made by the first test that needs a
#: server, closed at session finish. Not a session-scoped fixture: a fixture that depends on
#: one pays pytest's lookup of it on every test (~25 us each).
_SESSION_KEY = pytest.StashKey[_Session]()


def _smtp_session(node: pytest.Item) -> _Session:
    session = node.config.stash.get(_SESSION_KEY, None)
    if session is None:
        session = _Session(_config(node))
        node.config.stash[_SESSION_KEY] = session
    return session


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the session's servers."""
    smtp_session = session.config.stash.get(_SESSION_KEY, None)
    if smtp_session is not None:
        del session.config.stash[_SESSION_KEY]
        smtp_session.close()


def _markers(node: pytest.Item) -> tuple[pytest.Mark | None, list[pytest.Mark]]:
    """The closest ``smtp`` marker and every ``smtp_fault`` marker, closest first, from one
    walk up the node chain (most tests have neither)."""
    smtp: pytest.Mark | None = None
    faults: list[pytest.Mark] = []
    for marker in node.iter_markers():
        if marker.name == "smtp":
            if smtp is None:
                smtp = marker
        elif marker.name == "smtp_fault":
            faults.append(marker)
    return smtp, faults


def _marker_options(marker: pytest.Mark | None, base: ServerOptions) -> ServerOptions:
    if marker is None:
        return base
    if marker.args:
        raise pytest.UsageError(
            f"@pytest.mark.smtp takes keyword options only (got {marker.args!r}); "
            f"valid options: {', '.join(ServerOptions.names())}"
        )
    try:
        return ServerOptions.build(base, **marker.kwargs)
    except OptionError as exc:
        raise pytest.UsageError(f"@pytest.mark.smtp: {exc}") from None


def _apply_settings(server: SMTPServer, cfg: SMTPConfig) -> None:
    """The session's --smtp-wait-timeout and --smtp-seed, as every fixture's server gets them
    (set only when a test changed them: the setters validate)."""
    for log in (server.mailbox, server.transactions):
        if log.default_timeout != cfg.wait_timeout:
            log.default_timeout = cfg.wait_timeout
    server.faults.seed = cfg.seed


def _dns_for(node: pytest.Item, options: ServerOptions) -> FakeDNS | None:
    """``smtp_dns`` for a server that verifies mail (``authenticate``/``enforce_dmarc``)."""
    if not options.verifies:
        return None
    dns: FakeDNS = _request_of(node).getfixturevalue("smtp_dns")
    return dns


def _lint_errors(server: SMTPServer) -> str | None:
    """``strict=True``: the error findings of the mail ``server`` captured, as report text."""
    if not server.options.strict:
        return None
    blocks = []
    for message in list(server.mailbox):
        errors = [f for f in message.lint() if f.severity == "error"]
        if errors:
            blocks.append(f"{message!r}\n" + "\n".join(f"  {f}" for f in errors))
    return "\n".join(blocks) or None


def _register(node: pytest.Item, server: Any) -> None:
    node.stash.setdefault(SERVERS_KEY, []).append(server)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_name(nodeid: str) -> str:
    name = _UNSAFE.sub("_", nodeid).strip("._") or "test"
    if len(name) > 120:
        digest = hashlib.sha1(nodeid.encode()).hexdigest()[:10]
        name = f"{name[:100]}-{digest}"
    return name


def _finish(node: pytest.Item, server: SMTPServer) -> None:
    """Teardown checks shared by smtp_server and the factory: save mail, fail on engine errors."""
    cfg = _config(node)
    if cfg.save_dir:
        folder = Path(cfg.save_dir) / _safe_name(node.nodeid)
        messages = list(server.mailbox)
        if messages:
            folder.mkdir(parents=True, exist_ok=True)
            for index, message in enumerate(messages, 1):
                (folder / f"{server.port}-{index:04d}.eml").write_bytes(message.as_eml())
    errors = list(server.errors) + list(server.mailbox.listener_errors)
    if errors:
        pytest.fail(
            f"{server!r} had {len(errors)} internal error(s) during the test:\n\n"
            + "\n".join(errors),
            pytrace=False,
        )
    lint_errors = _lint_errors(server)
    if lint_errors:
        node.add_report_section("teardown", f"smtp lint {server!r}", lint_errors)
        pytest.fail(
            f"{server!r} is strict (strict=True) and mail captured in this test has lint "
            f"errors:\n{lint_errors}\n(fix the mail, or turn it off for this test: "
            "@pytest.mark.smtp(strict=False))",
            pytrace=False,
        )


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A running :class:`~pytest_smtp.SMTPServer`, reset for this test.

    One server per option set per session (per xdist worker): cheap. ``@pytest.mark.smtp(...)``
    picks the options; ``@pytest.mark.smtp_fault(...)`` adds fault rules for the test. The
    test fails at teardown if the server hit an internal error.
    """
    # The test, without taking `request` (see _running): many tests take only this fixture.
    node = _running_test()
    smtp_session = _smtp_session(node)
    cfg = smtp_session.config
    smtp_marker, fault_markers = _markers(node)
    options = _marker_options(smtp_marker, cfg.base_options)
    server = smtp_session.server(options, _dns_for(node, options))
    server.reset()
    _apply_settings(server, cfg)
    for marker in reversed(fault_markers):
        try:
            server.faults.from_marker(*marker.args, **marker.kwargs)
        except (TypeError, ValueError) as exc:
            raise pytest.UsageError(f"@pytest.mark.smtp_fault{marker.args!r}: {exc}") from None
    _register(node, server)
    yield server
    try:
        _finish(node, server)
    finally:
        server.faults.clear()


@pytest.fixture
def smtp_mailbox(smtp_server: SMTPServer) -> Mailbox:
    """``smtp_server.mailbox``: every message the server accepted during this test."""
    return smtp_server.mailbox


@pytest.fixture
def smtp_server_factory() -> Iterator[SMTPServerFactory]:
    """``factory(**options) -> SMTPServer``: a new started server, stopped after the test."""
    node = _running_test()
    cfg = _config(node)
    made: list[SMTPServer] = []

    def factory(**options: Any) -> SMTPServer:
        built = ServerOptions.build(cfg.base_options, **options)
        server = _smtp_session(node).new_server(built, _dns_for(node, built))
        _apply_settings(server, cfg)
        server.start()
        made.append(server)
        _register(node, server)
        return server

    yield factory
    try:
        for server in made:
            _finish(node, server)
    finally:
        for server in made:
            server.stop()


@pytest.fixture(scope="session")
def smtp_tls() -> TestCA:
    """The session's test CA: ``.ca_file``, ``.client_context()``, ``.server_context(host)``."""
    return default_ca()


@pytest.fixture(scope="session")
def _smtp_dns_server() -> Iterator[FakeDNS]:
    from .fakedns import FakeDNS

    with FakeDNS() as dns:
        yield dns


@pytest.fixture
def smtp_dns(_smtp_dns_server: FakeDNS) -> Iterator[FakeDNS]:
    """A :class:`~pytest_smtp.fakedns.FakeDNS` with empty zones, patched into dnspython and
    ``socket.getaddrinfo`` (fake names only) for this test, restored afterwards."""
    if not _smtp_dns_server.running:  # stopped by a test that shut an engine down
        _smtp_dns_server.start()
    _smtp_dns_server.reset()
    with _smtp_dns_server.patch():
        yield _smtp_dns_server


class MailNetworkBuilder(Protocol):
    """``smtp_mail_network(domain="example.test", **options) -> MailNetwork``."""

    def __call__(self, domain: str | None = "example.test", **options: Any) -> MailNetwork: ...


@pytest.fixture
def smtp_mail_network(smtp_dns: FakeDNS) -> Iterator[MailNetworkBuilder]:
    """``build(domain="example.test", **options) -> MailNetwork`` on ``smtp_dns``.

    One call gives submission -> relay -> MX -> mailbox for ``domain`` (``domain=None``: an empty
    network to build by hand with ``add_domain``/``add_relay``/...). Every network is closed
    after the test, which fails at teardown if an MTA hit an internal error.
    """
    from .relay import MailNetwork

    networks: list[MailNetwork] = []

    def build(domain: str | None = "example.test", **options: Any) -> MailNetwork:
        if domain:
            network = MailNetwork.simple(smtp_dns, domain, **options)
        else:
            network = MailNetwork(smtp_dns, **options)
        networks.append(network)
        return network

    yield build
    for network in networks:
        network.close()  # also gathers its hosts' server errors into network.errors
    errors = [error for network in networks for error in network.errors]
    if errors:
        pytest.fail("mail network internal errors:\n\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def smtp_relay_chain(smtp_mail_network: MailNetworkBuilder) -> MailNetworkBuilder:
    """Deprecated name of :func:`smtp_mail_network` (the same builder; warns
    :class:`DeprecationWarning`)."""
    warnings.warn(
        "the smtp_relay_chain fixture is deprecated: use smtp_mail_network (the same builder)",
        DeprecationWarning,
        stacklevel=2,
    )
    return smtp_mail_network


_Retrieval = Callable[..., Any]


def _like_smtp(smtp_server: SMTPServer) -> dict[str, Any]:
    """What a reader's server shares with the SMTP server whose store it reads: the store, the
    host name it greets with and the CA its certificate comes from; anyone may log in."""
    return {
        "store": smtp_server.store,
        "auth": "any",
        "hostname": smtp_server.hostname,
        "ca": smtp_server.ca,
    }


def _retrieval_factory(cls: type[Any], smtp_server: SMTPServer) -> Iterator[Callable[..., Any]]:
    node = _running_test()
    made: list[Any] = []

    def factory(**options: Any) -> Any:
        server = cls(**{**_like_smtp(smtp_server), **options}).start()
        made.append(server)
        _register(node, server)
        return server

    yield factory
    for server in made:
        server.stop()


@pytest.fixture(scope="session")
def _smtp_retrieval_servers() -> Iterator[dict[Any, Any]]:
    servers: dict[Any, Any] = {}
    yield servers
    for server in servers.values():
        server.stop()


def _shared_retrieval(servers: dict[Any, Any], cls: type[Any], smtp_server: SMTPServer) -> Any:
    key = (cls, id(smtp_server.store), smtp_server.hostname, id(smtp_server.ca))
    server = servers.get(key)
    if server is None or not server.running:
        server = cls(**_like_smtp(smtp_server)).start()
        servers[key] = server
    server.reset()
    _register(_running_test(), server)
    return server


@pytest.fixture
def smtp_pop3(smtp_server: SMTPServer, _smtp_retrieval_servers: dict[Any, Any]) -> POP3Server:
    """A POP3 server over ``smtp_server.store`` (``auth="any"``, the SMTP server's ``hostname``
    and CA), reset for this test."""
    from .retrieval.pop3 import POP3Server

    return _shared_retrieval(_smtp_retrieval_servers, POP3Server, smtp_server)  # type: ignore[no-any-return]


@pytest.fixture
def smtp_imap(smtp_server: SMTPServer, _smtp_retrieval_servers: dict[Any, Any]) -> IMAPServer:
    """An IMAP server over ``smtp_server.store`` (``auth="any"``, the SMTP server's ``hostname``
    and CA), reset for this test."""
    from .retrieval.imap import IMAPServer

    return _shared_retrieval(_smtp_retrieval_servers, IMAPServer, smtp_server)  # type: ignore[no-any-return]


@pytest.fixture
def smtp_pop3_factory(smtp_server: SMTPServer) -> Iterator[_Retrieval]:
    """``factory(**options) -> POP3Server`` over ``smtp_server.store``, ``auth="any"``."""
    from .retrieval.pop3 import POP3Server

    yield from _retrieval_factory(POP3Server, smtp_server)


@pytest.fixture
def smtp_imap_factory(smtp_server: SMTPServer) -> Iterator[_Retrieval]:
    """``factory(**options) -> IMAPServer`` over ``smtp_server.store``, ``auth="any"``."""
    from .retrieval.imap import IMAPServer

    yield from _retrieval_factory(IMAPServer, smtp_server)
