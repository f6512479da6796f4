"""What the policy server knows of the configuration: every managed mailbox with its state and its domain's tier
limits and pool, the pools' IPs in rotation with their warmup caps. Read whole from the database (a few queries),
then held in memory: the hot path asks no database. `config_fingerprint` is the cheap question the server asks every
few seconds to learn that something changed."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Max, Q, Sum

from deliverability import ip_lifecycle
from deliverability.models import IpPool, SendingIp
from deliverability.policy_rules import (
    ACTIVE,
    PERSON_INACTIVE,
    DomainPolicy,
    PolicyConfig,
    RouteIp,
    Sender,
)
from deliverability.postfix_transports import transport_name
from mail.models import Domain, Mailbox, Tier


def _warmup_caps() -> dict[str, tuple[int, int]]:
    from deliverability.ip_warmup import warmup_caps

    return warmup_caps()


def _pool_routes() -> tuple[dict[str, tuple[RouteIp, ...]], dict[int, str], dict[int, str]]:
    """({pool: its IPs in rotation}, {domain pk: pool}, {tier pk: pool})."""
    caps = _warmup_caps()
    routes: dict[str, list[RouteIp]] = {}
    ips = SendingIp.objects.filter(pool__isnull=False, state__in=ip_lifecycle.IN_ROTATION).select_related("pool")
    for ip in ips.order_by("address"):
        daily, hourly = caps.get(ip.address, (None, None))
        routes.setdefault(ip.pool.name, []).append(
            RouteIp(ip.address, transport_name(ip.address), ip.weight, ip.state, daily, hourly)
        )
    by_domain: dict[int, str] = {}
    by_tier: dict[int, str] = {}
    for pool in IpPool.objects.prefetch_related("domains", "tiers"):
        for domain in pool.domains.all():
            by_domain[domain.pk] = pool.name
        for tier in pool.tiers.all():
            by_tier[tier.pk] = pool.name
    return {name: tuple(ips) for name, ips in routes.items()}, by_domain, by_tier


def load_config() -> PolicyConfig:
    routes, pool_by_domain, pool_by_tier = _pool_routes()
    tiers = {tier.pk: tier for tier in Tier.objects.all()}
    domains: dict[int, DomainPolicy] = {}
    for domain in Domain.objects.filter(is_active=True):
        tier = tiers.get(domain.tier_id) if domain.tier_id else None
        pool = pool_by_domain.get(domain.pk) or (pool_by_tier.get(domain.tier_id, "") if domain.tier_id else "")
        domains[domain.pk] = DomainPolicy(
            name=domain.name,
            tier=tier.name if tier else "",
            daily_limit=tier.daily_send_limit if tier else None,
            domain_daily_limit=tier.daily_domain_send_limit if tier else None,
            max_recipients=tier.max_recipients_per_message if tier else None,
            pool=pool,
        )
    senders: dict[str, Sender] = {}
    rows = Mailbox.objects.filter(domain__is_active=True).values_list(
        "address", "domain_id", "state", "person__is_active"
    )
    for address, domain_id, state, person_active in rows.iterator(chunk_size=5000):
        if domain_id not in domains:
            continue  # a domain made between the two reads: the next reload has it
        address = address.lower()
        senders[address] = Sender(
            address, domains[domain_id], state if not (state == ACTIVE and not person_active) else PERSON_INACTIVE
        )
    return PolicyConfig(
        senders=senders,
        local_domains=frozenset(policy.name for policy in domains.values()),
        domains={policy.name: policy for policy in domains.values()},
        pools=routes,
        relay_networks=tuple(settings.POLICY_RELAY_HOSTS),
    )


def config_fingerprint() -> str:
    """A digest that changes when anything load_config reads changes: the small tables whole, the mailboxes and
    people by aggregates (count, last change, the sum of the keys of those that may not send)."""
    user_model = get_user_model()
    parts: list[object] = [
        list(Tier.objects.order_by("pk").values_list()),
        list(Domain.objects.order_by("pk").values_list("pk", "name", "is_active", "tier_id")),
        list(IpPool.objects.order_by("pk").values_list("pk", "name")),
        list(IpPool.domains.through.objects.order_by("pk").values_list()),
        list(IpPool.tiers.through.objects.order_by("pk").values_list()),
        list(SendingIp.objects.order_by("pk").values_list("pk", "address", "pool_id", "weight", "state")),
        Mailbox.objects.aggregate(
            count=Count("pk"), changed=Max("updated_at"), blocked=Sum("pk", filter=~Q(state=Mailbox.ACTIVE))
        ),
        user_model.objects.aggregate(count=Count("pk"), inactive=Sum("pk", filter=Q(is_active=False))),
        sorted(_warmup_caps().items()),
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()
