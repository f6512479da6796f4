"""Today's sending against the tiers' limits where people and operators look: `manage.py send_limits show` and
`reset` (which lifts a block the policy service then honours), the admin's "Send limits today" page with its reset,
the mailbox's admin page and the person's profile; each refused to whoever may not see or change it."""

import datetime as dt
import json

import pytest
import time_machine

from accounts.models import AuditEvent
from deliverability.tests.factories import signed_in, staff_with
from deliverability.tests.policy_client import PostfixClient, policy_server
from mail.models import Mailbox
from mail.tests.factories import make_domain, make_mailbox, make_tier, refused, run

pytestmark = pytest.mark.django_db

NOON = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
PAGE = "/admin/deliverability/send-limits/"


@pytest.fixture
def bob_at_limit(policy_counters):
    make_domain("example.com", tier=make_tier(name="small", daily_send_limit=3, daily_domain_send_limit=10))
    make_mailbox("bob@example.com")
    make_mailbox("ann@example.com")
    with time_machine.travel(NOON, tick=False), policy_server(policy_counters) as server:
        postfix = PostfixClient(server.port)
        postfix.send("bob@example.com", ["a@gmail.com", "b@gmail.com", "c@gmail.com"])
        postfix.send("ann@example.com", ["d@gmail.com"])
        postfix.close()
    return policy_counters


@time_machine.travel(NOON, tick=False)
def test_show_tells_a_mailboxs_count_its_limit_and_its_domains_total(bob_at_limit):
    assert run("send_limits", "show", "bob@example.com").splitlines() == [
        "bob@example.com: sent to 3 of 3 recipients allowed today (FULL: refused (452) until the reset); tier small; "
        "resets at 2026-12-08 00:00 UTC",
        "example.com (all its mailboxes): sent to 4 of 10 recipients allowed today (6 left); tier small; resets at "
        "2026-12-08 00:00 UTC",
    ]
    data = json.loads(run("send_limits", "show", "example.com", "--json"))
    assert data == [
        {
            "subject": "example.com",
            "kind": "domain",
            "tier": "small",
            "sent_today": 4,
            "limit": 10,
            "remaining": 6,
            "is_full": False,
            "resets_at": "2026-12-08T00:00:00+00:00",
        }
    ]


@time_machine.travel(NOON, tick=False)
def test_reset_lifts_the_block_and_the_policy_service_lets_mail_through_again(bob_at_limit):
    with policy_server(bob_at_limit) as server:
        postfix = PostfixClient(server.port)
        blocked, _, _ = postfix.send("bob@example.com", ["e@gmail.com"])

        out = run("send_limits", "reset", "bob@example.com")
        after = postfix.send("bob@example.com", ["e@gmail.com"])
        postfix.close()

    assert blocked[0].startswith("452 4.5.3 bob@example.com sent to 3 of 3")
    assert out == "Reset today's count of bob@example.com: was 3, now 0.\n"
    assert after == (["DUNNO"], "DUNNO", "DUNNO")
    event = AuditEvent.objects.get(action="deliverability.send_limits.reset")
    assert event.actor_label == "manage.py send_limits"
    assert event.description == "today's send count of bob@example.com reset from 3 (limit 3) to 0"


@time_machine.travel(NOON, tick=False)
def test_staff_who_may_only_view_mailboxes_cannot_reset(bob_at_limit):
    staff_with("mail.view_mailbox", email="viewer@example.com")

    message = refused("send_limits", "reset", "bob@example.com", "--as", "viewer@example.com")

    assert message == "ADDRESS|DOMAIN: you do not have the permission 'mail.change_mailbox'."
    assert "3 of 3" in run("send_limits", "show", "bob@example.com")


