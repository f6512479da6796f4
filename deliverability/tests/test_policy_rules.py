"""The policy's pure rules, table by table: who the sender is, the words of each refusal, which IP takes a message
(WARMING IPs with room first, paced through the hour beside an ACTIVE one; ACTIVE ones by weight) and the earliest
later room when none has any. No database, no clock."""

import datetime as dt
import ipaddress
import random
from collections import Counter

import pytest

from deliverability import policy_rules as rules

BOB = rules.Sender("bob@example.com", rules.DomainPolicy("example.com", tier="small", daily_limit=3, max_recipients=2))
CONFIG = rules.PolicyConfig(
    senders={"bob@example.com": BOB},
    local_domains=frozenset({"example.com"}),
    domains={"example.com": BOB.domain},
    relay_networks=(ipaddress.ip_network("10.0.0.0/8"),),
)
ACTIVE = rules.RouteIp("192.0.2.1", "out-192-0-2-1", 3, "active")
ACTIVE_LIGHT = rules.RouteIp("192.0.2.2", "out-192-0-2-2", 1, "active")
WARM = rules.RouteIp("192.0.2.3", "out-192-0-2-3", 1, "warming", daily_cap=160, hourly_cap=60)
WARM_TWO = rules.RouteIp("192.0.2.4", "out-192-0-2-4", 1, "warming", daily_cap=160, hourly_cap=60)


@pytest.mark.parametrize(
    "request_, expected",
    [
        ({"sasl_username": "BOB@example.com"}, BOB),
        ({"sasl_username": "eve@example.com", "sender": "bob@example.com"}, None),
        ({"sender": "bob@example.com", "client_address": "10.1.2.3"}, BOB),
        ({"sender": "bob@example.com", "client_address": "192.0.2.9"}, None),
        ({"sender": "bob@example.com", "client_address": "not-an-ip"}, None),
        ({"sender": "news@example.com", "client_address": "10.1.2.3"}, rules.Sender("news@example.com", BOB.domain)),
        ({"sender": "news@elsewhere.example", "client_address": "10.1.2.3"}, None),
        ({"sender": "bob@example.com"}, None),
    ],
    ids=["sasl", "unknown-sasl-user", "relay-host", "outside-client", "bad-client", "alias", "foreign", "no-client"],
)
def test_the_sender_is_the_sasl_user_or_a_relay_hosts_envelope_sender(request_, expected):
    assert rules.sender_of(CONFIG, request_) == expected


@pytest.mark.parametrize(
    "window, used, adding, text",
    [
        (
            rules.Window("k", 500, "bob@example.com"),
            500,
            1,
            "452 4.5.3 bob@example.com sent to 500 of 500 recipients allowed today; the limit resets at 00:00 UTC",
        ),
        (
            rules.Window("k", 500, "bob@example.com"),
            498,
            5,
            "452 4.5.3 bob@example.com sent to 498 of 500 recipients allowed today, and this message has 5; the "
            "limit resets at 00:00 UTC",
        ),
        (
            rules.Window("k", 2000, "example.com", per_domain=True),
            2003,
            1,
            "452 4.5.3 example.com (all its mailboxes together) sent to 2000 of 2000 recipients allowed today; the "
            "limit resets at 00:00 UTC",
        ),
    ],
)
def test_a_window_refusal_names_whose_limit_what_was_used_and_the_reset(window, used, adding, text):
    assert rules.window_refusal(window, used, adding) == text


def test_too_many_recipients_is_a_5xx_naming_the_tier_and_its_limit():
    assert rules.too_many_recipients(BOB, 2) is None
    assert rules.too_many_recipients(BOB, 3) == (
        "550 5.5.3 this message has 3 recipients; tier small allows at most 2 per message: send it in parts"
    )


