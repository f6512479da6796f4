"""The blocklists in the admin: the lists with their health, add/change through the services with a write-only
access key, "check now" (selected lists, or one IP or domain) against a real NSD, the read-only results, the sending
IP's history table and the dashboard card; staff who may only view see all that but change and run nothing, and the
access key appears on no page."""

import re

import pytest

from accounts.authz import SystemActor
from accounts.models import AuditEvent
from accounts.tests.factories import StaffFactory
from deliverability import dnsbl
from deliverability.models import Dnsbl, DnsblResult, SendingIp
from deliverability.tests.dnsbl_lists import make_list, only_test_lists, serve_ip_list
from deliverability.tests.factories import make_ip, signed_in, staff_with

pytestmark = pytest.mark.django_db

KEY = "abcdef1234567890"
LISTS = "/admin/deliverability/dnsbl/"
RESULTS = "/admin/deliverability/dnsblresult/"
CHECK = "/admin/deliverability/dnsbl/check/"


@pytest.fixture(autouse=True)
def _test_lists_only(settings):
    only_test_lists()
    settings.SENDING_IPS = []


def viewer():
    return staff_with("deliverability.view_dnsbl", "deliverability.view_dnsblresult", "deliverability.view_sendingip")


def form_data(**changes):
    data = {
        "name": "Test DQS",
        "zone": "zen.test",
        "kind": "ip",
        "listed_codes": '{"127.0.0.2": "SBL"}',
        "alert_only_codes": "[]",
        "action": "alert",
        "key_zone": "dq.test",
        "access_key_env": "",
        "removal_url": "",
        "is_enabled": "on",
        "new_access_key": "",
    }
    data.update(changes)
    return data


def sweep():
    return dnsbl.dnsbl_sweep(actor=SystemActor("test sweep"))


def test_the_lists_show_their_health_reason_action_and_codes(dns_server):
    serve_ip_list(dns_server)
    dns_server.zone("all.test", ["* A 127.0.0.2"])  # answers everything: its test point 127.0.0.1 fails
    make_list(action=Dnsbl.STANDBY)
    make_list("all.test", action=Dnsbl.ALERT)
    make_list("never.test", action=Dnsbl.INFORMATION)
    make_ip("192.0.2.10", state=SendingIp.ACTIVE)
    sweep()
    Dnsbl.objects.filter(zone="never.test").update(health=Dnsbl.UNTESTED)

    html = signed_in(StaffFactory()).get(LISTS).content.decode()

    rows = {zone: row for row, zone in re.findall(r"(<tr>.*?([a-z]+\.test)</a>.*?</tr>)", html, re.S)}
    assert '<span class="state-ok">ok</span>' in rows["bl.test"] and "127.0.0.2 SBL" in rows["bl.test"]
    assert "standby" in rows["bl.test"]
    assert '<span class="state-bad">broken</span>' in rows["all.test"]
    assert "127.0.0.1" in rows["all.test"]  # the reason names the failed test point
    assert "not tested yet" in rows["never.test"]


def test_a_superuser_adds_a_list_with_a_key_that_no_page_shows_again():
    client = signed_in(StaffFactory())
    response = client.post(f"{LISTS}add/", form_data(new_access_key=KEY))
    assert response.status_code == 302, response.content.decode()[:2000]
    added = Dnsbl.objects.get(zone="zen.test")
    assert added.access_key_encrypted and KEY not in added.access_key_encrypted
    assert dnsbl.dnsbl_keys.access_key("", added.access_key_encrypted) == KEY

    page = client.get(f"{LISTS}{added.pk}/change/").content.decode()
    assert "set (stored encrypted)" in page
    assert KEY not in page and added.access_key_encrypted not in page
    assert KEY not in client.get(LISTS).content.decode()
    assert not any(KEY in e.description for e in AuditEvent.objects.all())
    assert AuditEvent.objects.filter(action="deliverability.dnsbl.add").exists()


