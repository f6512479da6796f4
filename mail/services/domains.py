"""Domains: the managed-domain lookup every address goes through, and adding, changing and removing a domain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.audit import audit
from dockspace.validation import field_error
from mail import dkim as dkim_keys
from mail.addresses import normalize_domain
from mail.models import Domain, Tier
from mail.quota import format_quota
from mail.services.actor import _who
from mail.services.tiers import _tier_check_existing_mailboxes

if TYPE_CHECKING:
    from django.http import HttpRequest


def managed_domain(name: str, field: str = "domain", *, lock: bool = False) -> Domain:
    """The Domain row for `name`, or a ValidationError: addresses only exist on managed domains."""
    name = normalize_domain(name, field)
    qs = Domain.objects.select_for_update(of=("self",)) if lock else Domain.objects
    domain = qs.select_related("tier").filter(name=name).first()
    if domain is None:
        raise unmanaged_domain_error(name, field)
    return domain


def unmanaged_domain_error(name: str, field: str = "domain") -> ValidationError:
    return field_error(field, f"{name} is not a domain Dockspace manages; add it first (manage.py domain add).")


def _check_domain_settings(domain: Domain) -> None:
    domain.dkim_selector = dkim_keys.validate_selector(domain.dkim_selector, "dkim_selector")
    if domain.dkim_algorithm == Domain.DKIM_RSA and domain.dkim_bits not in (1024, 2048, 3072, 4096):
        raise field_error("dkim_bits", "an RSA DKIM key has 1024, 2048, 3072 or 4096 bits.")
    tier, quota = domain.tier, domain.default_quota
    limit = tier.max_quota_per_mailbox if tier is not None else None
    if tier is not None and quota is not None and limit is not None and (quota == 0 or quota > limit):
        raise field_error(
            "default_quota",
            f"tier {tier.name} allows at most {format_quota(tier.max_quota_per_mailbox)} per mailbox "
            "(max quota per mailbox), so the default quota must be within it.",
        )


@transaction.atomic
def domain_create(
    *,
    name: str,
    tier: Tier | None = None,
    default_quota: int | None = None,
    is_active: bool = True,
    request: HttpRequest | None = None,
    actor_label: str | None = None,
) -> Domain:
    name = normalize_domain(name, "name")
    if Domain.objects.filter(name=name).exists():
        raise field_error("name", f"{name} is already a managed domain.")
    domain = Domain(name=name, tier=tier, default_quota=default_quota, is_active=is_active)
    domain.full_clean()
    _check_domain_settings(domain)
    domain.save()
    audit("mail.domain.add", target=domain, description=f"Added domain {name}.", **_who(request, actor_label))
    return domain


@transaction.atomic
def domain_update(
    *, domain: Domain, request: HttpRequest | None = None, actor_label: str | None = None, **changes: object
) -> Domain:
    domain = Domain.objects.select_for_update(of=("self",)).get(pk=domain.pk)
    for field, value in changes.items():
        setattr(domain, field, value)
    domain.full_clean()
    _check_domain_settings(domain)
    _tier_check_existing_mailboxes(domain)
    domain.save()
    text = ", ".join(f"{k}={'-' if v is None else v}" for k, v in changes.items())
    audit("mail.domain.change", target=domain, description=f"Changed {text}."[:500], **_who(request, actor_label))
    return domain


@transaction.atomic
def domain_remove(*, domain: Domain, request: HttpRequest | None = None, actor_label: str | None = None) -> None:
    """Only an empty domain can go: mailboxes, aliases and lists must be removed first."""
    in_use = []
    for label, qs in (("mailboxes", domain.mailboxes), ("aliases", domain.aliases), ("lists", domain.lists)):
        if qs.exists():
            in_use.append(f"{qs.count()} {label}")
    if in_use:
        raise field_error("name", f"{domain.name} still has {', '.join(in_use)}; remove them first.")
    name = domain.name
    audit("mail.domain.remove", target=domain, description=f"Removed domain {name}.", **_who(request, actor_label))
    domain.delete()
