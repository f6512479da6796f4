"""Every mail host's "restart needed" follows mail's seams: set by restart_needed (a sync wrote OpenDKIM's files),
cleared by restart_done (an operator says the container was recreated by hand, from the admin or the command)."""

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.tests.factories import StaffFactory
from mail.dms import sync
from mail.models import DmsSyncState
from monitoring.models import MailHost

pytestmark = pytest.mark.django_db

REASON = "OpenDKIM keys or tables changed: recreate the mailserver container."


def mail_host(name):
    return MailHost.objects.create(
        name=name,
        ssh_user="root",
        ssh_host="192.0.2.1",
        key_path="/k",
        host_key_type="ssh-ed25519",
        host_key_fingerprint="SHA256:x",
        host_key="AAAA",
    )


@pytest.fixture
def flagged_hosts():
    mail_host("mx1"), mail_host("mx2")
    DmsSyncState.objects.update_or_create(pk=1, defaults={"restart_needed": True, "restart_reason": REASON})
    sync.restart_needed.send_robust(sender=DmsSyncState, reason=REASON)
    # positive control: mail's restart_needed reached monitoring's receiver
    assert sorted(MailHost.objects.filter(restart_needed=True).values_list("name", "restart_reason")) == [
        ("mx1", REASON),
        ("mx2", REASON),
    ]


def flags():
    return sorted(MailHost.objects.values_list("name", "restart_needed", "restart_reason"))


def test_the_command_clears_every_mail_host(flagged_hosts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("dms_restart_done")

    assert flags() == [("mx1", False, ""), ("mx2", False, "")]
    assert DmsSyncState.load().restart_needed is False


def test_the_admin_action_clears_every_mail_host(flagged_hosts, django_capture_on_commit_callbacks):
    browser = Client()
    browser.force_login(StaffFactory())

    with django_capture_on_commit_callbacks(execute=True):
        browser.post(
            "/admin/mail/dmssyncstate/", {"action": "restart_done", "_selected_action": [DmsSyncState.load().pk]}
        )

    assert flags() == [("mx1", False, ""), ("mx2", False, "")]


def test_a_refused_command_leaves_the_mail_hosts_flagged(flagged_hosts, django_capture_on_commit_callbacks):
    viewer = StaffFactory(is_superuser=False)

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(CommandError, match="change_dmssyncstate"):
        call_command("dms_restart_done", "--as", viewer.email)

    assert flags() == [("mx1", True, REASON), ("mx2", True, REASON)]
