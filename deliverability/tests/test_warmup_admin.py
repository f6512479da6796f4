"""Warmup plans and IPs' warmup in the admin: plans added and changed through the services with errors naming the
field, one default, a plan in use or the default not removable; an IP's step set with a reason, its history shown
read-only; staff who may only view see the pages and change nothing."""

import pytest
from django.core.exceptions import ValidationError

from accounts.models import AuditEvent
from accounts.tests.factories import StaffFactory
from deliverability import ip_warmup, warmup_plans
from deliverability.models import IpWarmup, WarmupPlan
from deliverability.tests.factories import make_ip, signed_in, staff_with
from dockspace.tests.admin_pages import errors, shown_messages

pytestmark = pytest.mark.django_db

PLANS = "/admin/deliverability/warmupplan/"
WARMUPS = "/admin/deliverability/ipwarmup/"

PLAN_FORM = {
    "name": "gentle",
    "steps": "[50, 100, 200]",
    "growth_percent": "20",
    "target_daily": "1000",
    "advance_bounce_below": "1",
    "advance_complaint_below": "0.05",
    "step_back_bounce_at": "3",
    "step_back_complaint_at": "0.1",
    "standby_bounce_at": "8",
    "standby_complaint_at": "0.3",
    "min_attempts": "200",
}


@pytest.fixture
def root():
    return signed_in(StaffFactory(email="root@example.com", is_superuser=True))


def test_adding_a_plan_goes_through_the_service_and_shows_each_steps_caps(root):
    response = root.post(f"{PLANS}add/", PLAN_FORM)
    assert response.status_code == 302
    plan = WarmupPlan.objects.get(name="gentle")
    assert (plan.steps, plan.is_default) == ([50, 100, 200], False)
    event = AuditEvent.objects.get(action="deliverability.warmup_plan.add")
    assert event.description == "Added warmup plan gentle: 12 steps, 50/day to 1000/day."
    page = root.get(f"{PLANS}{plan.pk}/change/").content.decode()
    assert "<tr><td>1</td><td>50</td><td>3</td></tr>" in page and "<tr><td>12</td><td>1000</td><td>62</td></tr>" in page


@pytest.mark.parametrize(
    "edits, field, words",
    [
        ({"steps": "[200, 100]"}, "steps", "each step must send more than the one before"),
        ({"steps": "200, 400"}, "steps", "Enter a valid JSON."),
        ({"steps": '{"a": 1}'}, "steps", "as a list of whole numbers"),
        ({"steps": "[" + "9" * 5000 + "]"}, "steps", "give the daily volumes as a JSON list of whole numbers"),
        ({"steps": "[" * 100_000}, "steps", "give the daily volumes as a JSON list of whole numbers"),
        ({"advance_bounce_below": "4"}, "advance_bounce_below", "below the rate that steps back"),
        ({"standby_complaint_at": "0.09"}, "step_back_complaint_at", "must not be above the rate that pulls"),
        ({"growth_percent": "0"}, "growth_percent", "more than 0"),
        ({"name": "standard"}, "name", "already exists"),
    ],
)
def test_a_plan_that_cannot_work_is_refused_naming_the_field(root, edits, field, words):
    response = root.post(f"{PLANS}add/", {**PLAN_FORM, **edits})
    found = errors(response)
    assert list(found) == [field] and words in found[field][0]
    assert not WarmupPlan.objects.filter(name="gentle").exists()


