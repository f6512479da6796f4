"""IP warmup as pure rules (docs: /work/shared/reference "Warmup", "Safety thresholds"): a plan's daily volumes step by
step, the caps of a step, when an idle IP starts again, and the daily gate that advances, holds, steps back or pulls
an IP from its sending figures. Plain values in and out: no database, no settings, no clock (deliverability.ip_warmup
applies it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

# The reference's proposed plan: 200/day rising to 50k/day in 14 steps, then +25 %/day to the target.
DEFAULT_STEPS = (200, 400, 700, 1_000, 1_500, 2_500, 4_000, 6_000, 9_000, 13_000, 18_000, 25_000, 35_000, 50_000)
DEFAULT_GROWTH_PERCENT = 25
DEFAULT_TARGET_DAILY = 100_000
HOURLY_SHARE = 16  # hourly cap = daily / 16: a day's mail spread over at least 16 hours, never in one burst
IDLE_DAYS = 30  # SendGrid: an IP idle over 30 days must be warmed again
# A plan longer than this is a typo (a target of 10^9 at +1 %/day); it would also make the caps table unreadable.
MAX_STEPS = 400
# An IP advances at most once a day: a second evaluation the same day (an operator running the task by hand) holds.
MIN_HOURS_BEFORE_ADVANCE = 20
# The sample windows, widest last: the last 24 h, else 72 h, else 7 days.
WINDOW_HOURS = (24, 72, 168)

ADVANCE = "advance"
HOLD = "hold"
STEP_BACK = "step_back"
STANDBY = "standby"
DONE = "done"
RESTART = "restart"
ACTIONS = (ADVANCE, HOLD, STEP_BACK, STANDBY, DONE, RESTART)
ACTION_LABELS = {
    ADVANCE: "advance",
    HOLD: "hold",
    STEP_BACK: "step back",
    STANDBY: "standby",
    DONE: "done (ACTIVE)",
    RESTART: "start again",
}

Number = int | float | Decimal | str


def _exact(value: Number) -> Fraction:
    """A threshold as an exact number: 0.08 % is 8/10000, never the float nearest to it."""
    return Fraction(str(value))


@dataclass(frozen=True)
class Gates:
    """A plan's thresholds in percent of attempts (hard bounces, complaints) and its minimum sample."""

    advance_bounce_below: Number = Decimal("2")
    advance_complaint_below: Number = Decimal("0.08")
    step_back_bounce_at: Number = Decimal("5")
    step_back_complaint_at: Number = Decimal("0.1")
    standby_bounce_at: Number = Decimal("10")
    standby_complaint_at: Number = Decimal("0.3")
    min_attempts: int = 500


@dataclass(frozen=True)
class Plan:
    """Daily volumes per step (`steps`), then +`growth_percent` a day until `target_daily`."""

    steps: tuple[int, ...] = DEFAULT_STEPS
    growth_percent: Number = DEFAULT_GROWTH_PERCENT
    target_daily: int = DEFAULT_TARGET_DAILY
    gates: Gates = Gates()


DEFAULT_PLAN = Plan()


# --- the plan's steps ---------------------------------------------------------------------------------------------


def plan_problems(
    *, steps: object, growth_percent: object, target_daily: object, gates: Gates | None = None
) -> dict[str, str]:
    """What is wrong with a plan, {field: message} ({} when nothing): the model's clean() and the admin show these."""
    problems: dict[str, str] = {}
    if not isinstance(steps, list | tuple) or not steps:
        problems["steps"] = "give the daily volumes as a list of whole numbers, e.g. [200, 400, 700]."
    elif not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in steps):
        problems["steps"] = "each step is a daily volume: a whole number of at least 1."
    elif any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        problems["steps"] = "each step must send more than the one before (the volumes rise)."
    elif len(steps) > MAX_STEPS:
        problems["steps"] = f"at most {MAX_STEPS} steps."
    if isinstance(target_daily, bool) or not isinstance(target_daily, int) or target_daily < 1:
        problems["target_daily"] = "the target is a daily volume: a whole number of at least 1."
    try:
        growth = _exact(growth_percent)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        problems["growth_percent"] = "the growth after the steps is a percentage, e.g. 25."
    else:
        if not 0 < growth <= 100:
            problems["growth_percent"] = "the growth after the steps is more than 0 and at most 100 % a day."
    if not problems:
        volumes = _volumes(tuple(steps), _exact(growth_percent), target_daily)  # type: ignore[arg-type]
        if len(volumes) > MAX_STEPS:
            problems["target_daily"] = (
                f"the plan would take over {MAX_STEPS} steps to reach {target_daily}/day: lower the target or raise "
                "the growth."
            )
    if gates is not None:
        problems.update(gate_problems(gates))
    return problems


