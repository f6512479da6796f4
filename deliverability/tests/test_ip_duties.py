"""The periodic duties with the clock moved by time-machine: their dry run says what would happen now and changes
nothing; the task applies the same moves through the state machine (recorded, audited), and only when due."""

import datetime as dt

import pytest
import time_machine

from accounts.authz import SYSTEM
from accounts.models import AuditEvent
from deliverability import ip_duties, sending_ips, tasks
from deliverability.models import IpStateChange, SendingIp
from deliverability.tests.dnsbl_lists import only_test_lists
from deliverability.tests.factories import make_ip, make_pool, move

pytestmark = pytest.mark.django_db

START = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)


def states():
    return dict(SendingIp.objects.values_list("address", "state"))


def planned(plan):
    return [(m.ip.address, m.from_state, m.to_state) for m in plan.moves]


@pytest.fixture(autouse=True)
def _no_standby_lists():
    # The shipped blocklists are real zones, untested here: quarantine release would wait for them (the DNSBL tests
    # cover that); these tests are about the duties' clock.
    only_test_lists()


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def test_drain_moves_retiring_ips_to_resting_after_the_drain_period(clock, settings):
    settings.IP_DRAIN_DAYS = 2
    ip = move(make_ip("192.0.2.1", state="ACTIVE"), "RETIRING")
    clock.shift(dt.timedelta(days=2) - dt.timedelta(minutes=1))
    plan = ip_duties.drain_plan()
    assert plan.moves == [] and [m.ip.address for m in plan.waiting] == ["192.0.2.1"]
    assert tasks.drain_retiring_ips() == "drain: moved 0 IP(s)"
    assert states() == {"192.0.2.1": "RETIRING"}
    clock.shift(dt.timedelta(minutes=1))
    assert planned(ip_duties.drain_plan()) == [("192.0.2.1", "RETIRING", "RESTING")]
    assert states() == {"192.0.2.1": "RETIRING"}  # the dry run changed nothing
    assert tasks.drain_retiring_ips() == "drain: moved 1 IP(s): 192.0.2.1 RETIRING -> RESTING"
    change = IpStateChange.objects.filter(ip=ip).first()
    assert (change.to_state, change.actor_label) == ("RESTING", "task: drain retiring IPs")
    assert change.reason.startswith("drained for 2 days")
    assert AuditEvent.objects.filter(action="deliverability.sending_ip.state", actor_label="task: drain retiring IPs")


def test_quarantine_release_moves_resting_ips_to_warming_once_clear_for_n_days(clock, settings):
    settings.IP_QUARANTINE_DAYS = 7
    move(make_ip("192.0.2.1", state="ACTIVE"), "RESTING", reason="listed on a standby list")
    clock.shift(dt.timedelta(days=6, hours=23))
    assert ip_duties.release_plan().moves == []
    assert tasks.release_resting_ips() == "release: moved 0 IP(s)"
    clock.shift(dt.timedelta(hours=1))
    plan = ip_duties.release_plan()
    assert planned(plan) == [("192.0.2.1", "RESTING", "WARMING")]
    assert "listings clear since 2025-03-03" in plan.moves[0].reason
    assert tasks.release_resting_ips() == "release: moved 1 IP(s): 192.0.2.1 RESTING -> WARMING"
    assert states() == {"192.0.2.1": "WARMING"}


def test_listing_clear_since_is_the_hook_release_reads(clock, settings, monkeypatch):
    """Until DNSBL monitoring fills it in, an IP is clear since it entered its state; release follows the hook."""
    settings.IP_QUARANTINE_DAYS = 7
    ip = move(make_ip("192.0.2.1"), "RESTING")
    assert ip_duties.listing_clear_since(ip) == ip.state_since == START
    clock.shift(dt.timedelta(days=8))
    assert planned(ip_duties.release_plan()) == [("192.0.2.1", "RESTING", "WARMING")]
    monkeypatch.setattr(ip_duties, "listing_clear_since", lambda ip: START + dt.timedelta(days=5))  # listed again
    assert ip_duties.release_plan().moves == []


def rotating_pool(**kw):
    pool = make_pool("bulk", rotation_enabled=True, **kw)
    return pool


def test_rotation_retires_the_longest_active_ip_when_a_warming_one_is_ready(clock):
    pool = rotating_pool()
    make_ip("192.0.2.1", pool=pool, state="ACTIVE")
    clock.shift(dt.timedelta(days=10))
    make_ip("192.0.2.2", pool=pool, state="ACTIVE")
    make_ip("192.0.2.3", pool=pool)  # WARMING: the replacement
    plan = ip_duties.rotation_plan()
    assert planned(plan) == [("192.0.2.1", "ACTIVE", "RETIRING")]
    assert "ACTIVE since 2025-03-03, the longest; 192.0.2.3 (WARMING) takes over" in plan.moves[0].reason
    assert states()["192.0.2.1"] == "ACTIVE"
    assert tasks.rotate_ip_pools() == "rotation: moved 1 IP(s): 192.0.2.1 ACTIVE -> RETIRING"
    assert states() == {"192.0.2.1": "RETIRING", "192.0.2.2": "ACTIVE", "192.0.2.3": "WARMING"}
    assert IpStateChange.objects.filter(ip__address="192.0.2.1").first().actor_label == "task: monthly IP rotation"


