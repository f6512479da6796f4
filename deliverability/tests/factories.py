"""Builders for the deliverability tests: sending IPs and pools made through the services so rows look exactly like
real ones, and staff with chosen permissions signed in to the admin."""

import re

from django.contrib.auth.models import Permission
from django.test import Client

from accounts.authz import SYSTEM
from accounts.tests.factories import UserFactory
from deliverability import ip_pools, sending_ips

_counter = iter(range(1, 250))


def make_pool(name="bulk", **kw):
    return ip_pools.pool_add(name=name, actor=SYSTEM, actor_label="test", **kw)


def make_ip(address=None, *, helo_name=None, **kw):
    address = address or f"192.0.2.{next(_counter)}"
    helo_name = helo_name or "out-" + "-".join(filter(None, re.split(r"[.: ]+", address.lower()))) + ".example.com"
    return sending_ips.ip_add(address=address, helo_name=helo_name, actor=SYSTEM, actor_label="test", **kw)


def move(ip, *states, reason="test"):
    """Walk `ip` through `states` in order, as an operator would."""
    for state in states:
        ip = sending_ips.ip_set_state(ip=ip, state=state, reason=reason, actor=SYSTEM, actor_label="test")
    return ip


def signed_in(person):
    client = Client()
    client.force_login(person)
    return client


def staff_with(*codenames, email="ops@example.com"):
    """A staff member holding only the permissions `codenames` ("app_label.codename")."""
    person = UserFactory(email=email, is_staff=True)
    for codename in codenames:
        app_label, name = codename.split(".")
        person.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=name))
    return person
