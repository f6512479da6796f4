"""Pools and sending IPs in the admin: added and changed through the services, the state changed on its own page
with a reason (refused moves and staff who may only view are refused by the service, whatever they post), the state
history read-only, and the duties' dry run."""

import datetime as dt
import re

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.tests.factories import StaffFactory, UserFactory
from deliverability.models import IpPool, IpStateChange, SendingIp
from deliverability.tests.factories import make_ip, make_pool, move
from dockspace.tests.admin_pages import errors
from mail.tests.factories import make_domain

pytestmark = pytest.mark.django_db

IPS = "/admin/deliverability/sendingip/"
POOLS = "/admin/deliverability/ippool/"
DUTIES = "/admin/deliverability/ip-duties/"


def client_for(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def root():
    return client_for(StaffFactory(email="root@example.com"))


def staff_client(*codenames):
    person = UserFactory(is_staff=True)
    person.user_permissions.set(
        Permission.objects.filter(content_type__app_label="deliverability", codename__in=codenames)
    )
    return client_for(person)


def state_url(ip):
    return f"{IPS}{ip.pk}/state/"


def test_adding_an_ip_goes_through_the_service(root):
    pool = make_pool()
    form = {"address": "2001:DB8::1", "helo_name": "Out.Example.com", "pool": pool.pk, "weight": 4, "state": "WARMING"}
    response = root.post(f"{IPS}add/", {**form, "notes": ""})
    ip = SendingIp.objects.get()
    assert response.status_code == 302
    assert (ip.address, ip.helo_name, ip.state, ip.weight) == ("2001:db8::1", "out.example.com", "WARMING", 4)
    assert IpStateChange.objects.get().actor_label == "root@example.com"
    refused = root.post(f"{IPS}add/", {**form, "address": "2001:db8:0::1", "notes": ""})
    assert errors(refused) == {"address": ["2001:db8::1 is already a sending IP."]}
    bad_weight = root.post(f"{IPS}add/", {**form, "address": "192.0.2.1", "weight": 0, "notes": ""})
    assert "weight" in errors(bad_weight) and SendingIp.objects.count() == 1


def test_the_ip_page_shows_its_state_history_read_only_and_a_change_state_link(root):
    ip = move(make_ip("192.0.2.1", state="ACTIVE"), "RETIRING", reason="monthly rotation by hand")
    page = root.get(f"{IPS}{ip.pk}/change/").content.decode()
    assert "monthly rotation by hand" in page and "added; already sends" in page
    assert 'name="state_changes-0-reason"' not in page  # shown, never editable
    assert 'name="state"' not in page  # the state changes only on its own page
    assert state_url(ip) in page


def test_changing_the_state_with_a_reason(root):
    ip = make_ip("192.0.2.1", state="ACTIVE")
    page = root.get(state_url(ip)).content.decode()
    assert "it may move to RETIRING or RESTING" in page
    assert '<option value="WARMING"' not in page  # only the allowed moves are offered
    response = root.post(state_url(ip), {"state": "RESTING", "reason": "listed on Spamhaus, standby"})
    assert response.status_code == 302 and response["Location"] == f"{IPS}{ip.pk}/change/"
    change = IpStateChange.objects.filter(ip=ip).first()
    assert (change.from_state, change.to_state, change.reason) == ("ACTIVE", "RESTING", "listed on Spamhaus, standby")


def test_a_move_the_lifecycle_refuses_is_refused_even_when_posted(root):
    ip = make_ip("192.0.2.1", state="ACTIVE")
    response = root.post(state_url(ip), {"state": "WARMING", "reason": "skip the drain"})
    assert response.status_code == 200
    assert "an IP cannot move from ACTIVE to WARMING" in response.content.decode()
    assert SendingIp.objects.get().state == "ACTIVE" and IpStateChange.objects.count() == 1
    no_reason = root.post(state_url(ip), {"state": "RETIRING", "reason": "  "})
    assert no_reason.status_code == 200 and SendingIp.objects.get().state == "ACTIVE"


def test_a_refused_form_offers_only_the_moves_from_the_state_the_ip_is_in_now(root):
    ip = make_ip("192.0.2.1", state="ACTIVE")
    assert '<option value="RETIRING"' in root.get(state_url(ip)).content.decode()  # the page as it was loaded
    move(ip, "RETIRING", reason="drained from the command line meanwhile")
    page = root.post(state_url(ip), {"state": "RETIRING", "reason": "rotation"}).content.decode()
    assert "the IP is already RETIRING" in page
    offered = re.findall(r'<option value="([A-Z]+)"', page)
    assert offered == ["RESTING"]  # from RETIRING, RESTING only
    assert "is <strong>RETIRING</strong>" in page and "it may move to RESTING." in page
    no_reason = root.post(state_url(ip), {"state": "RESTING", "reason": ""}).content.decode()
    assert re.findall(r'<option value="([A-Z]+)"', no_reason) == ["RESTING"]


def test_view_only_staff_see_but_cannot_change(root):
    ip = make_ip("192.0.2.1", state="ACTIVE")
    pool = make_pool()
    viewer = staff_client("view_sendingip", "view_ippool")
    assert viewer.get(IPS).status_code == 200
    page = viewer.get(f"{IPS}{ip.pk}/change/").content.decode()
    assert "192.0.2.1" in page and state_url(ip) not in page
    assert "You may view this IP but not change its state" in viewer.get(state_url(ip)).content.decode()
    # The form bypassed: the service refuses.
    response = viewer.post(state_url(ip), {"state": "RETIRING", "reason": "I insist"})
    assert "you do not have the permission &#x27;deliverability.change_sendingip&#x27;" in response.content.decode()
    assert SendingIp.objects.get().state == "ACTIVE" and IpStateChange.objects.count() == 1
    assert viewer.post(f"{IPS}{ip.pk}/change/", {"weight": 50, "helo_name": "x.example.com"}).status_code == 403
    assert viewer.post(f"{POOLS}{pool.pk}/change/", {"name": "renamed"}).status_code == 403
    assert SendingIp.objects.get().weight == 1 and IpPool.objects.get().name == "bulk"
    # Allowed staff may.
    changer = staff_client("view_sendingip", "change_sendingip")
    changer.post(state_url(ip), {"state": "RETIRING", "reason": "rotation"})
    assert SendingIp.objects.get().state == "RETIRING"


def test_staff_without_any_deliverability_permission_get_nothing():
    ip = make_ip("192.0.2.1")
    nobody = staff_client()
    assert nobody.get(state_url(ip)).status_code in (302, 403)
    assert nobody.get(DUTIES).status_code == 403
    assert nobody.post(state_url(ip), {"state": "RESTING", "reason": "x"}).status_code in (302, 403)
    assert SendingIp.objects.get().state == "WARMING"


def test_pools_are_added_through_the_service_and_show_their_ips_with_weights(root):
    domain = make_domain("example.com")
    response = root.post(f"{POOLS}add/", {"name": "Bulk", "description": "", "domains": [domain.pk]})
    pool = IpPool.objects.get()
    assert response.status_code == 302 and pool.name == "bulk" and list(pool.domains.all()) == [domain]
    refused = root.post(f"{POOLS}add/", {"name": "other", "description": "", "domains": [domain.pk]})
    assert errors(refused)["domains"][0].startswith("example.com already sends through pool bulk")
    make_ip("192.0.2.1", pool=pool, state="ACTIVE", weight=3)
    make_ip("192.0.2.2", pool=pool, weight=1)
    page = root.get(f"{POOLS}{pool.pk}/change/").content.decode()
    assert "<td>192.0.2.1</td>" not in page  # linked
    assert ">192.0.2.1</a></td><td>out-192-0-2-1.example.com</td><td>ACTIVE</td><td>3</td><td>75 %</td>" in page
    assert ">192.0.2.2</a></td><td>out-192-0-2-2.example.com</td><td>WARMING</td><td>1</td><td>25 %</td>" in page
    listing = root.get(POOLS).content.decode()
    assert "192.0.2.1 (3), 192.0.2.2 (1)" in listing


def test_removing_a_pool_with_ips_is_refused(root):
    pool = make_pool()
    make_ip("192.0.2.1", pool=pool, state="ACTIVE")
    root.post(f"{POOLS}{pool.pk}/delete/", {"post": "yes"})
    assert IpPool.objects.exists()


def test_the_duties_page_shows_what_would_happen_now_and_changes_nothing(root, settings):
    settings.IP_DRAIN_DAYS = 2
    with time_machine.travel(dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC), tick=False) as clock:
        pool = make_pool(rotation_enabled=True)
        make_ip("192.0.2.1", pool=pool, state="ACTIVE")
        make_ip("192.0.2.2", pool=pool, state="ACTIVE")
        make_ip("192.0.2.3", pool=pool)
        move(make_ip("192.0.2.4", state="ACTIVE"), "RETIRING")
        page = root.get(DUTIES).content.decode()
        assert "ACTIVE &rarr; RETIRING" in page and "192.0.2.1" in page
        assert "RETIRING &rarr; RESTING from 2025-03-05 12:00" in page  # due later
        clock.shift(dt.timedelta(days=2))
        page = client_for(StaffFactory()).get(DUTIES).content.decode()  # the first session expired meanwhile
        assert page.count('class="would-move"') == 2
    assert dict(SendingIp.objects.values_list("address", "state")) == {
        "192.0.2.1": "ACTIVE",
        "192.0.2.2": "ACTIVE",
        "192.0.2.3": "WARMING",
        "192.0.2.4": "RETIRING",
    }
    assert staff_client("view_sendingip").get(DUTIES).status_code == 200
