"""Divert name lookups to a :class:`~pytest_smtp.fakedns.FakeDNS` for the fake names only.

While at least one ``FakeDNS.patch()`` block is active:

- ``dns.resolver.default_resolver`` and ``dns.asyncresolver.default_resolver`` are resolvers
  asking the innermost active FakeDNS, and every ``Resolver()`` (sync or async) created with
  the default ``configure=True`` is configured for it instead of reading ``/etc/resolv.conf``
  (or the Windows registry);
- ``socket.getaddrinfo``, ``socket.gethostbyname`` and ``socket.gethostbyname_ex`` resolve
  names inside a fake zone through the fake nameserver, and hand every other name (``localhost``,
  IP literals, real hosts) to the functions they replaced.

The hooks are installed when the first block is entered and removed when the last one exits,
also when blocks exit out of order or with an exception. A hook that outlives its removal (kept
by someone else's restore, say) passes every name to the original function.

This module never imports pytest.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import dns.asyncresolver
import dns.name
import dns.resolver

__all__ = ["Addresses", "PatchTarget", "active_servers", "patched", "server_changed"]

R = TypeVar("R", bound=dns.resolver.BaseResolver)


@dataclass
class Addresses:
    """What a fake name resolves to, for the patched socket functions."""

    canonical: str
    """The name at the end of the CNAME chain (no trailing dot)."""
    aliases: list[str]
    """The CNAME owners on the way, in order."""
    addresses: list[str]
    """The addresses found, as text."""


class PatchTarget(Protocol):
    """What this module needs from a fake nameserver (:class:`~pytest_smtp.fakedns.FakeDNS`).

    Defined here, so that the server imports this module and never the other way round.
    """

    @property
    def nameserver(self) -> tuple[str, int]:
        """``(host, port)``; raises while the server is not started."""

    def is_fake(self, name: str | bytes | dns.name.Name | None) -> bool:
        """True when ``name`` is inside one of the server's zones."""

    def resolver(self) -> dns.asyncresolver.Resolver:
        """A new async resolver asking the server."""

    def sync_resolver(self) -> dns.resolver.Resolver:
        """A new resolver asking the server."""

    def configure(self, resolver: R) -> R:
        """Point ``resolver`` at the server."""

    def lookup_addresses(self, host: str, rdtypes: tuple[str, ...]) -> Addresses:
        """Addresses of ``host`` (a fake name); ``socket.gaierror`` as the C library reports."""


S = TypeVar("S", bound=PatchTarget)

_EAI_NODATA: int = getattr(socket, "EAI_NODATA", socket.EAI_NONAME)

_import_getaddrinfo = socket.getaddrinfo
_import_gethostbyname = socket.gethostbyname
_import_gethostbyname_ex = socket.gethostbyname_ex
_import_read_resolv_conf = dns.resolver.BaseResolver.read_resolv_conf
_import_read_registry = getattr(dns.resolver.BaseResolver, "read_registry", None)


@dataclass
class _Saved:
    getaddrinfo: Callable[..., Any]
    gethostbyname: Callable[..., Any]
    gethostbyname_ex: Callable[..., Any]
    read_resolv_conf: Any
    read_registry: Any
    sync_default: dns.resolver.Resolver | None
    async_default: dns.asyncresolver.Resolver | None


_lock = threading.RLock()
_stack: list[PatchTarget] = []
_saved: _Saved | None = None


def active_servers() -> tuple[PatchTarget, ...]:
    """The FakeDNS instances whose ``patch()`` block is active, outermost first."""
    return tuple(_stack)


@contextlib.contextmanager
def patched(server: S) -> Iterator[S]:
    """Context manager behind :meth:`FakeDNS.patch`."""
    _push(server)
    try:
        yield server
    finally:
        _pop(server)


def _push(server: PatchTarget) -> None:
    server.nameserver  # noqa: B018 -- fail here, not in a hook, when the server is not started
    with _lock:
        if not _stack:
            _install()
        _stack.append(server)
        _point_defaults(server)


