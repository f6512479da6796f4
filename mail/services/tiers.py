"""Tiers: saving one, and the limits a tier puts on its domains' mailboxes, quotas and aliases."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, cast

from django.core.exceptions import ValidationError
from django.db.models import Count, Q, Sum

from accounts.audit import audit
from dockspace.validation import field_error
from mail.models import Domain, Mailbox, Tier
from mail.quota import format_quota
from mail.services.actor import _who

if TYPE_CHECKING:
    from django.http import HttpRequest


def tier_save(*, tier: Tier, request: HttpRequest | None = None, actor_label: str | None = None) -> Tier:
    tier.full_clean()
    created = tier.pk is None
    tier.save()
    audit(
        "mail.tier." + ("add" if created else "change"),
        target=tier,
        description="Saved tier.",
        **_who(request, actor_label),
    )
    return tier


def _tier_check_mailbox(domain: Domain, quota: int, *, exclude: Mailbox | None = None) -> None:
    tier = domain.tier
    if tier is None:
        return
    others = Mailbox.objects.filter(domain=domain)
    if exclude is not None:
        others = others.exclude(pk=exclude.pk)
    count = others.count() if exclude is None and tier.max_mailboxes is not None else None
    used = (others.aggregate(total=Sum("quota"))["total"] or 0) if tier.total_quota is not None else None
    tier_check_quota(domain, quota, count=count, used=used)


def tier_usage(domains: Collection[Domain]) -> dict[int, tuple[int, int]]:
    """{domain pk: (mailboxes, sum of their quotas)} for many domains in one query (what
    tier_check_quota is given when mailboxes are created in bulk)."""
    rows = (
        Mailbox.objects.filter(domain__in=domains)
        .order_by()
        .values("domain")
        .annotate(n=Count("pk"), total=Sum("quota"))
    )
    usage = {domain.pk: (0, 0) for domain in domains}
    usage.update({row["domain"]: (row["n"], row["total"] or 0) for row in rows})
    return usage


def tier_check_quota(domain: Domain, quota: int, *, count: int | None, used: int | None) -> None:
    """The tier's limits for one more mailbox of `quota` on `domain`, which has `count` mailboxes (None:
    the mailbox is already counted) whose quotas add up to `used`."""
    tier = domain.tier
    if tier is None:
        return
    if count is not None and tier.max_mailboxes is not None and count >= tier.max_mailboxes:
        raise field_error(
            "address",
            f"tier {tier.name} allows at most {tier.max_mailboxes} mailboxes on {domain.name} (max mailboxes).",
        )
    limit = tier.max_quota_per_mailbox
    if limit is not None and quota == 0:
        raise field_error(
            "quota",
            f"tier {tier.name} allows at most {format_quota(limit)} per mailbox (max quota per mailbox), "
            "so 0 (no limit) is not allowed.",
        )
    if limit is not None and quota > limit:
        raise field_error(
            "quota",
            f"tier {tier.name} allows at most {format_quota(limit)} per mailbox (max quota per mailbox); "
            f"{format_quota(quota)} was given.",
        )
    if tier.total_quota is not None:
        if quota == 0:
            raise field_error(
                "quota",
                f"tier {tier.name} allows {format_quota(tier.total_quota)} in total on {domain.name} (total quota), "
                "so 0 (no limit) is not allowed.",
            )
        # `used` is given whenever the tier caps the total (see _tier_check_mailbox).
        if cast(int, used) + quota > tier.total_quota:
            raise field_error(
                "quota",
                f"tier {tier.name} allows {format_quota(tier.total_quota)} in total on {domain.name} (total quota); "
                f"{format_quota(used) if used else '0'} is already given out.",
            )


TIER_LISTED_MAILBOXES = 20


def _listed(addresses: Sequence[str], count: int) -> str:
    """'a, b, c' for the first TIER_LISTED_MAILBOXES addresses, and how many more there are."""
    text = ", ".join(addresses[:TIER_LISTED_MAILBOXES])
    return text + (f" and {count - TIER_LISTED_MAILBOXES} more" if count > TIER_LISTED_MAILBOXES else "")


def _tier_check_existing_mailboxes(domain: Domain) -> None:
    """The domain's mailboxes as they are must fit its tier: every limit they break, with the mailboxes named."""
    tier = domain.tier
    if tier is None:
        return
    mailboxes = Mailbox.objects.filter(domain=domain).order_by("address")
    problems = []
    count = mailboxes.count()
    if tier.max_mailboxes is not None and count > tier.max_mailboxes:
        problems.append(
            f"tier {tier.name} allows at most {tier.max_mailboxes} mailboxes (max mailboxes); "
            f"{domain.name} has {count}."
        )
    limit = tier.max_quota_per_mailbox
    if limit is not None:
        over = mailboxes.filter(Q(quota=0) | Q(quota__gt=limit))
        n_over = over.count()
        if n_over:
            rows = over.values_list("address", "quota")[:TIER_LISTED_MAILBOXES]
            shown = [f"{a} ({format_quota(q) if q else 'no limit'})" for a, q in rows]
            problems.append(
                f"tier {tier.name} allows at most {format_quota(limit)} per mailbox (max quota per mailbox); "
                f"{n_over} mailbox(es) of {domain.name} have more: {_listed(shown, n_over)}. Lower their quotas first."
            )
    if tier.total_quota is not None:
        unlimited = mailboxes.filter(quota=0)
        n_unlimited = unlimited.count()
        if n_unlimited and limit is None:
            shown = list(unlimited.values_list("address", flat=True)[:TIER_LISTED_MAILBOXES])
            problems.append(
                f"tier {tier.name} caps the total quota (total quota), so every mailbox needs a quota; "
                f"{n_unlimited} mailbox(es) of {domain.name} have none: {_listed(shown, n_unlimited)}."
            )
        used = mailboxes.aggregate(total=Sum("quota"))["total"] or 0
        if used > tier.total_quota:
            biggest = mailboxes.order_by("-quota", "address").values_list("address", "quota")
            shown = [f"{a} ({format_quota(q)})" for a, q in biggest[:TIER_LISTED_MAILBOXES]]
            problems.append(
                f"tier {tier.name} allows {format_quota(tier.total_quota)} in total (total quota); the {count} "
                f"mailbox(es) of {domain.name} have {format_quota(used)}, the largest: {_listed(shown, count)}."
            )
    if problems:
        raise ValidationError({"tier": problems})


def _tier_check_alias(domain: Domain) -> None:
    tier = domain.tier
    if tier is not None and tier.max_aliases is not None and domain.aliases.count() >= tier.max_aliases:
        raise field_error(
            "address", f"tier {tier.name} allows at most {tier.max_aliases} aliases on {domain.name} (max aliases)."
        )


def default_quota_for(domain: Domain) -> int:
    if domain.default_quota is not None:
        return domain.default_quota
    if domain.tier is not None and domain.tier.default_quota is not None:
        return domain.tier.default_quota
    return 0
