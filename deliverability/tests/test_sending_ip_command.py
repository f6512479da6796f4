"""manage.py sending_ip and manage.py ip_pool: text and --json output (ip_pool routing: what Postfix will do), refusals
naming the option and the rule with a non-zero exit and nothing changed, --as acting with a staff member's
permissions."""

import io
import json

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from deliverability.models import IpPool, IpStateChange, SendingIp
from deliverability.tests.factories import make_ip, make_pool, move
from mail.dms import sync
from mail.models import Domain
from mail.tests.factories import make_domain, make_mailbox, make_tier, use_temp_dms_dir

pytestmark = pytest.mark.django_db


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def fingerprint():
    return (
        list(SendingIp.objects.values_list()),
        list(IpPool.objects.values_list()),
        list(IpPool.domains.through.objects.values_list()),
        list(IpStateChange.objects.values_list()),
        AuditEvent.objects.count(),
    )


def refused(*args):
    """Run a command that must fail: its message, after checking it exits non-zero and nothing changed."""
    before = fingerprint()
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert caught.value.returncode == 1  # manage.py exits with it
    assert fingerprint() == before
    return str(caught.value)


def test_add_list_and_show_in_text_and_json():
    make_pool("bulk")
    out = run("sending_ip", "add", "2001:DB8::0010", "--helo", "Out1.Example.com", "--pool", "bulk", "--weight", "5")
    assert out.strip() == "Added 2001:db8::10 (out1.example.com) in pool bulk, weight 5, WARMING."
    run("sending_ip", "add", "192.0.2.1", "--helo", "out2.example.com", "--state", "active")
    listing = run("sending_ip", "list").splitlines()
    assert listing[0].split() == ["192.0.2.1", "ACTIVE", "-", "weight", "1", "out2.example.com"]
    assert listing[1].split()[:3] == ["2001:db8::10", "WARMING", "bulk"]
    rows = json.loads(run("sending_ip", "list", "--json"))
    assert [(r["address"], r["state"], r["pool"], r["weight"]) for r in rows] == [
        ("192.0.2.1", "ACTIVE", None, 1),
        ("2001:db8::10", "WARMING", "bulk", 5),
    ]
    assert json.loads(run("sending_ip", "list", "--json", "--state", "warming"))[0]["address"] == "2001:db8::10"
    shown = json.loads(run("sending_ip", "show", "2001:db8:0::10", "--json"))
    assert shown["helo_name"] == "out1.example.com" and shown["in_rotation"] is True
    assert [(h["from"], h["to"], h["by"]) for h in shown["history"]] == [(None, "WARMING", "manage.py sending_ip")]
    text = run("sending_ip", "show", "192.0.2.1")
    assert "state         ACTIVE" in text and "new -> ACTIVE  added; already sends  (manage.py sending_ip)" in text


def test_set_state_moves_along_the_lifecycle_and_refuses_other_moves():
    make_ip("192.0.2.1", state="ACTIVE")
    assert run("sending_ip", "set-state", "192.0.2.1", "retiring", "--reason", "rotate").strip() == (
        "192.0.2.1: ACTIVE -> RETIRING."
    )
    message = refused("sending_ip", "set-state", "192.0.2.1", "ACTIVE", "--reason", "back")
    assert message == (
        "STATE: 192.0.2.1: an IP cannot move from RETIRING to ACTIVE; from RETIRING it may move to RESTING only "
        "(ACTIVE -> RETIRING -> RESTING -> WARMING -> ACTIVE; ACTIVE or WARMING -> RESTING for standby)."
    )
    assert refused("sending_ip", "set-state", "192.0.2.1", "RESTING", "--reason", "  ").startswith(
        "--reason: a reason is required"
    )
    assert "--reason" in refused("sending_ip", "set-state", "192.0.2.1", "RESTING")  # argparse: required


@pytest.mark.parametrize(
    "args, message",
    [
        (["add", "192.0.2", "--helo", "o.example.com"], "ADDRESS: '192.0.2' is not an IPv4 or IPv6 address"),
        (
            ["add", "192.0.2.9", "--helo", "o.example.com", "--weight", "0"],
            "--weight: the weight must be from 1 to 100",
        ),
        (["add", "192.0.2.9", "--helo", "localhost"], "--helo: 'localhost' is not a fully qualified host name"),
        (
            ["add", "192.0.2.9", "--helo", "o.example.com", "--state", "RETIRING"],
            "--state: a new IP starts WARMING, or ACTIVE when it already sends today; 'RETIRING' is reached later by "
            "changing its state.",
        ),
        (
            ["add", "192.0.2.9", "--helo", "o.example.com", "--state", "bogus"],
            "--state: 'BOGUS' is not a state; a new IP starts WARMING or ACTIVE.",
        ),
        (["add", "192.0.2.9", "--helo", "o.example.com", "--pool", "nope"], "--pool: 'nope' is not an IP pool"),
        (["show", "192.0.2.77"], "ADDRESS: 192.0.2.77 is not a sending IP"),
        (["remove", "192.0.2.1"], "ADDRESS: 192.0.2.1 is ACTIVE and sends mail: retire it first"),
        (["update", "192.0.2.1"], "nothing to change"),
        (["list", "--state", "paused"], "--state: 'paused' is not a state"),
    ],
)
def test_bad_input_names_the_option_and_the_rule(args, message):
    make_ip("192.0.2.1", state="ACTIVE")
    assert refused("sending_ip", *args).startswith(message)


