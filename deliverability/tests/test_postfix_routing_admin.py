"""The admin's "Postfix routing" page (linked from the IP pools list) and the same routing on each pool's page: what
Postfix will do with each pool, and whether the files on disk are what the next sync writes; refused (403) to staff
who may not view pools."""

import pytest
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory

from deliverability import admin_views, ip_lifecycle
from deliverability.tests.factories import make_ip, make_pool, move, signed_in, staff_with
from mail.dms import sync
from mail.models import Domain
from mail.tests.factories import make_domain, make_mailbox, use_temp_dms_dir

pytestmark = pytest.mark.django_db

ROUTING = "/admin/deliverability/postfix-routing/"
POOLS = "/admin/deliverability/ippool/"


@pytest.fixture(autouse=True)
def dms_dir(settings, tmp_path):
    return use_temp_dms_dir(settings, tmp_path)


@pytest.fixture
def pool():
    make_mailbox("me@a.example")
    pool = make_pool("bulk", domains=[Domain.objects.get(name="a.example"), make_domain("b.example")])
    make_ip("192.0.2.10", helo_name="out1.example.com", pool=pool, weight=1, state=ip_lifecycle.ACTIVE)
    make_ip("192.0.2.11", helo_name="out2.example.com", pool=pool, weight=3)
    move(make_ip("192.0.2.12", pool=pool), ip_lifecycle.RESTING, reason="listed on Spamhaus SBL")
    make_pool("empty", domains=[make_domain("c.example")])
    return pool


def test_a_viewer_sees_each_pools_routing_and_the_files_difference(pool, dms_dir):
    viewer = signed_in(staff_with("deliverability.view_ippool", "mail.view_domain"))

    assert f'href="{ROUTING}" id="postfix-routing-link">Postfix routing</a>' in viewer.get(POOLS).content.decode()
    response = viewer.get(ROUTING)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Sends for: <span" in page and ">a.example</span>, <span" in page
    assert "<td><code>out-192-0-2-11</code></td><td>out2.example.com</td><td>WARMING</td><td>3</td>" in page
    assert '<td class="routing-share">75.0 %</td>' in page and '<td class="routing-share">25.0 %</td>' in page
    assert "RESTING since" in page and "resting (cool-down, standby or quarantine): listed on Spamhaus SBL" in page
    assert "c.example: pool empty has no IP in rotation: it keeps the default transport" in page
    assert "The next sync changes 3 file(s) on disk" in page
    assert "+@a.example bulk" in page  # the diff itself

    sync.dms_sync()
    synced = viewer.get(ROUTING).content.decode()
    assert "are what the next sync writes" in synced and "+@a.example bulk" not in synced
    assert "Restart needed: " in synced


def test_a_pools_page_shows_its_own_routing_and_links_to_the_difference(pool):
    viewer = signed_in(staff_with("deliverability.view_ippool"))

    page = viewer.get(f"{POOLS}{pool.pk}/change/").content.decode()

    assert '<fieldset class="module aligned" id="postfix-routing">' in page
    assert "<code>out-192-0-2-10</code>" in page and "listed on Spamhaus SBL" in page
    assert "c.example" not in page  # another pool's domain
    assert f'<a href="{ROUTING}#routing-files">See the difference</a>' in page


def test_staff_who_may_not_view_pools_are_refused():
    make_ip("192.0.2.10", pool=make_pool("bulk"))
    person = staff_with("deliverability.view_sendingip")

    assert signed_in(person).get(ROUTING).status_code == 403
    # The view's own guard, whatever calls it: the selector refuses, the view answers 403.
    request = RequestFactory().get(ROUTING)
    request.user = person
    with pytest.raises(PermissionDenied):
        admin_views.postfix_routing_view(request, {})
    # The positive control: with the view permission, the same person sees the page.
    person = staff_with("deliverability.view_ippool", email="viewer@example.com")
    assert signed_in(person).get(ROUTING).status_code == 200
    request.user = person
    assert admin_views.postfix_routing_view(request, {}).status_code == 200
