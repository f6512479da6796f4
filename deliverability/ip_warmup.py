"""Sending IPs' warmup (rules in deliverability.warmup): the caps the policy service routes by, the sends it counts,
the daily evaluation that advances, holds, steps back, pulls (standby: RESTING and an alert) or finishes (ACTIVE) each
WARMING IP from its sending results, and an operator setting an IP's plan or step. State moves go through
sending_ips.ip_set_state; every decision is audited with its figures and kept in the IP's history.

Sending results come through a seam: every installed app whose AppConfig has
`ip_sending_results(addresses, since, until)` returns {address: {"attempts": int, "hard_bounces": int,
"complaints": int}} for mail in [since, until); several apps' figures are summed (monitoring: delivery events, DSNs
and complaints)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from accounts import authz
from accounts.audit import audit
from deliverability import ip_lifecycle, sending_ips, warmup
from deliverability.models import IpWarmup, SendingIp, WarmupPlan
from dockspace.validation import field_error

if TYPE_CHECKING:
    from django.http import HttpRequest

CHANGE = "deliverability.change_ipwarmup"
VIEW = "deliverability.view_ipwarmup"
HISTORY_KEPT = 400  # decisions kept on the row (over a year of daily ones); the audit log keeps every one
TASK_LABEL = "task: IP warmup"
FIGURE_KEYS = ("attempts", "hard_bounces", "complaints")


def default_plan() -> WarmupPlan | None:
    return WarmupPlan.objects.filter(is_default=True).first()


def _warmup_of(ip: SendingIp) -> IpWarmup | None:
    try:
        return ip.warmup
    except IpWarmup.DoesNotExist:
        return None


def warmup_summary(ip: SendingIp, now: datetime | None = None) -> str:
    """A WARMING IP's place in its plan and today's caps in words ("" for an IP that is not warming): what an operator
    sees before the first evaluation made its warmup row too (an IP without one is at step 1 of the default plan)."""
    if ip.state != ip_lifecycle.WARMING:
        return ""
    caps = warmup_caps(now).get(ip.address)
    state = _warmup_of(ip)
    plan = state.plan if state is not None else default_plan()
    step = state.step if state is not None else 1
    where = f"plan {plan.name}, step {step}" if plan is not None else f"the reference plan, step {step}"
    if caps is None:
        return where
    return f"{where}: at most {caps[0]} recipients a day, {caps[1]} an hour"


# --- what the policy service reads and writes -----------------------------------------------------------------------


def warmup_caps(now: datetime | None = None) -> dict[str, tuple[int, int]]:
    """{address: (daily cap, hourly cap)} of every WARMING IP (ACTIVE ones have no cap and are absent). One query,
    two when an IP has no warmup state yet (it is at step 1 of the default plan, or of the reference plan when no plan
    is the default). An IP back from rest or idle over 30 days is capped at step 1 at once, before the daily
    evaluation records it."""
    now = now or timezone.now()
    ips = list(SendingIp.objects.filter(state=ip_lifecycle.WARMING).select_related("warmup__plan"))
    plans: dict[int | None, warmup.Plan] = {}
    caps = {}
    for ip in ips:
        state = _warmup_of(ip)
        if state is None:
            if None not in plans:
                fallback = default_plan()
                plans[None] = fallback.as_plan() if fallback is not None else warmup.DEFAULT_PLAN
            caps[ip.address] = warmup.caps(plans[None], 1)
            continue
        if state.plan_id not in plans:
            plans[state.plan_id] = state.plan.as_plan()
        restart = warmup.restart_reason(
            step=state.step,
            step_started_at=state.step_started_at,
            last_sent_at=state.last_sent_at,
            warming_since=ip.state_since,
            now=now,
        )
        caps[ip.address] = warmup.caps(plans[state.plan_id], 1 if restart else state.step)
    return caps


def _ensure_warmups(ips: Iterable[SendingIp]) -> None:
    """A warmup state for each WARMING IP that has none: step 1 of the default plan, started when it began WARMING
    (none without a default plan: warmup_caps then caps it at the reference plan's step 1)."""
    warming = [ip for ip in ips if ip.state == ip_lifecycle.WARMING]
    having = set(IpWarmup.objects.filter(ip__in=warming).values_list("ip_id", flat=True)) if warming else set()
    missing = [ip for ip in warming if ip.pk not in having]
    plan = default_plan() if missing else None
    if plan is None:
        return
    rows = [IpWarmup(ip=ip, plan=plan, step=1, step_started_at=ip.state_since) for ip in missing]
    IpWarmup.objects.bulk_create(rows, ignore_conflicts=True)  # another caller may create one meanwhile


def _check_counts(counts: Mapping[str, int]) -> dict[str, int]:
    checked: dict[str, int] = {}
    for value, count in counts.items():
        address = sending_ips.parse_address(value, "counts")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise field_error("counts", f"{address}: the number of messages sent is a whole number, 0 or more.")
        checked[address] = checked.get(address, 0) + count
    return checked


@transaction.atomic
def warmup_record_sends(counts: Mapping[str, int], at: datetime) -> int:
    """Add messages sent at `at` to each IP's current step (`sent_in_step`; sends from before the step started count
    only as its last send) and move its `last_sent_at` on. Addresses that are not sending IPs, ACTIVE IPs never warmed
    and zero counts are left out. How many IPs were updated."""
    counts = {address: n for address, n in _check_counts(counts).items() if n > 0}
    if not counts:
        return 0
    _ensure_warmups(SendingIp.objects.filter(address__in=counts, state=ip_lifecycle.WARMING))
    rows = list(IpWarmup.objects.select_for_update().filter(ip__address__in=counts).select_related("ip"))
    for row in rows:
        if at >= row.step_started_at:
            row.sent_in_step += counts[row.ip.address]
        if row.last_sent_at is None or at > row.last_sent_at:
            row.last_sent_at = at
    IpWarmup.objects.bulk_update(rows, ["sent_in_step", "last_sent_at"])
    return len(rows)


# --- sending results (the seam) -------------------------------------------------------------------------------------


def sending_results(addresses: Iterable[str], since: datetime, until: datetime) -> dict[str, warmup.Figures]:
    """Every asked address's figures over [since, until), summed over the apps that report them (zeros when none
    does). An app answering outside the contract is a programming error, named."""
    wanted = list(dict.fromkeys(addresses))
    totals = {address: [0, 0, 0] for address in wanted}
    if not wanted:
        return {}
    for config in apps.get_app_configs():
        hook = getattr(config, "ip_sending_results", None)
        if hook is None:
            continue
        for address, values in (hook(wanted, since, until) or {}).items():
            if address not in totals:
                continue
            numbers = [values.get(key) if isinstance(values, Mapping) else None for key in FIGURE_KEYS]
            if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in numbers):
                raise ImproperlyConfigured(
                    f"{config.label}.ip_sending_results(): {address}: expected "
                    f"{{'attempts': int, 'hard_bounces': int, 'complaints': int}}, each 0 or more; got {values!r}."
                )
            for i, n in enumerate(numbers):
                totals[address][i] += n  # type: ignore[operator]
    return {address: warmup.Figures(*numbers) for address, numbers in totals.items()}


