"""The sending IPs' periodic duties (Celery beat runs them, deliverability.tasks): monthly rotation, draining retiring
IPs, releasing rested ones from quarantine. Each has a plan ("what would happen now", shown in the admin as a dry run)
and a run that applies the plan through sending_ips.ip_set_state, so every move is checked, recorded and audited.

"Ready" replacement (rotation): an IP of the same pool that is WARMING (it already takes mail and grows), or RESTING
and due for quarantine release now (its listings clear for DOCKSPACE_IP_QUARANTINE_DAYS; rotation then moves it to
WARMING in the same run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import authz
from deliverability import dnsbl, sending_ips
from deliverability.models import IpPool, SendingIp

ROTATION, DRAIN, RELEASE = "rotation", "drain", "release"
ACTOR_LABELS = {
    ROTATION: "task: monthly IP rotation",
    DRAIN: "task: drain retiring IPs",
    RELEASE: "task: quarantine release",
}


def listing_clear_since(ip: SendingIp) -> datetime:
    """Since when the IP has been on no standby blocklist (deliverability.dnsbl, from its listing history): now while
    it is listed, else the later of its last listing's clearing and its entering its current state."""
    return dnsbl.ip_clear_since(ip)


def release_due_at(ip: SendingIp) -> datetime:
    return listing_clear_since(ip) + timedelta(days=settings.IP_QUARANTINE_DAYS)


def drain_due_at(ip: SendingIp) -> datetime:
    return ip.state_since + timedelta(days=settings.IP_DRAIN_DAYS)


@dataclass(frozen=True)
class PlannedMove:
    ip: SendingIp
    to_state: str
    reason: str
    due_at: datetime | None = None  # None: now (rotation)
    together: str = ""  # moves with the same label are made all or none (a rotation's retirement and its replacement)
    held: str = ""  # due, but held back: why (quarantine release while a standby list cannot confirm the IP is clear)

    @property
    def from_state(self) -> str:
        return self.ip.state


@dataclass
class DutyPlan:
    """What a duty would do now (`moves`), what it waits for (`waiting`: moves due later) and why it leaves a pool
    alone (`notes`)."""

    duty: str
    title: str
    when: str
    moves: list[PlannedMove] = field(default_factory=list)
    waiting: list[PlannedMove] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def rotation_plan(now: datetime | None = None) -> DutyPlan:
    """Per pool with monthly rotation on and more than one ACTIVE IP: the longest-ACTIVE IP moves to RETIRING when
    the pool has a replacement ready (module docstring); a RESTING replacement moves to WARMING with it."""
    now = now or timezone.now()
    plan = DutyPlan(ROTATION, "Monthly rotation", "on the 1st of each month, 06:07 UTC")
    for pool in IpPool.objects.filter(rotation_enabled=True).order_by("name"):
        ips = list(pool.ips.order_by("state_since", "pk"))
        active = [ip for ip in ips if ip.state == SendingIp.ACTIVE]
        if len(active) < 2:
            plan.notes.append(f"pool {pool.name}: {len(active)} ACTIVE IP(s); rotation needs more than one.")
            continue
        warming = [ip for ip in ips if ip.state == SendingIp.WARMING]
        rested = sorted(
            (ip for ip in ips if ip.state == SendingIp.RESTING and release_due_at(ip) <= now),
            key=lambda ip: (listing_clear_since(ip), ip.pk),
        )
        oldest = active[0]
        since = timezone.localtime(oldest.state_since).strftime("%Y-%m-%d")
        if warming:
            replacement = f"{warming[0].address} (WARMING) takes over"
        elif rested:
            replacement = f"{rested[0].address} (rested) takes over"
        else:
            plan.notes.append(
                f"pool {pool.name}: no replacement ready (no WARMING IP, no RESTING IP due for release); "
                f"{oldest.address} stays ACTIVE."
            )
            continue
        plan.moves.append(
            PlannedMove(
                oldest,
                SendingIp.RETIRING,
                f"monthly rotation of pool {pool.name}: ACTIVE since {since}, the longest; {replacement}",
                together=f"rotation of pool {pool.name}",
            )
        )
        if not warming:
            plan.moves.append(
                PlannedMove(
                    rested[0],
                    SendingIp.WARMING,
                    f"monthly rotation of pool {pool.name}: replaces {oldest.address}; listings clear for "
                    f"{_days(settings.IP_QUARANTINE_DAYS)}",
                    together=f"rotation of pool {pool.name}",
                )
            )
    return plan


