"""The policy service enforces a tier's send limits on mail our people submit, as Postfix sees it: a 452 that names
the limit once the day's recipients are spent (per mailbox and per domain), reset at 00:00 UTC; a 550 for a message
with more recipients than the tier allows; a 554 for a suspended or disabled sender; and nothing for mail from
outside. Spoken to over the policy protocol, as Postfix's smtpd speaks it."""

import datetime as dt

import pytest
import time_machine

from deliverability.tests.policy_client import PostfixClient, policy_server
from mail.models import Mailbox
from mail.tests.factories import make_domain, make_mailbox, make_tier

pytestmark = pytest.mark.django_db

NOON = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def limited():
    tier = make_tier(name="small", daily_send_limit=3, daily_domain_send_limit=5, max_recipients_per_message=2)
    make_domain("example.com", tier=tier)
    make_mailbox("bob@example.com")
    make_mailbox("ann@example.com")


@pytest.fixture
def client_of():
    opened = []

    def connect(server):
        client = PostfixClient(server.port)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


@time_machine.travel(NOON, tick=False)
def test_a_message_over_the_daily_limit_gets_the_4xx_that_names_the_limit(limited, counters, client_of):
    with policy_server(counters) as server:
        postfix = client_of(server)
        assert postfix.send("bob@example.com", ["a@gmail.com", "b@gmail.com"]) == (["DUNNO", "DUNNO"], "DUNNO", "DUNNO")
        assert postfix.send("bob@example.com", ["c@gmail.com"]) == (["DUNNO"], "DUNNO", "DUNNO")

        at_rcpt, _, _ = postfix.send("bob@example.com", ["d@gmail.com"])

    assert at_rcpt == [
        "452 4.5.3 bob@example.com sent to 3 of 3 recipients allowed today; the limit resets at 00:00 UTC"
    ]


@time_machine.travel(NOON, tick=False)
def test_the_count_is_the_recipients_accepted_and_holds_across_connections(limited, counters, client_of):
    with policy_server(counters) as server:
        first, second = client_of(server), client_of(server)
        first.send("bob@example.com", ["a@gmail.com", "b@gmail.com"])

        at_rcpt, _, _ = second.send("bob@example.com", ["c@gmail.com", "d@gmail.com"])

    assert at_rcpt[0] == "DUNNO"
    assert at_rcpt[1].startswith("452 4.5.3 bob@example.com sent to 2 of 3 recipients allowed today")


def test_the_limit_resets_at_midnight_utc(limited, counters, client_of):
    with policy_server(counters) as server:
        postfix = client_of(server)
        with time_machine.travel(dt.datetime(2026, 12, 7, 23, 59, 59, tzinfo=dt.UTC), tick=False):
            postfix.send("bob@example.com", ["a@gmail.com", "b@gmail.com"])
            postfix.send("bob@example.com", ["c@gmail.com"])
            refused_before, _, _ = postfix.send("bob@example.com", ["d@gmail.com"])
        with time_machine.travel(dt.datetime(2026, 12, 8, 0, 0, 0, tzinfo=dt.UTC), tick=False):
            after = postfix.send("bob@example.com", ["d@gmail.com"])

    assert refused_before[0].startswith("452 4.5.3")
    assert after == (["DUNNO"], "DUNNO", "DUNNO")


@time_machine.travel(NOON, tick=False)
def test_the_domain_total_counts_every_mailbox_of_the_domain(limited, counters, client_of):
    with policy_server(counters) as server:
        postfix = client_of(server)
        postfix.send("bob@example.com", ["a@gmail.com", "b@gmail.com"])
        postfix.send("ann@example.com", ["c@gmail.com", "d@gmail.com"])
        postfix.send("bob@example.com", ["e@gmail.com"])

        at_rcpt, _, _ = postfix.send("ann@example.com", ["f@gmail.com"])

    assert at_rcpt == [
        "452 4.5.3 example.com (all its mailboxes together) sent to 5 of 5 recipients allowed today; the limit "
        "resets at 00:00 UTC"
    ]


@time_machine.travel(NOON, tick=False)
def test_a_message_with_more_recipients_than_the_tier_allows_is_refused_whole_at_data(limited, counters, client_of):
    with policy_server(counters) as server:
        postfix = client_of(server)
        postfix.send("bob@example.com", ["a@gmail.com"])  # within the daily limit: 2 recipients left
        tier = make_tier(name="wide", daily_send_limit=100, max_recipients_per_message=2)
        make_domain("example.org", tier=tier)
        make_mailbox("eve@example.org")
        server.reload()

        at_rcpt, at_data, at_end = postfix.send("eve@example.org", ["a@gmail.com", "b@gmail.com", "c@gmail.com"])

    assert at_rcpt == ["DUNNO", "DUNNO", "DUNNO"]
    assert at_data == (
        "550 5.5.3 this message has 3 recipients; tier wide allows at most 2 per message: send it in parts"
    )
    assert at_end is None