def test_as_a_staff_member_without_the_permission_is_refused():
    make_ip("192.0.2.1", state="ACTIVE")
    viewer = UserFactory(email="viewer@example.com", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__in=["view_sendingip", "view_ippool"]))
    as_viewer = ["--as", "viewer@example.com"]
    assert "you do not have the permission 'deliverability.change_sendingip'" in refused(
        "sending_ip", "set-state", "192.0.2.1", "RESTING", "--reason", "standby", *as_viewer
    )
    assert "deliverability.add_ippool" in refused("ip_pool", "add", "bulk", *as_viewer)
    viewer.user_permissions.add(Permission.objects.get(codename="change_sendingip"))
    run("sending_ip", "set-state", "192.0.2.1", "RESTING", "--reason", "standby", *as_viewer)
    assert IpStateChange.objects.first().actor_label == "manage.py sending_ip --as viewer@example.com"


def test_list_and_show_as_staff_without_the_view_permission_print_nothing():
    pool = make_pool("bulk", domains=[make_domain("example.com")])
    make_ip("192.0.2.1", state="ACTIVE", pool=pool)
    person = UserFactory(email="ops@example.com", is_staff=True)
    as_ops = ["--as", "ops@example.com"]
    for args, perm in [
        (["sending_ip", "list"], "view_sendingip"),
        (["sending_ip", "list", "--json"], "view_sendingip"),
        (["sending_ip", "show", "192.0.2.1"], "view_sendingip"),
        (["sending_ip", "show", "192.0.2.99"], "view_sendingip"),  # an unknown address: the same refusal
        (["ip_pool", "list"], "view_ippool"),
        (["ip_pool", "show", "bulk"], "view_ippool"),
        (["ip_pool", "show", "nope"], "view_ippool"),
    ]:
        out = io.StringIO()
        with pytest.raises(CommandError) as caught:
            call_command(*args, *as_ops, stdout=out, stderr=io.StringIO())
        assert str(caught.value) == f"you do not have the permission 'deliverability.{perm}'."
        assert out.getvalue() == ""
    # The positive control: with the view permissions, the same commands print.
    person.user_permissions.set(Permission.objects.filter(codename__in=["view_sendingip", "view_ippool"]))
    assert "192.0.2.1" in run("sending_ip", "list", *as_ops)
    assert "192.0.2.1" in run("sending_ip", "show", "192.0.2.1", *as_ops)
    assert "example.com" in run("ip_pool", "list", *as_ops)
    assert "example.com" in run("ip_pool", "show", "bulk", *as_ops)


def test_pools_add_show_update_and_remove():
    make_domain("example.com")
    make_domain("example.org")
    out = run("ip_pool", "add", "bulk", "--domain", "example.com", "--rotation", "on")
    assert out.startswith("Added pool bulk.")
    make_ip("192.0.2.1", pool=IpPool.objects.get(), state="ACTIVE", weight=3)
    make_ip("192.0.2.2", pool=IpPool.objects.get())
    data = json.loads(run("ip_pool", "show", "bulk", "--json"))
    assert data["domains"] == ["example.com"] and data["rotation_enabled"] is True
    assert data["in_rotation"] == [
        {"address": "192.0.2.1", "helo_name": "out-192-0-2-1.example.com", "weight": 3, "state": "ACTIVE"},
        {"address": "192.0.2.2", "helo_name": "out-192-0-2-2.example.com", "weight": 1, "state": "WARMING"},
    ]
    assert data["ips"] == [
        {"address": "192.0.2.1", "helo_name": "out-192-0-2-1.example.com", "state": "ACTIVE", "weight": 3},
        {"address": "192.0.2.2", "helo_name": "out-192-0-2-2.example.com", "state": "WARMING", "weight": 1},
    ]
    assert json.loads(run("ip_pool", "list", "--json"))[0]["name"] == "bulk"
    assert "in rotation: 192.0.2.1 (3), 192.0.2.2 (1); for example.com" in run("ip_pool", "list")
    run(
        "ip_pool",
        "update",
        "bulk",
        "--add-domain",
        "example.org",
        "--remove-domain",
        "example.com",
        "--rotation",
        "off",
    )
    pool = IpPool.objects.get()
    assert [d.name for d in pool.domains.all()] == ["example.org"] and not pool.rotation_enabled
    assert refused("ip_pool", "remove", "bulk") == (
        "NAME: pool bulk still has 2 IP(s) (192.0.2.1, 192.0.2.2); move or remove them first."
    )
    SendingIp.objects.update(pool=None)
    assert run("ip_pool", "remove", "bulk").startswith("Removed pool bulk")


