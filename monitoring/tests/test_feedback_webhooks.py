"""Bounce and complaint webhooks: each stored event of a kind a webhook asks for reaches a receiver on loopback that
verifies the Standard Webhooks signature itself (stand_ins.py); a failed delivery is tried again on the outbox's
schedule with the same webhook-id, then given up; the admin makes the secret and shows it once; the delivery log;
bounces and complaints are pruned after DOCKSPACE_TRAFFIC_DAYS."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.test import Client, TestCase

from accounts.tests.factories import UserFactory
from monitoring import feedback, feedback_webhooks, standard_webhooks, tasks
from monitoring.models import FeedbackEvent, FeedbackWebhook, FeedbackWebhookDelivery
from monitoring.tests.feedback_traffic import NOW, fixture, the_fixtures_traffic
from monitoring.tests.stand_ins import webhook_receiver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def now():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def webhook(url, secret, name="crm", **kinds):
    hook = FeedbackWebhook(name=name, url=url, **kinds)
    hook.set_secret(secret)
    hook.save()
    return hook


def ingest(name):
    """Store a fixture; the deliveries it queues are sent after commit (eager tasks)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return feedback.feedback_ingest(raw=fixture(name), source="test")


@pytest.mark.usefixtures("outbound_to_loopback")
def test_a_hard_bounce_reaches_the_receiver_signed_with_its_details():
    the_fixtures_traffic()
    secret = standard_webhooks.generate_secret()
    with webhook_receiver(secret) as receiver:
        webhook(receiver.url + "/hooks/bounces", secret)
        ingest("exim_failed.eml")
    [request] = receiver.received
    assert request["error"] == "" and request["path"] == "/hooks/bounces"
    payload = request["payload"]
    assert payload["type"] == "feedback.hard_bounce"
    data = payload["data"]
    assert (data["kind"], data["status"], data["recipient"]) == ("hard", "5.1.1", "erin@example.net")
    assert (data["queue_id"], data["sending_ip"]) == ("6C3F55D7A4", "192.0.2.11")
    assert data["id"] == FeedbackEvent.objects.get().pk
    delivery = FeedbackWebhookDelivery.objects.get()
    assert request["headers"]["webhook-id"] == delivery.message_id
    assert int(request["headers"]["webhook-timestamp"]) == int(NOW.timestamp())
    assert (delivery.status, delivery.attempts, delivery.answer) == ("sent", 1, f"{receiver.url} answered HTTP 204")


@pytest.mark.usefixtures("outbound_to_loopback")
def test_each_webhook_gets_only_the_kinds_it_asks_for():
    secret = standard_webhooks.generate_secret()
    with webhook_receiver(secret) as receiver:
        webhook(receiver.url + "/hard", secret, name="hard only", sends_complaints=False)
        webhook(receiver.url + "/all", secret, name="all", sends_soft_bounces=True)
        webhook(receiver.url + "/off", secret, name="off", is_enabled=False, sends_soft_bounces=True)
        ingest("postfix_failed.eml")  # one hard, one soft
        ingest("arf_yahoo.eml")  # a complaint
        ingest("auto_reply.eml")  # other: never sent
    got = sorted((r["path"], r["payload"]["type"]) for r in receiver.received)
    assert got == [
        ("/all", "feedback.complaint"),
        ("/all", "feedback.hard_bounce"),
        ("/all", "feedback.soft_bounce"),
        ("/hard", "feedback.hard_bounce"),
    ]
    assert all(r["error"] == "" for r in receiver.received)