def _pop(server: PatchTarget) -> None:
    with _lock:
        for index in range(len(_stack) - 1, -1, -1):
            if _stack[index] is server:
                del _stack[index]
                break
        if _stack:
            _point_defaults(_stack[-1])
        else:
            _uninstall()


def server_changed(server: PatchTarget) -> None:
    """Re-create the patched default resolvers when ``server`` (innermost) changed settings."""
    with _lock:
        if _stack and _stack[-1] is server:
            _point_defaults(server)


def _point_defaults(server: PatchTarget) -> None:
    dns.resolver.default_resolver = server.sync_resolver()
    dns.asyncresolver.default_resolver = server.resolver()  # type: ignore[assignment]


def _install() -> None:
    global _saved
    base = dns.resolver.BaseResolver
    _saved = _Saved(
        getaddrinfo=socket.getaddrinfo,
        gethostbyname=socket.gethostbyname,
        gethostbyname_ex=socket.gethostbyname_ex,
        read_resolv_conf=base.__dict__.get("read_resolv_conf"),
        read_registry=base.__dict__.get("read_registry"),
        sync_default=dns.resolver.default_resolver,
        async_default=dns.asyncresolver.default_resolver,
    )
    socket.getaddrinfo = _getaddrinfo
    socket.gethostbyname = _gethostbyname
    socket.gethostbyname_ex = _gethostbyname_ex
    base.read_resolv_conf = _read_resolv_conf  # type: ignore[method-assign]
    if sys.platform == "win32":  # pragma: no cover
        base.read_registry = _read_registry  # type: ignore[method-assign]


def _uninstall() -> None:
    global _saved
    saved = _saved
    if saved is None:
        return
    _saved = None
    socket.getaddrinfo = saved.getaddrinfo
    socket.gethostbyname = saved.gethostbyname
    socket.gethostbyname_ex = saved.gethostbyname_ex
    base = dns.resolver.BaseResolver
    base.read_resolv_conf = saved.read_resolv_conf  # type: ignore[method-assign]
    if sys.platform == "win32" and saved.read_registry is not None:  # pragma: no cover
        base.read_registry = saved.read_registry  # type: ignore[method-assign]
    dns.resolver.default_resolver = saved.sync_default
    dns.asyncresolver.default_resolver = saved.async_default  # type: ignore[assignment]


# -- the hooks -------------------------------------------------------------------------------
def _original(name: str) -> Callable[..., Any]:
    saved = _saved
    if saved is not None:
        fn: Callable[..., Any] = getattr(saved, name)
        return fn
    originals: dict[str, Callable[..., Any]] = {
        "getaddrinfo": _import_getaddrinfo,
        "gethostbyname": _import_gethostbyname,
        "gethostbyname_ex": _import_gethostbyname_ex,
    }
    return originals[name]


def _server_for(host: object) -> tuple[PatchTarget, str] | None:
    """The innermost active FakeDNS serving ``host``, and ``host`` as text; None otherwise."""
    servers = tuple(_stack)
    if not servers or host is None:
        return None
    if isinstance(host, (bytes, bytearray)):
        try:
            host = bytes(host).decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(host, str) or not host:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return None  # an IP literal never needs DNS
    for server in reversed(servers):
        if server.is_fake(host):
            return server, host
    return None


def _port_number(port: object, socktype: int) -> int:
    if port is None:
        return 0
    if isinstance(port, int):
        return port
    if isinstance(port, (bytes, bytearray)):
        port = bytes(port).decode("ascii", "replace")
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        try:
            return socket.getservbyname(port, "udp" if socktype == socket.SOCK_DGRAM else "tcp")
        except OSError:
            raise socket.gaierror(
                socket.EAI_SERVICE, "Servname not supported for ai_socktype"
            ) from None
    raise TypeError(f"getaddrinfo() argument 2 must be integer or string, not {type(port)}")