def test_a_pool_update_that_changes_nothing_says_so():
    make_domain("example.net")
    make_tier(name="gold")
    make_pool("bulk")
    assert run("ip_pool", "update", "bulk", "--add-domain", "example.net").strip() == "Updated pool bulk."
    audited = AuditEvent.objects.count()

    again = run("ip_pool", "update", "bulk", "--add-domain", "Example.NET")
    assert again.strip() == "Nothing changed: pool bulk already sends for example.net."
    assert AuditEvent.objects.count() == audited  # and nothing was recorded as changed
    several = run("ip_pool", "update", "bulk", "--rename", "Bulk", "--rotation", "off", "--remove-tier", "gold")
    assert several.strip() == (
        "Nothing changed: pool bulk already is named bulk, has monthly rotation off, does not have tier gold."
    )
    # The positive control: one real change among them is an update.
    assert run("ip_pool", "update", "bulk", "--add-domain", "example.net", "--rotation", "on").strip() == (
        "Updated pool bulk."
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["add", "other", "--domain", "example.com"], "--domain: example.com already sends through pool bulk"),
        (["add", "other", "--domain", "nope.example"], "--domain: nope.example is not a domain Dockspace manages"),
        (["add", "Bad Name"], "NAME: 'bad name' is not a pool name"),
        (["add", "other", "--rotation", "maybe"], "--rotation: give on or off"),
        (["add", "bulk"], "NAME: a pool named bulk already exists"),
        (["show", "nope"], "NAME: 'nope' is not an IP pool"),
        (["update", "spare", "--add-domain", "example.com"], "--add-domain: example.com already sends through pool"),
        (["update", "spare", "--add-tier", "gold"], "--add-tier: 'gold' is not a tier"),
        (["update", "spare"], "nothing to change"),
    ],
)
def test_pool_refusals_name_the_option_and_the_rule(args, message):
    make_pool("bulk", domains=[make_domain("example.com")])
    make_pool("spare")
    assert refused("ip_pool", *args).startswith(message)


def test_help_texts_say_what_each_action_does(capsys):
    for command, phrase in (("sending_ip", "only these moves exist"), ("ip_pool", "a domain (and a tier)")):
        with pytest.raises(SystemExit):
            call_command(command, "--help")
        assert phrase in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    "args",
    [
        ["sending_ip", "set-state", "{ip}", "RESTING", "--reason", "x"],
        ["sending_ip", "update", "{ip}", "--weight", "3"],
        ["sending_ip", "remove", "{ip}"],
        ["sending_ip", "add", "192.0.2.99", "--helo", "out.example.com", "--pool", "{pool}"],
        ["ip_pool", "update", "{pool}", "--description", "x"],
        ["ip_pool", "remove", "{pool}"],
        ["dnsbl_list", "update", "{list}", "--disable"],
        ["dnsbl_list", "remove", "{list}"],
    ],
)
def test_a_refusal_tells_someone_without_the_permission_nothing_about_what_exists(args):
    from deliverability.tests.dnsbl_lists import make_list

    make_ip("192.0.2.10", state=SendingIp.ACTIVE)
    make_pool("bulk")
    make_list("bl.test", name="Real list")
    UserFactory(email="nobody@example.com", is_staff=True)
    answers = []
    for names in (
        {"ip": "192.0.2.10", "pool": "bulk", "list": "Real list"},
        {"ip": "192.0.2.11", "pool": "nope", "list": "No list"},
    ):
        answers.append(refused(*[a.format(**names) for a in args], "--as", "nobody@example.com"))
    assert answers[0] == answers[1] and "you do not have the permission" in answers[0]