@pytest.mark.parametrize(
    "state, text",
    [
        (rules.SUSPENDED, "its mailbox is suspended"),
        (rules.DISABLED, "its mailbox is disabled"),
        (rules.PERSON_INACTIVE, "its owner's account is switched off"),
    ],
)
def test_a_sender_who_may_not_send_gets_a_554(state, text):
    sender = rules.Sender("bob@example.com", BOB.domain, state)
    assert rules.state_refusal(sender) == f"554 5.7.1 bob@example.com may not send mail: {text}; ask your administrator"
    assert rules.state_refusal(BOB) is None


@pytest.mark.parametrize(
    "recipients, remote",
    [(["a@gmail.com"], True), (["a@gmail.com", "x@EXAMPLE.com"], False), ([], False), (["a@gmail.com", "@"], False)],
)
def test_only_a_message_whose_every_recipient_is_outside_is_routed(recipients, remote):
    assert rules.all_remote(recipients, CONFIG.local_domains) is remote


def test_active_ips_share_by_weight():
    rng = random.Random(7)  # noqa: S311 - a test's fixed sequence
    rooms = [rules.IpRoom(ACTIVE, 0, 0), rules.IpRoom(ACTIVE_LIGHT, 0, 0)]
    picks = Counter(rules.choose_ip(rooms, 1, 30, rng).address for _ in range(4000))
    assert 2800 <= picks["192.0.2.1"] <= 3200  # weight 3 of 4


def test_a_warming_ip_beside_an_active_one_is_paced_through_the_hour():
    # Hourly cap 60: by minute 9 it may have taken 10; the 11th waits for the next minute and goes ACTIVE.
    assert rules.choose_ip([rules.IpRoom(WARM, 9, 9), rules.IpRoom(ACTIVE, 0, 0)], 1, 9, random.Random(1)) == WARM
    assert rules.choose_ip([rules.IpRoom(WARM, 10, 10), rules.IpRoom(ACTIVE, 0, 0)], 1, 9, random.Random(1)) == ACTIVE
    # Alone in its pool it is not paced: its whole hourly cap is there.
    assert rules.choose_ip([rules.IpRoom(WARM, 10, 10)], 1, 9, random.Random(1)) == WARM


def test_two_warming_ips_share_by_what_each_took_this_hour():
    assert (
        rules.choose_ip([rules.IpRoom(WARM, 5, 5), rules.IpRoom(WARM_TWO, 3, 3)], 1, 59, random.Random(1)) == WARM_TWO
    )
    assert rules.choose_ip([rules.IpRoom(WARM, 3, 3), rules.IpRoom(WARM_TWO, 3, 3)], 1, 59, random.Random(1)) == WARM


@pytest.mark.parametrize(
    "day_used, hour_used, count, expected",
    [(0, 59, 1, WARM), (0, 60, 1, None), (159, 0, 1, WARM), (160, 0, 1, None), (100, 0, 61, None)],
)
def test_a_warming_ip_takes_nothing_past_its_hourly_or_daily_cap(day_used, hour_used, count, expected):
    assert rules.choose_ip([rules.IpRoom(WARM, day_used, hour_used)], count, 59, random.Random(1)) == expected


def test_the_earliest_later_room_respects_both_caps():
    now = dt.datetime(2026, 12, 7, 22, 30, tzinfo=dt.UTC)
    hours = rules.future_hours(now, 4)
    used = {
        rules.ip_hour_key(WARM.address, "2026120723"): 60,  # 23:00 reserved full
        rules.ip_day_key(WARM.address, "20261208"): 0,
    }
    assert rules.earliest_room([WARM], used, 1, hours) == (WARM, dt.datetime(2026, 12, 8, 0, 0, tzinfo=dt.UTC))
    assert rules.earliest_room([WARM], {rules.ip_day_key(WARM.address, "20261207"): 160}, 1, hours)[1] == (
        dt.datetime(2026, 12, 8, 0, 0, tzinfo=dt.UTC)
    )
    assert rules.earliest_room([WARM], used, 61, hours) is None