_DEFAULT_PROTO: dict[int, int] = {
    socket.SOCK_STREAM: socket.IPPROTO_TCP,
    socket.SOCK_DGRAM: socket.IPPROTO_UDP,
    socket.SOCK_RAW: 0,
}


def _socket_kinds(socktype: int, proto: int) -> list[tuple[int, int]]:
    if socktype == 0 and proto == 0:
        return list(_DEFAULT_PROTO.items())
    if socktype == 0:
        kinds = [(t, p) for t, p in _DEFAULT_PROTO.items() if p == proto]
        return kinds or [(socket.SOCK_RAW, proto)]
    return [(socktype, proto or _DEFAULT_PROTO.get(socket.SocketKind(socktype), 0))]


def _getaddrinfo(
    host: bytes | str | None,
    port: bytes | str | int | None,
    family: int = 0,
    type: int = 0,
    proto: int = 0,
    flags: int = 0,
) -> list[tuple[Any, ...]]:
    found = None if flags & socket.AI_NUMERICHOST else _server_for(host)
    if found is None:
        return list(_original("getaddrinfo")(host, port, family, type, proto, flags))
    server, name = found
    if family == socket.AF_INET:
        rdtypes: tuple[str, ...] = ("A",)
    elif family == socket.AF_INET6:
        rdtypes = ("AAAA",)
    elif family == socket.AF_UNSPEC:
        rdtypes = ("A", "AAAA")
    else:
        raise socket.gaierror(socket.EAI_FAMILY, "ai_family not supported")
    number = _port_number(port, type)
    result = server.lookup_addresses(name, rdtypes)
    if not result.addresses:
        if not server.is_fake(result.canonical):
            # A CNAME out of the fake zones: resolve the target the ordinary way.
            return list(
                _original("getaddrinfo")(result.canonical, port, family, type, proto, flags)
            )
        raise socket.gaierror(_EAI_NODATA, "No address associated with hostname")
    canonical = result.canonical if flags & socket.AI_CANONNAME else ""
    infos: list[tuple[Any, ...]] = []
    for address in result.addresses:
        if ":" in address:
            af = socket.AF_INET6
            sockaddr: tuple[Any, ...] = (address, number, 0, 0)
        else:
            af = socket.AF_INET
            sockaddr = (address, number)
        for kind, kind_proto in _socket_kinds(type, proto):
            infos.append((af, socket.SocketKind(kind), kind_proto, canonical, sockaddr))
            canonical = ""  # the C library puts the canonical name on the first entry only
    return infos


def _gethostbyname(hostname: str) -> str:
    found = _server_for(hostname)
    if found is None:
        return str(_original("gethostbyname")(hostname))
    server, name = found
    result = server.lookup_addresses(name, ("A",))
    if not result.addresses:
        if not server.is_fake(result.canonical):
            return str(_original("gethostbyname")(result.canonical))
        raise socket.gaierror(_EAI_NODATA, "No address associated with hostname")
    return result.addresses[0]


def _gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]:
    found = _server_for(hostname)
    if found is None:
        canonical, aliases, addresses = _original("gethostbyname_ex")(hostname)
        return canonical, aliases, addresses
    server, name = found
    result = server.lookup_addresses(name, ("A",))
    if not result.addresses:
        if not server.is_fake(result.canonical):
            canonical, aliases, addresses = _original("gethostbyname_ex")(result.canonical)
            return canonical, result.aliases + aliases, addresses
        raise socket.gaierror(_EAI_NODATA, "No address associated with hostname")
    return result.canonical, result.aliases, result.addresses


def _read_resolv_conf(self: dns.resolver.BaseResolver, f: Any) -> None:
    servers = tuple(_stack)
    if not servers:
        _import_read_resolv_conf(self, f)
        return
    servers[-1].configure(self)


def _read_registry(self: dns.resolver.BaseResolver) -> None:  # pragma: no cover - Windows
    servers = tuple(_stack)
    if not servers:
        if _import_read_registry is not None:
            _import_read_registry(self)
        return
    servers[-1].configure(self)