def _windows(
    ips: Iterable[SendingIp], min_attempts: Mapping[str, int], now: datetime
) -> dict[str, list[tuple[int, warmup.Figures]]]:
    """{address: [(hours, figures), ...]}: the last 24 h for every IP; a wider window only for an IP whose narrower
    one lacks its plan's minimum sample (one seam call per window)."""
    windows: dict[str, list[tuple[int, warmup.Figures]]] = {ip.address: [] for ip in ips}
    short = list(windows)
    for hours in warmup.WINDOW_HOURS:
        if not short:
            break
        figures = sending_results(short, now - timedelta(hours=hours), now)
        for address in short:
            windows[address].append((hours, figures[address]))
        short = [address for address in short if figures[address].attempts < min_attempts.get(address, 0)]
    return windows


# --- the daily evaluation -------------------------------------------------------------------------------------------


@dataclass
class WarmupReport:
    """What the daily evaluation did: one line per IP decided, and the IPs it left alone (why)."""

    decided: list[str] = field(default_factory=list)
    actions: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        counted = ", ".join(f"{n} {warmup.ACTION_LABELS[a]}" for a, n in sorted(self.actions.items())) or "none"
        text = f"IP warmup: {len(self.decided)} WARMING IP(s) evaluated ({counted})"
        if self.decided:
            text += ": " + "; ".join(self.decided)
        if self.skipped:
            text += f"; skipped {len(self.skipped)}: " + "; ".join(self.skipped)
        return text