def test_naming_a_pools_domains_needs_the_permission_to_view_domains_asked_before_any_domain_is_looked_up():
    make_pool("bulk")
    make_domain("secret-customer.com")
    person = UserFactory(email="ops@example.com", is_staff=True)
    person.user_permissions.set(Permission.objects.filter(codename__in=["view_ippool", "change_ippool"]))
    answers = [
        refused("ip_pool", "update", "bulk", "--add-domain", name, "--as", "ops@example.com")
        for name in ("secret-customer.com", "nope.example")
    ]
    assert answers[0] == answers[1] == "--add-domain: you do not have the permission 'mail.view_domain'."
    # The positive control: with view_domain the domain is added (and an unknown one named as such).
    person.user_permissions.add(Permission.objects.get(content_type__app_label="mail", codename="view_domain"))
    run("ip_pool", "update", "bulk", "--add-domain", "secret-customer.com", "--as", "ops@example.com")
    assert list(IpPool.objects.get(name="bulk").domains.values_list("name", flat=True)) == ["secret-customer.com"]


def test_routing_shows_what_postfix_will_do_in_text_and_json(settings, tmp_path):
    use_temp_dms_dir(settings, tmp_path)
    make_mailbox("me@a.example")
    tier = make_tier(name="standard")
    make_domain("tiered.example", tier=tier)
    pool = make_pool("bulk", domains=[Domain.objects.get(name="a.example")], tiers=[tier])
    make_ip("192.0.2.1", helo_name="out1.example.com", pool=pool, state="ACTIVE", weight=3)
    make_ip("192.0.2.2", helo_name="out2.example.com", pool=pool, weight=1)
    move(make_ip("192.0.2.3", pool=pool), "RESTING", reason="listed on Spamhaus SBL")
    make_pool("empty", domains=[make_domain("c.example")])
    make_domain("unpooled.example")

    text = run("ip_pool", "routing").splitlines()

    assert text[0] == "Pool bulk: sends for a.example, tiered.example (tier standard)"
    assert text[1].split() == [
        "192.0.2.1",
        "out-192-0-2-1",
        "HELO",
        "out1.example.com",
        "ACTIVE",
        "weight",
        "3",
        "75.0",
        "%",
    ]
    assert text[2].split()[:2] == ["192.0.2.2", "out-192-0-2-2"] and text[2].endswith("weight 1  25.0 %")
    assert text[3].startswith("  not in rotation: 192.0.2.3 RESTING since ")
    assert text[3].endswith(": resting (cool-down, standby or quarantine): listed on Spamhaus SBL")
    assert text[4].startswith("  note: WARMING IPs take their weight's share")  # 192.0.2.2 is WARMING
    del text[4]
    assert text[4:7] == [
        "Pool empty: sends for no domain",
        "  no IP in rotation: the pool's domains keep the default transport",
        "  default transport: c.example: pool empty has no IP in rotation: it keeps the default transport",
    ]
    assert text[7] == "1 other active domain(s) in no pool: the default transport."
    assert text[8] == "Files: the next sync changes postfix-main.cf, postfix-sender-pools.cf, user-patches.sh:"
    assert "+@a.example bulk" in text

    data = json.loads(run("ip_pool", "routing", "--json"))
    bulk = data["pools"][0]
    assert [(ip["address"], ip["transport"], ip["weight"], ip["share_percent"]) for ip in bulk["in_rotation"]] == [
        ("192.0.2.1", "out-192-0-2-1", 3, 75.0),
        ("192.0.2.2", "out-192-0-2-2", 1, 25.0),
    ]
    assert [(ip["address"], ip["state"]) for ip in bulk["not_in_rotation"]] == [("192.0.2.3", "RESTING")]
    assert bulk["domains"][1] == {"name": "tiered.example", "via_tier": "standard", "routed": True, "reason": None}
    assert data["pools"][1]["domains"][0]["routed"] is False
    assert (
        data["files"]["up_to_date"] is False and "+@a.example bulk" in data["files"]["diffs"]["postfix-sender-pools.cf"]
    )

    sync.dms_sync()
    assert json.loads(run("ip_pool", "routing", "--json"))["files"]["up_to_date"] is True
    assert "on disk are what the next sync writes." in run("ip_pool", "routing")


def test_routing_as_staff_without_the_view_permission_prints_nothing(settings, tmp_path):
    use_temp_dms_dir(settings, tmp_path)
    make_ip("192.0.2.1", pool=make_pool("bulk"))
    person = UserFactory(email="ops@example.com", is_staff=True)
    person.user_permissions.set(Permission.objects.filter(codename="view_sendingip"))
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("ip_pool", "routing", "--as", "ops@example.com", stdout=out, stderr=io.StringIO())
    assert str(caught.value) == "you do not have the permission 'deliverability.view_ippool'." and out.getvalue() == ""
    person.user_permissions.add(Permission.objects.get(codename="view_ippool"))
    assert run("ip_pool", "routing", "--as", "ops@example.com").startswith("Pool bulk: sends for no domain")
