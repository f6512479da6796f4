"""Reads for monitoring's pages and commands: the alerts a person may see, open first; the mail hosts a person may
see, their latest probes and the mailboxes' quota use."""

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


def mailhosts_for(actor, *, field="__all__"):
    """The mail hosts `actor` may see, by name: all of them with the permission to view mail hosts; refused
    (ValidationError, like a service) without it, so a command says why instead of listing nothing."""
    from accounts.authz import require_perm
    from monitoring.hosts import VIEW
    from monitoring.models import MailHost

    require_perm(actor, VIEW, field)
    return MailHost.objects.order_by("name")


def mailhost_for(actor, name):
    """The mail host called `name` for `actor` (None when there is none); refused without the permission to view
    mail hosts, before anything is said about whether it exists."""
    return mailhosts_for(actor, field="name").filter(name=(name or "").strip().lower()).first()


def latest_probes():
    """[(host, its latest probe or None)] for every mail host, by name: what the host alert kinds and pages read."""
    from monitoring.models import HostProbe, MailHost

    hosts = list(MailHost.objects.order_by("name"))
    latest = {}
    for probe in HostProbe.objects.filter(host__in=hosts).order_by("host_id", "-started_at").select_related("host"):
        latest.setdefault(probe.host_id, probe)
    return [(host, latest.get(host.pk)) for host in hosts]


def quota_usage_of(addresses):
    """{address: (used_bytes, limit_bytes, measured_at)} as the hosts' Dovecot last reported (the newest when two
    hosts report one address); for mail's seam (mail.quota_usage), which checks no permission: its pages do."""
    from monitoring.models import MailboxQuotaUsage

    found = {}
    rows = MailboxQuotaUsage.objects.filter(address__in=list(addresses)).order_by("address", "-measured_at")
    for address, used, limit, measured_at in rows.values_list("address", "used_bytes", "limit_bytes", "measured_at"):
        found.setdefault(address, (used, limit, measured_at))
    return found