@time_machine.travel(NOON, tick=False)
def test_a_message_that_would_pass_the_limit_is_refused_at_data_and_counts_nothing(limited, counters, client_of):
    with policy_server(counters) as server:
        postfix = client_of(server)
        postfix.send("bob@example.com", ["a@gmail.com", "b@gmail.com"])
        postfix_two = client_of(server)

        # Two recipients pass RCPT one by one on another connection only if the first is counted as pending.
        at_rcpt, at_data, _ = postfix_two.send("bob@example.com", ["c@gmail.com", "d@gmail.com"])
        after = postfix.send("bob@example.com", ["e@gmail.com"])

    assert at_rcpt[1].startswith("452 4.5.3 bob@example.com sent to 2 of 3")
    assert at_data == "DUNNO"  # one recipient accepted: it fits
    assert after[0][0].startswith("452 4.5.3 bob@example.com sent to 3 of 3")


@pytest.mark.parametrize(
    "state, reason", [(Mailbox.SUSPENDED, "its mailbox is suspended"), (Mailbox.DISABLED, "its mailbox is disabled")]
)
@time_machine.travel(NOON, tick=False)
def test_a_suspended_or_disabled_sender_is_refused_for_good(limited, counters, client_of, state, reason):
    Mailbox.objects.filter(address="bob@example.com").update(state=state)
    with policy_server(counters) as server:
        at_rcpt, _, _ = client_of(server).send("bob@example.com", ["a@gmail.com"])

    assert at_rcpt == [f"554 5.7.1 bob@example.com may not send mail: {reason}; ask your administrator"]


@time_machine.travel(NOON, tick=False)
def test_a_sender_whose_account_is_switched_off_is_refused(limited, counters, client_of):
    person = Mailbox.objects.get(address="bob@example.com").person
    person.is_active = False
    person.save()
    with policy_server(counters) as server:
        at_rcpt, _, _ = client_of(server).send("bob@example.com", ["a@gmail.com"])

    assert at_rcpt == [
        "554 5.7.1 bob@example.com may not send mail: its owner's account is switched off; ask your administrator"
    ]


@time_machine.travel(NOON, tick=False)
def test_mail_from_outside_is_never_limited(limited, counters, client_of):
    with policy_server(counters) as server:
        postfix = client_of(server)
        for _ in range(3):
            postfix.send("bob@example.com", ["a@gmail.com"])  # bob's day is spent

        inbound = postfix.send("bob@example.com", ["ann@example.com"], sasl=False, client="198.51.100.7")
        stranger = postfix.send("x@elsewhere.example", ["ann@example.com"], sasl=False)

    assert inbound == (["DUNNO"], "DUNNO", "DUNNO")
    assert stranger == (["DUNNO"], "DUNNO", "DUNNO")


@time_machine.travel(NOON, tick=False)
def test_mail_relayed_by_our_hosts_counts_against_its_envelope_sender(limited, counters, client_of, settings):
    import ipaddress

    settings.POLICY_RELAY_HOSTS = [ipaddress.ip_network("10.20.0.0/16")]
    with policy_server(counters) as server:
        postfix = client_of(server)
        postfix.send("bob@example.com", ["a@gmail.com", "b@gmail.com"], sasl=False, client="10.20.3.4")
        postfix.send("bob@example.com", ["c@gmail.com"])  # signed in: the same counter

        at_rcpt, _, _ = postfix.send("bob@example.com", ["d@gmail.com"], sasl=False, client="10.20.3.4")

    assert at_rcpt[0].startswith("452 4.5.3 bob@example.com sent to 3 of 3 recipients allowed today")


@time_machine.travel(NOON, tick=False)
def test_a_sender_without_limits_is_counted_but_never_refused(counters, client_of):
    make_mailbox("free@example.net")
    with policy_server(counters) as server:
        postfix = client_of(server)
        answers = [postfix.send("free@example.net", [f"r{n}@gmail.com" for n in range(50)]) for _ in range(3)]

    assert all(rcpt == ["DUNNO"] * 50 and data == end == "DUNNO" for rcpt, data, end in answers)
