"""A mail group that gates an OIDC app (Application.allowed_groups): changing who is in it is an access grant, so
mail-only staff may not, in the admin or with `manage.py group`; those who may are audited (accounts.authz's group
gate, which oidc registers)."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.models import AuditEvent, User
from accounts.tests.factories import UserFactory
from dockspace.tests.admin_pages import change, errors
from mail import services
from mail.models import Group
from mail.tests.factories import refused, run
from oidc.tests.factories import make_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def mail_staff():
    """Staff with every permission of the mail app and none over people."""
    staff = UserFactory(email="mailstaff@example.com", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="mail"))
    client = Client()
    client.force_login(staff)
    return client


def gated_group():
    """grafana-admins, the group that decides who signs in to the Grafana app."""
    group = services.group_create(name="grafana-admins")
    make_client(name="Grafana", groups=["grafana-admins"])
    return group


def test_mail_only_staff_cannot_add_themselves_to_a_group_that_gates_an_app(mail_staff):
    group = gated_group()
    me = User.objects.get(email="mailstaff@example.com")
    url = f"/admin/mail/group/{group.pk}/change/"

    refused = change(mail_staff, url, members=[me.pk])

    assert "grafana-admins decides who may sign in to Grafana" in " ".join(errors(refused)["members"])
    assert not group.members.exists()
    assert not AuditEvent.objects.filter(action="access.change").exists()


def test_mail_only_staff_still_change_members_of_a_plain_group(mail_staff):
    gated_group()
    plain = services.group_create(name="newsletter")
    me = User.objects.get(email="mailstaff@example.com")

    response = change(mail_staff, f"/admin/mail/group/{plain.pk}/change/", members=[me.pk])

    assert response.status_code == 302
    assert list(plain.members.all()) == [me]


def test_members_of_a_gating_group_changed_by_oidc_staff_are_audited_as_an_access_change():
    group = gated_group()
    staff = UserFactory(email="oidcstaff@example.com", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(codename__in=["view_group", "change_group", "change_application"])
    )
    browser = Client()
    browser.force_login(staff)
    ann = UserFactory(email="ann@example.com")

    response = change(browser, f"/admin/mail/group/{group.pk}/change/", members=[ann.pk])

    assert response.status_code == 302
    assert list(group.members.all()) == [ann]
    event = AuditEvent.objects.get(action="access.change")
    assert event.description == "Access to Grafana through group grafana-admins: added ann@example.com."
    assert event.actor_label == "oidcstaff@example.com"


def test_mail_only_staff_cannot_remove_or_rename_a_gating_group(mail_staff):
    group = gated_group()

    renamed = change(mail_staff, f"/admin/mail/group/{group.pk}/change/", name="old-grafana-admins")
    mail_staff.post(f"/admin/mail/group/{group.pk}/delete/", {"post": "yes"})

    assert "grafana-admins decides who may sign in to Grafana" in " ".join(errors(renamed)["name"])
    assert Group.objects.filter(pk=group.pk, name="grafana-admins").exists()


def test_update_as_mail_only_staff_cannot_grant_access_through_a_gating_group():
    staff = User.objects.create_user("mailstaff@example.com", "river stone lantern 42", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="mail"))
    services.group_create(name="grafana-admins")
    services.group_create(name="newsletter")
    make_client(name="Grafana", groups=["grafana-admins"])
    as_staff = ("--as", staff.email)

    message = refused("group", "update", "grafana-admins", "--add", staff.email, *as_staff)
    run("group", "update", "newsletter", "--add", staff.email, *as_staff)  # positive control
    run("group", "update", "grafana-admins", "--add", staff.email)  # the host may

    assert "members: grafana-admins decides who may sign in to Grafana" in message
    assert list(Group.objects.get(name="newsletter").members.all()) == [staff]
    event = AuditEvent.objects.get(action="access.change")
    assert event.description == "Access to Grafana through group grafana-admins: added mailstaff@example.com."
    assert event.actor_label == "manage.py group"
