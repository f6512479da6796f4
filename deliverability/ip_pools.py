"""IP pools: adding, changing and removing one (a domain, and a tier, send through at most one pool), and which IPs
a pool or a domain sends through now. The admin and `manage.py ip_pool` call these; each checks the actor's
permission, refuses with ValidationError({field: [message]}) and writes the audit log."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction

from accounts import authz
from accounts.audit import audit
from deliverability import ip_lifecycle
from deliverability.models import IpPool, SendingIp
from deliverability.sending_ips import who
from dockspace.validation import field_error
from mail.models import Domain, Tier

if TYPE_CHECKING:
    from django.http import HttpRequest

ADD = "deliverability.add_ippool"
CHANGE = "deliverability.change_ippool"
VIEW_DOMAIN = "mail.view_domain"
DELETE = "deliverability.delete_ippool"

EDITABLE = ("name", "description", "domains", "tiers", "rotation_enabled")
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")


@dataclass(frozen=True)
class RotationIp:
    """An IP a pool sends through now, with its share (what the Postfix map will list)."""

    address: str
    helo_name: str
    weight: int
    state: str


def normalize_pool_name(value: object, field: str = "name") -> str:
    name = str(value or "").strip().lower()
    if not NAME_RE.match(name):
        raise field_error(
            field, f"{name!r} is not a pool name: 1 to 63 lower case letters, digits and '-' (not first or last)."
        )
    return name


def _check_one_pool(pool: IpPool | None, domains: Iterable[Domain], tiers: Iterable[Tier]) -> None:
    """A domain (and a tier) sends through one pool: refuse one that another pool already has. The chosen domain and
    tier rows are locked first (in key order), so two pools taking the same domain at once are checked one after the
    other: the second sees the first's (PostgreSQL; SQLite runs one write at a time anyway)."""
    domains, tiers = list(domains), list(tiers)
    list(Domain.objects.select_for_update().filter(pk__in=[d.pk for d in domains]).order_by("pk").values("pk"))
    list(Tier.objects.select_for_update().filter(pk__in=[t.pk for t in tiers]).order_by("pk").values("pk"))
    others = IpPool.objects.exclude(pk=pool.pk) if pool is not None and pool.pk else IpPool.objects.all()
    for domain in domains:
        taken = others.filter(domains=domain).first()
        if taken is not None:
            raise field_error(
                "domains",
                f"{domain.name} already sends through pool {taken.name}; a domain sends through one pool: take it "
                f"out of {taken.name} first.",
            )
    for tier in tiers:
        taken = others.filter(tiers=tier).first()
        if taken is not None:
            raise field_error(
                "tiers",
                f"tier {tier.name} already sends through pool {taken.name}; a tier sends through one pool: take it "
                f"out of {taken.name} first.",
            )


def _names(rows: Iterable[Domain | Tier]) -> str:
    return ", ".join(sorted(row.name for row in rows)) or "none"


@transaction.atomic
def pool_add(
    *,
    name: str,
    description: str = "",
    domains: Iterable[Domain] = (),
    tiers: Iterable[Tier] = (),
    rotation_enabled: bool = False,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> IpPool:
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, ADD, "name")
    name = normalize_pool_name(name)
    if IpPool.objects.filter(name=name).exists():
        raise field_error("name", f"a pool named {name} already exists.")
    domains, tiers = list(domains), list(tiers)
    if domains:
        authz.require_perm(actor, VIEW_DOMAIN, "domains")
    _check_one_pool(None, domains, tiers)
    pool = IpPool(name=name, description=description or "", rotation_enabled=bool(rotation_enabled))
    pool.full_clean()
    try:
        with transaction.atomic():
            pool.save()
    except IntegrityError:
        # Another add of the same name committed between the check above and this insert.
        raise field_error("name", f"a pool named {name} already exists.") from None
    pool.domains.set(domains)
    pool.tiers.set(tiers)
    audit(
        "deliverability.ip_pool.add",
        target=pool,
        description=(
            f"Added IP pool {name}: domains {_names(domains)}; tiers {_names(tiers)}; monthly rotation "
            f"{'on' if pool.rotation_enabled else 'off'}."
        )[:500],
        **who(request, actor_label, actor),
    )
    return pool


