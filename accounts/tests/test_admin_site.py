"""The admin index: Celery beat's internals are one "Scheduler" section, last, for superusers only. Every change list
turns a filter value out of a date's range into Django's "bad filter" redirect, not a 500."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.tests.factories import PASSWORD, StaffFactory

pytestmark = pytest.mark.django_db

SCHEDULER_MODELS = ["Clocked", "Crontabs", "Intervals", "Periodic tasks", "Solar events"]


def signed_in(user):
    browser = Client()
    browser.post("/login/", {"email": user.email, "password": PASSWORD})
    return browser


def test_a_superuser_sees_one_scheduler_section_at_the_end_of_the_admin_index():
    response = signed_in(StaffFactory(email="root@example.com")).get("/admin/")
    apps = response.context["app_list"]
    assert apps[-1]["name"] == "Scheduler"
    assert sorted(model["name"] for model in apps[-1]["models"]) == SCHEDULER_MODELS
    assert [app["name"] for app in apps].count("Scheduler") == 1
    assert "Periodic Tasks" not in [app["name"] for app in apps[:-1]]


def test_staff_with_every_scheduler_permission_but_not_superuser_neither_see_nor_open_it():
    staff = StaffFactory(email="mailops@example.com", is_superuser=False)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="django_celery_beat"))
    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="mail", codename__startswith="view"))
    browser = signed_in(staff)
    response = browser.get("/admin/")
    names = [app["name"] for app in response.context["app_list"]]
    assert "Scheduler" not in names and "Periodic Tasks" not in names
    assert names  # positive control: the mail section is still there for them
    for url in ["/admin/django_celery_beat/periodictask/", "/admin/django_celery_beat/crontabschedule/add/"]:
        assert browser.get(url).status_code == 403


def test_a_superuser_opens_the_periodic_tasks():
    browser = signed_in(StaffFactory(email="root@example.com"))
    assert browser.get("/admin/django_celery_beat/periodictask/").status_code == 200


@pytest.mark.parametrize(
    ("url", "lookup"),
    [
        ("/admin/accounts/outboundmessage/", "created_at__year"),  # the outbox, by its date hierarchy
        ("/admin/accounts/auditevent/", "at__year"),
        ("/admin/monitoring/hostprobe/", "started_at__year"),
    ],
)
@pytest.mark.parametrize("year", ["99999999999999999999", "9999"])  # OverflowError; ValueError (no year 10000)
def test_a_date_filter_out_of_range_redirects_like_any_bad_filter(url, lookup, year):
    browser = Client()
    browser.force_login(StaffFactory(email="root@example.com"))
    response = browser.get(url, {lookup: year})
    assert (response.status_code, response["Location"]) == (302, f"{url}?e=1")
    # Positive control: a year in range lists.
    assert browser.get(url, {lookup: "2025"}).status_code == 200
