"""Tier limits: a tier no mailbox could meet is refused, quota refusals say what was wrong once,
and moving a domain onto a tier its mailboxes exceed names those mailboxes."""

import pytest

from dockspace.tests.admin_pages import errors as form_errors
from mail.models import Domain, Mailbox, Tier
from mail.tests.factories import database_fingerprint, make_domain, make_mailbox, make_tier, refused, run

pytestmark = pytest.mark.django_db

G = 1024**3
M = 1024**2


def tier_form(**values):
    data = {
        "name": "small",
        "description": "",
        "max_mailboxes": "",
        "max_aliases": "",
        "max_quota_per_mailbox": "",
        "total_quota": "",
        "default_quota": "",
        "daily_send_limit": "",
        "daily_domain_send_limit": "",
        "max_recipients_per_message": "",
    }
    return {**data, **values}


@pytest.mark.parametrize(
    "values, field, message",
    [
        (
            {"max_quota_per_mailbox": "1G", "default_quota": "2G"},
            "default_quota",
            "the default quota (2G) cannot be above the max quota per mailbox (1G).",
        ),
        (
            {"total_quota": "1G", "default_quota": "2G"},
            "default_quota",
            "the default quota (2G) cannot be above the total quota (1G).",
        ),
        (
            {"max_quota_per_mailbox": "2G", "total_quota": "1G"},
            "max_quota_per_mailbox",
            "the max quota per mailbox (2G) cannot be above the total quota (1G).",
        ),
        (
            {"max_quota_per_mailbox": "1G", "default_quota": "0"},
            "default_quota",
            "0 (no limit) is not allowed as the default on a tier that limits quotas; give a quota within them.",
        ),
        ({"total_quota": "0"}, "total_quota", "0 would allow no mail at all; leave it empty for no limit."),
    ],
)
def test_the_admin_refuses_a_tier_whose_limits_contradict_each_other(browser, values, field, message):
    before = database_fingerprint()

    response = browser.post("/admin/mail/tier/add/", tier_form(**values))

    assert form_errors(response)[field] == [message]
    assert database_fingerprint() == before


def test_the_admin_saves_a_tier_whose_limits_fit_together(browser):
    values = {"max_quota_per_mailbox": "1G", "total_quota": "10G", "default_quota": "1G", "max_mailboxes": "10"}

    response = browser.post("/admin/mail/tier/add/", tier_form(**values))

    assert response.status_code == 302
    tier = Tier.objects.get()
    assert (tier.max_quota_per_mailbox, tier.total_quota, tier.default_quota) == (G, 10 * G, G)


def test_the_tier_form_says_how_the_send_limits_are_counted(browser):
    page = browser.get("/admin/mail/tier/add/").content.decode()
    assert "Recipients each mailbox may send to per day (UTC)" in page
    assert "Recipients all the mailboxes of one domain may send to per day (UTC), together." in page
    assert "a message with more is refused whole" in page
    assert "NOT enforced" not in page


@pytest.mark.parametrize("field", ["daily_send_limit", "daily_domain_send_limit", "max_recipients_per_message"])
def test_a_send_limit_of_0_is_refused_naming_the_field(browser, field):
    response = browser.post("/admin/mail/tier/add/", tier_form(**{field: "0"}))

    assert form_errors(response)[field] == ["0 would allow no mail at all; leave it empty for no limit."]
    assert not Tier.objects.exists()


def test_a_quota_above_the_tier_limit_names_the_limit_and_what_was_given_once(browser):
    make_domain("example.com", tier=make_tier(max_quota_per_mailbox=G))
    mailbox = make_mailbox("ann@example.com", quota=512 * M)
    url = f"/admin/mail/mailbox/{mailbox.pk}/change/"

    response = browser.post(url, {"full_name": "", "quota": "2G", "new_password": ""})

    assert form_errors(response) == {
        "quota": ["tier standard allows at most 1G per mailbox (max quota per mailbox); 2G was given."]
    }
    within = browser.post(url, {"full_name": "", "quota": "1G", "new_password": ""})
    assert within.status_code == 302
    assert Mailbox.objects.get().quota == G


def test_only_a_quota_of_0_is_told_that_no_limit_is_not_allowed():
    make_domain("example.com", tier=make_tier(max_quota_per_mailbox=G))
    make_mailbox("ann@example.com", quota=G)

    zero = refused("mailbox", "update", "ann@example.com", "--quota", "0")
    assert zero == (
        "--quota: tier standard allows at most 1G per mailbox (max quota per mailbox), so 0 (no limit) is not allowed."
    )
    too_big = refused("mailbox", "update", "ann@example.com", "--quota", "3G")
    assert "0 (no limit)" not in too_big
    assert too_big.count("(max quota per mailbox)") == 1


def test_a_tier_with_a_total_refuses_a_mailbox_without_a_quota_once():
    make_domain("example.com", tier=make_tier(total_quota=2 * G))
    message = refused("mailbox", "add", "ann@example.com", "--quota", "0")
    assert (
        message
        == "--quota: tier standard allows 2G in total on example.com (total quota), so 0 (no limit) is not allowed."
    )
    run("mailbox", "add", "ann@example.com", "--quota", "1G")
    assert Mailbox.objects.get().quota == G


def test_moving_a_domain_onto_a_tier_its_mailboxes_exceed_names_the_first_20_and_counts_the_rest():
    make_domain("example.com")
    for i in range(25):
        make_mailbox(f"user{i:02}@example.com", quota=2 * G)
    make_mailbox("fits@example.com", quota=G)
    make_tier(name="small", max_quota_per_mailbox=G)

    message = refused("domain", "update", "example.com", "--tier", "small")

    listed = ", ".join(f"user{i:02}@example.com (2G)" for i in range(20))
    assert message == (
        "--tier: tier small allows at most 1G per mailbox (max quota per mailbox); 25 mailbox(es) of example.com "
        f"have more: {listed} and 5 more. Lower their quotas first."
    )
    assert "fits@example.com" not in message
    assert Domain.objects.get().tier is None


def test_moving_a_domain_onto_a_tier_names_every_limit_its_mailboxes_break(browser):
    domain = make_domain("example.com")
    make_mailbox("ann@example.com", quota=0)
    make_mailbox("bob@example.com", quota=3 * G)
    tier = make_tier(name="tiny", max_mailboxes=1, total_quota=2 * G)
    data = {
        "is_active": "on",
        "tier": str(tier.pk),
        "default_quota": "",
        "dkim_selector": "mail",
        "dkim_algorithm": "rsa",
        "dkim_bits": "2048",
    }

    response = browser.post(f"/admin/mail/domain/{domain.pk}/change/", data)

    assert form_errors(response)["tier"] == [
        "tier tiny allows at most 1 mailboxes (max mailboxes); example.com has 2.",
        "tier tiny caps the total quota (total quota), so every mailbox needs a quota; 1 mailbox(es) of "
        "example.com have none: ann@example.com.",
        "tier tiny allows 2G in total (total quota); the 2 mailbox(es) of example.com have 3G, the largest: "
        "bob@example.com (3G), ann@example.com (0).",
    ]
    assert Domain.objects.get().tier is None


def test_moving_a_domain_onto_a_tier_its_mailboxes_fit_works():
    make_domain("example.com")
    make_mailbox("ann@example.com", quota=G)
    make_tier(name="roomy", max_quota_per_mailbox=2 * G, total_quota=4 * G, max_mailboxes=3)

    run("domain", "update", "example.com", "--tier", "roomy")

    assert Domain.objects.get().tier.name == "roomy"
