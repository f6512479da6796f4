"""The operator dashboard's cards (the admin's home page; MonitoringConfig.dashboard_cards): each card reads only
what the actor may view and is left out otherwise. Open alerts need monitoring.view_alert; the DMS sync state
mail.view_dmssyncstate; each count its model's view permission (people: accounts.view_user); the mail hosts
monitoring.view_mailhost; the largest mailboxes monitoring.view_mailboxquotausage; the history charts
monitoring.view_hostprobe; the mail traffic, and the bounce and complaint rates, monitoring.view_mailmessage."""

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.urls import reverse

from mail.models import Alias, DmsPendingChange, DmsSyncState, Domain, Mailbox
from mail.quota_usage import QuotaUse
from monitoring import history, sending_rates_dashboard, traffic_dashboard
from monitoring.models import HostProbe, MailboxQuotaUsage, MailHost
from monitoring.selectors import alerts_for, latest_probes, may_see_alerts, open_alert_counts
from monitoring.traffic_stats import may_view_traffic

ALERTS_SHOWN = 10
CHART_SCRIPTS = ("vendor/uplot-1.6.32/uPlot.iife.min.js", "js/dashboard-charts.js")
CHART_STYLES = ("vendor/uplot-1.6.32/uPlot.min.css",)
LARGEST_MAILBOXES_SHOWN = 10


@dataclass
class Card:
    """One card: its title, the template that draws it and what that template reads. `wide`: the card spans the
    page. `scripts` and `styles`: static files the page loads for it (same origin; only pages showing the card)."""

    title: str
    template: str
    data: dict = field(default_factory=dict)
    wide: bool = False
    scripts: list[str] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)


def _may_view(actor, model) -> bool:
    return actor.has_perm(f"{model._meta.app_label}.view_{model._meta.model_name}")


def alerts_card(actor) -> Card | None:
    if not may_see_alerts(actor):
        return None
    counts = open_alert_counts()
    return Card(
        title="Open alerts",
        template="admin/dashboard/alerts.html",
        data={"counts": counts, "total": sum(counts.values()), "alerts": list(alerts_for(actor)[:ALERTS_SHOWN])},
    )


def dms_sync_card(actor) -> Card | None:
    if not _may_view(actor, DmsSyncState):
        return None
    state = DmsSyncState.objects.filter(pk=1).first() or DmsSyncState()
    return Card(
        title="DMS sync",
        template="admin/dashboard/dms_sync.html",
        data={"state": state, "is_saved": state.pk is not None, "pending": DmsPendingChange.objects.count()},
    )


def directory_card(actor) -> Card | None:
    counted = [
        ("Mailboxes", Mailbox),
        ("Aliases", Alias),
        ("Domains", Domain),
        ("People", get_user_model()),
    ]
    rows = [
        {
            "label": label,
            "count": model.objects.count(),
            "url": f"/admin/{model._meta.app_label}/{model._meta.model_name}/",
        }
        for label, model in counted
        if _may_view(actor, model)
    ]
    if not rows:
        return None
    return Card(title="Directory", template="admin/dashboard/directory.html", data={"rows": rows})


def mail_hosts_card(actor) -> Card | None:
    """Each host's latest probe: status and reasons, age, queue, disk, restart needed."""
    if not _may_view(actor, MailHost):
        return None
    hosts = [
        {
            "host": host,
            "url": reverse("admin:monitoring_mailhost_change", args=[host.pk]),
            "probe": probe,
            "queue_oldest_minutes": None
            if probe is None or probe.queue_oldest_age_seconds is None
            else round(probe.queue_oldest_age_seconds / 60),
        }
        for host, probe in latest_probes()
    ]
    may_add = actor.has_perm("monitoring.add_mailhost")
    return Card(
        title="Mail hosts",
        template="admin/dashboard/mail_hosts.html",
        data={"hosts": hosts, "add_url": reverse("admin:monitoring_mailhost_add") if may_add else ""},
    )