@pytest.mark.parametrize(
    "subject, message",
    [
        ("nobody@example.com", "ADDRESS|DOMAIN: nobody@example.com is not a mailbox Dockspace manages."),
        ("elsewhere.example", "ADDRESS|DOMAIN: elsewhere.example is not a domain Dockspace manages."),
        ("", "ADDRESS|DOMAIN: give a mailbox address (bob@example.com) or a domain (example.com)."),
        ("not a domain", "ADDRESS|DOMAIN: 'not a domain' is neither a mailbox address nor a domain name."),
        ("a\x00@example.com", "ADDRESS|DOMAIN: 'a\\x00@example.com' is neither a mailbox address nor a domain name."),
    ],
)
def test_an_unknown_subject_is_refused_naming_what_was_given(bob_at_limit, subject, message):
    assert refused("send_limits", "show", subject) == message
    assert refused("send_limits", "reset", subject) == message


@time_machine.travel(NOON, tick=False)
def test_the_admin_page_lists_the_full_mailbox_first_and_resets_it(bob_at_limit):
    operator = signed_in(staff_with("mail.view_mailbox", "mail.change_mailbox"))

    page = operator.get(PAGE).content.decode()
    busiest = page[page.index('id="send-limits-busiest"') :]
    assert busiest.index("bob@example.com") < busiest.index("ann@example.com")
    assert "full: mail is refused until 00:00 UTC" in busiest

    response = operator.post(PAGE, {"subject": "bob@example.com"})
    assert response.status_code == 302
    assert "sent to 0 of 3" in run("send_limits", "show", "bob@example.com")
    shown = operator.get(response["Location"]).content.decode()
    assert "Today&#x27;s count of bob@example.com was 3; it is now 0." in shown


@time_machine.travel(NOON, tick=False)
def test_a_viewer_sees_no_reset_button_and_a_forged_reset_changes_nothing(bob_at_limit):
    viewer = signed_in(staff_with("mail.view_mailbox"))

    page = viewer.get(PAGE, {"subject": "bob@example.com"}).content.decode()
    forged = viewer.post(PAGE, {"subject": "bob@example.com"}).content.decode()

    assert 'id="send-limits-found"' in page and 'id="send-limits-reset"' not in page
    assert "you do not have the permission &#x27;mail.change_mailbox&#x27;." in forged
    assert "3 of 3" in run("send_limits", "show", "bob@example.com")


def test_staff_who_may_not_view_mailboxes_get_no_page(bob_at_limit):
    assert signed_in(staff_with("mail.view_domain")).get(PAGE).status_code == 403


@time_machine.travel(NOON, tick=False)
def test_the_mailbox_admin_page_shows_its_sending_today(bob_at_limit):
    operator = signed_in(staff_with("mail.view_mailbox", "mail.change_mailbox"))
    mailbox = Mailbox.objects.get(address="bob@example.com")

    page = operator.get(f"/admin/mail/mailbox/{mailbox.pk}/change/").content.decode()

    panel = page[page.index('id="send-limits"') :]
    assert "Sending today (UTC)" in panel
    assert "3 of 3" in panel and "full: mail is refused until 00:00 UTC" in panel


@time_machine.travel(NOON, tick=False)
def test_a_person_sees_their_own_sending_today_on_their_profile(bob_at_limit):
    ann = Mailbox.objects.get(address="ann@example.com").person

    page = signed_in(ann).get("/profile/").content.decode()

    panel = page[page.index('id="send-usage"') :]
    assert "ann@example.com" in panel and "1 of 3" in panel and "2 left" in panel
    assert "example.com" in panel and "5 of 10" not in panel and "4 of 10" in panel
    assert "bob@example.com" not in panel


def test_a_control_character_in_the_admin_pages_subject_is_a_message_not_an_error_page(bob_at_limit):
    operator = signed_in(staff_with("mail.view_mailbox", "mail.change_mailbox"))

    shown = operator.get(PAGE, {"subject": "a\x00@example.com"})
    reset = operator.post(PAGE, {"subject": "a\x00@example.com"})

    assert shown.status_code == reset.status_code == 200
    assert "is neither a mailbox address nor a domain name." in reset.content.decode()
