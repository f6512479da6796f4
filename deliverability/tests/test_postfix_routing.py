"""What Postfix will do with the pools (selectors.postfix_routing, behind the admin's "Postfix routing" page and
`manage.py ip_pool routing`): the domains each pool sends for, its IPs in rotation with their transports and shares,
the IPs that take no new mail and why, the domains that keep the default transport and why, and whether the files
on disk differ from what the next sync writes."""

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError

from accounts.authz import SYSTEM
from deliverability import ip_lifecycle
from deliverability.models import SendingIp
from deliverability.postfix_transports import MAIN_PATH, MAP_PATH, USER_PATCHES_PATH, parse_map
from deliverability.selectors import postfix_routing
from deliverability.tests.factories import make_ip, make_pool, move, staff_with
from mail.dms import sync
from mail.models import Domain
from mail.tests.factories import make_domain, make_mailbox, make_tier, use_temp_dms_dir

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def dms_dir(settings, tmp_path):
    return use_temp_dms_dir(settings, tmp_path)


def pool_of(routing, name):
    return next(pool for pool in routing.pools if pool.name == name)


def test_each_ip_in_rotation_has_its_transport_helo_weight_and_share_of_the_pools_mail():
    pool = make_pool("bulk", domains=[make_domain("a.example")])
    make_ip("192.0.2.10", helo_name="out1.example.com", pool=pool, weight=1, state=ip_lifecycle.ACTIVE)
    make_ip("192.0.2.11", helo_name="out2.example.com", pool=pool, weight=3)
    trio = make_pool("trio", domains=[make_domain("b.example")])
    for address in ("192.0.2.20", "192.0.2.21", "192.0.2.22"):
        make_ip(address, pool=trio, weight=5)

    routing = postfix_routing(SYSTEM)

    bulk = pool_of(routing, "bulk")
    assert [
        (ip.address, ip.transport, ip.helo_name, ip.weight, ip.state, ip.share_percent) for ip in bulk.in_rotation
    ] == [
        ("192.0.2.10", "out-192-0-2-10", "out1.example.com", 1, "ACTIVE", 25.0),
        ("192.0.2.11", "out-192-0-2-11", "out2.example.com", 3, "WARMING", 75.0),
    ]
    assert [ip.share_percent for ip in pool_of(routing, "trio").in_rotation] == [33.3, 33.3, 33.3]
    assert bulk.not_in_rotation == ()
    assert [note.split(":")[0] for note in bulk.notes] == [
        "WARMING IPs take their weight's share of the pool's mail, uncapped, unless the policy service routes it "
        "(DOCKSPACE_POLICY_SERVICE)"
    ]


def test_ips_out_of_rotation_are_listed_with_their_state_and_the_reason_recorded_for_it():
    pool = make_pool("bulk", domains=[make_domain("a.example")])
    make_ip("192.0.2.10", pool=pool, state=ip_lifecycle.ACTIVE)
    move(make_ip("192.0.2.11", pool=pool, state=ip_lifecycle.ACTIVE), ip_lifecycle.RETIRING, reason="monthly rotation")
    move(make_ip("192.0.2.12", pool=pool), ip_lifecycle.RESTING, reason="listed on Spamhaus SBL, standby")

    bulk = pool_of(postfix_routing(SYSTEM), "bulk")

    assert [ip.address for ip in bulk.in_rotation] == ["192.0.2.10"]
    assert bulk.in_rotation[0].share_percent == 100.0
    assert [(ip.address, ip.state, ip.reason) for ip in bulk.not_in_rotation] == [
        ("192.0.2.11", "RETIRING", "retiring (drains: no new mail): monthly rotation"),
        ("192.0.2.12", "RESTING", "resting (cool-down, standby or quarantine): listed on Spamhaus SBL, standby"),
    ]


