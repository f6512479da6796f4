"""Admin → Outbound mail: recipients, subjects and delivery state, never a body or a link; "Retry now" needs its
permission and is audited."""

import email
import re
from urllib.parse import quote, quote_plus

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent, OutboundMessage
from accounts.outbox import outbound_messages_retry
from accounts.tests.factories import PASSWORD, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST = "/admin/accounts/outboundmessage/"


def signed_in(user):
    browser = Client()
    browser.post("/login/", {"email": user.email, "password": PASSWORD})
    return browser


@pytest.fixture
def reset_message(settings, monkeypatch):
    """A password-reset message for ann, still in the outbox (no worker has sent it), and its link."""
    settings.EMAIL_BACKEND = "accounts.outbox.OutboxBackend"
    monkeypatch.setattr("accounts.outbox.queue_task", lambda *args, **kwargs: None)
    UserFactory(email="ann@example.com")
    Client().post("/password/reset/", {"email": "ann@example.com"})
    row = OutboundMessage.objects.get()
    body = email.message_from_bytes(bytes(row.mime)).get_payload(decode=True).decode()
    link = re.search(r"/password/reset/\S+/", body).group(0)
    return row, link


def listed(response):
    return response.content.decode().count('name="_selected_action"')


def staff_with(*codenames):
    person = UserFactory(email="helpdesk@example.com", is_staff=True)
    person.user_permissions.add(*Permission.objects.filter(content_type__app_label="accounts", codename__in=codenames))
    return person


def test_the_list_the_page_and_searches_show_recipient_and_subject_but_never_the_body(reset_message):
    row, link = reset_message
    token = link.rstrip("/").rsplit("/", 1)[-1]
    browser = signed_in(StaffFactory(email="root@example.com"))
    searches = {"search by recipient": "ann@example", "search by token": token, "search by link": link}
    pages = {"list": browser.get(LIST), "page": browser.get(f"{LIST}{row.pk}/change/")}
    pages.update({name: browser.get(LIST, {"q": query}) for name, query in searches.items()})
    for name, response in pages.items():
        assert response.status_code == 200, name
        text = response.content.decode()
        query = searches.get(name)
        if query:  # the search box shows what was typed: that is not the row's body
            text = text.replace(query, "").replace(quote(query, safe=""), "").replace(quote_plus(query), "")
        assert token not in text and "/password/reset/" not in text, name
    for name in ("list", "page", "search by recipient"):
        text = pages[name].content.decode()
        assert "ann@example.com" in text and row.subject in text, name  # the positive control
    assert listed(pages["search by recipient"]) == 1
    assert listed(pages["search by token"]) == listed(pages["search by link"]) == 0  # the body is not searched


def test_nobody_adds_changes_or_deletes_a_message_by_hand(reset_message):
    row, _ = reset_message
    browser = signed_in(StaffFactory(email="root@example.com"))
    assert browser.get(f"{LIST}add/").status_code == 403
    assert browser.get(f"{LIST}{row.pk}/delete/").status_code == 403
    browser.post(f"{LIST}{row.pk}/change/", {"subject": "changed"})
    row.refresh_from_db()
    assert row.subject != "changed"
    page = browser.get(LIST).content.decode()
    assert "delete_selected" not in page and "retry_now" in page


def test_retry_now_sends_it_at_once_and_is_audited(reset_message):
    row, _ = reset_message
    OutboundMessage.objects.filter(pk=row.pk).update(
        status="failed", attempts=5, next_attempt_at=timezone.now() + timezone.timedelta(hours=1)
    )
    helpdesk = staff_with("view_outboundmessage", "retry_outboundmessage")
    response = signed_in(helpdesk).post(LIST, {"action": "retry_now", "_selected_action": [row.pk]}, follow=True)
    assert "Sending 1 message(s) now." in response.content.decode()
    row.refresh_from_db()
    assert row.status == "queued" and row.next_attempt_at <= timezone.now()
    event = AuditEvent.objects.get(action="outbox.retry")
    assert event.actor == helpdesk and event.target_id == str(row.pk)
    assert "/password/reset/" not in event.description + event.target_label


def test_retry_now_is_refused_to_staff_without_the_permission(reset_message):
    row, _ = reset_message
    OutboundMessage.objects.filter(pk=row.pk).update(status="failed", attempts=5)
    viewer = staff_with("view_outboundmessage")
    browser = signed_in(viewer)
    page = browser.get(LIST)
    assert page.status_code == 200 and "ann@example.com" in page.content.decode()
    assert "retry_now" not in page.content.decode()  # not offered
    browser.post(LIST, {"action": "retry_now", "_selected_action": [row.pk]})
    with pytest.raises(ValidationError, match="retry_outboundmessage"):  # nor allowed by the service
        outbound_messages_retry(messages=OutboundMessage.objects.all(), actor=viewer)
    row.refresh_from_db()
    assert row.status == "failed" and not AuditEvent.objects.filter(action="outbox.retry").exists()


def test_a_sent_or_expired_message_is_not_sent_again(reset_message):
    row, _ = reset_message
    root = StaffFactory(email="root@example.com")
    for status in ("sent", "expired"):
        OutboundMessage.objects.filter(pk=row.pk).update(status=status, mime=b"")
        with pytest.raises(ValidationError, match="cannot be sent again"):
            outbound_messages_retry(messages=[row], actor=root)
    OutboundMessage.objects.filter(pk=row.pk).update(status="failed", mime=b"x")
    assert outbound_messages_retry(messages=[row], actor=root) == 1  # the control: a failed one is


def test_a_filter_on_the_stored_message_is_refused_so_no_link_can_be_guessed(reset_message):
    row, link = reset_message
    viewer = signed_in(staff_with("view_outboundmessage"))
    # Counting the rows a filter lets through would read the link a character at a time.
    for lookup in ("mime__regex", "mime__contains", "mime"):
        assert viewer.get(LIST, {lookup: link[:12]}).status_code == 400, lookup
    # Positive control: the filters the list offers work.
    allowed = viewer.get(LIST, {"status__exact": row.status})
    assert allowed.status_code == 200 and listed(allowed) == 0  # view-only: no action checkboxes
    assert "ann@example.com" in allowed.content.decode()