def test_rotation_releases_a_rested_replacement_with_it(clock, settings):
    settings.IP_QUARANTINE_DAYS = 7
    pool = rotating_pool()
    make_ip("192.0.2.1", pool=pool, state="ACTIVE")
    make_ip("192.0.2.2", pool=pool, state="ACTIVE")
    move(make_ip("192.0.2.3", pool=pool), "RESTING")
    clock.shift(dt.timedelta(days=3))
    assert ip_duties.rotation_plan().moves == []  # resting, but not yet released: no replacement ready
    assert "no replacement ready" in ip_duties.rotation_plan().notes[0]
    clock.shift(dt.timedelta(days=4))
    assert planned(ip_duties.rotation_plan()) == [
        ("192.0.2.1", "ACTIVE", "RETIRING"),
        ("192.0.2.3", "RESTING", "WARMING"),
    ]
    tasks.rotate_ip_pools()
    assert states() == {"192.0.2.1": "RETIRING", "192.0.2.2": "ACTIVE", "192.0.2.3": "WARMING"}


def test_rotation_leaves_pools_alone_when_off_or_with_one_active_ip(clock):
    off = make_pool("off")
    make_ip("192.0.2.1", pool=off, state="ACTIVE")
    make_ip("192.0.2.2", pool=off, state="ACTIVE")
    make_ip("192.0.2.3", pool=off)
    single = make_pool("single", rotation_enabled=True)
    make_ip("192.0.2.4", pool=single, state="ACTIVE")
    make_ip("192.0.2.5", pool=single)
    plan = ip_duties.rotation_plan()
    assert plan.moves == []
    assert plan.notes == ["pool single: 1 ACTIVE IP(s); rotation needs more than one."]
    assert tasks.rotate_ip_pools() == "rotation: moved 0 IP(s)"


def test_a_move_planned_for_an_ip_that_changed_meanwhile_is_skipped(clock, settings, monkeypatch):
    settings.IP_DRAIN_DAYS = 0
    ip = move(make_ip("192.0.2.1", state="ACTIVE"), "RETIRING")
    stale = ip_duties.drain_plan()
    move(ip, "RESTING")  # an operator was faster
    monkeypatch.setattr(ip_duties, "PLANS", {**ip_duties.PLANS, ip_duties.DRAIN: lambda now=None: stale})
    result = ip_duties.duty_run(ip_duties.DRAIN)
    assert result.moved == [] and result.skipped == ["192.0.2.1 is RESTING now, not RETIRING"]


def test_a_move_is_decided_under_the_row_lock_not_on_a_state_read_before_it(clock, settings, monkeypatch):
    settings.IP_DRAIN_DAYS = 0
    ip = move(make_ip("192.0.2.1", state="ACTIVE"), "RETIRING")
    real = sending_ips.ip_set_state

    def operator_first(**kw):
        # Between the duty's plan and its move, an operator rests the IP and releases it to WARMING.
        if kw.get("actor_label") == ip_duties.ACTOR_LABELS[ip_duties.DRAIN]:
            move(ip, "RESTING", "WARMING")
        return real(**kw)

    monkeypatch.setattr(sending_ips, "ip_set_state", operator_first)
    result = ip_duties.duty_run(ip_duties.DRAIN)
    assert result.moved == [] and result.skipped == ["192.0.2.1 is WARMING now, not RETIRING"]
    # The WARMING IP was not rested by the drain (the stand-in operator's moves ran inside the duty's transaction,
    # which the skip rolls back; a real operator's are their own).
    assert not IpStateChange.objects.filter(actor_label=ip_duties.ACTOR_LABELS[ip_duties.DRAIN]).exists()


def test_a_rotation_is_made_whole_or_not_at_all(clock, settings, monkeypatch):
    settings.IP_QUARANTINE_DAYS = 0
    pool = rotating_pool()
    make_ip("192.0.2.1", pool=pool, state="ACTIVE")
    make_ip("192.0.2.2", pool=pool, state="ACTIVE")
    rested = move(make_ip("192.0.2.3", pool=pool), "RESTING")
    clock.shift(dt.timedelta(seconds=1))
    stale = ip_duties.rotation_plan()
    assert planned(stale) == [("192.0.2.1", "ACTIVE", "RETIRING"), ("192.0.2.3", "RESTING", "WARMING")]
    sending_ips.ip_remove(ip=rested, actor=SYSTEM)  # an operator removed the replacement meanwhile
    monkeypatch.setattr(ip_duties, "PLANS", {**ip_duties.PLANS, ip_duties.ROTATION: lambda now=None: stale})

    result = ip_duties.duty_run(ip_duties.ROTATION)

    assert result.moved == []
    assert result.skipped == ["192.0.2.3 is gone now, not RESTING (rotation of pool bulk not made)"]
    assert states() == {"192.0.2.1": "ACTIVE", "192.0.2.2": "ACTIVE"}  # the first move was rolled back
    assert not IpStateChange.objects.filter(to_state="RETIRING").exists()