def test_own_and_tier_domains_send_through_the_pool_and_the_others_say_why_they_keep_the_default_transport():
    tier = make_tier(name="standard")
    make_domain("tiered.example", tier=tier)
    make_domain("asleep.example", is_active=False, tier=tier)
    bulk = make_pool("bulk", domains=[make_domain("own.example")], tiers=[tier])
    make_ip("192.0.2.10", pool=bulk)
    empty = make_pool("empty", domains=[make_domain("waiting.example")])
    move(make_ip("192.0.2.20", pool=empty), ip_lifecycle.RESTING)
    make_domain("unpooled.example")
    make_domain("other.example")

    routing = postfix_routing(SYSTEM)

    shown = pool_of(routing, "bulk")
    assert [(d.name, d.via_tier, d.is_routed) for d in shown.routed_domains] == [
        ("own.example", "", True),
        ("tiered.example", "standard", True),
    ]
    assert [(d.name, d.reason) for d in shown.default_domains] == [("asleep.example", "inactive: not in the map")]
    assert [(d.name, d.reason) for d in pool_of(routing, "empty").default_domains] == [
        ("waiting.example", "pool empty has no IP in rotation: it keeps the default transport")
    ]
    assert pool_of(routing, "empty").in_rotation == ()
    assert routing.unpooled_domains == 2


def test_values_the_files_cannot_hold_are_shown_where_they_would_have_gone():
    pool = make_pool("bulk", domains=[make_domain("a.example")])
    make_ip("192.0.2.10", pool=pool, weight=2)
    bad = make_ip("192.0.2.11", pool=pool, weight=2)
    SendingIp.objects.filter(pk=bad.pk).update(helo_name="out.example.com -o x=1")  # by hand, past the service
    Domain.objects.filter(name="a.example").update(name="bad domain")
    make_domain("b.example")
    pool.domains.add(Domain.objects.get(name="b.example"))

    bulk = pool_of(postfix_routing(SYSTEM), "bulk")

    assert [(ip.address, ip.share_percent) for ip in bulk.in_rotation] == [("192.0.2.10", 100.0)]
    assert [(ip.address, ip.state, ip.reason) for ip in bulk.not_in_rotation] == [
        (
            "192.0.2.11",
            "WARMING",
            "sending IP 192.0.2.11: HELO name 'out.example.com -o x=1' is not a host name: left out of the Postfix "
            "transports",
        )
    ]
    assert [(d.name, d.reason) for d in bulk.default_domains] == [
        (
            "bad domain",
            "domain 'bad domain' cannot be written to postfix-sender-pools.cf: it keeps the default transport",
        )
    ]
    assert [d.name for d in bulk.routed_domains] == ["b.example"]


def test_a_pool_with_ips_and_no_active_domain_says_its_transports_carry_no_mail():
    make_ip("192.0.2.10", pool=make_pool("idle"), state=SendingIp.ACTIVE)
    assert pool_of(postfix_routing(SYSTEM), "idle").notes == (
        "No active domain sends through this pool: its transports are added but carry no mail.",
    )


def test_a_pool_with_a_warming_ip_says_what_caps_its_volume():
    pool = make_pool("bulk", domains=[make_domain("example.com")])
    make_ip("192.0.2.10", pool=pool, state=SendingIp.ACTIVE)
    assert not any("WARMING" in note for note in pool_of(postfix_routing(SYSTEM), "bulk").notes)

    make_ip("192.0.2.11", pool=pool)  # a new IP starts WARMING

    [note] = [note for note in pool_of(postfix_routing(SYSTEM), "bulk").notes if "WARMING" in note]
    assert "uncapped, unless the policy service routes it (DOCKSPACE_POLICY_SERVICE)" in note
    assert "then mail to outside recipients goes to an IP with room in its warmup caps" in note


def test_a_pool_with_an_ipv6_address_warns_where_mail_for_ipv4_only_mx_hosts_leaves():
    pool = make_pool("mixed", domains=[make_domain("example.com")])
    make_ip("192.0.2.10", pool=pool, state=SendingIp.ACTIVE)
    assert not any("IPv6" in note for note in pool_of(postfix_routing(SYSTEM), "mixed").notes)

    make_ip("2001:db8::25", pool=pool, state=SendingIp.ACTIVE)

    [note] = [note for note in pool_of(postfix_routing(SYSTEM), "mixed").notes if "IPv6" in note]
    assert note.startswith("IPv6 addresses send only to MX hosts with IPv6 (AAAA) records")


def test_the_preview_routes_the_domains_the_written_map_routes(dms_dir):
    tier = make_tier(name="standard")
    make_domain("tiered.example", tier=tier)
    bulk = make_pool("bulk", domains=[make_domain("own.example")], tiers=[tier])
    make_ip("192.0.2.10", pool=bulk)
    make_pool("empty", domains=[make_domain("waiting.example")])
    make_mailbox("me@own.example")
    sync.dms_sync()

    routing = postfix_routing(SYSTEM)

    previewed = [(d.name, pool.name) for pool in routing.pools for d in pool.routed_domains]
    assert previewed == parse_map((dms_dir / MAP_PATH).read_text(), MAP_PATH)[0]
    assert previewed == [("own.example", "bulk"), ("tiered.example", "bulk")]


