"""Reads of the DNS checks (a domain's latest results, how many domains stand at each level), of the blocklists (what
is listed now, which lists are broken), of the sending IPs and pools as a person may see them, and of what Postfix
will do with the pools (their routing as the next sync writes it)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime

from django.db.models import QuerySet

from accounts.authz import Actor, require_perm
from deliverability import dms_files, ip_lifecycle, ip_pools, sending_ips
from deliverability.models import FAILED, OK, WARNING, Dnsbl, DnsblResult, DnsCheckResult, IpPool, SendingIp
from deliverability.postfix_transports import MAIN_PATH, MAP_PATH, USER_PATCHES_PATH, route_outcome, transport_name
from dockspace.validation import field_error
from mail.dms import sync
from mail.dms.writer import UnsafePath, WriteError
from mail.models import Domain
from mail.selectors import dms_sync_status

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


def domain_worst_levels() -> dict[tuple[str, int], str]:
    """{(domain name, domain id): its worst latest level} for every domain checked at least once."""
    worst: dict[tuple[str, int], str] = {}
    rows = DnsCheckResult.objects.filter(is_latest=True).values_list("domain__name", "domain_id", "level")
    for name, pk, level in rows:
        if LEVEL_ORDER.get(level, 0) >= LEVEL_ORDER.get(worst.get((name, pk), OK), 0):
            worst[name, pk] = level
    return worst


def domain_levels() -> dict[str, str]:
    """{domain name: its worst latest level} for every domain checked at least once."""
    return {name: level for (name, _), level in domain_worst_levels().items()}


def domains_at_level(level: str) -> list[tuple[str, int]]:
    """(name, id) of each checked domain whose worst latest level is `level`, by name: the domains the dashboard
    counts at that level."""
    return sorted(key for key, worst in domain_worst_levels().items() if worst == level)


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
    if not any(actor.has_perm(perm) for perm in (sending_ips.CHANGE, sending_ips.DELETE)):  # they imply view
        require_perm(actor, sending_ips.VIEW)
    return sending_ips.ip_by_address(address, field)


def pools_visible_to(actor: Actor) -> QuerySet[IpPool]:
    """Every pool with its domains and tiers, by name; refused unless `actor` may view pools."""
    require_perm(actor, VIEW_POOL)
    return IpPool.objects.prefetch_related("domains", "tiers").order_by("name")


def pool_visible_to(actor: Actor, name: str, field: str = "pool") -> IpPool:
    """The pool named `name`, refused (before it is looked up) unless `actor` may view pools (or change or remove
    them, which implies it)."""
    if not any(actor.has_perm(perm) for perm in (ip_pools.CHANGE, ip_pools.DELETE)):
        require_perm(actor, VIEW_POOL)
    return ip_pools.pool_by_name(name, field)


# --- what Postfix will do: the pools' routing as the next sync writes it ------------------------------------------


@dataclass(frozen=True)
class RoutedIp:
    """An IP in a pool's rotation: its transport (master.cf service, and its log tag) and its share of new mail."""

    pk: int
    address: str
    transport: str
    helo_name: str
    weight: int
    state: str
    share: float  # 0 to 1

    @property
    def share_percent(self) -> float:
        return round(100 * self.share, 1)


@dataclass(frozen=True)
class IdleIp:
    """An IP of the pool that takes no new mail, and why (its state and the reason recorded with it, or why the
    files leave it out)."""

    pk: int
    address: str
    state: str
    since: datetime
    reason: str


@dataclass(frozen=True)
class RoutedDomain:
    """A domain of the pool (its own, or via_tier's): routed through the pool, or on the default transport (reason)."""

    name: str
    via_tier: str
    reason: str = ""

    @property
    def is_routed(self) -> bool:
        return not self.reason


@dataclass(frozen=True)
class PoolRouting:
    pk: int
    name: str
    domains: tuple[RoutedDomain, ...]
    in_rotation: tuple[RoutedIp, ...]
    not_in_rotation: tuple[IdleIp, ...]
    notes: tuple[str, ...]

    @property
    def routed_domains(self) -> tuple[RoutedDomain, ...]:
        return tuple(domain for domain in self.domains if domain.is_routed)

    @property
    def default_domains(self) -> tuple[RoutedDomain, ...]:
        return tuple(domain for domain in self.domains if not domain.is_routed)


@dataclass(frozen=True)
class RoutingFiles:
    """The three files on disk against what the next sync writes (mail.dms.sync.dms_dry_run). diffs: {path: unified
    diff}; not_written: files the sync leaves alone and values it leaves out; problem: why nothing can be compared
    (the sync refuses to write, or the directory cannot be read). restart_*: DmsSyncState's flag: Postfix routes by
    what a sync wrote only once the mailserver container is recreated."""

    paths: tuple[str, ...]
    diffs: dict[str, str]
    not_written: tuple[str, ...]
    problem: str
    restart_needed: bool
    restart_reason: str

    @property
    def is_up_to_date(self) -> bool:
        return not self.diffs and not self.problem


@dataclass(frozen=True)
class PostfixRouting:
    pools: tuple[PoolRouting, ...]
    unpooled_domains: int  # active domains in no pool: the default transport
    files: RoutingFiles


