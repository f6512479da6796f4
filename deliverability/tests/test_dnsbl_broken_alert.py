"""The alert kind deliverability.dnsbl_broken against real NSD zones (monitoring, which evaluates rules, is a sibling
app: the kind's evaluate() is called here directly): firing while an enabled list fails its test points, naming
the list, why and what it means; resolved when the list passes them again or is disabled."""

import pytest
from django.utils import timezone

from accounts.authz import SYSTEM, SystemActor
from deliverability import dnsbl, dnsbl_lists
from deliverability.alert_kinds import DNSBL_BROKEN
from deliverability.models import Dnsbl
from deliverability.tests.dnsbl_lists import make_list, only_test_lists, serve_ip_list
from dockspace.alert_kinds import alert_kind

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _test_lists_only():
    only_test_lists()


def sweep():
    return dnsbl.dnsbl_sweep(actor=SystemActor("test sweep"))


def observe():
    kind = alert_kind(DNSBL_BROKEN)
    return {o.subject: o for o in kind.evaluate(kind.view({}, timezone.now()))}


def test_a_broken_list_fires_naming_it_why_and_what_it_means_until_it_passes_again(dns_server, settings):
    settings.SENDING_IPS = ["192.0.2.10"]
    serve_ip_list(dns_server)
    dns_server.zone("all.test", ["* A 127.0.0.2"])  # lists every address, 127.0.0.1 included
    make_list(name="Good list")
    make_list("all.test", name="Everything list")
    assert not any(o.is_firing for o in observe().values())  # not tested yet

    sweep()

    seen = observe()
    assert not seen["Good list"].is_firing  # the positive control: a healthy list in the same sweep
    assert seen["Everything list"].is_firing
    assert seen["Everything list"].summary == (
        "Everything list (all.test) is broken: test point 127.0.0.1 is listed (127.0.0.2): the list answers every "
        "query. Its answers are ignored: IPs it lists are not rested and raise no alert. Check the resolver Dockspace "
        "asks (DOCKSPACE_DNS_RESOLVER) and the list's access key, or disable the list."
    )

    dns_server.zone("all.test", ["2.0.0.127 A 127.0.0.2"])  # the list behaves again
    sweep()
    assert not observe()["Everything list"].is_firing
    assert "passes its test points" in observe()["Everything list"].summary


def test_the_consequence_follows_the_lists_action(dns_server, settings):
    settings.SENDING_IPS = ["192.0.2.10"]
    dns_server.zone("empty.test", [])
    make_list("empty.test", name="Alert list", action=Dnsbl.ALERT)

    sweep()

    summary = observe()["Alert list"].summary
    assert "test point 127.0.0.2 is not listed" in summary
    assert "Its answers are ignored: what it lists raises no alert." in summary


def test_disabling_a_broken_list_resolves_its_alert(dns_server, settings):
    settings.SENDING_IPS = ["192.0.2.10"]
    dns_server.zone("empty.test", [])
    broken = make_list("empty.test", name="Empty list")
    sweep()
    assert observe()["Empty list"].is_firing

    dnsbl_lists.dnsbl_update(dnsbl=broken, is_enabled=False, actor=SYSTEM, actor_label="test")

    assert "Empty list" not in observe()  # no longer reported: its alert resolves
    assert Dnsbl.objects.get(pk=broken.pk).health == Dnsbl.BROKEN  # the stored health is left as it was


def test_the_rule_waits_two_hours_so_one_bad_sweep_pages_nobody():
    kind = alert_kind(DNSBL_BROKEN)
    assert (kind.label, kind.for_seconds, kind.enabled_by_default) == ("Blocklist broken", 2 * 3600, True)