@transaction.atomic
def pool_update(
    *,
    pool: IpPool,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
    **changes: Any,
) -> IpPool:
    """Change a pool's name, description, domains, tiers (each the whole new set) or monthly rotation."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, CHANGE, "name")
    for key in changes:
        if key not in EDITABLE:
            raise field_error(key, f"is not a setting of a pool; these are: {', '.join(EDITABLE)}.")
    pool = IpPool.objects.select_for_update().get(pk=pool.pk)
    shown = []
    if "name" in changes:
        name = normalize_pool_name(changes["name"])
        if name != pool.name:
            if IpPool.objects.filter(name=name).exclude(pk=pool.pk).exists():
                raise field_error("name", f"a pool named {name} already exists.")
            shown.append(f"name {pool.name} -> {name}")
            pool.name = name
    if "description" in changes and (changes["description"] or "") != pool.description:
        pool.description = changes["description"] or ""
        shown.append("description")
    if "rotation_enabled" in changes and bool(changes["rotation_enabled"]) != pool.rotation_enabled:
        pool.rotation_enabled = bool(changes["rotation_enabled"])
        shown.append(f"monthly rotation {'on' if pool.rotation_enabled else 'off'}")
    domains = list(changes["domains"]) if "domains" in changes else None
    tiers = list(changes["tiers"]) if "tiers" in changes else None
    if domains is not None and {d.pk for d in domains} != set(pool.domains.values_list("pk", flat=True)):
        # Choosing a pool's domains means naming domains: only for those who may see them.
        authz.require_perm(actor, VIEW_DOMAIN, "domains")
    _check_one_pool(pool, domains or [], tiers or [])
    pool.full_clean()
    pool.save()
    if domains is not None and {d.pk for d in domains} != set(pool.domains.values_list("pk", flat=True)):
        pool.domains.set(domains)
        shown.append(f"domains {_names(domains)}")
    if tiers is not None and {t.pk for t in tiers} != set(pool.tiers.values_list("pk", flat=True)):
        pool.tiers.set(tiers)
        shown.append(f"tiers {_names(tiers)}")
    if shown:
        audit(
            "deliverability.ip_pool.change",
            target=pool,
            description=f"Changed {'; '.join(shown)}."[:500],
            **who(request, actor_label, actor),
        )
    return pool


@transaction.atomic
def pool_remove(
    *,
    pool: IpPool,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> None:
    """Only a pool without IPs can go; its domains and tiers then send through the mail host's default IP."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, DELETE, "name")
    pool = IpPool.objects.select_for_update().get(pk=pool.pk)
    addresses = list(pool.ips.values_list("address", flat=True))
    if addresses:
        shown = ", ".join(addresses[:10]) + (f" and {len(addresses) - 10} more" if len(addresses) > 10 else "")
        raise field_error(
            "name", f"pool {pool.name} still has {len(addresses)} IP(s) ({shown}); move or remove them first."
        )
    audit(
        "deliverability.ip_pool.remove",
        target=pool,
        description=f"Removed IP pool {pool.name} (domains {_names(pool.domains.all())}; tiers "
        f"{_names(pool.tiers.all())}).",
        **who(request, actor_label, actor),
    )
    pool.delete()


def pool_by_name(value: str, field: str = "pool") -> IpPool:
    name = str(value or "").strip().lower()
    pool = IpPool.objects.filter(name=name).first()
    if pool is None:
        raise field_error(field, f"{name!r} is not an IP pool; add it first (manage.py ip_pool add).")
    return pool


# --- what sends through what -----------------------------------------------------------------------------


def pool_rotation_ips(pool: IpPool) -> list[RotationIp]:
    """The pool's IPs that take new mail now (ACTIVE and WARMING), with their weights, by address."""
    return rotation_of(SendingIp.objects.filter(pool=pool, state__in=ip_lifecycle.IN_ROTATION).order_by("address"))


def rotation_of(ips: Iterable[SendingIp]) -> list[RotationIp]:
    """Those of `ips` (a pool's, by address) that take new mail now, as pool_rotation_ips gives them."""
    return [
        RotationIp(ip.address, ip.helo_name, ip.weight, ip.state) for ip in ips if ip.state in ip_lifecycle.IN_ROTATION
    ]


def pool_for_domain(domain: Domain) -> IpPool | None:
    """The pool a domain sends through: its own, else its tier's; None: the mail host's default IP."""
    pool = IpPool.objects.filter(domains=domain).first()
    if pool is None and domain.tier_id is not None:
        pool = IpPool.objects.filter(tiers__pk=domain.tier_id).first()
    return pool


def ips_in_rotation_for_domain(domain: Domain) -> list[RotationIp] | None:
    """The IPs a domain's mail leaves from now, through its pool or its tier's; None when it is in no pool (it sends
    through the mail host's default IP). An empty list: its pool has no IP in rotation."""
    pool = pool_for_domain(domain)
    return None if pool is None else pool_rotation_ips(pool)
