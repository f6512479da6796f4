"""Webhook notifications reach a receiver on loopback that verifies the Standard Webhooks signature itself (its
verifier is written from the specification in stand_ins.py): fired, repeat and resolved, each signed; a failed
delivery is retried with the same webhook-id; redirects are not followed; only http(s) URLs are used."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import TestCase

from dockspace import outbound_http
from monitoring import alert_services, channels, standard_webhooks
from monitoring.alert_models import AlertEvent
from monitoring.tests.factories import switch, switch_rule, webhook_channel
from monitoring.tests.stand_ins import InvalidSignature, verify, webhook_receiver

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("outbound_to_loopback")]

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

# The example of the Standard Webhooks specification (github.com/standard-webhooks/standard-webhooks).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def spec_headers(**changes):
    headers = {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TIMESTAMP), "webhook-signature": SPEC_SIGNATURE}
    return {**headers, **changes}


def test_dockspace_signs_the_specifications_example_as_published():
    assert standard_webhooks.signature(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


@pytest.mark.parametrize(
    ("headers", "body", "now", "error"),
    [
        (spec_headers(), SPEC_BODY, SPEC_TIMESTAMP, None),
        (spec_headers(), SPEC_BODY, SPEC_TIMESTAMP + 299, None),
        (spec_headers(), SPEC_BODY, SPEC_TIMESTAMP - 299, None),
        (spec_headers(), SPEC_BODY, SPEC_TIMESTAMP + 301, "too old"),
        (spec_headers(), SPEC_BODY, SPEC_TIMESTAMP - 301, "too new"),
        (spec_headers(), b'{"test": 2432232315}', SPEC_TIMESTAMP, "no matching signature"),
        (spec_headers(**{"webhook-id": "msg_other"}), SPEC_BODY, SPEC_TIMESTAMP, "no matching signature"),
        (spec_headers(**{"webhook-signature": "v2," + SPEC_SIGNATURE[3:]}), SPEC_BODY, SPEC_TIMESTAMP, "no matching"),
        (spec_headers(**{"webhook-signature": "v1,bad v1,bad2 " + SPEC_SIGNATURE}), SPEC_BODY, SPEC_TIMESTAMP, None),
        ({"webhook-id": SPEC_ID}, SPEC_BODY, SPEC_TIMESTAMP, "missing"),
    ],
    ids=[
        "valid",
        "skew +299s",
        "skew -299s",
        "older than 5 min",
        "newer than 5 min",
        "body changed",
        "id changed",
        "unknown version",
        "one of several signatures",
        "headers missing",
    ],
)
def test_the_receivers_verifier_follows_the_specification(headers, body, now, error):
    if error is None:
        assert verify(SPEC_SECRET, headers, body, now=now) == json.loads(body)
    else:
        with pytest.raises(InvalidSignature, match=error):
            verify(SPEC_SECRET, headers, body, now=now)


def evaluate_and_send(at):
    """One evaluation at START + at seconds; the notifications it queues are sent (eager tasks) after commit."""
    with (
        time_machine.travel(START + timedelta(seconds=at), tick=False),
        TestCase.captureOnCommitCallbacks(execute=True),
    ):
        alert_services.alerts_evaluate()


def test_fired_repeat_and_resolved_arrive_signed():
    secret = standard_webhooks.generate_secret()
    with webhook_receiver(secret) as receiver:
        rule = switch_rule(webhook_channel(receiver.url + "/hooks/dockspace?team=ops", secret), for_seconds=60)
        switch(is_on=True, value=42)
        evaluate_and_send(0)  # pending: nothing sent
        assert receiver.received == []
        evaluate_and_send(60)  # fired
        evaluate_and_send(60 + rule.repeat_seconds)  # repeat
        switch(is_on=False)
        evaluate_and_send(120 + rule.repeat_seconds)  # resolved
    assert [r["error"] for r in receiver.received] == ["", "", ""]
    payloads = [r["payload"] for r in receiver.received]
    assert [p["type"] for p in payloads] == ["alert.fired", "alert.repeat", "alert.resolved"]
    assert {r["path"] for r in receiver.received} == {"/hooks/dockspace?team=ops"}
    fired = payloads[0]["data"]
    assert fired["kind"] == "extension_app.switch_on" and fired["subject"] == "alarm-1"
    assert fired["state"] == "firing" and fired["value"] == 42 and fired["summary"] == "alarm-1 is on"
    assert fired["url"].startswith("https://dockspace.test/admin/monitoring/alert/")
    assert payloads[2]["data"]["state"] == "resolved" and payloads[2]["data"]["resolved_at"]
    ids = [r["headers"]["webhook-id"] for r in receiver.received]
    assert len(set(ids)) == 3 and all(i.startswith("msg_") for i in ids)
    stamps = [int(r["headers"]["webhook-timestamp"]) for r in receiver.received]
    assert stamps == [int((START + timedelta(seconds=s)).timestamp()) for s in (60, 3660, 3720)]
    assert all(r["headers"]["Content-Type"] == "application/json" for r in receiver.received)
    assert list(AlertEvent.objects.values_list("status", flat=True)) == ["sent"] * 3


def test_a_receiver_with_another_secret_refuses_and_the_notification_is_retried():
    with webhook_receiver(standard_webhooks.generate_secret()) as receiver:
        switch_rule(webhook_channel(receiver.url, standard_webhooks.generate_secret()), for_seconds=0)
        switch(is_on=True)
        evaluate_and_send(0)
    assert receiver.received[0]["error"] == "no matching signature"
    event = AlertEvent.objects.get()
    assert (event.status, event.attempts, event.error) == ("queued", 1, f"{receiver.url} answered HTTP 400")


def test_a_failed_delivery_is_retried_later_with_the_same_webhook_id():
    secret = standard_webhooks.generate_secret()
    with webhook_receiver(secret, fail_next=1) as receiver:
        switch_rule(webhook_channel(receiver.url, secret), for_seconds=0)
        switch(is_on=True)
        evaluate_and_send(0)
        event = AlertEvent.objects.get()
        assert (event.status, event.attempts) == ("queued", 1)
        assert event.next_attempt_at == START + timedelta(seconds=30) and "HTTP 503" in event.error
        with time_machine.travel(START + timedelta(seconds=29), tick=False):
            assert alert_services.notification_send(event_id=event.pk).status is None  # not due yet
        assert len(receiver.received) == 1
        with time_machine.travel(START + timedelta(seconds=30), tick=False):
            assert alert_services.notification_send(event_id=event.pk).status == "sent"
            assert alert_services.notification_send(event_id=event.pk).status is None  # sent once, not twice
    assert len(receiver.received) == 2
    first, second = receiver.received
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] == event.message_id
    assert second["payload"]["type"] == "alert.fired"


def test_a_notification_whose_task_was_lost_is_sent_by_a_later_evaluation():
    secret = standard_webhooks.generate_secret()
    with webhook_receiver(secret) as receiver:
        switch_rule(webhook_channel(receiver.url, secret), for_seconds=0)
        switch(is_on=True)
        with time_machine.travel(START, tick=False):
            alert_services.alerts_evaluate()  # committed without running the queued task: the task is lost
        assert receiver.received == []
        evaluate_and_send(60)
        assert receiver.received == []  # not yet given up on the first task
        evaluate_and_send(alert_services.LOST_TASK.total_seconds())
    assert [r["payload"]["type"] for r in receiver.received] == ["alert.fired"]
    assert AlertEvent.objects.get().status == "sent"


def test_a_notification_is_given_up_after_the_last_attempt():
    secret = standard_webhooks.generate_secret()
    with webhook_receiver(secret, fail_next=100) as receiver:
        switch_rule(webhook_channel(receiver.url, secret), for_seconds=0)
        switch(is_on=True)
        evaluate_and_send(0)
        event = AlertEvent.objects.get()
        at = 0
        for _ in range(alert_services.MAX_ATTEMPTS - 1):
            event.refresh_from_db()
            at = (event.next_attempt_at - START).total_seconds()
            with time_machine.travel(START + timedelta(seconds=at), tick=False):
                alert_services.notification_send(event_id=event.pk)
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("failed", alert_services.MAX_ATTEMPTS)
    assert len(receiver.received) == alert_services.MAX_ATTEMPTS
    # 30 s doubling: 30 + 60 + 120 + 240 + 480 seconds between the six attempts
    assert at == 30 + 60 + 120 + 240 + 480


def test_redirects_are_not_followed():
    secret = standard_webhooks.generate_secret()
    with webhook_receiver(secret) as elsewhere, webhook_receiver(secret, redirect_to=elsewhere.url) as receiver:
        channel = webhook_channel(receiver.url, secret)
        outcome = alert_services.channel_send_test(channel=channel, actor_label="test")
    assert not outcome.is_sent
    assert "HTTP 302" in outcome.text and "redirects are not followed" in outcome.text
    assert len(receiver.received) == 1 and elsewhere.received == []


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1:70/", "//nohost"])
def test_only_http_and_https_urls_are_requested(url):
    with pytest.raises(outbound_http.OutboundError, match="only http:// and https://"):
        outbound_http.post(url, b"{}", {})


def test_an_unreachable_receiver_is_an_error_naming_only_the_host(unused_port):
    channel = webhook_channel(f"http://127.0.0.1:{unused_port}/secret-path-token")
    with pytest.raises(channels.ChannelError) as caught:
        channels.deliver(channel, {"type": "alert.test", "timestamp": "", "data": {}}, "msg_1")
    assert f"http://127.0.0.1:{unused_port}" in str(caught.value)
    assert "secret-path-token" not in str(caught.value)


@pytest.fixture
def unused_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_slow_receiver_times_out(monkeypatch):
    import socket

    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        monkeypatch.setattr(outbound_http, "TIMEOUT_SECONDS", 0.5)
        started = time.monotonic()
        with pytest.raises(outbound_http.OutboundError, match="no answer within"):
            outbound_http.post(f"http://127.0.0.1:{listener.getsockname()[1]}/", b"{}", {}, timeout=0.5)
        assert time.monotonic() - started < 5
    finally:
        listener.close()