def gate_problems(gates: Gates) -> dict[str, str]:
    """Thresholds that cannot work together, {field: message}: each between 0 and 100 %, and advance < step back <=
    standby for bounces and for complaints."""
    problems: dict[str, str] = {}
    names = (
        "advance_bounce_below",
        "step_back_bounce_at",
        "standby_bounce_at",
        "advance_complaint_below",
        "step_back_complaint_at",
        "standby_complaint_at",
    )
    values = {}
    for name in names:
        try:
            values[name] = _exact(getattr(gates, name))
        except (ValueError, TypeError):
            problems[name] = "a percentage, e.g. 2 or 0.08."
            continue
        if not 0 < values[name] <= 100:
            problems[name] = "a percentage of attempts: more than 0 and at most 100."
    for what, (advance, step_back, standby) in (("bounce", names[:3]), ("complaint", names[3:])):
        if problems.keys() & {advance, step_back, standby}:
            continue
        if values[advance] > values[step_back]:
            problems[advance] = f"the {what} rate to advance must be below the rate that steps back."
        elif values[step_back] > values[standby]:
            problems[step_back] = f"the {what} rate that steps back must not be above the rate that pulls the IP."
    if isinstance(gates.min_attempts, bool) or not isinstance(gates.min_attempts, int) or gates.min_attempts < 1:
        problems["min_attempts"] = "the minimum sample is a whole number of attempts, at least 1."
    return problems


def _volumes(steps: tuple[int, ...], growth: Fraction, target: int) -> list[int]:
    """The listed steps under the target; when they all are, +growth a day from the last one; then the target. Stops
    one past MAX_STEPS (plan_problems refuses such a plan)."""
    volumes = [n for n in steps if n < target]
    if len(volumes) == len(steps) and volumes:
        last = volumes[-1]
        while len(volumes) <= MAX_STEPS:
            last = max(last + 1, int(last * (1 + growth / 100)))
            if last >= target:
                break
            volumes.append(last)
    return [*volumes, target]


def schedule(plan: Plan) -> tuple[int, ...]:
    """The daily volume of each step, step 1 first, the last one the target: the listed steps, then +growth a day
    from the last of them; a listed step at or over the target is replaced by the target, which ends the plan."""
    return tuple(_volumes(tuple(plan.steps), _exact(plan.growth_percent), plan.target_daily)[: MAX_STEPS + 1])