def largest_mailboxes_card(actor) -> Card | None:
    """The mailboxes using the most space, as the hosts' Dovecot last reported (MailboxQuotaUsage)."""
    if not _may_view(actor, MailboxQuotaUsage):
        return None
    rows = list(
        MailboxQuotaUsage.objects.select_related("host").order_by("-used_bytes", "address")[:LARGEST_MAILBOXES_SHOWN]
    )
    may_view_mailboxes = _may_view(actor, Mailbox)
    mailbox_pks = (
        dict(Mailbox.objects.filter(address__in=[row.address for row in rows]).values_list("address", "pk"))
        if may_view_mailboxes
        else {}
    )
    mailboxes = [
        {
            "address": row.address,
            "host": row.host.name,
            "url": reverse("admin:mail_mailbox_change", args=[mailbox_pks[row.address]])
            if row.address in mailbox_pks
            else "",
            "use": QuotaUse(used_bytes=row.used_bytes, limit_bytes=row.limit_bytes, measured_at=row.measured_at),
        }
        for row in rows
    ]
    return Card(
        title="Largest mailboxes", template="admin/dashboard/largest_mailboxes.html", data={"mailboxes": mailboxes}
    )


def history_card(actor, history_range="") -> Card | None:
    """Queue, load and disk charts per host over the chosen range (monitoring.history)."""
    if not _may_view(actor, HostProbe):
        return None
    chosen = history.history_range(history_range)
    return Card(
        title="History",
        template="admin/dashboard/history.html",
        data={"range": chosen, "ranges": list(history.RANGES.values()), "charts": history.history_charts(chosen)},
        wide=True,
        scripts=list(CHART_SCRIPTS),
        styles=list(CHART_STYLES),
    )


def traffic_card(actor, traffic_range="") -> Card | None:
    """Mail sent and received by outcome, the rates and the top 10s over the chosen range
    (monitoring.traffic_dashboard), drawn by the history charts' script."""
    if not may_view_traffic(actor):
        return None
    chosen = traffic_dashboard.traffic_range(traffic_range)
    return Card(
        title="Mail traffic",
        template="admin/dashboard/traffic.html",
        data={"traffic": traffic_dashboard.traffic_card_data(actor, chosen)},
        wide=True,
        scripts=list(CHART_SCRIPTS),
        styles=list(CHART_STYLES),
    )


def sending_rates_card(actor) -> Card | None:
    """The worst sending IPs, sender's domains and senders by hard-bounce and complaint rate over 24 h and 7 d, and
    the daily rates (monitoring.sending_rates_dashboard), drawn by the history charts' script."""
    if not may_view_traffic(actor):
        return None
    return Card(
        title="Bounces and complaints",
        template="admin/dashboard/sending_rates.html",
        data={"rates": sending_rates_dashboard.sending_rates_card_data(actor)},
        wide=True,
        scripts=list(CHART_SCRIPTS),
        styles=list(CHART_STYLES),
    )


def dashboard_cards(actor, *, history_range="") -> list[Card]:
    """The cards `actor` may see, in the page's order. `history_range`: the charts' span, history and traffic alike
    ("24h", "7d", "90d"; anything else: 24 h)."""
    if actor is None or not actor.is_authenticated or not actor.is_staff:
        return []
    cards = (
        mail_hosts_card(actor),
        alerts_card(actor),
        dms_sync_card(actor),
        directory_card(actor),
        largest_mailboxes_card(actor),
        history_card(actor, history_range),
        traffic_card(actor, history_range),
        sending_rates_card(actor),
    )
    shown = [card for card in cards if card is not None]
    # Cards sharing a static file ask for it once: a chart script loaded twice would draw every chart twice.
    requested: set[str] = set()
    for card in shown:
        card.scripts = [script for script in card.scripts if script not in requested]
        card.styles = [style for style in card.styles if style not in requested]
        requested.update(card.scripts, card.styles)
    return shown
