"""Reads for monitoring's pages and commands: the alerts a person may see, open first."""

from django.db.models import Case, IntegerField, Value, When

from monitoring.alert_models import Alert

VIEW_PERMISSION = "monitoring.view_alert"


def may_see_alerts(actor):
    return actor is not None and actor.is_authenticated and actor.has_perm(VIEW_PERMISSION)


def alerts_for(actor, *, include_resolved=False):
    """The alerts `actor` may see (none without the permission to view alerts): firing, then pending, then
    (include_resolved) resolved; newest first within each."""
    if not may_see_alerts(actor):
        return Alert.objects.none()
    alerts = Alert.objects.select_related("rule", "acknowledged_by")
    if not include_resolved:
        alerts = alerts.exclude(state=Alert.RESOLVED)
    return open_first(alerts)


def open_first(alerts):
    """Firing, then pending, then resolved; newest first within each (the admin's list too)."""
    rank = Case(
        When(state=Alert.FIRING, then=Value(0)),
        When(state=Alert.PENDING, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return alerts.annotate(open_rank=rank).order_by("open_rank", "-pending_since", "-id")


def open_alert_counts():
    """{"firing": n, "pending": m}: for the dashboard and /metrics."""
    counts = {Alert.FIRING: 0, Alert.PENDING: 0}
    for state in Alert.objects.exclude(state=Alert.RESOLVED).values_list("state", flat=True):
        counts[state] += 1
    return counts


def latest_probes():
    """[(host, its latest probe or None)] for every mail host, by name: what the host alert kinds and pages read."""
    from monitoring.models import HostProbe, MailHost

    hosts = list(MailHost.objects.order_by("name"))
    latest = {}
    for probe in HostProbe.objects.filter(host__in=hosts).order_by("host_id", "-started_at").select_related("host"):
        latest.setdefault(probe.host_id, probe)
    return [(host, latest.get(host.pk)) for host in hosts]