def warmup_evaluate_all(
    *,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
    request: HttpRequest | None = None,
    now: datetime | None = None,
) -> WarmupReport:
    """The daily decision for every WARMING IP (deliverability.warmup.decide) over its sending results, each made
    under the IP's row lock in its own transaction: an IP an operator moved meanwhile is skipped. Needs the permissions
    to change IP warmups and sending IPs (it moves states)."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, CHANGE, "warmup")
    authz.require_perm(actor, sending_ips.CHANGE, "state")
    now = now or timezone.now()
    label = sending_ips.actor_name(actor, actor_label)
    ips = list(SendingIp.objects.filter(state=ip_lifecycle.WARMING).order_by("address"))
    _ensure_warmups(ips)
    states = {row.ip_id: row for row in IpWarmup.objects.filter(ip__in=ips).select_related("plan")}
    report = WarmupReport()
    minimum = {ip.address: states[ip.pk].plan.min_attempts for ip in ips if ip.pk in states}
    windows = _windows([ip for ip in ips if ip.pk in states], minimum, now)
    for ip in ips:
        if ip.pk not in states:
            report.skipped.append(f"{ip.address}: no warmup plan (mark a plan as the default in the admin)")
            continue
        try:
            with transaction.atomic():
                line, action = _decide_one(ip, windows[ip.address], now, actor, label, request)
        except _Skipped as skipped:
            report.skipped.append(str(skipped))
            continue
        report.decided.append(line)
        report.actions[action] = report.actions.get(action, 0) + 1
    return report


class _Skipped(Exception):
    pass


def _decide_one(
    ip: SendingIp,
    windows: list[tuple[int, warmup.Figures]],
    now: datetime,
    actor: authz.Actor,
    label: str,
    request: HttpRequest | None,
) -> tuple[str, str]:
    locked = SendingIp.objects.select_for_update().filter(pk=ip.pk).first()
    if locked is None or locked.state != ip_lifecycle.WARMING:
        raise _Skipped(f"{ip.address} is {locked.state if locked else 'gone'} now, not WARMING")
    state = IpWarmup.objects.select_for_update().select_related("plan").get(ip=locked)
    plan = state.plan.as_plan()
    decision = warmup.decide(
        plan,
        step=state.step,
        step_started_at=state.step_started_at,
        last_sent_at=state.last_sent_at,
        warming_since=locked.state_since,
        windows=windows,
        now=now,
    )
    if decision.moves_step or decision.action == warmup.RESTART:
        state.step, state.step_started_at, state.sent_in_step = decision.step_to, now, 0
    daily, hourly = warmup.caps(plan, decision.step_to)
    where = (
        f"step {decision.step_from} -> {decision.step_to}" if decision.moves_step else f"step {decision.step_to}"
    ) + f" of {warmup.total_steps(plan)} ({daily}/day, {hourly}/h)"
    if decision.action == warmup.STANDBY:
        rested = _move(locked, ip_lifecycle.RESTING, f"warmup standby: {decision.reason}", actor, label, request)
        state.standby_at = rested.state_since
    elif decision.action == warmup.DONE:
        _move(locked, ip_lifecycle.ACTIVE, f"warmup {decision.reason}", actor, label, request)
    entry = {"at": now.isoformat(), "by": label, "plan": state.plan.name, **decision.as_dict()}
    state.history = [*state.history, entry][-HISTORY_KEPT:]
    state.save()
    description = f"{locked.address} {where}, plan {state.plan.name}: {decision.reason}"
    audit(
        f"deliverability.ip_warmup.{decision.action}",
        target=locked,
        description=description[:500],
        **sending_ips.who(request, label, actor),
    )
    return f"{locked.address} {warmup.ACTION_LABELS[decision.action]}, {where}", decision.action


def _move(
    ip: SendingIp, state: str, reason: str, actor: authz.Actor, label: str, request: HttpRequest | None
) -> SendingIp:
    moved = sending_ips.ip_set_state(
        ip=ip,
        state=state,
        reason=reason[: ip_lifecycle.REASON_MAX_LENGTH],
        only_from=(ip_lifecycle.WARMING,),
        actor=actor,
        actor_label=label,
        request=request,
    )
    if moved is None:
        raise _Skipped(f"{ip.address} is no longer WARMING")
    return moved


# --- an operator's change -------------------------------------------------------------------------------------------


@transaction.atomic
def ip_warmup_set(
    *,
    ip: SendingIp,
    plan: WarmupPlan,
    step: int,
    reason: str = "",
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> IpWarmup:
    """Put an IP on `plan` at `step` (1 to the plan's last): a new step starts now with nothing sent in it. Kept in its
    history and the audit log."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, CHANGE, "step")
    if plan is None:
        raise field_error("plan", "choose a warmup plan.")
    if isinstance(step, bool) or not isinstance(step, int):
        raise field_error("step", f"{step!r} is not a whole number.")
    locked = SendingIp.objects.select_for_update().filter(pk=ip.pk).first()
    if locked is None:
        raise field_error("ip", f"{ip.address} is no longer a sending IP.")
    state = IpWarmup.objects.select_for_update().filter(ip=locked).first()
    now = timezone.now()
    before = (state.plan_id, state.step) if state is not None else None
    if state is None:
        state = IpWarmup(ip=locked, plan=plan, step=step, step_started_at=now)
    if before is not None and before == (plan.pk, step):
        return state
    state.plan, state.step = plan, step
    state.step_started_at, state.sent_in_step = now, 0
    state.full_clean()
    label = sending_ips.actor_name(actor, actor_label)
    why = " ".join((reason or "").split()) or "set by an operator"
    entry = {"at": now.isoformat(), "by": label, "plan": plan.name, "action": "set", "step_from": before and before[1]}
    entry.update({"step_to": step, "reason": why})
    state.history = [*state.history, entry][-HISTORY_KEPT:]
    state.save()
    daily, hourly = state.caps()
    audit(
        "deliverability.ip_warmup.set",
        target=locked,
        description=f"{locked.address}: plan {plan.name}, step {step} ({daily}/day, {hourly}/h): {why}"[:500],
        **sending_ips.who(request, actor_label, actor),
    )
    return state
