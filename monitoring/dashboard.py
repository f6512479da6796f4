"""The operator dashboard's cards (the admin's home page; MonitoringConfig.dashboard_cards): each card reads only
what the actor may view and is left out otherwise. Open alerts need monitoring.view_alert; the DMS sync state
mail.view_dmssyncstate; each count its model's view permission (people: accounts.view_user)."""

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model

from mail.models import Alias, DmsPendingChange, DmsSyncState, Domain, Mailbox
from monitoring.selectors import alerts_for, may_see_alerts, open_alert_counts

ALERTS_SHOWN = 10


@dataclass
class Card:
    """One card: its title, the template that draws it and what that template reads."""

    title: str
    template: str
    data: dict = field(default_factory=dict)


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


def dashboard_cards(actor) -> list[Card]:
    """The cards `actor` may see, in the page's order."""
    if actor is None or not actor.is_authenticated or not actor.is_staff:
        return []
    cards = (alerts_card(actor), dms_sync_card(actor), directory_card(actor))
    return [card for card in cards if card is not None]
