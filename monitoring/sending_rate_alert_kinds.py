"""The alert kinds of the sending rates (issue "Sending policy"), appended to monitoring.alert_kinds.BUILT_IN: a
sending IP whose hard bounces, and a sending IP or sender's domain whose complaints, reached the reference's
step-back line over the last 24 hours (monitoring.sending_rates, counted as the warmup gates count). Judged only
from a minimum of recipients, so a handful of bounces pages no one; a subject that falls under the threshold, or
sends nothing for a day, resolves."""

from __future__ import annotations

from accounts.authz import SYSTEM
from dockspace.alert_kinds import AlertKind, Observation, RuleView, Threshold
from monitoring import sending_levels as levels
from monitoring.sending_rates import SendingRate, sending_rates
from monitoring.sending_results import DOMAIN, IP

WINDOW = "24h"
LEVEL_WORDS = {
    levels.OK: "ok",
    levels.WATCH: "to watch",
    levels.BAD: "bad: the warmup gate steps back",
    levels.STANDBY: "standby: the warmup gate pulls the IP",
}


def _system_rates(by: str, rule: RuleView) -> list[SendingRate]:
    minimum = int(rule.threshold("minimum"))
    return [
        rate for rate in sending_rates(SYSTEM, by=by, window=WINDOW, now=rule.now, minimum=minimum) if rate.attempts
    ]


def _observation(rate: SendingRate, what: str, count: int, percent: float, level: str, rule: RuleView) -> Observation:
    shown = round(percent, 3)
    summary = f"{rate.key}: {count} {what} of {rate.attempts} recipient(s) tried in the last 24 hours ({shown:g} %"
    if rate.is_judged:
        summary += f", {LEVEL_WORDS[level]})."
    else:
        summary += f"); fewer than {rate.minimum} recipients, not judged."
    return Observation(rate.key, rate.is_judged and percent >= rule.threshold("percent"), shown, summary)


def ip_bounce_rate_high(rule: RuleView):
    """One subject per sending IP that tried a recipient in the last 24 hours: firing when at least the minimum
    were tried and the share that hard-bounced (at SMTP, or come back by mail) is at or over the threshold. Value:
    percent."""
    for rate in _system_rates(IP, rule):
        percent = rate.hard_bounce_percent or 0.0
        level = levels.HARD_BOUNCES.level(percent)
        yield _observation(rate, "hard bounce(s)", rate.hard_bounces, percent, level, rule)


def complaint_rate_high(rule: RuleView):
    """One subject per sending IP, and per sender's domain, that tried a recipient in the last 24 hours: firing
    when at least the minimum were tried and the complaints read about them are at or over the threshold. Value:
    percent."""
    for by in (IP, DOMAIN):
        for rate in _system_rates(by, rule):
            percent = rate.complaint_percent or 0.0
            level = levels.COMPLAINTS.level(percent)
            yield _observation(rate, "complaint(s)", rate.complaints, percent, level, rule)


def _minimum() -> Threshold:
    return Threshold(
        name="minimum", label="Judged from", unit="recipients in 24 h", default=levels.MINIMUM_SAMPLE, minimum=1
    )


SENDING_RATE_KINDS = [
    AlertKind(
        name="monitoring.ip_bounce_rate_high",
        label="Sending IP bounce rate high",
        subject_kind="sending IP",
        description=(
            "Of the recipients a sending IP tried in the last 24 hours (judged from the minimum), at least the "
            "threshold hard-bounced, at SMTP or by a bounce that came back by mail: the warmup gate steps the IP "
            f"back at {levels.HARD_BOUNCES.bad:g} % and pulls it at {levels.HARD_BOUNCES.standby:g} %. A bad list, "
            "a compromised account, or a blocked IP."
        ),
        thresholds=(
            Threshold(
                name="percent",
                label="Hard bounces at least",
                unit="%",
                default=levels.HARD_BOUNCES.bad,
                minimum=0.1,
                maximum=100,
                integer=False,
            ),
            _minimum(),
        ),
        for_seconds=10 * 60,
        evaluate=ip_bounce_rate_high,
    ),
    AlertKind(
        name="monitoring.complaint_rate_high",
        label="Complaint rate high",
        subject_kind="sending IP or sender's domain",
        description=(
            "The complaints (feedback-loop abuse reports) read in the last 24 hours reach the threshold of the "
            "recipients a sending IP, or a sender's domain, tried then (judged from the minimum): mailbox providers "
            f"filter from {levels.COMPLAINTS.bad:g} % and refuse mitigation from {levels.COMPLAINTS.standby:g} %."
        ),
        thresholds=(
            Threshold(
                name="percent",
                label="Complaints at least",
                unit="%",
                default=levels.COMPLAINTS.bad,
                minimum=0.01,
                maximum=100,
                integer=False,
            ),
            _minimum(),
        ),
        for_seconds=10 * 60,
        evaluate=complaint_rate_high,
    ),
]
