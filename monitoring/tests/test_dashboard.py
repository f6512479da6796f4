"""The operator dashboard (the admin's home page): cards for open alerts, the DMS sync state and the directory
counts, each shown only to staff who may view what it reads; a fresh install shows them without errors; nothing
on the page comes from another origin."""

import re

import pytest
from django.utils import timezone

from accounts.tests.factories import StaffFactory, UserFactory
from mail.models import DmsSyncState
from mail.tests.factories import make_domain, make_mailbox
from monitoring.alert_models import Alert
from monitoring.tests.dashboard_pages import HOME, card, signed_in, staff_with
from monitoring.tests.factories import switch_rule

pytestmark = pytest.mark.django_db


def open_alert(subject, state=Alert.FIRING):
    now = timezone.now()
    return Alert.objects.create(
        rule=switch_rule(), subject=subject, state=state, first_seen_at=now, pending_since=now, last_seen_at=now
    )


def test_a_fresh_install_shows_every_card_empty_and_the_models_below():
    response = signed_in(StaffFactory()).get(HOME)

    assert response.status_code == 200
    html = response.content.decode()
    assert "No open alerts." in card(html, "Open alerts")
    sync = card(html, "DMS sync")
    assert "never" in sync and "Sync details" not in sync
    directory = card(html, "Directory")
    assert re.search(r"Mailboxes</a></th><td class=\"number\">0<", directory)
    assert 'id="content-main"' in html and "/admin/mail/mailbox/" in html  # the model list stays


def test_the_cards_show_open_alerts_sync_state_and_counts():
    open_alert("alarm-1")
    open_alert("alarm-2", state=Alert.PENDING)
    open_alert("alarm-3", state=Alert.RESOLVED)
    make_domain("example.com")
    make_mailbox("bob@example.com")
    make_mailbox("carol@example.com")
    DmsSyncState.objects.update_or_create(
        pk=1, defaults={"last_error": "disk full", "restart_needed": True, "restart_reason": "DKIM key changed"}
    )

    html = signed_in(StaffFactory()).get(HOME).content.decode()

    alerts = card(html, "Open alerts")
    assert "<strong>2</strong> open" in alerts and "1 firing, 1 pending" in alerts
    assert "alarm-1" in alerts and "alarm-2" in alerts and "alarm-3" not in alerts
    assert "/admin/monitoring/alert/" in alerts
    sync = card(html, "DMS sync")
    assert "yes: disk full" in sync and "DKIM key changed" in sync and "Sync details" in sync
    directory = card(html, "Directory")
    assert re.search(r"Mailboxes</a></th><td class=\"number\">2<", directory)
    assert re.search(r"Domains</a></th><td class=\"number\">1<", directory)


def test_each_card_needs_the_permission_to_view_what_it_shows():
    open_alert("alarm-1")
    nothing = signed_in(UserFactory(email="plain@example.com", is_staff=True)).get(HOME).content.decode()
    alerts_only = signed_in(staff_with("monitoring.view_alert", email="a@example.com")).get(HOME).content.decode()
    mail_only = (
        signed_in(staff_with("mail.view_mailbox", "mail.view_dmssyncstate", email="m@example.com"))
        .get(HOME)
        .content.decode()
    )

    assert 'id="dashboard"' not in nothing and "alarm-1" not in nothing
    # Positive controls: the same kind of staff member with one permission sees that card, and only that.
    assert "alarm-1" in card(alerts_only, "Open alerts")
    assert card(alerts_only, "DMS sync") is None and card(alerts_only, "Directory") is None
    assert card(mail_only, "Open alerts") is None and "alarm-1" not in mail_only
    assert card(mail_only, "DMS sync") is not None
    directory = card(mail_only, "Directory")
    assert "Mailboxes" in directory and "Aliases" not in directory and "People" not in directory


def test_the_home_page_loads_nothing_from_another_origin():
    open_alert("alarm-1")
    html = signed_in(StaffFactory()).get(HOME).content.decode()

    sources = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="([^"]+)"', html)
    assert sources, "the page has stylesheets and scripts"
    assert all(source.startswith("/") and not source.startswith("//") for source in sources), sources