def hourly_cap(daily: int) -> int:
    return max(1, daily // HOURLY_SHARE)


def caps(plan: Plan, step: int) -> tuple[int, int]:
    """(daily cap, hourly cap) at `step` (1-based; a step past the end is the last, one below 1 is the first)."""
    volumes = schedule(plan)
    daily = volumes[min(max(step, 1), len(volumes)) - 1]
    return daily, hourly_cap(daily)


def total_steps(plan: Plan) -> int:
    return len(schedule(plan))


# --- starting again -------------------------------------------------------------------------------------------------


def restart_reason(
    *,
    step: int,
    step_started_at: datetime,
    last_sent_at: datetime | None,
    warming_since: datetime,
    now: datetime,
    idle_days: int = IDLE_DAYS,
) -> str:
    """Why the IP's warmup starts again at step 1 ("" when it goes on): it entered WARMING again after its warmup
    last moved (back from rest or standby), or it sent nothing for over `idle_days` days (counted from its last
    send, or from its step's start when it never sent)."""
    if step_started_at < warming_since:
        return "the IP is WARMING again since its warmup last moved (back from rest): warmup starts again at step 1"
    if step <= 1:
        return ""
    quiet_since = max(last_sent_at or step_started_at, step_started_at)
    idle = now - quiet_since
    if idle > timedelta(days=idle_days):
        return f"idle {idle.days} days (over {idle_days}): warmup starts again at step 1"
    return ""


# --- the gate ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """An IP's sending results over a window: delivery attempts, hard bounces and complaints among them."""

    attempts: int = 0
    hard_bounces: int = 0
    complaints: int = 0

    def bounce_rate(self) -> Fraction:
        return Fraction(100 * self.hard_bounces, self.attempts) if self.attempts else Fraction(0)

    def complaint_rate(self) -> Fraction:
        return Fraction(100 * self.complaints, self.attempts) if self.attempts else Fraction(0)

    def as_dict(self) -> dict[str, int]:
        return {"attempts": self.attempts, "hard_bounces": self.hard_bounces, "complaints": self.complaints}

    @classmethod
    def from_mapping(cls, values: Mapping[str, int]) -> Figures:
        return cls(int(values["attempts"]), int(values["hard_bounces"]), int(values["complaints"]))


def percent(rate: Fraction) -> str:
    """A rate for reading: 2 %, 0.08 %, 0.333 %."""
    text = f"{float(rate):.3f}".rstrip("0").rstrip(".")
    return f"{text} %"


def figures_text(figures: Figures, window_hours: int) -> str:
    window = f"{window_hours // 24} days" if window_hours > 72 else f"{window_hours} h"
    return (
        f"{window}: {figures.attempts} attempts, {figures.hard_bounces} hard bounces "
        f"({percent(figures.bounce_rate())}), {figures.complaints} complaints ({percent(figures.complaint_rate())})"
    )


@dataclass(frozen=True)
class GateDecision:
    """What the figures say (ADVANCE, HOLD, STEP_BACK or STANDBY), from which window, and why in one line."""

    action: str
    figures: Figures
    window_hours: int
    reason: str


def gate(gates: Gates, windows: Sequence[tuple[int, Figures]]) -> GateDecision:
    """Judge the first window (narrowest first: 24 h, 72 h, 7 days) with at least `min_attempts` attempts; with none,
    hold for want of mail (figures of the widest). Standby first, then step back, then advance; anything between
    holds (2-5 % bounces, or complaints between the advance and step-back rates)."""
    if not windows:
        raise ValueError("gate() needs at least one window of figures.")
    chosen = next(((hours, f) for hours, f in windows if f.attempts >= gates.min_attempts), None)
    if chosen is None:
        hours, figures = windows[-1]
        return GateDecision(
            HOLD,
            figures,
            hours,
            f"hold: not enough mail to judge ({figures_text(figures, hours)}; at least {gates.min_attempts} needed)",
        )
    hours, figures = chosen
    bounces, complaints = figures.bounce_rate(), figures.complaint_rate()
    seen = figures_text(figures, hours)

    def limit(value: Number) -> str:
        return percent(_exact(value))

    if bounces >= _exact(gates.standby_bounce_at):
        return GateDecision(
            STANDBY, figures, hours, f"standby: hard bounces >= {limit(gates.standby_bounce_at)} ({seen})"
        )
    if complaints >= _exact(gates.standby_complaint_at):
        return GateDecision(
            STANDBY, figures, hours, f"standby: complaints >= {limit(gates.standby_complaint_at)} ({seen})"
        )
    if bounces >= _exact(gates.step_back_bounce_at):
        return GateDecision(
            STEP_BACK, figures, hours, f"step back: hard bounces >= {limit(gates.step_back_bounce_at)} ({seen})"
        )
    if complaints >= _exact(gates.step_back_complaint_at):
        return GateDecision(
            STEP_BACK, figures, hours, f"step back: complaints >= {limit(gates.step_back_complaint_at)} ({seen})"
        )
    if bounces < _exact(gates.advance_bounce_below) and complaints < _exact(gates.advance_complaint_below):
        return GateDecision(
            ADVANCE,
            figures,
            hours,
            f"advance: hard bounces < {limit(gates.advance_bounce_below)} and complaints < "
            f"{limit(gates.advance_complaint_below)} ({seen})",
        )
    if bounces >= _exact(gates.advance_bounce_below):
        why = f"hard bounces between {limit(gates.advance_bounce_below)} and {limit(gates.step_back_bounce_at)}"
    else:
        why = f"complaints between {limit(gates.advance_complaint_below)} and {limit(gates.step_back_complaint_at)}"
    return GateDecision(HOLD, figures, hours, f"hold: {why} ({seen})")


# --- the day's decision -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """One IP's daily decision: the action, the step before and after, the figures judged (None for a restart) and
    a one-line reason naming them."""

    action: str
    step_from: int
    step_to: int
    reason: str
    figures: Figures | None = None
    window_hours: int | None = None

    @property
    def moves_step(self) -> bool:
        return self.step_to != self.step_from

    def as_dict(self) -> dict[str, object]:
        """The decision as the IP's history keeps it (JSON)."""
        return {
            "action": self.action,
            "step_from": self.step_from,
            "step_to": self.step_to,
            "window_hours": self.window_hours,
            **(self.figures.as_dict() if self.figures is not None else {}),
            "reason": self.reason,
        }


def decide(
    plan: Plan,
    *,
    step: int,
    step_started_at: datetime,
    last_sent_at: datetime | None,
    warming_since: datetime,
    windows: Sequence[tuple[int, Figures]],
    now: datetime,
) -> Decision:
    """The daily decision for a WARMING IP at `step`: start again (back from rest, or idle), else the gate's verdict
    on its figures. Advancing past the plan's last step (its target) is DONE: the IP becomes ACTIVE. An IP advances
    at most once a day; stepping back stops at step 1."""
    last_step = total_steps(plan)
    step = min(max(step, 1), last_step)
    again = restart_reason(
        step=step, step_started_at=step_started_at, last_sent_at=last_sent_at, warming_since=warming_since, now=now
    )
    if again:
        return Decision(RESTART, step, 1, again)
    verdict = gate(plan.gates, windows)

    def judged(action: str, step_to: int, reason: str) -> Decision:
        return Decision(action, step, step_to, reason, verdict.figures, verdict.window_hours)

    if verdict.action == ADVANCE:
        if now - step_started_at < timedelta(hours=MIN_HOURS_BEFORE_ADVANCE):
            reason = (
                f"hold: step {step} started less than {MIN_HOURS_BEFORE_ADVANCE} h ago (an IP advances at most once "
                f"a day); {verdict.reason}"
            )
            return judged(HOLD, step, reason)
        if step >= last_step:
            daily, _ = caps(plan, step)
            return judged(DONE, step, f"done: the plan's target {daily}/day reached; {verdict.reason}")
        return judged(ADVANCE, step + 1, verdict.reason)
    if verdict.action == STEP_BACK:
        reason = verdict.reason if step > 1 else f"{verdict.reason}; already at step 1"
        return judged(STEP_BACK, max(step - 1, 1), reason)
    return judged(verdict.action, step, verdict.reason)
