"""Reads of the DNS checks (a domain's latest results, how many domains stand at each level), of the blocklists (what
is listed now, which lists are broken) and of the sending IPs and pools as a person may see them."""

from __future__ import annotations

from collections import Counter

from django.db.models import QuerySet

from accounts.authz import Actor, require_perm
from deliverability import ip_pools, sending_ips
from deliverability.models import FAILED, OK, WARNING, Dnsbl, DnsblResult, DnsCheckResult, IpPool, SendingIp
from dockspace.validation import field_error
from mail.models import Domain

LEVEL_ORDER = {OK: 0, WARNING: 1, FAILED: 2}
VIEW_DOMAIN = "mail.view_domain"


def require_may_see_domains(actor: Actor, field: str = "domain") -> None:
    """A DNS check's outcome shows the domain's name and records: only for those who may view domains (the system
    may). Asked before any domain is looked up, so a refusal tells nothing about which exist."""
    if not actor.has_perm(VIEW_DOMAIN):
        raise field_error(
            field,
            f"checking a domain's DNS shows the domain: it needs the permission to view domains ({VIEW_DOMAIN!r}).",
        )


def domain_to_check(actor: Actor, domain_id: int) -> Domain | None:
    """The domain `actor` asks to check now ("Check now" on its page), None when there is no such domain."""
    require_may_see_domains(actor)
    return Domain.objects.filter(pk=domain_id).first()


def latest_results(domain: Domain) -> list[DnsCheckResult]:
    """The results of the domain's latest check run, in the order the checks run (empty: never checked)."""
    order = [kind for kind, _ in DnsCheckResult.CHECKS]
    rows = DnsCheckResult.objects.filter(domain=domain, is_latest=True).select_related("domain")
    return sorted(rows, key=lambda row: (order.index(row.kind) if row.kind in order else len(order), row.subject))


def domain_levels() -> dict[str, str]:
    """{domain name: its worst latest level} for every domain checked at least once."""
    worst: dict[str, str] = {}
    rows = DnsCheckResult.objects.filter(is_latest=True).values_list("domain__name", "level")
    for name, level in rows:
        if LEVEL_ORDER.get(level, 0) >= LEVEL_ORDER.get(worst.get(name, OK), 0):
            worst[name] = level
    return worst


def level_counts() -> dict[str, int]:
    """How many checked domains are failed, warning and ok (by their worst latest result)."""
    counts = Counter(domain_levels().values())
    return {level: counts.get(level, 0) for level in (FAILED, WARNING, OK)}


def listed_subjects() -> dict[str, list[str]]:
    """{Dnsbl.IP: [addresses], Dnsbl.DOMAIN: [domains]} listed now on at least one list, each sorted once."""
    rows = DnsblResult.objects.filter(is_latest=True, status=DnsblResult.LISTED).values_list("dnsbl__kind", "subject")
    found: dict[str, set[str]] = {Dnsbl.IP: set(), Dnsbl.DOMAIN: set()}
    for kind, subject in rows:
        found.setdefault(kind, set()).add(subject)
    return {kind: sorted(subjects) for kind, subjects in found.items()}


def broken_lists() -> list[str]:
    """The names of the enabled lists whose test points failed at their last check."""
    return list(
        Dnsbl.objects.filter(is_enabled=True, health=Dnsbl.BROKEN).order_by("name").values_list("name", flat=True)
    )


# --- sending IPs and pools, for those who may view them -------------------------------------------------------

VIEW_POOL = "deliverability.view_ippool"


def sending_ips_visible_to(actor: Actor) -> QuerySet[SendingIp]:
    """Every sending IP with its pool, by address; refused unless `actor` may view sending IPs."""
    require_perm(actor, sending_ips.VIEW)
    return SendingIp.objects.select_related("pool").order_by("address")


def sending_ip_visible_to(actor: Actor, address: str, field: str = "address") -> SendingIp:
    """The sending IP at `address` (any spelling), refused unless `actor` may view sending IPs: asked first, so a
    refusal tells nothing about which addresses are sending IPs."""
    require_perm(actor, sending_ips.VIEW)
    return sending_ips.ip_by_address(address, field)


def pools_visible_to(actor: Actor) -> QuerySet[IpPool]:
    """Every pool with its domains and tiers, by name; refused unless `actor` may view pools."""
    require_perm(actor, VIEW_POOL)
    return IpPool.objects.prefetch_related("domains", "tiers").order_by("name")


def pool_visible_to(actor: Actor, name: str, field: str = "pool") -> IpPool:
    """The pool named `name`, refused (before it is looked up) unless `actor` may view pools."""
    require_perm(actor, VIEW_POOL)
    return ip_pools.pool_by_name(name, field)