def test_bad_input_is_refused_on_its_field_and_the_key_is_not_sent_back():
    client = signed_in(StaffFactory())
    response = client.post(f"{LISTS}add/", form_data(zone="not a zone", new_access_key=KEY))
    assert response.status_code == 200
    html = response.content.decode()
    assert "is not a DNS zone" in html and KEY not in html
    response = client.post(f"{LISTS}add/", form_data(new_access_key="UPPER-and-!"))
    assert "8 to 64 lower-case letters and digits" in response.content.decode()
    response = client.post(f"{LISTS}add/", form_data(listed_codes="{not json"))
    assert response.status_code == 200 and "Enter a valid JSON" in response.content.decode()
    assert not Dnsbl.objects.filter(zone="zen.test").exists()


def test_a_change_keeps_the_key_unless_a_new_one_is_given_or_it_is_removed():
    added = make_list("zen.test", key_zone="dq.test", access_key=KEY)
    stored = added.access_key_encrypted
    client = signed_in(StaffFactory())
    data = form_data(name="Renamed", action="standby")
    assert client.post(f"{LISTS}{added.pk}/change/", data).status_code == 302
    added.refresh_from_db()
    assert (added.name, added.action, added.access_key_encrypted) == ("Renamed", "standby", stored)

    assert client.post(f"{LISTS}{added.pk}/change/", {**data, "clear_access_key": "on"}).status_code == 302
    added.refresh_from_db()
    assert added.access_key_encrypted == ""


def test_check_now_on_selected_lists_asks_only_those_and_stores_the_results(dns_server):
    serve_ip_list(dns_server, {"192.0.2.10": "127.0.0.2"})
    serve_ip_list(dns_server, {"192.0.2.10": "127.0.0.2"}, zone="other.test")
    chosen = make_list(action=Dnsbl.ALERT)
    other = make_list("other.test", action=Dnsbl.ALERT)
    make_ip("192.0.2.10", state=SendingIp.ACTIVE)
    client = signed_in(StaffFactory())

    response = client.post(LISTS, {"action": "check_now", "_selected_action": [chosen.pk]}, follow=True)

    assert "Blocklists asked now: checked 1 pair(s): 1 listed" in response.content.decode()
    assert DnsblResult.objects.get(dnsbl=chosen, is_latest=True).status == "listed"
    assert not DnsblResult.objects.filter(dnsbl=other).exists()


def test_check_now_for_one_ip_returns_to_its_page_with_the_history(dns_server):
    serve_ip_list(dns_server, {"192.0.2.10": "127.0.0.2"})
    make_list(action=Dnsbl.ALERT)
    ip = make_ip("192.0.2.10", state=SendingIp.ACTIVE)
    make_ip("192.0.2.11", state=SendingIp.ACTIVE)
    client = signed_in(StaffFactory())

    page = client.get(f"/admin/deliverability/sendingip/{ip.pk}/change/").content.decode()
    assert "Not checked on any blocklist yet." in page and 'id="dnsbl-check-button"' in page

    response = client.post(CHECK, {"subject": "192.0.2.10"})
    assert response.status_code == 302 and response["Location"] == f"/admin/deliverability/sendingip/{ip.pk}/change/"
    assert not DnsblResult.objects.filter(subject="192.0.2.11").exists()  # only the subject was asked

    page = client.get(response["Location"]).content.decode()
    history = re.search(r'<fieldset class="module aligned" id="dnsbl-history">(.*?)</fieldset>', page, re.S).group(1)
    row = re.search(r'<tr class="dnsbl-listed dnsbl-current">(.*?)</tr>', history, re.S).group(1)
    assert "bl.test" in row and "listed (now)" in row and "127.0.0.2" in row and "SBL" in row