@pytest.mark.usefixtures("outbound_to_loopback")
def test_a_failed_delivery_is_tried_again_on_the_outbox_schedule_with_the_same_id(now):
    secret = standard_webhooks.generate_secret()
    with webhook_receiver(secret, fail_next=2) as receiver:
        webhook(receiver.url, secret)
        ingest("gmail_failed.eml")
        delivery = FeedbackWebhookDelivery.objects.get()
        assert (delivery.status, delivery.attempts) == ("queued", 1) and "HTTP 503" in delivery.error
        assert delivery.next_attempt_at == NOW + timedelta(seconds=60)
        now.move_to(NOW + timedelta(seconds=59))
        assert tasks.drain_feedback_webhooks() == "0 expired"  # not due yet
        now.move_to(NOW + timedelta(seconds=60))
        tasks.drain_feedback_webhooks()
        delivery.refresh_from_db()
        assert (delivery.status, delivery.next_attempt_at) == ("queued", NOW + timedelta(seconds=60 + 120))
        now.move_to(NOW + timedelta(seconds=180))
        assert tasks.drain_feedback_webhooks() == "0 expired, 1 sent"
        assert feedback_webhooks.feedback_webhook_deliver(delivery_id=delivery.pk).status is None  # once, not twice
    assert len(receiver.received) == 3
    assert {r["headers"]["webhook-id"] for r in receiver.received} == {delivery.message_id}
    assert receiver.received[-1]["payload"]["type"] == "feedback.hard_bounce"


@pytest.mark.usefixtures("outbound_to_loopback")
def test_after_the_last_attempt_it_is_failed_with_the_reason(settings, now):
    settings.DOCKSPACE_OUTBOX_MAX_ATTEMPTS = 2
    with webhook_receiver(standard_webhooks.generate_secret()) as receiver:  # it knows another secret: 400
        webhook(receiver.url, standard_webhooks.generate_secret())
        ingest("gmail_failed.eml")
        now.move_to(NOW + timedelta(seconds=60))
        tasks.drain_feedback_webhooks()
    delivery = FeedbackWebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.error) == ("failed", 2, f"{receiver.url} answered HTTP 400")
    assert [r["error"] for r in receiver.received] == ["no matching signature"] * 2


def test_a_receiver_on_a_refused_address_fails_at_once():
    secret = standard_webhooks.generate_secret()
    with webhook_receiver(secret) as receiver:  # loopback, not allowed without DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS
        webhook(receiver.url, secret)
        ingest("gmail_failed.eml")
    delivery = FeedbackWebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 1) and "127.0.0.1" in delivery.error
    assert receiver.received == []


@pytest.mark.usefixtures("outbound_to_loopback")
def test_a_delivery_whose_worker_died_is_sent_by_the_drain(now):
    secret = standard_webhooks.generate_secret()
    with webhook_receiver(secret) as receiver:
        webhook(receiver.url, secret)
        feedback.feedback_ingest(raw=fixture("gmail_failed.eml"), source="test")  # no commit callbacks: no task ran
        FeedbackWebhookDelivery.objects.update(status="sending", claimed_at=NOW)
        now.move_to(NOW + timedelta(minutes=9))
        assert "sent" not in tasks.drain_feedback_webhooks()
        now.move_to(NOW + timedelta(minutes=11))
        assert tasks.drain_feedback_webhooks() == "0 expired, 1 sent"
    assert len(receiver.received) == 1


# --- the admin ------------------------------------------------------------------------------------------------


def admin_client(*codenames):
    person = UserFactory(is_staff=True)
    person.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(person)
    return client


ADD = "/admin/monitoring/feedbackwebhook/add/"
FORM = {"name": "crm", "url": "https://crm.example.com/hooks/bounces", "is_enabled": "on", "sends_hard_bounces": "on"}


