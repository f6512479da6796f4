"""manage.py domain: add, list, show, update and remove, and the bad input each must refuse cleanly."""

import json

import pytest

from accounts.models import AuditEvent
from mail.models import Domain
from mail.tests.factories import make_domain, make_mailbox, make_tier, refused, run

pytestmark = pytest.mark.django_db
G = 1024**3


def test_add_stores_the_name_in_lower_case_and_writes_an_audit_event():
    out = run("domain", "add", "Example.COM")
    assert "Added example.com." in out
    assert list(Domain.objects.values_list("name", flat=True)) == ["example.com"]
    event = AuditEvent.objects.get(action="mail.domain.add")
    assert event.actor_label == "manage.py domain"
    assert event.target_label == "example.com"


def test_add_stores_an_international_name_as_punycode():
    run("domain", "add", "bücher.de")
    domain = Domain.objects.get()
    assert domain.name == "xn--bcher-kva.de"
    assert domain.unicode_name == "bücher.de"


def test_add_stores_an_international_name_the_way_registries_spell_it():
    run("domain", "add", "straße.de")
    assert Domain.objects.get().name == "xn--strae-oqa.de"


def test_add_takes_a_tier_and_a_default_quota():
    make_tier(name="small")
    run("domain", "add", "example.com", "--tier", "small", "--default-quota", "5G")
    domain = Domain.objects.get()
    assert domain.tier.name == "small"
    assert domain.default_quota == 5 * G


def test_add_inactive_keeps_the_domain_switched_off():
    run("domain", "add", "example.com", "--inactive")
    assert Domain.objects.get().is_active is False


def test_add_refuses_a_domain_already_managed_even_in_another_case():
    make_domain("example.com")
    message = refused("domain", "add", "EXAMPLE.com")
    assert "name: example.com is already a managed domain." in message


@pytest.mark.parametrize(
    "name, rule",
    [
        ("exa mple.com", "spaces, line breaks and control characters are not allowed"),
        (" example.com", "spaces are not allowed"),
        ("exam|ple.com", "a '|' is not allowed in a domain name"),
        ("exam:ple.com", "a ':' is not allowed in a domain name"),
        ("exam,ple.com", "a ',' is not allowed in a domain name"),
        ("example.com\nevil.org", "spaces, line breaks and control characters are not allowed"),
        ("exam\x07ple.com", "control characters are not allowed"),
        ("localhost", "not a valid domain name"),
        ("bad-.com", "not a valid domain name"),
        ("under_score.com", "not a valid domain name"),
        ("example.123", "the last label cannot be a number"),
    ],
)
def test_add_refuses_a_bad_name_naming_the_rule_and_changes_nothing(name, rule):
    message = refused("domain", "add", name)
    assert message.startswith("name: ")
    assert rule in message


def test_add_of_a_name_with_a_pipe_says_the_rule_is_about_a_domain_name_not_an_address():
    assert refused("domain", "add", "a|b") == "name: a '|' is not allowed in a domain name."


@pytest.mark.parametrize("action", [["show"], ["update", "--active"], ["remove"]])
def test_finding_a_domain_by_a_bad_name_names_the_argument_and_the_domain_rule(action):
    make_domain("example.com")
    verb, *options = action
    assert refused("domain", verb, "exam|ple.com", *options) == "NAME: a '|' is not allowed in a domain name."


def test_add_refuses_an_unknown_tier_and_lists_the_existing_ones():
    make_tier(name="small")
    message = refused("domain", "add", "example.com", "--tier", "huge")
    assert message == "--tier: no tier named 'huge' (tiers: small)."


@pytest.mark.parametrize("quota", ["10 GB", "-1", "10K", "1.5G"])
def test_add_refuses_a_bad_default_quota(quota):
    message = refused("domain", "add", "example.com", "--default-quota", quota)
    assert message.startswith(f"--default-quota: '{quota}' is not a quota")


