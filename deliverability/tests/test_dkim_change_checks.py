"""DKIM changes and DNS: a change of a domain's keys queues a DNS check once it commits; retiring a rotated-out key
is refused, with a warning, while the new selector is not visible in DNS (mail's dkim_retire_objections seam)."""

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from accounts.models import AuditEvent
from accounts.tests.factories import StaffFactory
from deliverability.models import DnsCheckRun
from deliverability.tests.factories import staff_with
from deliverability.tests.mail_dns import dkim_line, right_records
from dockspace.tests.admin_pages import shown_messages
from mail import services
from mail.models import DkimKey
from mail.tests.factories import refused, run

pytestmark = pytest.mark.django_db


def test_a_rotation_checks_the_domain_once_it_commits(mail_dns, domain, django_capture_on_commit_callbacks):
    mail_dns.domain()
    with django_capture_on_commit_callbacks(execute=True):
        services.dkim_rotate(domain=domain, selector="s2", algorithm="ed25519", actor_label="test")

    check_run = DnsCheckRun.objects.get()
    assert (check_run.trigger, check_run.level) == ("dkim", "failed")  # s2 is not published yet
    assert (
        check_run.results.get(kind="dkim", subject="s2").reason == "s2._domainkey.example.com: no DKIM key record: "
        "receivers cannot verify Dockspace's signatures"
    )


def test_retire_is_refused_while_the_new_selector_is_not_in_dns_and_allowed_once_it_is(mail_dns, domain):
    old = domain.dkim_keys.get()
    new = services.dkim_rotate(domain=domain, selector="s2", algorithm="ed25519", actor_label="test")
    mail_dns.domain(records=right_records(keys=[old]))

    message = refused("dkim", "retire", "example.com", "mail")
    assert message.startswith(
        "selector: mail is not retired: warning: the new selector s2 is not yet visible in DNS "
        "(s2._domainkey.example.com: no DKIM key record"
    )
    assert "publish s2._domainkey.example.com. TXT" in message and "manage.py dns_check example.com" in message
    assert DkimKey.objects.get(pk=old.pk).state == "published"

    mail_dns.domain(records=right_records(keys=[old, new]))
    assert (
        run("dkim", "retire", "example.com", "mail")
        == "Retired mail._domainkey.example.com; remove its TXT record from DNS.\n"
    )
    assert DkimKey.objects.get(pk=old.pk).state == "retired"


def test_a_stale_key_at_the_new_selector_also_holds_retire_back(mail_dns, domain):
    old = domain.dkim_keys.get()
    services.dkim_rotate(domain=domain, selector="s2", algorithm="ed25519", actor_label="test")
    mail_dns.domain(records=[*right_records(keys=[old]), dkim_line(old, selector="s2")])

    with pytest.raises(ValidationError, match="the published key is not the one Dockspace signs with"):
        services.dkim_retire(key=DkimKey.objects.get(pk=old.pk), actor_label="test")


def test_when_dns_cannot_be_asked_retire_is_held_back_until_forced_and_the_audit_names_why(domain):
    # Tests' default resolver answers REFUSED: Dockspace cannot tell whether s2 is published.
    old = domain.dkim_keys.get()
    services.dkim_rotate(domain=domain, selector="s2", algorithm="ed25519", actor_label="test")

    message = refused("dkim", "retire", "example.com", "mail")
    assert message.startswith(
        "selector: mail is not retired: warning: DNS could not be asked whether the new selector s2 is visible "
        "(s2._domainkey.example.com: "
    )
    assert "answered REFUSED" in message and "retire with --force" in message
    assert DkimKey.objects.get(pk=old.pk).state == "published"
    assert not AuditEvent.objects.filter(action="mail.dkim.retire").exists()

    assert "Retired mail._domainkey.example.com" in run("dkim", "retire", "example.com", "mail", "--force")
    assert DkimKey.objects.get(pk=old.pk).state == "retired"
    event = AuditEvent.objects.get(action="mail.dkim.retire")
    assert event.description.startswith(
        "Retired DKIM selector mail. Forced despite: warning: DNS could not be asked whether the new selector s2"
    )


def test_the_admin_shows_why_retire_is_held_back_and_retire_anyway_goes_ahead(domain):
    old = domain.dkim_keys.get()
    services.dkim_rotate(domain=domain, selector="s2", algorithm="ed25519", actor_label="test")
    browser = Client()
    browser.force_login(StaffFactory(email="root@example.com"))

    def act(action):
        data = {"action": action, "_selected_action": [old.pk]}
        return shown_messages(browser.post("/admin/mail/dkimkey/", data, follow=True))

    shown = act("retire")
    assert any("mail is not retired: warning: DNS could not be asked" in m for m in shown)
    assert DkimKey.objects.get(pk=old.pk).state == "published"

    assert "Retired mail._domainkey.example.com; remove its TXT record from DNS." in act("retire_anyway")
    assert DkimKey.objects.get(pk=old.pk).state == "retired"


def test_retire_without_the_permission_is_refused_before_dns_is_asked(mail_dns, domain):
    old = domain.dkim_keys.get()
    services.dkim_rotate(domain=domain, selector="s2", algorithm="ed25519", actor_label="test")
    mail_dns.domain(records=right_records(keys=[old]))  # s2 is not published: retire would be held back
    staff_with("mail.view_dkimkey")

    message = refused("dkim", "retire", "example.com", "mail", "--as", "ops@example.com")

    # The permission is asked first: no DNS objection is looked up for someone who may not retire.
    assert message == "selector: you do not have the permission 'mail.change_dkimkey'."
    assert DkimKey.objects.get(pk=old.pk).state == "published"
