"""The admin's bounces and complaints: listed for staff who may view them, filtered by kind and sending IP, searched
by recipient or Message-ID; each one's page shows what the report said; read only; the message link only for who
may view mail messages."""

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.tests.factories import UserFactory
from monitoring import feedback
from monitoring.models import FeedbackEvent, MailMessage
from monitoring.tests.feedback_traffic import IP_B, NOW, fixture, the_fixtures_traffic

pytestmark = pytest.mark.django_db

EVENTS = "/admin/monitoring/feedbackevent/"


@pytest.fixture(autouse=True)
def stored():
    with time_machine.travel(NOW, tick=False):
        the_fixtures_traffic()
        for name in ("postfix_failed.eml", "gmail_failed.eml", "arf_microsoft_jmrp.eml", "auto_reply.eml"):
            feedback.feedback_ingest(raw=fixture(name), source="test")
        yield


def signed_in(*codenames):
    person = UserFactory(email="viewer@example.com", is_staff=True)
    person.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(person)
    return client


def listed(client, query=""):
    response = client.get(EVENTS + query)
    assert response.status_code == 200
    return [str(row) for row in response.context["cl"].result_list]


def test_staff_who_may_view_them_see_every_bounce_and_complaint():
    assert sorted(listed(signed_in("view_feedbackevent"))) == [
        "complaint abuse leo@hotmail.com",
        "hard 5.1.1 bob@example.org",
        "hard 5.1.1 frank.nosuch@gmail.com",
        "other -",
        "soft 5.2.2 carol@example.org",
    ]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("?kind__exact=hard", ["hard 5.1.1 bob@example.org", "hard 5.1.1 frank.nosuch@gmail.com"]),
        ("?kind__exact=complaint", ["complaint abuse leo@hotmail.com"]),
        (f"?sending_ip={IP_B}", ["complaint abuse leo@hotmail.com", "hard 5.1.1 frank.nosuch@gmail.com"]),
        ("?q=carol@example.org", ["soft 5.2.2 carol@example.org"]),
        ("?q=%3C7d4a66e8b5@example.com%3E", ["hard 5.1.1 frank.nosuch@gmail.com"]),  # pasted with its brackets
        ("?q=4F1D33B5E2", ["hard 5.1.1 bob@example.org", "soft 5.2.2 carol@example.org"]),
        ("?received=24h&kind__exact=soft", ["soft 5.2.2 carol@example.org"]),
        ("?received_from=2026-12-08&received_to=2026-12-08&kind__exact=soft", ["soft 5.2.2 carol@example.org"]),
        ("?received_from=2026-12-09", []),
    ],
)
def test_filters_and_search(query, expected):
    assert sorted(listed(signed_in("view_feedbackevent"), query)) == expected


def test_one_events_page_shows_the_report_and_links_the_message_for_who_may_view_messages():
    event = FeedbackEvent.objects.get(recipient="frank.nosuch@gmail.com")
    message = MailMessage.objects.get(queue_id="7D4A66E8B5")
    page = signed_in("view_feedbackevent", "view_mailmessage").get(f"{EVENTS}{event.pk}/change/").content.decode()
    assert "550-5.1.1 The email account that you tried to reach does not exist." in page
    assert "5.1.1 failed: bad destination mailbox address (the address does not exist)" in page
    assert f'href="/admin/monitoring/mailmessage/{message.pk}/change/"' in page
    assert "192.0.2.11/7D4A66E8B5" in page  # the trace header
    assert 'name="_save"' not in page  # read only


def test_without_the_permission_to_view_messages_the_queue_id_is_not_a_link():
    event = FeedbackEvent.objects.get(recipient="frank.nosuch@gmail.com")
    page = signed_in("view_feedbackevent").get(f"{EVENTS}{event.pk}/change/").content.decode()
    assert "7D4A66E8B5" in page
    assert "/admin/monitoring/mailmessage/" not in page


@pytest.mark.parametrize("codenames", [(), ("change_feedbackevent",), ("view_mailmessage",)])
def test_staff_without_the_view_permission_are_refused(codenames):
    client = signed_in(*codenames)
    assert client.get(EVENTS).status_code == 403
    event = FeedbackEvent.objects.first()
    assert client.get(f"{EVENTS}{event.pk}/change/").status_code in (302, 403)


def test_nothing_is_added_changed_or_deleted_here():
    client = signed_in("view_feedbackevent", "add_feedbackevent", "change_feedbackevent", "delete_feedbackevent")
    event = FeedbackEvent.objects.first()
    assert client.get(f"{EVENTS}add/").status_code == 403
    assert client.post(f"{EVENTS}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    client.post(f"{EVENTS}{event.pk}/change/", {"reason": "edited"})
    assert FeedbackEvent.objects.get(pk=event.pk).reason != "edited"
