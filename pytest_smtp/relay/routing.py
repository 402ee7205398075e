"""Where mail for a domain goes (RFC 5321 §5.1, RFC 7505): MX lookup, ordering, fallbacks.

The pure part (:func:`order_exchanges`, :func:`drop_self`, :func:`check_recipient_syntax`) is
separate from the lookups (:func:`resolve_route`), which run on the engine's loop through a
``dns.asyncresolver.Resolver`` aimed at the fake DNS: they never block the loop and never
reach real DNS.

Routing outcomes:

* MX records: sorted by preference, equal preferences shuffled with a seeded generator.
* NODATA for MX (the name exists but has no MX): the domain itself is the only exchange
  (implicit MX), found through its A/AAAA records.
* NXDOMAIN: permanent failure, ``5.1.2``.
* SERVFAIL, REFUSED or a timeout: transient failure, ``4.4.3`` (retried).
* Null MX (a single ``MX 0 .``, RFC 7505): permanent failure ``5.1.10``, no A fallback.
* The routing host itself in the MX list: that preference and every worse one are dropped; if
  nothing better remains the mail "loops back to myself": permanent ``5.4.6``.
* Only loopback addresses are ever used: any other address is skipped (this project never
  connects anywhere else).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from ..smtp.address import domain_of

__all__ = [
    "Exchange",
    "LookupCache",
    "Route",
    "RoutingError",
    "check_recipient_syntax",
    "domain_of",
    "drop_self",
    "is_loopback",
    "order_exchanges",
    "resolve_host",
    "resolve_route",
]


class RoutingError(Exception):
    """No route to a domain: ``permanent`` (bounce) or transient (defer and retry).

    ``status`` is the RFC 3463 enhanced status code, ``text`` the diagnostic.
    """

    def __init__(self, status: str, text: str) -> None:
        super().__init__(f"{status} {text}")
        self.status = status
        self.text = text

    @property
    def permanent(self) -> bool:
        """True for a 5.x.x status (the recipient is bounced, not retried)."""
        return self.status.startswith("5")


@dataclasses.dataclass(frozen=True)
class Exchange:
    """One host to try: its name, MX preference and loopback addresses (in order)."""

    name: str
    preference: int
    addresses: tuple[str, ...]
    error: str | None = None
    """Why the host has no usable address (lookup failure), or None."""
    transient: bool = False
    """True when ``error`` is a temporary lookup failure."""


@dataclasses.dataclass(frozen=True)
class Route:
    """The exchanges to try for ``domain``, best first."""

    domain: str
    exchanges: tuple[Exchange, ...]
    implicit: bool = False
    """True when the domain had no MX records and its own address is used (RFC 5321 §5.1)."""

    @property
    def usable(self) -> tuple[Exchange, ...]:
        """The exchanges that have at least one address."""
        return tuple(e for e in self.exchanges if e.addresses)


class LookupCache:
    """Remembers every lookup (answer or failure) made through it; concurrent identical
    lookups share one query. A network uses one per delivery run, so a change to the fake
    DNS applies from the next run, as if every record had a TTL of one run."""

    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self.resolver = resolver
        self._results: dict[tuple[str, str], asyncio.Future[dns.resolver.Answer]] = {}

    async def resolve(self, qname: str, rdtype: str, **kwargs: Any) -> dns.resolver.Answer:
        """``resolver.resolve(qname, rdtype, **kwargs)``, at most once per name and type."""
        key = (qname.lower().rstrip("."), rdtype.upper())
        future = self._results.get(key)
        if future is None:
            future = asyncio.ensure_future(self.resolver.resolve(qname, rdtype, **kwargs))
            self._results[key] = future
        return await asyncio.shield(future)

    def __len__(self) -> int:
        return len(self._results)


Resolver = dns.asyncresolver.Resolver | LookupCache


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8 and ::1 (the only addresses a relay here may connect to)."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_recipient_syntax(address: str, source_route: str | None = None) -> str | None:
    """Why a relay must refuse this recipient, or None.

    A source route (``@a,@b`` of ``<@a,@b:user@c>``, as the server parsed it: the
    recipient's ``RecipientResult.source_route``) and ``%`` / ``!`` in the local part (the
    "percent hack" and UUCP bang paths) would let a sender steer mail through the relay to a
    destination it did not agree to carry.
    """
    if source_route:
        return "source routes are not accepted"
    local = address.rpartition("@")[0]
    if "%" in local or "!" in local:
        return "'%' and '!' routing in the local part is not accepted"
    return None


def order_exchanges(
    records: Iterable[tuple[int, str]], rng: random.Random
) -> list[tuple[int, str]]:
    """Sort ``(preference, name)`` by preference; equal preferences in ``rng``'s order.

    RFC 5321 §5.1: "If there are multiple destinations with the same preference [...] the
    SMTP client SHOULD randomize them to spread the load".
    """
    groups: dict[int, list[str]] = {}
    for preference, name in records:
        groups.setdefault(preference, []).append(name)
    result: list[tuple[int, str]] = []
    for preference in sorted(groups):
        names = sorted(groups[preference])  # a canonical start: DNS answer order varies
        rng.shuffle(names)
        result.extend((preference, name) for name in names)
    return result


def drop_self(
    ordered: Sequence[tuple[int, str]], is_self: Callable[[str], bool]
) -> tuple[list[tuple[int, str]], bool]:
    """Remove the routing host and every exchange not more preferred than it.

    Returns ``(remaining, found_self)``. RFC 5321 §5.1: a relay listed as an MX "MUST [...]
    discard all MX records with the same or higher preference value" than its own.
    """
    own = [pref for pref, name in ordered if is_self(name)]
    if not own:
        return list(ordered), False
    best = min(own)
    return [(pref, name) for pref, name in ordered if pref < best], True


def _rcode_text(exc: BaseException) -> str:
    if isinstance(exc, dns.resolver.NoNameservers):
        return "server failure (SERVFAIL or REFUSED)"
    if isinstance(exc, dns.exception.Timeout):
        return "timed out"
    return type(exc).__name__


async def _lookup(resolver: Resolver, name: str, rdtype: str) -> dns.resolver.Answer | None:
    """The answer (None for NODATA); NXDOMAIN and failures raise as dnspython does."""
    answer = await resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
    return answer if answer.rrset is not None else None


async def resolve_host(resolver: Resolver, name: str, preference: int = 0) -> Exchange:
    """The loopback addresses of host ``name`` as an :class:`Exchange` (A first, AAAA only
    when there is no A); a lookup failure or an unusable answer is in ``error``, never raised.
    """
    found: list[str] = []
    # IPv4 first; AAAA is asked only when a host has no A record (the network is 127/8).
    for rdtype in ("A", "AAAA"):
        try:
            answer = await _lookup(resolver, name, rdtype)
        except dns.resolver.NXDOMAIN:
            return Exchange(name, preference, (), f"host {name} not found (NXDOMAIN)")
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            return Exchange(
                name, preference, (), f"lookup of {name}/{rdtype} failed: {_rcode_text(exc)}", True
            )
        if answer is not None:
            found.extend(str(rd.address) for rd in answer)
        if found:
            break
    if not found:
        return Exchange(name, preference, (), f"host {name} has no A or AAAA record")
    usable = tuple(a for a in found if is_loopback(a))
    if not usable:
        return Exchange(
            name, preference, (), f"host {name} has only non-loopback addresses {found}; refused"
        )
    return Exchange(name, preference, usable)


async def resolve_route(
    resolver: Resolver,
    domain: str,
    *,
    rng: random.Random,
    is_self: Callable[[str], bool] = lambda name: False,
) -> Route:
    """Find the exchanges for ``domain`` (see the module docstring); :class:`RoutingError`
    when there is none, permanent or transient."""
    domain = domain.lower().rstrip(".")
    if not domain or domain.startswith("["):
        raise RoutingError("5.1.2", f"cannot route to domain {domain!r}")
    implicit = False
    try:
        answer = await _lookup(resolver, domain, "MX")
    except dns.resolver.NXDOMAIN:
        raise RoutingError(
            "5.1.2", f"Host or domain name not found: {domain} (MX lookup: NXDOMAIN)"
        ) from None
    except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
        raise RoutingError(
            "4.4.3", f"MX lookup for {domain} failed: {_rcode_text(exc)}; will retry"
        ) from None
    if answer is None:
        records = [(0, domain)]
        implicit = True
    else:
        records = []
        null = False
        for rd in answer:
            exchange = rd.exchange
            if exchange == dns.name.root:
                null = True
                continue
            records.append((int(rd.preference), str(exchange).rstrip(".").lower()))
        if null and not records:
            raise RoutingError("5.1.10", f"Domain {domain} accepts no mail (null MX, RFC 7505)")
    ordered = order_exchanges(records, rng)
    remaining, found_self = drop_self(ordered, is_self)
    exchanges = [await resolve_host(resolver, name, pref) for pref, name in remaining]
    # A host whose address is this host's own is the same loop as an MX name pointing here.
    own = [e.preference for e in exchanges if any(is_self(a) for a in e.addresses)]
    if own:
        found_self = True
        exchanges = [e for e in exchanges if e.preference < min(own)]
    if not exchanges:
        if found_self:
            raise RoutingError(
                "5.4.6", f"mail for {domain} loops back to myself (best MX is this host)"
            )
        raise RoutingError("5.4.4", f"no MX host for {domain}")
    route = Route(domain, tuple(exchanges), implicit)
    if not route.usable:
        errors = "; ".join(e.error or e.name for e in exchanges) or "no exchange left"
        if any(e.transient for e in exchanges):
            raise RoutingError("4.4.3", f"no usable host for {domain}: {errors}; will retry")
        raise RoutingError("5.4.4", f"no usable host for {domain}: {errors}")
    return route
