"""The sending IP state machine as a table: every allowed move goes through ip_set_state (recorded and audited with
its reason), every other one is refused naming from, to and the allowed moves, and changes nothing."""

import pytest
from django.core.exceptions import ValidationError

from accounts.authz import SYSTEM
from accounts.models import AuditEvent
from deliverability import ip_lifecycle, sending_ips
from deliverability.models import IpStateChange, SendingIp
from deliverability.tests.factories import make_ip, move

A, RT, RS, W = ip_lifecycle.ACTIVE, ip_lifecycle.RETIRING, ip_lifecycle.RESTING, ip_lifecycle.WARMING
ALLOWED = [(A, RT), (RT, RS), (RS, W), (W, A), (A, RS), (W, RS)]
ALL_MOVES = [(f, t) for f in ip_lifecycle.STATES for t in ip_lifecycle.STATES if f != t]
REFUSED = [m for m in ALL_MOVES if m not in ALLOWED]
# How to reach each state from a new IP (WARMING) through allowed moves only.
PATH_TO = {W: [], A: [A], RT: [A, RT], RS: [RS]}


def test_the_table_has_exactly_the_issues_moves():
    assert sorted(ALLOWED) == sorted((f, t) for f, moves in ip_lifecycle.MOVES.items() for t in moves)
    assert len(REFUSED) == 12 - len(ALLOWED)


@pytest.mark.parametrize("from_state, to_state", ALLOWED)
def test_pure_table_allows(from_state, to_state):
    assert ip_lifecycle.move_refusal(from_state, to_state) is None


@pytest.mark.parametrize("from_state, to_state", REFUSED)
def test_pure_table_refuses_naming_from_to_and_the_allowed_moves(from_state, to_state):
    message = ip_lifecycle.move_refusal(from_state, to_state)
    assert f"from {from_state} to {to_state}" in message
    assert " or ".join(ip_lifecycle.MOVES[from_state]) in message


@pytest.mark.django_db
@pytest.mark.parametrize("from_state, to_state", ALLOWED)
def test_every_allowed_move_is_made_recorded_and_audited(from_state, to_state):
    ip = move(make_ip(), *PATH_TO[from_state])
    assert ip.state == from_state
    moved = sending_ips.ip_set_state(
        ip=ip, state=to_state, reason="  operator  says so ", actor=SYSTEM, actor_label="manage.py sending_ip"
    )
    assert SendingIp.objects.get(pk=ip.pk).state == to_state
    change = IpStateChange.objects.filter(ip=ip).first()
    assert (change.from_state, change.to_state, change.reason) == (from_state, to_state, "operator says so")
    assert change.actor_label == "manage.py sending_ip" and change.at == moved.state_since
    event = AuditEvent.objects.filter(action="deliverability.sending_ip.state").latest("pk")
    assert event.description == f"{ip.address}: {from_state} -> {to_state}: operator says so"
    assert event.target_label == ip.address


@pytest.mark.django_db
@pytest.mark.parametrize("from_state, to_state", REFUSED)
def test_every_other_move_is_refused_and_changes_nothing(from_state, to_state):
    ip = move(make_ip(), *PATH_TO[from_state])
    before = (list(IpStateChange.objects.values_list()), AuditEvent.objects.count(), ip.state_since)
    with pytest.raises(ValidationError) as e:
        sending_ips.ip_set_state(ip=ip, state=to_state, reason="why not", actor=SYSTEM)
    message = e.value.message_dict["state"][0]
    assert f"cannot move from {from_state} to {to_state}" in message
    assert f"it may move to {' or '.join(ip_lifecycle.MOVES[from_state])} only" in message
    ip.refresh_from_db()
    assert (list(IpStateChange.objects.values_list()), AuditEvent.objects.count(), ip.state_since) == before


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["", "   ", None])
def test_a_move_without_a_reason_is_refused(reason):
    ip = make_ip()
    with pytest.raises(ValidationError) as e:
        sending_ips.ip_set_state(ip=ip, state=RS, reason=reason, actor=SYSTEM)
    assert "reason is required" in e.value.message_dict["reason"][0]
    assert SendingIp.objects.get(pk=ip.pk).state == W


@pytest.mark.django_db
def test_an_unknown_or_the_same_state_is_refused():
    ip = make_ip()
    with pytest.raises(ValidationError, match="'PAUSED' is not a state"):
        sending_ips.ip_set_state(ip=ip, state="paused", reason="x", actor=SYSTEM)
    with pytest.raises(ValidationError, match="already WARMING"):
        sending_ips.ip_set_state(ip=ip, state="warming", reason="x", actor=SYSTEM)


@pytest.mark.django_db
def test_a_new_ip_starts_warming_unless_added_active_and_never_in_another_state():
    assert make_ip("192.0.2.200").state == W
    active = make_ip("192.0.2.201", state=A)
    assert active.state == A
    assert IpStateChange.objects.get(ip=active).reason == "added; already sends"
    for state in (RT, RS):
        with pytest.raises(ValidationError) as e:
            make_ip("192.0.2.202", state=state)
        assert "starts WARMING" in e.value.message_dict["state"][0]
    assert not SendingIp.objects.filter(address="192.0.2.202").exists()


@pytest.mark.django_db
def test_removing_an_ip_that_sends_is_refused_until_it_is_retired():
    ip = make_ip(state=A)
    with pytest.raises(ValidationError, match="is ACTIVE and sends mail: retire it first"):
        sending_ips.ip_remove(ip=ip, actor=SYSTEM)
    warming = make_ip()
    with pytest.raises(ValidationError, match="is WARMING and sends mail: move it to RESTING first"):
        sending_ips.ip_remove(ip=warming, actor=SYSTEM)
    assert SendingIp.objects.count() == 2
    sending_ips.ip_remove(ip=move(ip, RT), actor=SYSTEM)
    assert not SendingIp.objects.filter(pk=ip.pk).exists()
    assert AuditEvent.objects.filter(action="deliverability.sending_ip.remove", target_label=ip.address).exists()