def test_marking_a_plan_the_default_takes_it_from_the_other_which_cannot_be_unmarked_or_removed(root):
    standard = WarmupPlan.objects.get(name="standard")
    unmark = root.post(f"{PLANS}{standard.pk}/change/", {**PLAN_FORM, "name": "standard", "steps": "[200, 400]"})
    assert "is_default" in errors(unmark)
    refused = root.post(f"{PLANS}{standard.pk}/delete/", {"post": "yes"}, follow=True)
    assert "standard is the default plan: mark another as the default first." in " ".join(shown_messages(refused))
    assert root.post(f"{PLANS}add/", {**PLAN_FORM, "is_default": "on"}).status_code == 302
    assert list(WarmupPlan.objects.filter(is_default=True).values_list("name", flat=True)) == ["gentle"]
    assert root.post(f"{PLANS}{standard.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not WarmupPlan.objects.filter(name="standard").exists()


def test_a_plan_an_ip_follows_is_not_removed(root):
    warmup_plans.warmup_plan_add(name="gentle", steps=[50, 100], target_daily=100, is_default=True)
    standard = WarmupPlan.objects.get(name="standard")
    ip_warmup.ip_warmup_set(ip=make_ip("192.0.2.1"), plan=standard, step=1)
    refused = root.post(f"{PLANS}{standard.pk}/delete/", {"post": "yes"}, follow=True)
    page = refused.content.decode()
    assert "<title>Cannot delete warmup plan" in page  # its IPs' warmup goes only with their IPs
    assert WarmupPlan.objects.filter(name="standard").exists()
    with pytest.raises(ValidationError) as by_service:  # the service says so too, whoever calls it
        warmup_plans.warmup_plan_remove(plan=standard)
    assert by_service.value.message_dict == {
        "name": ["standard is followed by 192.0.2.1: put them on another plan first."]
    }


def test_staff_who_may_only_view_see_the_plan_and_change_nothing():
    browser = signed_in(staff_with("deliverability.view_warmupplan"))
    standard = WarmupPlan.objects.get(name="standard")
    page = browser.get(f"{PLANS}{standard.pk}/change/")
    assert page.status_code == 200 and 'name="steps"' not in page.content.decode()
    assert browser.post(f"{PLANS}{standard.pk}/change/", {**PLAN_FORM, "name": "x"}).status_code == 403
    assert browser.post(f"{PLANS}add/", PLAN_FORM).status_code == 403
    assert WarmupPlan.objects.get().name == "standard"


def test_an_ips_step_is_set_with_a_reason_and_its_history_is_shown_read_only(root):
    ip = make_ip("192.0.2.1")
    standard = WarmupPlan.objects.get()
    added = root.post(f"{WARMUPS}add/", {"ip": ip.pk, "plan": standard.pk, "step": "2", "reason": "was warm elsewhere"})
    assert added.status_code == 302
    state = IpWarmup.objects.get(ip=ip)
    url = f"{WARMUPS}{state.pk}/change/"
    too_far = root.post(url, {"plan": standard.pk, "step": "40", "reason": ""})
    assert errors(too_far) == {"step": ["plan standard has 18 steps; choose 1 to 18."]}
    assert root.post(url, {"plan": standard.pk, "step": "3", "reason": "bounces were fine"}).status_code == 302
    page = root.get(url).content.decode()
    assert "bounces were fine" in page and "was warm elsewhere" in page and "700 / 43" in page
    assert 'name="history"' not in page and 'name="sent_in_step"' not in page
    assert [e.description for e in AuditEvent.objects.filter(action="deliverability.ip_warmup.set").order_by("pk")] == [
        "192.0.2.1: plan standard, step 2 (400/day, 25/h): was warm elsewhere",
        "192.0.2.1: plan standard, step 3 (700/day, 43/h): bounces were fine",
    ]
    assert root.post(f"{WARMUPS}{state.pk}/delete/", {"post": "yes"}).status_code == 403  # it goes with its IP


def test_staff_who_may_only_view_an_ips_warmup_cannot_set_its_step():
    ip = make_ip("192.0.2.1")
    state = ip_warmup.ip_warmup_set(ip=ip, plan=WarmupPlan.objects.get(), step=2)
    browser = signed_in(staff_with("deliverability.view_ipwarmup"))
    url = f"{WARMUPS}{state.pk}/change/"
    assert browser.get(url).status_code == 200
    assert browser.post(url, {"plan": state.plan_id, "step": "5", "reason": ""}).status_code == 403
    assert IpWarmup.objects.get().step == 2