def drain_plan(now: datetime | None = None) -> DutyPlan:
    """Every RETIRING IP that has drained for DOCKSPACE_IP_DRAIN_DAYS moves to RESTING."""
    now = now or timezone.now()
    days = _days(settings.IP_DRAIN_DAYS)
    plan = DutyPlan(DRAIN, "Drain retiring IPs", "hourly (:13)")
    for ip in SendingIp.objects.filter(state=SendingIp.RETIRING).order_by("state_since", "pk"):
        due = drain_due_at(ip)
        move = PlannedMove(ip, SendingIp.RESTING, f"drained for {days} (no new mail since RETIRING); cooling down", due)
        (plan.moves if due <= now else plan.waiting).append(move)
    return plan


def release_plan(now: datetime | None = None) -> DutyPlan:
    """Every RESTING IP whose listings have been clear for DOCKSPACE_IP_QUARANTINE_DAYS moves to WARMING."""
    now = now or timezone.now()
    days = _days(settings.IP_QUARANTINE_DAYS)
    plan = DutyPlan(RELEASE, "Quarantine release", "hourly (:19)")
    for ip in SendingIp.objects.filter(state=SendingIp.RESTING).order_by("state_since", "pk"):
        due = release_due_at(ip)
        clear = timezone.localtime(listing_clear_since(ip)).strftime("%Y-%m-%d %H:%M")
        reason = f"quarantine release: listings clear since {clear} ({days})"
        blockers = dnsbl.release_blockers(ip, now) if due <= now else []
        if blockers:
            # Due, but not confirmed clear: it waits for the lists to answer (checked again at each run).
            held = "; ".join(blockers)
            plan.waiting.append(PlannedMove(ip, SendingIp.WARMING, f"{reason}; held: {held}", now, held=held))
            continue
        (plan.moves if due <= now else plan.waiting).append(PlannedMove(ip, SendingIp.WARMING, reason, due))
    return plan


PLANS = {ROTATION: rotation_plan, DRAIN: drain_plan, RELEASE: release_plan}


def duties_dry_run(*, actor: authz.Actor, now: datetime | None = None) -> list[DutyPlan]:
    """What each duty would do if it ran now (changes nothing); for staff who may view sending IPs."""
    authz.require_perm(actor, sending_ips.VIEW)
    now = now or timezone.now()
    return [plan(now) for plan in PLANS.values()]


@dataclass
class DutyResult:
    duty: str
    moved: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.duty}: moved {len(self.moved)} IP(s)"
        if self.moved:
            text += ": " + "; ".join(self.moved)
        if self.skipped:
            text += f"; skipped {len(self.skipped)}: " + "; ".join(self.skipped)
        if self.held:
            text += f"; held {len(self.held)}: " + "; ".join(self.held)
        return text


class _Skipped(Exception):
    pass


def _make(move: PlannedMove, duty: str) -> str:
    """Make one planned move, decided under the IP's row lock: an IP an operator (or another duty) moved or removed
    since the plan was made is skipped, not forced."""
    try:
        done = sending_ips.ip_set_state(
            ip=move.ip,
            state=move.to_state,
            reason=move.reason,
            only_from=(move.from_state,),
            actor=authz.SYSTEM,
            actor_label=ACTOR_LABELS[duty],
        )
    except ValidationError as e:
        raise _Skipped(" ".join(e.messages)) from None
    if done is None:
        current = SendingIp.objects.filter(pk=move.ip.pk).values_list("state", flat=True).first()
        raise _Skipped(f"{move.ip.address} is {current or 'gone'} now, not {move.from_state}")
    return f"{move.ip.address} {move.from_state} -> {move.to_state}"


def duty_run(duty: str, now: datetime | None = None) -> DutyResult:
    """Apply the duty's plan as the system, each move (or each set of moves made together) in its own transaction.
    A move whose IP changed state since the plan was made is skipped, with the moves made together with it."""
    plan = PLANS[duty](now)
    result = DutyResult(duty, held=[f"{move.ip.address} ({move.held})" for move in plan.waiting if move.held])
    for key, group in groupby(plan.moves, key=lambda move: move.together or id(move)):
        moves = list(group)
        try:
            with transaction.atomic():
                moved = [_make(move, duty) for move in moves]
        except _Skipped as skipped:
            undone = f" ({key} not made)" if len(moves) > 1 else ""
            result.skipped.append(f"{skipped}{undone}")
            continue
        result.moved.extend(moved)
    return result