ROUTING_PATHS = (MAP_PATH, MAIN_PATH, USER_PATCHES_PATH)


def postfix_routing(actor: Actor) -> PostfixRouting:
    """What Postfix will do with each pool once the next sync's files are in a new container: the domains that send
    through it, its IPs in rotation with their transports and shares, the IPs that take no new mail and why, the
    domains that keep the default transport and why, and whether the files on disk differ from what the next sync
    writes. Nothing is written. Refused unless `actor` may view pools; the domains' names (in the pools and in the
    files' differences) only for those who may view domains, the others get how many."""
    require_perm(actor, VIEW_POOL)
    pools = list(IpPool.objects.order_by("name").prefetch_related("domains", "tiers", "ips__state_changes"))
    domains = dms_files.read_pool_domains(pools)
    routings = tuple(_pool_routing(pool, domains[pool.pk]) for pool in pools)
    pooled = sum(1 for pool in pools for domain in domains[pool.pk] if domain.is_active)
    files = _routing_files()
    if not actor.has_perm(VIEW_DOMAIN):
        routings = tuple(_without_domain_names(routing) for routing in routings)
        hidden = "(not shown: the files name domains, which needs the permission to view domains)"
        files = replace(files, diffs={path: hidden for path in files.diffs})
    return PostfixRouting(
        pools=routings,
        unpooled_domains=max(0, Domain.objects.filter(is_active=True).count() - pooled),
        files=files,
    )


def _without_domain_names(routing: PoolRouting) -> PoolRouting:
    routed, default = len(routing.routed_domains), len(routing.default_domains)
    note = (
        f"{routed} domain(s) send through this pool and {default} keep the default transport; their names need the "
        f"permission to view domains ({VIEW_DOMAIN!r})."
    )
    return replace(routing, domains=(), notes=(note, *routing.notes))


def _pool_routing(pool: IpPool, domains: list[dms_files.PoolDomain]) -> PoolRouting:
    ips = {ip.address: ip for ip in pool.ips.all()}  # one read of the pool's IPs (by address) for all below
    outcome = route_outcome(dms_files.pool_route(pool, domains, ip_pools.rotation_of(ips.values())))
    why_default = dict(outcome.default)
    shown = [
        RoutedDomain(d.name, d.via_tier, why_default.get(d.name, "") if d.is_active else "inactive: not in the map")
        for d in domains
    ]
    in_rotation = tuple(
        RoutedIp(
            ips[ip.address].pk,
            ip.address,
            transport_name(ip.address),
            ip.helo_name,
            ip.weight,
            ips[ip.address].state,
            share,
        )
        for ip, share in outcome.shares
    )
    left_out = {ip.address: reason for ip, reason in outcome.left_out}
    routed = {ip.address for ip in in_rotation}
    idle = tuple(
        IdleIp(ip.pk, ip.address, ip.state, ip.state_since, left_out.get(ip.address) or _state_reason(ip))
        for ip in ips.values()
        if ip.address not in routed
    )
    notes = []
    if in_rotation and not outcome.routed:
        notes.append("No active domain sends through this pool: its transports are added but carry no mail.")
    if any(ip.state == SendingIp.WARMING for ip in in_rotation):
        notes.append(
            "WARMING IPs take their weight's share of the pool's mail, uncapped, unless the policy service routes it "
            "(DOCKSPACE_POLICY_SERVICE): then mail to outside recipients goes to an IP with room in its warmup caps, "
            "and waits in the hold queue when none has."
        )
    if any(":" in ip.address for ip in in_rotation):
        notes.append(
            "IPv6 addresses send only to MX hosts with IPv6 (AAAA) records: mail for an IPv4-only MX picked for an "
            "IPv6 transport leaves from the host's default IPv4 address, whose PTR and blocklist standing count "
            "then. Give the pool IPv4 addresses for such destinations."
        )
    return PoolRouting(pool.pk, pool.name, tuple(shown), in_rotation, idle, tuple(notes))


def _state_reason(ip: SendingIp) -> str:
    """Why an IP out of rotation takes no new mail: its state, and the reason recorded when it entered it."""
    label = dict(ip_lifecycle.STATE_CHOICES).get(ip.state, ip.state)
    latest = next(iter(ip.state_changes.all()), None)  # newest first (IpStateChange.Meta.ordering)
    return f"{label}: {latest.reason}" if latest is not None and latest.reason else label


def _routing_files() -> RoutingFiles:
    status = dms_sync_status()
    problem, diffs = "", {}
    not_written: tuple[str, ...] = ()
    try:
        report = sync.dms_dry_run(paths=ROUTING_PATHS)
    except sync.ForeignFiles as e:
        problem = f"the sync writes nothing yet: {e}"
    except (WriteError, UnsafePath, OSError) as e:
        problem = f"the DMS directory cannot be read: {e}"
    else:
        diffs, not_written = report.diffs, tuple(report.skipped)
    return RoutingFiles(
        paths=ROUTING_PATHS,
        diffs=diffs,
        not_written=not_written,
        problem=problem,
        restart_needed=status.restart_needed,
        restart_reason=status.restart_reason,
    )