def test_check_now_does_not_tell_someone_without_view_sendingip_which_addresses_are_sending_ips(dns_server):
    serve_ip_list(dns_server)
    make_list(action=Dnsbl.ALERT)
    make_ip("192.0.2.10", state=SendingIp.ACTIVE)
    runner = staff_with(
        "deliverability.run_dnsbl_check", "deliverability.view_dnsbl", "deliverability.view_dnsblresult"
    )
    client = signed_in(runner)

    # A sending IP and any other address end on the same kind of page: the results, not the sending IP's page.
    for address in ("192.0.2.10", "192.0.2.11"):
        response = client.post(CHECK, {"subject": address})
        assert response.status_code == 302 and response["Location"].startswith("/admin/deliverability/dnsblresult/")


def test_check_now_refuses_what_is_neither_an_ip_nor_a_domain():
    make_list(action=Dnsbl.ALERT)
    response = signed_in(StaffFactory()).post(CHECK, {"subject": "not a name!"})
    assert response.status_code == 200
    assert "is neither an IP address nor a domain" in response.content.decode()
    assert not DnsblResult.objects.exists()


@pytest.mark.parametrize(
    "subject, rule",
    [
        ("2001:db8::1%x", "without a %zone"),
        ("fe80::1%eth0", "without a %zone"),
        ("foo bar", "is neither an IP address nor a domain"),
        ("a" * 64 + ".example", "is neither an IP address nor a domain"),  # a label is at most 63
    ],
)
def test_check_now_refuses_a_scoped_address_or_a_bad_name_on_the_field(subject, rule):
    make_list(action=Dnsbl.ALERT)
    make_ip("2001:db8::1", state=SendingIp.ACTIVE)
    response = signed_in(StaffFactory()).post(CHECK, {"subject": subject})
    assert response.status_code == 200
    assert rule in response.content.decode()
    assert not DnsblResult.objects.exists()


def test_the_results_are_read_only_and_filter_by_list_and_status(dns_server):
    serve_ip_list(dns_server, {"192.0.2.10": "127.0.0.2"})
    make_list(action=Dnsbl.ALERT)
    make_ip("192.0.2.10", state=SendingIp.ACTIVE)
    make_ip("192.0.2.11", state=SendingIp.ACTIVE)
    sweep()
    client = signed_in(StaffFactory())

    listed = client.get(f"{RESULTS}?status__exact=listed").content.decode()
    clear = client.get(f"{RESULTS}?status__exact=clear").content.decode()
    assert "192.0.2.10" in listed and "192.0.2.11" not in listed
    assert "192.0.2.11" in clear and "192.0.2.10" not in clear
    by_list = client.get(f"{RESULTS}?dnsbl__id__exact={Dnsbl.objects.get(zone='bl.test').pk}")
    assert by_list.status_code == 200 and "192.0.2.10" in by_list.content.decode()
    assert client.get(f"{RESULTS}add/").status_code == 403
    row = DnsblResult.objects.first()
    assert client.post(f"{RESULTS}{row.pk}/delete/", {"post": "yes"}).status_code == 403