def test_list_json_has_one_object_per_domain_with_its_fields():
    make_tier(name="small")
    make_domain("example.com", tier=make_tier(name="big"), default_quota=2 * G)
    make_domain("bücher.de")
    make_mailbox("bob@example.com")
    rows = json.loads(run("domain", "list", "--json"))
    assert [r["name"] for r in rows] == ["example.com", "xn--bcher-kva.de"]
    assert rows[0] == {
        "name": "example.com",
        "unicode_name": "example.com",
        "active": True,
        "tier": "big",
        "default_quota": "2G",
        "mailboxes": 1,
        "aliases": 0,
        "dkim_selectors": [],
    }
    assert rows[1]["unicode_name"] == "bücher.de"
    assert rows[1]["default_quota"] is None


def test_list_without_json_prints_one_line_per_domain():
    make_domain("example.com")
    make_domain("example.org", is_active=False)
    lines = run("domain", "list").splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("example.com ")
    assert lines[1].startswith("example.org ") and lines[1].endswith("(inactive)")


def test_show_json_describes_one_domain_found_in_any_case():
    make_domain("example.com")
    data = json.loads(run("domain", "show", "Example.Com", "--json"))
    assert data["name"] == "example.com"
    assert data["mailboxes"] == 0


def test_show_refuses_an_unmanaged_domain():
    assert refused("domain", "show", "nowhere.org") == "NAME: no managed domain 'nowhere.org'."


def test_update_sets_and_clears_the_tier_and_the_default_quota():
    make_domain("example.com")
    make_tier(name="small")
    run("domain", "update", "example.com", "--tier", "small", "--default-quota", "10k")
    domain = Domain.objects.get()
    assert (domain.tier.name, domain.default_quota) == ("small", 10 * 1024)
    assert AuditEvent.objects.filter(action="mail.domain.change").count() == 1
    run("domain", "update", "example.com", "--no-tier", "--no-default-quota", "--inactive")
    domain.refresh_from_db()
    assert (domain.tier, domain.default_quota, domain.is_active) == (None, None, False)


def test_update_refuses_a_tier_the_existing_mailboxes_break():
    make_domain("example.com")
    make_mailbox("bob@example.com", quota=5 * G)
    make_tier(name="small", max_quota_per_mailbox=1 * G)
    message = refused("domain", "update", "example.com", "--tier", "small")
    assert message == (
        "--tier: tier small allows at most 1G per mailbox (max quota per mailbox); 1 mailbox(es) of example.com "
        "have more: bob@example.com (5G). Lower their quotas first."
    )


def test_add_names_the_default_quota_option_when_the_tier_refuses_it():
    make_tier(name="small", max_quota_per_mailbox=1 * G)
    message = refused("domain", "add", "example.com", "--tier", "small", "--default-quota", "5G")
    assert message.startswith("--default-quota: tier small allows at most 1G per mailbox")


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "nothing to change"),
        (["--tier", "small", "--no-tier"], "--tier and --no-tier cannot be used together."),
        (["--default-quota", "10K"], "--default-quota: '10K' is not a quota"),
        (["--tier", "missing"], "--tier: no tier named 'missing'"),
    ],
)
def test_update_refuses_bad_options_and_changes_nothing(args, message):
    make_domain("example.com")
    make_tier(name="small")
    assert message in refused("domain", "update", "example.com", *args)


@pytest.mark.parametrize("verb", ["add", "update"])
def test_an_empty_tier_is_refused_not_ignored(verb):
    if verb == "update":
        make_domain("example.com", tier=make_tier(name="small"))
    message = refused("domain", verb, "example.com", "--tier", "")
    instead = "--no-tier takes the domain off its tier" if verb == "update" else "leave --tier out for no tier"
    assert message == f"--tier: a tier name cannot be empty; {instead}."
    if verb == "update":
        run("domain", "update", "example.com", "--no-tier")  # positive control
        assert Domain.objects.get().tier is None


def test_remove_deletes_an_empty_domain():
    make_domain("example.com")
    assert "Removed example.com." in run("domain", "remove", "example.com")
    assert not Domain.objects.exists()
    assert AuditEvent.objects.filter(action="mail.domain.remove", target_label="example.com").exists()


def test_remove_is_refused_while_mailboxes_exist():
    make_mailbox("bob@example.com")
    message = refused("domain", "remove", "example.com")
    assert message == "name: example.com still has 1 mailboxes; remove them first."