@pytest.mark.usefixtures("outbound_to_loopback")
def test_a_webhook_added_in_the_admin_shows_its_generated_secret_once_and_signs_with_it():
    client = admin_client("add_feedbackwebhook", "change_feedbackwebhook", "view_feedbackwebhook")
    response = client.post(ADD, FORM, follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert len(shown) == 2 and "it is not shown again" in shown[0]
    secret = shown[0].split("signing secret is ", 1)[1].split(" ", 1)[0]
    assert secret.startswith("whsec_")
    hook = FeedbackWebhook.objects.get()
    assert secret not in hook.secret_encrypted and hook.secret() == secret
    page = client.get(f"/admin/monitoring/feedbackwebhook/{hook.pk}/change/").content.decode()
    assert secret not in page and "set (stored encrypted; never shown again)" in page
    with webhook_receiver(secret) as receiver:
        FeedbackWebhook.objects.update(url=receiver.url)
        ingest("gmail_failed.eml")
    assert [r["error"] for r in receiver.received] == [""]
    assert client.get("/admin/monitoring/feedbackwebhookdelivery/").status_code == 403  # needs view permission
    viewer = admin_client("view_feedbackwebhookdelivery")
    assert "feedback.hard_bounce" in viewer.get("/admin/monitoring/feedbackwebhookdelivery/").content.decode()


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"url": "ftp://crm.example.com/"}, "url", "must be an http:// or https:// URL with a host."),
        ({"url": "https://user:pw@crm.example.com/"}, "url", "must not hold a user name or password"),
        ({"new_secret": "hunter2"}, "new_secret", "the signing secret must start with 'whsec_'"),
        ({"sends_hard_bounces": ""}, "sends_hard_bounces", "tick at least one kind of event"),
    ],
)
def test_the_admin_refuses_a_bad_webhook_naming_the_field(changes, field, message):
    client = admin_client("add_feedbackwebhook", "change_feedbackwebhook", "view_feedbackwebhook")
    form = {key: value for key, value in {**FORM, **changes}.items() if value}
    response = client.post(ADD, form)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert any(message in error for error in errors[field]), errors
    assert not FeedbackWebhook.objects.exists()


def test_a_new_secret_replaces_the_old_and_is_shown_once():
    old = standard_webhooks.generate_secret()
    hook = webhook("https://crm.example.com/", old)
    client = admin_client("change_feedbackwebhook", "view_feedbackwebhook")
    response = client.post(
        "/admin/monitoring/feedbackwebhook/",
        {"action": "generate_secret", "_selected_action": [hook.pk]},
        follow=True,
    )
    [shown] = [str(m) for m in response.context["messages"]]
    hook.refresh_from_db()
    assert hook.secret() != old and hook.secret() in shown


def test_who_may_only_view_a_webhook_sees_its_page_without_the_secret_input():
    hook = webhook("https://crm.example.com/hooks/bounces?token=abc", standard_webhooks.generate_secret())
    response = admin_client("view_feedbackwebhook").get(f"/admin/monitoring/feedbackwebhook/{hook.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "set (stored encrypted; never shown again)" in page and hook.secret() not in page
    assert 'name="new_secret"' not in page and "paste the receiver" not in page
    assert 'name="name"' not in page  # read only: no field to change


# --- retention ------------------------------------------------------------------------------------------------


def test_bounces_and_complaints_older_than_the_traffic_days_are_pruned(settings, now):
    settings.TRAFFIC_DAYS = 30
    feedback.feedback_ingest(raw=fixture("gmail_failed.eml"), source="test")
    old = FeedbackEvent.objects.get()
    FeedbackWebhookDelivery.objects.create(
        webhook_name="crm", event=old, event_type="feedback.hard_bounce", message_id="msg_1", payload={}, status="sent"
    )
    FeedbackWebhookDelivery.objects.create(
        webhook_name="crm", event=old, event_type="feedback.hard_bounce", message_id="msg_2", payload={}
    )  # still queued: kept until sent or given up
    now.move_to(NOW + timedelta(days=30) - timedelta(seconds=1))
    feedback.feedback_ingest(raw=fixture("exim_failed.eml"), source="test")
    assert tasks.prune_feedback().startswith("deleted 0 bounce(s)")
    now.move_to(NOW + timedelta(days=30, seconds=1))
    assert tasks.prune_feedback() == (
        "deleted 1 bounce(s) and complaint(s) and 1 webhook delivery(ies) older than 30 days"
    )
    assert list(FeedbackEvent.objects.values_list("recipient", flat=True)) == ["erin@example.net"]
    assert list(FeedbackWebhookDelivery.objects.values_list("message_id", "event")) == [("msg_2", None)]
