"""Warmup plans: adding, changing and removing one, and which is the default (the plan a WARMING IP follows until it is
given another). The admin calls these; each checks the actor's permission, refuses with ValidationError({field:
[message]}) naming the field (WarmupPlan.clean, from deliverability.warmup.plan_problems) and writes the audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction

from accounts import authz
from accounts.audit import audit
from deliverability import warmup
from deliverability.models import IpWarmup, WarmupPlan
from deliverability.sending_ips import who
from dockspace.validation import field_error

if TYPE_CHECKING:
    from django.http import HttpRequest

ADD = "deliverability.add_warmupplan"
CHANGE = "deliverability.change_warmupplan"
DELETE = "deliverability.delete_warmupplan"

EDITABLE = (
    "name",
    "steps",
    "growth_percent",
    "target_daily",
    "advance_bounce_below",
    "advance_complaint_below",
    "step_back_bounce_at",
    "step_back_complaint_at",
    "standby_bounce_at",
    "standby_complaint_at",
    "min_attempts",
    "is_default",
)


def _outline(plan: WarmupPlan) -> str:
    volumes = warmup.schedule(plan.as_plan())
    return f"{len(volumes)} steps, {volumes[0]}/day to {volumes[-1]}/day"


def _save(plan: WarmupPlan) -> WarmupPlan:
    plan.name = " ".join(str(plan.name or "").split())
    if plan.is_default:
        # One default: the one marked now takes over (undone with the transaction if the plan is refused).
        WarmupPlan.objects.select_for_update().filter(is_default=True).exclude(pk=plan.pk).update(is_default=False)
    plan.full_clean()
    try:
        with transaction.atomic():
            plan.save()
    except IntegrityError:
        raise field_error("name", f"a warmup plan called {plan.name!r} already exists.") from None
    return plan


@transaction.atomic
def warmup_plan_add(
    *,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
    **values: Any,
) -> WarmupPlan:
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, ADD, "name")
    unknown = [name for name in values if name not in EDITABLE]
    if unknown:
        raise field_error(unknown[0], f"is not a setting of a warmup plan; these are: {', '.join(EDITABLE)}.")
    plan = _save(WarmupPlan(**values))
    audit(
        "deliverability.warmup_plan.add",
        target=plan,
        description=f"Added warmup plan {plan.name}: {_outline(plan)}{', the default' if plan.is_default else ''}.",
        **who(request, actor_label, actor),
    )
    return plan


@transaction.atomic
def warmup_plan_update(
    *,
    plan: WarmupPlan,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
    **changes: Any,
) -> WarmupPlan:
    """Change a plan; the IPs on it keep their step (one past the plan's new end is at its last step)."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, CHANGE, "name")
    for name in changes:
        if name not in EDITABLE:
            raise field_error(name, f"is not a setting of a warmup plan; these are: {', '.join(EDITABLE)}.")
    plan = WarmupPlan.objects.select_for_update().get(pk=plan.pk)
    changed = {name: value for name, value in changes.items() if getattr(plan, name) != value}
    if "is_default" in changed and not changed["is_default"]:
        raise field_error(
            "is_default", "one plan is the default: mark another plan as the default instead (this one then stops)."
        )
    for name, value in changed.items():
        setattr(plan, name, value)
    _save(plan)
    if changed:
        audit(
            "deliverability.warmup_plan.change",
            target=plan,
            description=f"Changed {', '.join(changed)} of warmup plan {plan.name}: {_outline(plan)}."[:500],
            **who(request, actor_label, actor),
        )
    return plan


@transaction.atomic
def warmup_plan_remove(
    *,
    plan: WarmupPlan,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> None:
    """Only a plan no IP follows, and not the default (new WARMING IPs follow it)."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, DELETE, "name")
    plan = WarmupPlan.objects.select_for_update().get(pk=plan.pk)
    if plan.is_default:
        raise field_error("is_default", f"{plan.name} is the default plan: mark another as the default first.")
    users = list(IpWarmup.objects.filter(plan=plan).values_list("ip__address", flat=True)[:5])
    if users:
        raise field_error("name", f"{plan.name} is followed by {', '.join(users)}: put them on another plan first.")
    audit(
        "deliverability.warmup_plan.remove",
        target=plan,
        description=f"Removed warmup plan {plan.name}.",
        **who(request, actor_label, actor),
    )
    plan.delete()