def test_staff_who_may_only_view_see_the_lists_but_change_and_run_nothing(dns_server):
    serve_ip_list(dns_server, {"192.0.2.10": "127.0.0.2"}, zone=f"{KEY}.dq.test")  # asked under the key
    added = make_list(action=Dnsbl.ALERT, key_zone="dq.test", access_key=KEY)
    ip = make_ip("192.0.2.10", state=SendingIp.ACTIVE)
    client = signed_in(viewer())

    lists = client.get(LISTS).content.decode()
    assert "bl.test" in lists and 'id="dnsbl-check-link"' in lists
    assert 'value="check_now"' not in lists  # the action is not offered
    page = client.get(f"{LISTS}{added.pk}/change/").content.decode()
    assert "set (stored encrypted)" in page and 'name="new_access_key"' not in page
    assert client.post(f"{LISTS}{added.pk}/change/", form_data(name="Renamed")).status_code == 403
    assert Dnsbl.objects.get(pk=added.pk).name == "bl.test"

    # Posted anyway, the action and the check are refused by the service; nothing is asked or stored.
    client.post(LISTS, {"action": "check_now", "_selected_action": [added.pk]})
    response = client.post(CHECK, {"subject": "192.0.2.10"})
    assert "you do not have the permission &#x27;deliverability.run_dnsbl_check&#x27;" in response.content.decode()
    assert not DnsblResult.objects.exists()
    ip_page = client.get(f"/admin/deliverability/sendingip/{ip.pk}/change/").content.decode()
    assert 'id="dnsbl-history"' in ip_page and 'id="dnsbl-check-button"' not in ip_page

    # The control: the same posts by someone with the run permission do ask.
    runner = staff_with("deliverability.view_dnsbl", "deliverability.run_dnsbl_check", email="runner@example.com")
    signed_in(runner).post(CHECK, {"subject": "192.0.2.10"})
    assert DnsblResult.objects.get(subject="192.0.2.10", is_latest=True).status == "listed"
    ip_url = f"/admin/deliverability/sendingip/{ip.pk}/change/"
    for url in (LISTS, f"{LISTS}{added.pk}/change/", RESULTS, CHECK, ip_url):
        assert KEY not in client.get(url).content.decode()


def test_the_dashboard_card_counts_listed_ips_and_domains_and_broken_lists_for_viewers_only(dns_server):
    serve_ip_list(dns_server, {"192.0.2.10": "127.0.0.2"})
    dns_server.zone("all.test", ["* A 127.0.0.2"])
    make_list(action=Dnsbl.ALERT)
    make_list("all.test", name="Answers all", action=Dnsbl.ALERT)
    make_ip("192.0.2.10", state=SendingIp.ACTIVE)
    make_ip("192.0.2.11", state=SendingIp.ACTIVE)
    sweep()

    html = signed_in(viewer()).get("/admin/").content.decode()
    card = re.search(r'<h2 id="card-\d+">Blocklists</h2>(.*?)</section>', html, re.S).group(1)
    assert re.search(
        r'<a href="/admin/deliverability/dnsblresult/\?is_latest__exact=1&amp;status__exact=listed&amp;'
        r'dnsbl__kind__exact=ip">Listed IPs</a></th><td class="number state-bad">1<',
        card,
    )
    assert "192.0.2.10" in card and "192.0.2.11" not in card
    assert re.search(r'>Listed domains</a></th><td class="number state-ok">0<', card)
    broken = r'health__exact=broken&amp;is_enabled__exact=1">Broken lists</a></th><td class="number state-bad">1<'
    assert re.search(broken, card)
    assert "Answers all" in card

    no_view = staff_with("deliverability.view_sendingip", email="other@example.com")
    assert "Blocklists</h2>" not in signed_in(no_view).get("/admin/").content.decode()


def test_a_list_manager_without_manage_key_is_told_at_the_key_zone_and_the_key_stays_where_it_was():
    keyed = make_list("zen.test", name="Test DQS", action=Dnsbl.ALERT, key_zone="zen.dq.test", access_key=KEY)
    manager = staff_with("deliverability.view_dnsbl", "deliverability.change_dnsbl")
    client = signed_in(manager)
    url = f"{LISTS}{keyed.pk}/change/"

    response = client.post(url, form_data(action="alert", key_zone="evil.attacker.test"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "needs the permission &#x27;deliverability.manage_dnsbl_key&#x27;" in html and KEY not in html
    keyed.refresh_from_db()
    assert keyed.key_zone == "zen.dq.test"
    # The positive control: someone who may manage keys makes the same change.
    keeper = staff_with(
        "deliverability.view_dnsbl",
        "deliverability.change_dnsbl",
        "deliverability.manage_dnsbl_key",
        email="keys@example.com",
    )
    assert signed_in(keeper).post(url, form_data(action="alert", key_zone="evil.attacker.test")).status_code == 302
    keyed.refresh_from_db()
    assert keyed.key_zone == "evil.attacker.test"