def test_the_files_on_disk_are_compared_with_what_the_next_sync_writes(dms_dir):
    make_mailbox("me@a.example")
    pool = make_pool("bulk", domains=[Domain.objects.get(name="a.example")])
    make_ip("192.0.2.10", pool=pool)
    resting = make_ip("192.0.2.11", pool=pool)

    never_synced = postfix_routing(SYSTEM).files
    assert set(never_synced.diffs) == {MAP_PATH, MAIN_PATH, USER_PATCHES_PATH} and not never_synced.is_up_to_date
    assert "+@a.example bulk" in never_synced.diffs[MAP_PATH]

    sync.dms_sync()
    synced = postfix_routing(SYSTEM).files
    assert synced.is_up_to_date and synced.diffs == {} and synced.problem == ""
    assert synced.restart_needed and "Recreate the mailserver container" in synced.restart_reason

    move(resting, ip_lifecycle.RESTING)  # committed, not synced yet
    behind = postfix_routing(SYSTEM).files
    assert set(behind.diffs) == {MAIN_PATH, USER_PATCHES_PATH}
    assert '-postconf -c "$POSTFIX_DIR" -M \'out-192-0-2-11/unix=' in behind.diffs[USER_PATCHES_PATH]
    assert (dms_dir / USER_PATCHES_PATH).read_text().count("out-192-0-2-11/unix=") == 1  # nothing written


def test_a_file_the_sync_leaves_alone_or_a_directory_it_refuses_is_said_not_compared(dms_dir):
    make_mailbox("me@a.example")
    make_ip("192.0.2.10", pool=make_pool("bulk", domains=[Domain.objects.get(name="a.example")]))
    sync.dms_sync()
    (dms_dir / USER_PATCHES_PATH).write_text("#!/bin/bash\necho mine\n")

    files = postfix_routing(SYSTEM).files
    assert USER_PATCHES_PATH not in files.diffs
    assert [note.partition(": ")[0] for note in files.not_written] == [USER_PATCHES_PATH]
    assert "left alone (not written): it holds 1 line(s) Dockspace did not write" in files.not_written[0]

    (dms_dir / "postfix-accounts.cf").write_text("someone@a.example|{PLAIN}x\n")  # mail's own file, not adopted
    refused = postfix_routing(SYSTEM).files
    assert refused.problem.startswith("the sync writes nothing yet: ") and "postfix-accounts.cf" in refused.problem
    assert not refused.is_up_to_date


def test_only_those_who_may_view_pools_see_the_routing():
    make_ip("192.0.2.10", pool=make_pool("bulk"))
    with pytest.raises(ValidationError, match="deliverability.view_ippool"):
        postfix_routing(staff_with("deliverability.view_sendingip"))
    viewer = staff_with("deliverability.view_ippool", email="viewer@example.com")
    assert [pool.name for pool in postfix_routing(viewer).pools] == ["bulk"]


def test_domain_names_are_shown_only_to_those_who_may_view_domains(dms_dir):
    tier = make_tier()
    make_domain("secret-client.example", tier=tier)
    pool = make_pool("bulk", tiers=[tier])
    make_ip("192.0.2.10", pool=pool, state=SendingIp.ACTIVE)
    viewer = staff_with("deliverability.view_ippool", email="viewer@example.com")

    routing = postfix_routing(viewer)

    bulk = pool_of(routing, "bulk")
    assert bulk.domains == () and bulk.notes[0].startswith("1 domain(s) send through this pool")
    assert all("secret-client" not in diff for diff in routing.files.diffs.values())
    # The positive control: with view_domain the name and the files' differences are there.
    viewer.user_permissions.add(Permission.objects.get(content_type__app_label="mail", codename="view_domain"))
    viewer = type(viewer).objects.get(pk=viewer.pk)
    routing = postfix_routing(viewer)
    assert [d.name for d in pool_of(routing, "bulk").domains] == ["secret-client.example"]
    assert any("secret-client.example" in diff for diff in routing.files.diffs.values())
