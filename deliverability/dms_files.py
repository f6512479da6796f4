"""The DMS files deliverability writes (DeliverabilityConfig.dms_files): the sending IP pools' Postfix plumbing
(deliverability.postfix_transports renders it). Each needs a DMS restart to take effect, which the sync flags."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q

from deliverability import ip_pools
from deliverability.models import IpPool
from deliverability.postfix_policy import main_policy_lines, user_patches_policy_lines
from deliverability.postfix_transports import (
    MAIN_PATH,
    MAP_PATH,
    USER_PATCHES_PATH,
    PoolIp,
    PoolRoute,
    main_is_inert,
    main_lines,
    map_is_inert,
    map_lines,
    parse_main,
    parse_map,
    parse_user_patches,
    user_patches_is_inert,
    user_patches_lines,
)
from mail.dms.catalog import DmsFile, OnSkip, Reads
from mail.models import Domain

# A pool's IPs and their states, its domains and tiers, and a domain's tier or activity change what is routed where.
SYNC_ON = (
    "deliverability.SendingIp",
    "deliverability.IpPool",
    "deliverability.IpPool_domains",
    "deliverability.IpPool_tiers",
    "mail.Domain",
)
# DMS applies postfix-main.cf and runs user-patches.sh only when a container is created: `docker restart` skips its
# set-up (target/scripts/start-mailserver.sh, /CONTAINER_START), and Postfix reads a texthash table only at its start.
_RESTART = "{what} changed: DMS applies it only in a new container. Recreate the mailserver container."
# DMS reads Postfix settings and start-up commands from these files only: Dockspace cannot keep an operator's own.
_LOST = (
    "they are lost: Dockspace has no place for arbitrary {what}. Keep a copy; to keep them instead, keep the file "
    "yours and use no sending IP pools"
)


@dataclass(frozen=True)
class PoolDomain:
    """A domain that sends through a pool: its own (via_tier ""), or one of its tiers' (via_tier: the tier's name)."""

    name: str
    via_tier: str
    is_active: bool


def read_pool_domains(pools: Iterable[IpPool]) -> dict[int, list[PoolDomain]]:
    """{pool pk: its domains by name}: its own, then those of its tiers that are in no pool of their own (as
    ip_pools.pool_for_domain decides), active or not. The pools come with their domains and tiers prefetched."""
    pools = list(pools)
    own = {domain.pk: pool.pk for pool in pools for domain in pool.domains.all()}
    by_tier = {tier.pk: pool.pk for pool in pools for tier in pool.tiers.all()}
    found: dict[int, list[PoolDomain]] = {pool.pk: [] for pool in pools}
    rows = (
        Domain.objects.filter(Q(pk__in=own) | Q(tier__in=by_tier))
        .order_by("name")
        .values_list("pk", "name", "tier", "tier__name", "is_active")
    )
    for pk, name, tier_id, tier_name, is_active in rows:
        if pk in own:
            found[own[pk]].append(PoolDomain(name, "", is_active))
        else:
            found[by_tier[tier_id]].append(PoolDomain(name, tier_name, is_active))
    return found


def pool_route(pool: IpPool, domains: Iterable[PoolDomain], rotation: Iterable[ip_pools.RotationIp]) -> PoolRoute:
    """What the files are rendered from for one pool: its active domains and its IPs in rotation with their weights
    (ip_pools.pool_rotation_ips, or rotation_of its IPs already read)."""
    return PoolRoute(
        pool=pool.name,
        domains=tuple(domain.name for domain in domains if domain.is_active),
        ips=tuple(PoolIp(ip.address, ip.helo_name, ip.weight) for ip in rotation),
    )


def read_pool_routes() -> tuple[PoolRoute, ...]:
    """Each pool by name, as the three files route it (pool_route)."""
    pools = list(IpPool.objects.order_by("name").prefetch_related("domains", "tiers"))
    domains = read_pool_domains(pools)
    return tuple(pool_route(pool, domains[pool.pk], ip_pools.pool_rotation_ips(pool)) for pool in pools)


def pool_routes(reads: Reads) -> Iterable[PoolRoute]:
    """The rows of the three files, read once per sync."""
    return reads.once(read_pool_routes)


@dataclass(frozen=True)
class PostfixPlan:
    """What postfix-main.cf and user-patches.sh are rendered from: the pools' routes and where Postfix asks the policy
    service (DOCKSPACE_POLICY_SERVICE, "" for nowhere)."""

    routes: tuple[PoolRoute, ...]
    policy_service: str


def postfix_plan(reads: Reads) -> PostfixPlan:
    return PostfixPlan(tuple(pool_routes(reads)), settings.POLICY_SERVICE)


def main_file_lines(plan: PostfixPlan, on_skip: OnSkip = None) -> Iterable[str]:
    yield from main_lines(plan.routes, on_skip)
    yield from main_policy_lines(plan.policy_service)


def user_patches_file_lines(plan: PostfixPlan, on_skip: OnSkip = None) -> Iterable[str]:
    yield from user_patches_lines(plan.routes, on_skip)
    yield from user_patches_policy_lines(plan.policy_service)


DELIVERABILITY_FILES = (
    DmsFile(
        path=MAP_PATH,
        collect=pool_routes,
        render=map_lines,
        parse=parse_map,
        sync_on=SYNC_ON,
        restart=_RESTART.format(what=f"{MAP_PATH} (which pool each domain sends through)"),
        inert=map_is_inert,
    ),
    DmsFile(
        path=MAIN_PATH,
        collect=postfix_plan,
        render=main_file_lines,
        parse=parse_main,
        sync_on=SYNC_ON,
        restart=_RESTART.format(what=f"{MAIN_PATH} (the sending IP pools' rotation, the policy service)"),
        inert=main_is_inert,
        foreign_lines=_LOST.format(what="Postfix settings (main.cf lines)"),
    ),
    DmsFile(
        path=USER_PATCHES_PATH,
        collect=postfix_plan,
        render=user_patches_file_lines,
        parse=parse_user_patches,
        sync_on=SYNC_ON,
        restart=_RESTART.format(what=f"{USER_PATCHES_PATH} (the sending IPs' Postfix transports)"),
        inert=user_patches_is_inert,
        foreign_lines=_LOST.format(what="start-up commands (user-patches.sh lines)"),
    ),
)
