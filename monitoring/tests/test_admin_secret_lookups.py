"""No change list of the admin filters on a secret field: a filter in the URL (?field__regex=...) would let a staff
member who may only view a list read the field a character at a time by counting the rows that come back."""

import pytest
from django.contrib import admin
from django.test import Client

from accounts.admin_site import is_secret_lookup
from accounts.tests.factories import PASSWORD, StaffFactory

pytestmark = pytest.mark.django_db


def secret_lookups():
    """(admin URL, lookup) of every field of every registered model whose name marks it secret."""
    found = []
    for model in admin.site._registry:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        for field in model._meta.get_fields():
            if field.concrete and is_secret_lookup(field.name):
                found.append((url, f"{field.name}__regex"))
    return found


def test_every_secret_field_of_every_admin_is_refused_as_a_filter():
    browser = Client()
    browser.post("/login/", {"email": StaffFactory(email="root@example.com").email, "password": PASSWORD})
    lookups = secret_lookups()
    names = {lookup for _, lookup in lookups}
    # The fields the review read this way: the OIDC signing key, people's mail hashes, outbound messages.
    assert {"private_pem__regex", "mail_password_hash__regex", "mime__regex"} <= names
    for url, lookup in lookups:
        assert browser.get(url, {lookup: "^"}).status_code == 400, (url, lookup)
    # Through a relation too: a person's authenticator key.
    assert browser.get("/admin/accounts/user/", {"totpdevice__key__regex": "^"}).status_code == 400
    # Positive controls: the filters the lists offer still work.
    assert browser.get("/admin/oidc/signingkey/", {"state__exact": "active"}).status_code == 200
    assert browser.get("/admin/oidc/application/", {"requires_totp__exact": "1"}).status_code == 200
    assert browser.get("/admin/accounts/user/", {"is_active__exact": "1"}).status_code == 200


def test_staff_who_may_only_view_channels_cannot_read_a_webhooks_path_by_filtering():
    from django.contrib.auth.models import Permission

    from accounts.tests.factories import UserFactory
    from monitoring.tests.factories import webhook_channel

    webhook_channel("https://hooks.example.com/services/T00/SECRETPATH")
    viewer = UserFactory(email="v@example.com", is_staff=True)
    granted = Permission.objects.filter(codename__in=["view_notificationchannel", "view_alertevent"])
    viewer.user_permissions.add(*granted)
    browser = Client()
    browser.force_login(viewer)
    url = "/admin/monitoring/notificationchannel/"
    for lookup, value in [
        ("webhook_url__startswith", "https://hooks.example.com/services/T00/S"),
        ("webhook_url__regex", "^https://hooks.example.com/services/T00/S"),
        ("webhook_url", "https://hooks.example.com/services/T00/SECRETPATH"),
    ]:
        assert browser.get(url, {lookup: value}).status_code == 400, lookup
    # Through a relation too (the notifications list).
    assert browser.get("/admin/monitoring/alertevent/", {"channel__webhook_url__regex": "^"}).status_code == 400
    # Positive control: the list and its own filters still work for them.
    assert browser.get(url, {"kind__exact": "webhook"}).status_code == 200
