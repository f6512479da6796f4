"""IP warmup in the database (deliverability.ip_warmup): the caps the policy service reads in at most two queries, the
sends it records, the sending results summed from every app's seam, and the daily evaluation that advances, holds,
steps back, pulls (RESTING and the "IP warmup standby" alert) or finishes each WARMING IP, audited with its figures,
for actors with the permissions only. The test extension app stands for monitoring's seam."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured, ValidationError

from accounts.authz import SYSTEM
from accounts.models import AuditEvent
from deliverability import alert_kinds, ip_warmup, tasks, warmup
from deliverability.models import IpStateChange, IpWarmup, SendingIp, WarmupPlan
from deliverability.tests.factories import make_ip, move, staff_with
from dockspace.alert_kinds import RuleView
from dockspace.schedule import declared_periodic_tasks

pytestmark = pytest.mark.django_db

EXTENSION = type(apps.get_app_config("extension_app"))
OIDC = type(apps.get_app_config("oidc"))
T0 = datetime(2026, 11, 2, 5, 29, tzinfo=UTC)
DAY = timedelta(days=1)


def reporting(monkeypatch, results, config=EXTENSION):
    """Install `ip_sending_results` on an app: results {address: {hours: (attempts, hard bounces, complaints)}};
    returns the calls made, (addresses, hours) each."""
    calls = []

    def ip_sending_results(self, addresses, since, until):
        hours = round((until - since).total_seconds() / 3600)
        calls.append((tuple(addresses), hours))
        found = {address: results[address].get(hours) for address in addresses if address in results}
        return {
            address: {"attempts": a, "hard_bounces": b, "complaints": c}
            for address, figures in found.items()
            if figures is not None
            for a, b, c in [figures]
        }

    monkeypatch.setattr(config, "ip_sending_results", ip_sending_results, False)
    return calls


def warming_at(address, step, *, at=T0):
    """A new WARMING IP put at `step` of the default plan at `at`."""
    with time_machine.travel(at, tick=False):
        ip = make_ip(address)
        ip_warmup.ip_warmup_set(ip=ip, plan=WarmupPlan.objects.get(is_default=True), step=step, actor=SYSTEM)
    return ip


def evaluate(at=T0 + DAY + timedelta(hours=1), actor=SYSTEM):
    with time_machine.travel(at, tick=False):
        return ip_warmup.warmup_evaluate_all(actor=actor, actor_label=ip_warmup.TASK_LABEL)


def test_the_migration_creates_the_reference_plan_as_the_default():
    plan = WarmupPlan.objects.get(is_default=True)
    assert plan.name == "standard"
    assert plan.as_plan() == warmup.DEFAULT_PLAN


# --- caps ---------------------------------------------------------------------------------------------------------


def test_caps_cover_every_warming_ip_in_one_or_two_queries_and_leave_the_others_out(django_assert_max_num_queries):
    fresh = make_ip("192.0.2.1")  # no warmup state yet: step 1 of the default plan
    grown = warming_at("192.0.2.2", 4, at=datetime.now(UTC))
    make_ip("192.0.2.3", state="ACTIVE")
    move(make_ip("192.0.2.4"), "RESTING")
    with django_assert_max_num_queries(2):
        caps = ip_warmup.warmup_caps()
    assert caps == {fresh.address: (200, 12), grown.address: (1_000, 62)}
    IpWarmup.objects.create(ip=fresh, plan=WarmupPlan.objects.get(), step=2)
    with django_assert_max_num_queries(1):
        assert ip_warmup.warmup_caps() == {fresh.address: (400, 25), grown.address: (1_000, 62)}


def test_an_ip_idle_over_30_days_or_back_from_rest_is_capped_at_step_1_at_once():
    idle = warming_at("192.0.2.1", 5)
    rested = warming_at("192.0.2.2", 5)
    going = warming_at("192.0.2.3", 5)
    ip_warmup.warmup_record_sends({idle.address: 10, going.address: 10}, T0)
    ip_warmup.warmup_record_sends({going.address: 10}, T0 + 20 * DAY)
    with time_machine.travel(T0 + 2 * DAY, tick=False):
        move(rested, "RESTING", "WARMING")
    assert ip_warmup.warmup_caps(now=T0 + 30 * DAY) == {
        idle.address: (1_500, 93),
        rested.address: (200, 12),
        going.address: (1_500, 93),
    }
    assert ip_warmup.warmup_caps(now=T0 + 30 * DAY + timedelta(minutes=1))[idle.address] == (200, 12)


def test_without_a_default_plan_a_new_warming_ip_is_capped_at_the_references_first_step():
    WarmupPlan.objects.update(is_default=False)
    ip = make_ip("192.0.2.1")
    assert ip_warmup.warmup_caps() == {ip.address: (200, 12)}


# --- sends ----------------------------------------------------------------------------------------------------------


def test_sends_add_up_in_the_step_and_move_the_last_send_on():
    warming = warming_at("192.0.2.1", 2)
    with time_machine.travel(T0, tick=False):
        fresh = make_ip("192.0.2.2")
        active = make_ip("192.0.2.3", state="ACTIVE")
    counts = {warming.address: 120, fresh.address: 7, active.address: 50, "198.51.100.9": 5, "192.0.2.4": 0}
    assert ip_warmup.warmup_record_sends(counts, T0 + timedelta(hours=1)) == 2
    assert ip_warmup.warmup_record_sends({warming.address: 30}, T0 + timedelta(hours=2)) == 1
    # A late count from before the step started is not the step's; it does not move the last send back either.
    ip_warmup.warmup_record_sends({warming.address: 1000}, T0 - DAY)
    row = IpWarmup.objects.get(ip=warming)
    assert (row.sent_in_step, row.last_sent_at) == (150, T0 + timedelta(hours=2))
    created = IpWarmup.objects.get(ip=fresh)  # a WARMING IP without a state gets one at step 1
    assert (created.step, created.sent_in_step, created.plan.name) == (1, 7, "standard")
    assert not IpWarmup.objects.filter(ip=active).exists()  # ACTIVE IPs are never warmed


@pytest.mark.parametrize(
    "counts, message",
    [
        ({"192.0.2.1": -1}, "192.0.2.1: the number of messages sent is a whole number, 0 or more."),
        ({"192.0.2.1": "12"}, "192.0.2.1: the number of messages sent is a whole number, 0 or more."),
        ({"192.0.2.1": 1, "out1": 2}, "'out1' is not an IPv4 or IPv6 address (e.g. 192.0.2.10 or 2001:db8::10)."),
    ],
)
def test_a_bad_count_is_refused_naming_the_field_and_nothing_is_recorded(counts, message):
    ip = warming_at("192.0.2.1", 1)
    with pytest.raises(ValidationError) as refused:
        ip_warmup.warmup_record_sends(counts, T0)
    assert refused.value.message_dict == {"counts": [message]}
    assert IpWarmup.objects.get(ip=ip).sent_in_step == 0


# --- the seam -------------------------------------------------------------------------------------------------------


def test_sending_results_of_several_apps_are_summed_and_unreported_addresses_are_zero(monkeypatch):
    reporting(monkeypatch, {"192.0.2.1": {24: (100, 2, 0)}, "192.0.2.9": {24: (5, 5, 5)}})
    reporting(monkeypatch, {"192.0.2.1": {24: (50, 1, 1)}}, config=OIDC)
    found = ip_warmup.sending_results(["192.0.2.1", "192.0.2.2"], T0 - DAY, T0)
    assert found == {"192.0.2.1": warmup.Figures(150, 3, 1), "192.0.2.2": warmup.Figures(0, 0, 0)}


@pytest.mark.parametrize(
    "answer", [{"attempts": 1, "hard_bounces": 0}, {"attempts": -1, "hard_bounces": 0, "complaints": 0}, 7]
)
def test_an_app_answering_outside_the_contract_is_named(monkeypatch, answer):
    monkeypatch.setattr(EXTENSION, "ip_sending_results", lambda self, a, s, u: {"192.0.2.1": answer}, False)
    with pytest.raises(ImproperlyConfigured, match=r"extension_app.ip_sending_results\(\): 192.0.2.1: expected"):
        ip_warmup.sending_results(["192.0.2.1"], T0 - DAY, T0)


# --- the daily evaluation -------------------------------------------------------------------------------------------

ADDRESS = "192.0.2.10"


@pytest.mark.parametrize(
    "step, figures, action, step_after, state_after",
    [
        (3, {24: (1000, 10, 0)}, "advance", 4, "WARMING"),
        (3, {24: (1000, 30, 0)}, "hold", 3, "WARMING"),
        (3, {24: (10_000, 0, 9)}, "hold", 3, "WARMING"),
        (3, {24: (1000, 60, 0)}, "step_back", 2, "WARMING"),
        (3, {24: (10_000, 0, 12)}, "step_back", 2, "WARMING"),
        (3, {24: (1000, 100, 0)}, "standby", 3, "RESTING"),
        (3, {24: (10_000, 0, 30)}, "standby", 3, "RESTING"),
        (3, {24: (100, 0, 0), 72: (400, 0, 0), 168: (499, 0, 0)}, "hold", 3, "WARMING"),
        (3, {24: (100, 0, 0), 72: (600, 40, 0)}, "step_back", 2, "WARMING"),
        (18, {24: (100_000, 100, 2)}, "done", 18, "ACTIVE"),
    ],
)
def test_the_daily_decision_is_made_recorded_and_audited_with_its_figures(
    monkeypatch, step, figures, action, step_after, state_after
):
    ip = warming_at(ADDRESS, step)
    reporting(monkeypatch, {ADDRESS: figures})
    report = evaluate()
    row = IpWarmup.objects.get(ip=ip)
    ip.refresh_from_db()
    assert (row.step, ip.state) == (step_after, state_after)
    decided = row.history[-1]
    hours = max(figures)
    judged = figures[hours]
    assert decided["action"] == action and decided["by"] == ip_warmup.TASK_LABEL
    assert (decided["attempts"], decided["hard_bounces"], decided["complaints"]) == judged
    assert (decided["step_from"], decided["step_to"], decided["window_hours"]) == (step, step_after, hours)
    event = AuditEvent.objects.filter(action=f"deliverability.ip_warmup.{action}").get()
    assert event.target_label == ADDRESS and event.actor_label == ip_warmup.TASK_LABEL
    assert f"{judged[0]} attempts, {judged[1]} hard bounces" in event.description
    assert decided["reason"] in event.description
    assert report.actions == {action: 1} and report.decided[0].startswith(f"{ADDRESS} {warmup.ACTION_LABELS[action]}")
    if step_after != step:
        assert (row.step_started_at, row.sent_in_step) == (T0 + DAY + timedelta(hours=1), 0)
    if state_after != "WARMING":
        change = IpStateChange.objects.filter(ip=ip).first()
        assert (change.from_state, change.to_state, change.actor_label) == (
            "WARMING",
            state_after,
            ip_warmup.TASK_LABEL,
        )
        assert change.reason.startswith("warmup ")


def test_a_wider_window_is_asked_only_for_the_ips_short_of_the_sample(monkeypatch):
    busy, quiet = warming_at("192.0.2.1", 2), warming_at("192.0.2.2", 2)
    calls = reporting(monkeypatch, {busy.address: {24: (900, 0, 0)}, quiet.address: {24: (10, 0, 0), 72: (30, 0, 0)}})
    report = evaluate()
    assert calls == [((busy.address, quiet.address), 24), ((quiet.address,), 72), ((quiet.address,), 168)]
    assert report.actions == {"advance": 1, "hold": 1}
    assert "not enough mail" in IpWarmup.objects.get(ip=quiet).history[-1]["reason"]


def test_an_idle_or_rested_ip_starts_again_at_step_1_and_the_others_keep_going(monkeypatch):
    idle, rested = warming_at("192.0.2.1", 6), warming_at("192.0.2.2", 6)
    reporting(monkeypatch, {})
    ip_warmup.warmup_record_sends({idle.address: 5}, T0)
    with time_machine.travel(T0 + DAY, tick=False):
        move(rested, "RESTING", "WARMING")
    evaluate(T0 + 31 * DAY)
    assert [IpWarmup.objects.get(ip=ip).step for ip in (idle, rested)] == [1, 1]
    reasons = [IpWarmup.objects.get(ip=ip).history[-1]["reason"] for ip in (idle, rested)]
    assert reasons[0] == "idle 31 days (over 30): warmup starts again at step 1"
    assert "WARMING again" in reasons[1]
    assert AuditEvent.objects.filter(action="deliverability.ip_warmup.restart").count() == 2
    evaluate(T0 + 32 * DAY)  # once started again, it holds for want of mail: no second restart
    assert [IpWarmup.objects.get(ip=ip).history[-1]["action"] for ip in (idle, rested)] == ["hold", "hold"]


def test_a_standby_fires_the_alert_until_the_ip_leaves_that_rest(monkeypatch):
    ip = warming_at(ADDRESS, 3)
    other = warming_at("192.0.2.11", 3)
    reporting(monkeypatch, {ADDRESS: {24: (1000, 120, 0)}, other.address: {24: (1000, 0, 0)}})
    evaluate()
    view = RuleView(kind=alert_kinds.IP_WARMUP_STANDBY, thresholds={}, now=T0)
    [seen] = alert_kinds.warmup_standby_observations(view)
    assert (seen.subject, seen.is_firing) == (ADDRESS, True)
    assert "standby: hard bounces >= 10 % (24 h: 1000 attempts, 120 hard bounces (12 %)" in seen.summary
    move(ip, "WARMING", reason="quarantine release")
    [seen] = alert_kinds.warmup_standby_observations(view)
    assert (seen.subject, seen.is_firing) == (ADDRESS, False)
    assert seen.summary == f"{ADDRESS} is WARMING now, no longer in warmup standby."


def test_an_ip_advances_at_most_once_a_day(monkeypatch):
    ip = warming_at(ADDRESS, 3)
    reporting(monkeypatch, {ADDRESS: {24: (1000, 0, 0)}})
    evaluate(T0 + DAY)
    evaluate(T0 + DAY + timedelta(hours=2))  # run again by hand the same morning
    row = IpWarmup.objects.get(ip=ip)
    assert row.step == 4 and [entry["action"] for entry in row.history[-2:]] == ["advance", "hold"]


@pytest.mark.parametrize(
    "permissions, field",
    [
        ((), "warmup"),
        (("deliverability.change_ipwarmup",), "state"),
        (("deliverability.change_sendingip",), "warmup"),
    ],
)
def test_an_actor_without_the_permissions_is_refused_and_nothing_changes(monkeypatch, permissions, field):
    ip = warming_at(ADDRESS, 3)
    reporting(monkeypatch, {ADDRESS: {24: (1000, 0, 0)}})
    before = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as refused:
        evaluate(actor=staff_with(*permissions))
    assert list(refused.value.message_dict) == [field]
    assert (IpWarmup.objects.get(ip=ip).step, AuditEvent.objects.count()) == (3, before)


def test_a_person_with_the_permissions_evaluates_and_is_named(monkeypatch):
    ip = warming_at(ADDRESS, 3)
    reporting(monkeypatch, {ADDRESS: {24: (1000, 0, 0)}})
    person = staff_with("deliverability.change_ipwarmup", "deliverability.change_sendingip")
    with time_machine.travel(T0 + 2 * DAY, tick=False):
        ip_warmup.warmup_evaluate_all(actor=person)
    assert IpWarmup.objects.get(ip=ip).history[-1]["by"] == "ops@example.com"
    assert AuditEvent.objects.get(action="deliverability.ip_warmup.advance").actor == person


def test_the_daily_task_evaluates_and_says_what_it_did(monkeypatch):
    warming_at(ADDRESS, 3)
    reporting(monkeypatch, {ADDRESS: {24: (1000, 0, 0)}})
    with time_machine.travel(T0 + 2 * DAY, tick=False):
        summary = tasks.evaluate_ip_warmup()
    assert summary.startswith("IP warmup: 1 WARMING IP(s) evaluated (1 advance): 192.0.2.10 advance, step 3 -> 4 of 18")
    declared = {task.name: task for task in declared_periodic_tasks()}["Evaluate IP warmup"]
    assert (declared.task, declared.crontab.hour) == (tasks.evaluate_ip_warmup.name, "5")


# --- an operator's change -------------------------------------------------------------------------------------------


def test_an_operator_puts_an_ip_on_a_step_audited_and_kept_in_its_history():
    ip = make_ip(ADDRESS)
    plan = WarmupPlan.objects.get()
    state = ip_warmup.ip_warmup_set(ip=ip, plan=plan, step=5, reason="moved from another host", actor=SYSTEM)
    assert (state.step, state.history[-1]["action"], state.history[-1]["reason"]) == (
        5,
        "set",
        "moved from another host",
    )
    event = AuditEvent.objects.get(action="deliverability.ip_warmup.set")
    assert event.description == f"{ADDRESS}: plan standard, step 5 (1500/day, 93/h): moved from another host"
    with pytest.raises(ValidationError) as refused:
        ip_warmup.ip_warmup_set(ip=ip, plan=plan, step=19, actor=SYSTEM)
    assert refused.value.message_dict == {"step": ["plan standard has 18 steps; choose 1 to 18."]}
    with pytest.raises(ValidationError) as refused:
        ip_warmup.ip_warmup_set(ip=ip, plan=plan, step=2, actor=staff_with("deliverability.view_ipwarmup"))
    assert list(refused.value.message_dict) == ["step"]
    assert IpWarmup.objects.get(ip=ip).step == 5


@pytest.mark.django_db
@time_machine.travel(datetime(2026, 12, 7, 11, 0, tzinfo=UTC), tick=False)
def test_the_policy_services_sends_are_carried_into_the_warmup_state_once(policy_counters):
    from deliverability import warmup_sends
    from deliverability.policy_counters import Count
    from deliverability.tests.factories import make_pool

    ip = make_ip("192.0.2.77", pool=make_pool("carry"))
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    policy_counters.try_add([Count("ipd:192.0.2.77:20261207", 100)], 7)

    first = warmup_sends.carry_policy_sends(at)
    again = warmup_sends.carry_policy_sends(at)
    policy_counters.try_add([Count("ipd:192.0.2.77:20261207", 100)], 3)
    later = warmup_sends.carry_policy_sends(at)

    assert (first, again, later) == ({"192.0.2.77": 7}, {}, {"192.0.2.77": 3})
    state = IpWarmup.objects.get(ip=ip)
    assert state.sent_in_step == 10 and state.last_sent_at == at


@pytest.mark.django_db
def test_a_new_warming_ip_shows_its_plan_step_and_caps_before_its_first_evaluation():
    from deliverability.tests.factories import make_pool
    from mail.tests.factories import run

    make_ip("192.0.2.78", pool=make_pool("fresh"))

    shown = run("sending_ip", "show", "192.0.2.78")

    assert "warmup        plan standard, step 1: at most 200 recipients a day, 12 an hour" in shown
    assert ip_warmup.warmup_summary(move(make_ip("192.0.2.79"), SendingIp.ACTIVE)) == ""
