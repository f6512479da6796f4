"""What the dashboard tests share: a signed-in client, a staff member with named permissions, one card's HTML."""

import re

from django.contrib.auth.models import Permission
from django.test import Client

from accounts.tests.factories import UserFactory

HOME = "/admin/"


def signed_in(person):
    client = Client()
    client.force_login(person)
    return client


def staff_with(*perms, email):
    """A staff member holding these "app_label.codename" permissions only."""
    person = UserFactory(email=email, is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        person.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return person


def card(html, title):
    """The body of the dashboard card titled `title`, or None when the page has no such card."""
    match = re.search(rf'<h2 id="card-\d+">{title}</h2>(.*?)</section>', html, re.S)
    return match.group(1) if match else None
