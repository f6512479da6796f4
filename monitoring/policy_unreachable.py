"""Postfix going on without the policy service: smtpd's `warning: problem talking to server HOST:PORT: REASON` lines
(counted per log source, server and hour by the mail-log ingest, PolicyUnreachableHourly) read back for /metrics and
for the alert "Postfix could not reach the policy service". Postfix asks the service with
`check_policy_service { inet:HOST:PORT, timeout=5s, default_action=DUNNO }`: when it gets no answer it tries once
more, then lets the message through unlimited and unrouted, so mail flows and this is how anyone learns of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max, Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from dockspace.alert_kinds import AlertKind, Observation, RuleView, Threshold
from monitoring.traffic_models import PolicyUnreachableHourly

KIND = "monitoring.policy_unreachable"
SUBJECT_WINDOW = timedelta(hours=1)  # a subject quiet for longer is no longer reported (its alert is resolved)


@dataclass(frozen=True)
class Trouble:
    """One log source's Postfix and one policy server: the lines counted since `since` and the latest one."""

    source: str
    server: str
    count: int
    last_at: datetime
    last_reason: str
    since: datetime

    @property
    def subject(self) -> str:
        return f"{self.source}: {self.server}"


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def recent_trouble(now: datetime, window: timedelta = SUBJECT_WINDOW) -> list[Trouble]:
    """Each (log source, server) with a line in the hours overlapping the `window` before `now`: the lines since
    the start of its first hour, the latest one and its reason."""
    since = _hour(now - window)
    rows = (
        PolicyUnreachableHourly.objects.filter(hour__gte=since, hour__lte=now)
        .order_by("source__name", "server", "hour")
        .values_list("source__name", "server", "count", "last_at", "last_reason")
    )
    found: dict[tuple[str, str], Trouble] = {}
    for source, server, count, last_at, reason in rows:
        before = found.get((source, server))
        if before is not None:
            count += before.count
            if before.last_at > last_at:
                last_at, reason = before.last_at, before.last_reason
        found[source, server] = Trouble(source, server, count, last_at, reason, since)
    return list(found.values())


def policy_unreachable(rule: RuleView):
    """One subject per log source and policy server Postfix had trouble with since the start of the hour before:
    firing while the latest "problem talking to server" line is within the threshold's minutes (mail went out
    unlimited meanwhile); resolved once none came for that long. Value: the lines since the start of the window."""
    quiet = timedelta(minutes=rule.threshold("minutes"))
    for trouble in recent_trouble(rule.now):
        is_firing = trouble.last_at >= rule.now - quiet
        latest = f"the latest at {trouble.last_at:%H:%M:%S} UTC" + (
            f" ({trouble.last_reason})" if trouble.last_reason else ""
        )
        summary = (
            f"Postfix on {trouble.source} could not reach the policy service {trouble.server} {trouble.count} "
            f"time(s) since {trouble.since:%H:%M} UTC, {latest}"
        )
        if is_firing:
            summary += (
                ": mail goes out without sending limits or warmup routing (default_action=DUNNO). Start the policy "
                "process (`manage.py policy_server`, the `policy` service), or check that DOCKSPACE_POLICY_SERVICE "
                "names the address the mail host reaches it at."
            )
        else:
            summary += f"; none for {quiet.total_seconds() / 60:g} minutes."
        yield Observation(trouble.subject, is_firing, trouble.count, summary[:1000])


ALERT_KINDS = [
    AlertKind(
        name=KIND,
        label="Postfix could not reach the policy service",
        subject_kind="log source: policy server",
        description=(
            "Postfix logged 'problem talking to server' about a policy service within the threshold's minutes: it "
            "let mail through unchecked (default_action=DUNNO), without sending limits or warmup routing. Read "
            "from the mail log; resolved when none came for that long."
        ),
        thresholds=(Threshold(name="minutes", label="Within the last", unit="minutes", default=10, minimum=1),),
        evaluate=policy_unreachable,
    ),
]


class PolicyUnreachableCollector:
    """/metrics: the lines counted ever, and the latest one's time, by log source and server."""

    def collect(self):
        total = CounterMetricFamily(
            "dockspace_postfix_policy_unreachable",
            "Postfix's 'problem talking to server' warnings about a policy service, read from the mail log, by log "
            "source and server: a query without an answer (Postfix tries twice, then lets the message through with "
            "default_action=DUNNO; a refused or timed-out try is logged each time).",
            labels=["source", "server"],
        )
        last = GaugeMetricFamily(
            "dockspace_postfix_policy_unreachable_last_timestamp_seconds",
            "When Postfix last logged 'problem talking to server' about a policy service, by log source and server.",
            labels=["source", "server"],
        )
        rows = (
            PolicyUnreachableHourly.objects.order_by("source__name", "server")
            .values("source__name", "server")
            .annotate(count=Sum("count"), last_at=Max("last_at"))
        )
        for row in rows:
            labels = [row["source__name"], row["server"]]
            total.add_metric(labels, row["count"])
            last.add_metric(labels, row["last_at"].timestamp())
        yield total
        yield last
