"""Saying the mailserver container was recreated by hand (mail.services.dms_restart_done): from the DMS sync state
admin action and `manage.py dms_restart_done`, with the permission to change the DMS sync state."""

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import AuditEvent
from accounts.tests.factories import StaffFactory
from mail import services
from mail.dms import sync
from mail.models import DmsSyncState

pytestmark = pytest.mark.django_db

REASON = "OpenDKIM keys or tables changed: recreate the mailserver container."


@pytest.fixture
def flagged():
    DmsSyncState.objects.update_or_create(pk=1, defaults={"restart_needed": True, "restart_reason": REASON})


@pytest.fixture
def heard():
    """Every restart_done signal sent (monitoring's receiver hears the same)."""
    calls = []

    def receiver(sender, **kwargs):
        calls.append(sender)

    sync.restart_done.connect(receiver, dispatch_uid="test.restart_done")
    yield calls
    sync.restart_done.disconnect(dispatch_uid="test.restart_done")


def staff(*codenames):
    person = StaffFactory(is_superuser=False)
    person.user_permissions.set(Permission.objects.filter(content_type__app_label="mail", codename__in=codenames))
    return person


def flag():
    state = DmsSyncState.load()
    return state.restart_needed, state.restart_reason


def test_it_refuses_a_person_who_may_only_view_the_sync_state_and_changes_nothing(
    flagged, heard, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError) as refused:
        services.dms_restart_done(actor=staff("view_dmssyncstate"))

    assert "mail.change_dmssyncstate" in str(refused.value)
    assert flag() == (True, REASON)
    assert not AuditEvent.objects.filter(action="mail.dms.restarted").exists()
    assert heard == []


def test_it_clears_the_flag_audits_and_tells_the_apps_above_after_commit(
    flagged, heard, django_capture_on_commit_callbacks
):
    person = staff("view_dmssyncstate", "change_dmssyncstate")

    with django_capture_on_commit_callbacks(execute=True):
        services.dms_restart_done(actor=person, actor_label="test")
        assert heard == []  # not before the commit

    assert flag() == (False, "")
    event = AuditEvent.objects.get(action="mail.dms.restarted")
    assert event.actor == person and REASON in event.description
    assert heard == [DmsSyncState]


def test_the_admin_action_goes_through_the_service(flagged, heard, django_capture_on_commit_callbacks):
    person = staff("view_dmssyncstate", "change_dmssyncstate")
    browser = Client()
    browser.force_login(person)

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(
            "/admin/mail/dmssyncstate/",
            {"action": "restart_done", "_selected_action": [DmsSyncState.load().pk]},
            follow=True,
        )

    assert "&#x27;Restart needed&#x27; cleared." in response.content.decode()
    assert flag() == (False, "")
    assert AuditEvent.objects.get(action="mail.dms.restarted").actor == person
    assert heard == [DmsSyncState]


def test_the_admin_offers_no_such_action_to_a_viewer(flagged):
    browser = Client()
    browser.force_login(staff("view_dmssyncstate"))

    response = browser.post(
        "/admin/mail/dmssyncstate/", {"action": "restart_done", "_selected_action": [DmsSyncState.load().pk]}
    )

    assert response.status_code in (200, 302)
    assert flag() == (True, REASON)


def test_the_command_clears_the_flag_as_the_host(flagged, heard, capsys, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("dms_restart_done")

    assert "Cleared 'restart needed'" in capsys.readouterr().out
    assert flag() == (False, "")
    assert AuditEvent.objects.get(action="mail.dms.restarted").actor_label == "manage.py dms_restart_done"
    assert heard == [DmsSyncState]


def test_the_command_as_a_viewer_exits_non_zero_naming_the_permission_and_changes_nothing(flagged, heard):
    person = staff("view_dmssyncstate")

    with pytest.raises(CommandError, match="mail.change_dmssyncstate"):
        call_command("dms_restart_done", "--as", person.email)

    assert flag() == (True, REASON)
    assert not AuditEvent.objects.filter(action="mail.dms.restarted").exists()


def test_the_command_as_an_unknown_person_exits_non_zero(flagged):
    with pytest.raises(CommandError, match="--as: 'nobody@example.com' is not an active staff member"):
        call_command("dms_restart_done", "--as", "nobody@example.com")

    assert flag() == (True, REASON)
