"""The alerts admin: rules edited with errors on the field at fault, channel secrets write-only, "send a test",
the alerts list open first, acknowledge and silence through the services (refused without the permission, with
positive controls)."""

import ipaddress

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.models import AuditEvent
from accounts.tests.factories import StaffFactory, UserFactory
from dockspace.tests.admin_pages import errors, page_values, shown_messages
from monitoring import alert_services
from monitoring.alert_models import Alert, AlertEvent, AlertRule, NotificationChannel
from monitoring.standard_webhooks import generate_secret
from monitoring.tests.factories import switch, switch_rule, webhook_channel
from monitoring.tests.stand_ins import webhook_receiver

pytestmark = pytest.mark.django_db

RULES = "/admin/monitoring/alertrule/"
CHANNELS = "/admin/monitoring/notificationchannel/"
ALERTS = "/admin/monitoring/alert/"


def signed_in(person):
    client = Client()
    client.force_login(person)
    return client


def staff_with(*codenames, email):
    person = UserFactory(email=email, is_staff=True)
    granted = Permission.objects.filter(content_type__app_label="monitoring", codename__in=codenames)
    person.user_permissions.add(*granted)
    return person


@pytest.fixture
def root():
    return signed_in(StaffFactory(email="root@example.com"))


@pytest.fixture
def viewer():
    """Staff who may look at everything in monitoring but change nothing."""
    return signed_in(
        staff_with("view_alert", "view_alertrule", "view_notificationchannel", "view_alertevent", email="v@example.com")
    )


@pytest.fixture
def operator():
    return signed_in(
        staff_with(
            "view_alert", "change_alert", "view_notificationchannel", "change_notificationchannel", email="o@x.org"
        )
    )


# --- rules --------------------------------------------------------------------------------------------------


def test_the_rules_are_installed_on_with_their_defaults(root):
    alert_services.alert_rules_install()
    response = root.get(RULES)
    page = response.content.decode()
    assert "DMS sync failing" in page and "Drift found in the DMS files" in page
    rule = AlertRule.objects.get(kind="monitoring.dms_sync_failing")
    assert (rule.is_enabled, rule.thresholds, rule.for_seconds, rule.repeat_seconds, rule.notify_resolved) == (
        True,
        {"behind_minutes": 15},
        300,
        4 * 3600,
        True,
    )
    assert [channel.name for channel in rule.channels.all()] == ["Staff email"]
    assert 'href="/admin/monitoring/alertrule/add/"' not in page


def test_a_rule_is_edited_with_durations_and_its_thresholds(root):
    rule = switch_rule()
    url = f"{RULES}{rule.pk}/change/"
    page = root.get(url)
    assert "Value above (units)" in page.content.decode()
    data = {**page_values(page), "threshold_above": "25", "for_seconds": "5m", "repeat_seconds": "1h30m"}
    response = root.post(url, data)
    assert response.status_code == 302, errors(response)
    rule.refresh_from_db()
    assert (rule.thresholds, rule.for_seconds, rule.repeat_seconds) == ({"above": 25}, 300, 5400)
    assert root.get(url).context["adminform"].form["repeat_seconds"].value() == 5400
    assert 'value="1h30m"' in root.get(url).content.decode()


@pytest.mark.parametrize(
    ("edits", "field", "message"),
    [
        ({"repeat_seconds": "1m"}, "repeat_seconds", "must be between 5m and 30d."),
        ({"repeat_seconds": "60d"}, "repeat_seconds", "must be at most 30d."),
        ({"for_seconds": "soon"}, "for_seconds", "'soon' is not a duration: write e.g. 90s, 30m, 2h, 1d or 1h30m."),
        ({"threshold_above": "2000"}, "threshold_above", "Ensure this value is less than or equal to 1000."),
        ({"threshold_above": "2.5"}, "threshold_above", "Enter a whole number."),
    ],
)
def test_a_refused_rule_names_the_field(root, edits, field, message):
    rule = switch_rule()
    url = f"{RULES}{rule.pk}/change/"
    response = root.post(url, {**page_values(root.get(url)), **edits})
    assert errors(response) == {field: [message]}
    rule.refresh_from_db()
    assert (rule.thresholds, rule.repeat_seconds) == ({"above": 10}, 3600)


def test_the_model_names_a_threshold_out_of_bounds_too():
    rule = switch_rule()
    rule.thresholds = {"above": -1}
    with pytest.raises(Exception) as caught:
        rule.full_clean()
    assert caught.value.message_dict == {"threshold_above": ["must be at least 0."]}


# --- channels -----------------------------------------------------------------------------------------------


def new_channel(**fields):
    data = {
        "name": "Ops hook",
        "kind": "webhook",
        "is_enabled": "on",
        "webhook_url": "https://hooks.example.org/dockspace",
        "email_addresses": "",
        "telegram_chat_id": "",
        "secret_env": "",
        "new_secret": "",
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def test_a_webhook_secret_is_stored_encrypted_and_never_shown_again(root):
    secret = generate_secret()
    response = root.post(f"{CHANNELS}add/", new_channel(new_secret=secret))
    assert response.status_code == 302, errors(response)
    channel = NotificationChannel.objects.get(name="Ops hook")
    assert channel.secret() == secret
    assert secret not in channel.secret_encrypted and secret[6:] not in channel.secret_encrypted
    for url in (f"{CHANNELS}{channel.pk}/change/", CHANNELS, "/admin/accounts/auditevent/"):
        page = root.get(url).content.decode()
        assert secret[6:] not in page and channel.secret_encrypted not in page, url
    change = root.get(f"{CHANNELS}{channel.pk}/change/").content.decode()
    assert "set (stored encrypted)" in change
    # Saving the page without typing a secret keeps it.
    url = f"{CHANNELS}{channel.pk}/change/"
    response = root.post(url, {**page_values(root.get(url)), "name": "Ops hook 2"})
    assert response.status_code == 302, errors(response)
    channel.refresh_from_db()
    assert channel.name == "Ops hook 2" and channel.secret() == secret
    assert not any(secret[6:] in str(event.description) for event in AuditEvent.objects.all())


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"new_secret": "hunter2"}, "new_secret", "must start with 'whsec_'"),
        ({"new_secret": "whsec_c2hvcnQ="}, "new_secret", "must hold 24 to 64 random bytes (this one holds 5)."),
        ({}, "secret_env", "a webhook channel needs its signing secret"),
        ({"secret_env": "SECRET_KEY"}, "secret_env", "must be a variable name starting with DOCKSPACE_ALERT_"),
        ({"webhook_url": "ftp://example.org/x", "secret_env": "DOCKSPACE_ALERT_HOOK"}, "webhook_url", "http://"),
        ({"kind": "telegram", "telegram_chat_id": "-1001", "new_secret": "nope"}, "new_secret", "bot token"),
        # Malformed IPv6 hosts (urlsplit's ValueError was a 500) and URLs that cannot be sent as they are.
        ({"webhook_url": "http://[::1", "secret_env": "DOCKSPACE_ALERT_HOOK"}, "webhook_url", "not a well-formed URL"),
        ({"webhook_url": "http://[zz]/", "secret_env": "DOCKSPACE_ALERT_HOOK"}, "webhook_url", "not a well-formed"),
        (
            {"webhook_url": "https://hooks.example.org/T00/SECRET TOKEN", "secret_env": "DOCKSPACE_ALERT_HOOK"},
            "webhook_url",
            "spaces, control characters and non-ASCII characters must be percent-encoded in the URL (e.g. %20).",
        ),
        (
            {"webhook_url": "https://hooks.example.org/hoöks", "secret_env": "DOCKSPACE_ALERT_HOOK"},
            "webhook_url",
            "non-ASCII characters must be percent-encoded",
        ),
        (
            {"webhook_url": "http://0x7f000001/hook", "secret_env": "DOCKSPACE_ALERT_HOOK"},
            "webhook_url",
            "the webhook address 127.0.0.1 (of 0x7f000001) is a loopback address",
        ),
    ],
)
def test_a_refused_channel_names_the_field(root, fields, field, message):
    response = root.post(f"{CHANNELS}add/", new_channel(**fields))
    found = errors(response)
    assert list(found) == [field] and message in found[field][0], found
    assert not NotificationChannel.objects.filter(name="Ops hook").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:9/hook", "the webhook address 127.0.0.1 is a loopback address"),
        ("http://localhost:9/hook", "(of localhost) is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "the webhook address 169.254.169.254 is a link-local address"),
        ("https://[fd00::1]/hook", "the webhook address fd00::1 is a private address"),
    ],
)
def test_a_webhook_on_an_internal_address_is_refused_when_saved(root, settings, url, message):
    response = root.post(f"{CHANNELS}add/", new_channel(webhook_url=url, secret_env="DOCKSPACE_ALERT_HOOK"))
    found = errors(response)
    assert list(found) == ["webhook_url"], found
    assert len(found["webhook_url"]) == 1, found
    shown = found["webhook_url"][0]
    assert message in shown and "allow it with DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS" in shown
    assert not NotificationChannel.objects.filter(name="Ops hook").exists()
    # Positive control: once the operator allows those networks, the same form saves.
    settings.OUTBOUND_ALLOWED_NETWORKS = [
        ipaddress.ip_network(cidr) for cidr in ("127.0.0.0/8", "::1/128", "169.254.0.0/16", "fd00::/8")
    ]
    response = root.post(f"{CHANNELS}add/", new_channel(webhook_url=url, secret_env="DOCKSPACE_ALERT_HOOK"))
    assert response.status_code == 302, errors(response)
    assert NotificationChannel.objects.get(name="Ops hook").webhook_url == url


def test_send_test_shows_why_an_internal_address_is_refused(operator, settings):
    secret = generate_secret()
    with webhook_receiver(secret) as receiver:
        # The form refuses this URL now; a row saved before (or a name that resolved elsewhere then) is checked again.
        channel = webhook_channel(receiver.url, secret)
        response = operator.post(f"{CHANNELS}{channel.pk}/send-test/", follow=True)
    error = "webhook address 127.0.0.1 is a loopback address; allow it with DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS"
    assert shown_messages(response) == [f"Test notification to Ops webhook failed: {error}"]
    assert receiver.received == []
    assert AlertEvent.objects.get(kind="test").error == error


def test_a_secret_from_the_environment_is_read_when_sending(root, monkeypatch):
    response = root.post(f"{CHANNELS}add/", new_channel(secret_env="DOCKSPACE_ALERT_OPS_HOOK"))
    assert response.status_code == 302, errors(response)
    channel = NotificationChannel.objects.get(name="Ops hook")
    page = root.get(f"{CHANNELS}{channel.pk}/change/").content.decode()
    assert "not set: DOCKSPACE_ALERT_OPS_HOOK is not set in the web process" in page
    secret = generate_secret()
    monkeypatch.setenv("DOCKSPACE_ALERT_OPS_HOOK", secret)
    assert channel.secret() == secret
    page = root.get(f"{CHANNELS}{channel.pk}/change/").content.decode()
    assert "set (from DOCKSPACE_ALERT_OPS_HOOK)" in page and secret[6:] not in page


def test_send_test_reaches_the_receiver_and_is_audited_without_the_secret(operator, outbound_to_loopback):
    secret = generate_secret()
    with webhook_receiver(secret) as receiver:
        channel = webhook_channel(receiver.url, secret)
        response = operator.post(f"{CHANNELS}{channel.pk}/send-test/", follow=True)
    assert any(m.startswith("Test notification sent to Ops webhook") for m in shown_messages(response))
    [request] = receiver.received
    assert request["payload"]["type"] == "alert.test" and request["error"] == ""
    audit = AuditEvent.objects.get(action="monitoring.channel.test")
    assert audit.actor.email == "o@x.org" and audit.target_label == "Ops webhook"
    assert secret[6:] not in audit.description and secret[6:] not in response.content.decode()
    assert AlertEvent.objects.get(kind="test").status == "sent"


def test_send_test_is_refused_without_the_permission_to_change_channels(viewer, operator, outbound_to_loopback):
    secret = generate_secret()
    with webhook_receiver(secret) as receiver:
        channel = webhook_channel(receiver.url, secret)
        page = viewer.get(f"{CHANNELS}{channel.pk}/change/").content.decode()
        assert "Send a test notification" not in page
        response = viewer.post(f"{CHANNELS}{channel.pk}/send-test/", follow=True)
        assert shown_messages(response) == [
            "Not sent: you do not have the permission 'monitoring.change_notificationchannel'."
        ]
        response = viewer.post(CHANNELS, {"action": "send_test", "_selected_action": [channel.pk]}, follow=True)
        assert receiver.received == []
        # Positive control: the same request by someone who may change channels is sent.
        assert "Send a test notification" in operator.get(f"{CHANNELS}{channel.pk}/change/").content.decode()
        operator.post(CHANNELS, {"action": "send_test", "_selected_action": [channel.pk]})
        assert len(receiver.received) == 1
    assert not AuditEvent.objects.filter(action="monitoring.channel.test", actor__email="v@example.com").exists()


def test_send_test_of_a_url_that_cannot_be_sent_says_so_instead_of_a_500(operator, outbound_to_loopback):
    channel = webhook_channel()
    # A row saved before the model refused such URLs: http.client could not encode its path.
    NotificationChannel.objects.filter(pk=channel.pk).update(webhook_url="http://127.0.0.1:9/services/SECRÉT?k=KEY")
    response = operator.post(f"{CHANNELS}{channel.pk}/send-test/", follow=True)
    [message] = shown_messages(response)
    assert message.startswith("Test notification to Ops webhook failed: http://127.0.0.1:9: spaces, control")
    assert "SECR" not in message and "KEY" not in message
    assert AlertEvent.objects.get(kind="test").status == "failed"


def test_a_send_test_that_breaks_unexpectedly_fails_the_test_and_says_to_look_in_the_log(operator, monkeypatch):
    # Stands for a bug in a channel's code: whatever it raises, the page answers and the test does not stay "sending".
    def broken(channel, payload, message_id):
        raise RuntimeError("unexpected, quoting https://hooks.example.org/SECRET")

    monkeypatch.setattr("monitoring.channels.deliver", broken)
    channel = webhook_channel()
    response = operator.post(f"{CHANNELS}{channel.pk}/send-test/", follow=True)
    expected = "could not be sent (RuntimeError); see the log"
    assert shown_messages(response) == [f"Test notification to Ops webhook failed: {expected}"]
    event = AlertEvent.objects.get(kind="test")
    assert (event.status, event.error) == ("failed", expected)


def test_send_test_must_be_posted(operator):
    channel = webhook_channel()
    assert operator.get(f"{CHANNELS}{channel.pk}/send-test/").status_code == 405


# --- alerts -------------------------------------------------------------------------------------------------


def alerts_in_every_state():
    rule = switch_rule(webhook_channel(), for_seconds=0)
    for name in ("resolved-1", "firing-1", "firing-2"):
        switch(name, is_on=True)
    alert_services.alerts_evaluate()
    switch("resolved-1", is_on=False)
    rule.for_seconds = 600
    rule.save()
    switch("pending-1", is_on=True)
    alert_services.alerts_evaluate()
    return {alert.subject: alert for alert in Alert.objects.all()}


def test_the_alerts_list_shows_open_alerts_first(viewer):
    alerts_in_every_state()
    response = viewer.get(ALERTS)
    subjects = [alert.subject for alert in response.context["cl"].result_list]
    assert subjects[-1] == "resolved-1" and subjects[2] == "pending-1"
    assert set(subjects[:2]) == {"firing-1", "firing-2"}
    assert response.context["action_form"] is None  # no action offered to someone who may not change alerts


def test_acknowledge_and_silence_are_refused_without_the_permission(viewer, operator):
    alerts = alerts_in_every_state()
    firing = alerts["firing-1"]
    for action in ("acknowledge", "silence_4h"):
        viewer.post(ALERTS, {"action": action, "_selected_action": [firing.pk]})
    response = viewer.post(f"{ALERTS}{firing.pk}/act/", {"action": "acknowledge"}, follow=True)
    assert shown_messages(response) == [f"{firing}: you do not have the permission 'monitoring.change_alert'."]
    viewer.post(f"{ALERTS}{firing.pk}/act/", {"action": "silence_1h"})
    firing.refresh_from_db()
    assert (firing.acknowledged_at, firing.silenced_until) == (None, None)
    assert 'value="acknowledge"' not in viewer.get(f"{ALERTS}{firing.pk}/change/").content.decode()
    # Positive control: someone who may change alerts does both, audited.
    operator.post(ALERTS, {"action": "acknowledge", "_selected_action": [firing.pk]})
    operator.post(ALERTS, {"action": "silence_4h", "_selected_action": [firing.pk]})
    firing.refresh_from_db()
    assert firing.acknowledged_by.email == "o@x.org" and firing.silenced_until is not None
    assert (firing.silenced_until - firing.acknowledged_at).total_seconds() == pytest.approx(4 * 3600, abs=5)
    assert sorted(AuditEvent.objects.filter(actor__email="o@x.org").values_list("action", flat=True)) == [
        "monitoring.alert.acknowledge",
        "monitoring.alert.silence",
    ]


def test_the_buttons_on_an_alerts_page(operator):
    firing = alerts_in_every_state()["firing-2"]
    page = operator.get(f"{ALERTS}{firing.pk}/change/").content.decode()
    assert 'value="acknowledge"' in page and 'value="silence_24h"' in page
    response = operator.post(f"{ALERTS}{firing.pk}/act/", {"action": "silence_24h"}, follow=True)
    assert shown_messages(response) == [f"Silenced for 24h: {firing}."]
    operator.post(f"{ALERTS}{firing.pk}/act/", {"action": "acknowledge"})
    firing.refresh_from_db()
    assert firing.acknowledged_at is not None and firing.silenced_until is not None
    operator.post(f"{ALERTS}{firing.pk}/act/", {"action": "end_silence"})
    firing.refresh_from_db()
    assert firing.silenced_until is None


def test_a_resolved_alert_cannot_be_acknowledged(operator):
    resolved = alerts_in_every_state()["resolved-1"]
    response = operator.post(ALERTS, {"action": "acknowledge", "_selected_action": [resolved.pk]}, follow=True)
    assert shown_messages(response) == [
        f"{resolved}: alert {resolved.pk} is resolved: only an open alert can be acknowledged."
    ]


def test_staff_who_may_only_view_a_channel_see_its_webhooks_origin_not_its_path(root, viewer):
    channel = webhook_channel("https://hooks.example.com/in/SECRET-PATH-TOKEN")
    url = f"/admin/monitoring/notificationchannel/{channel.pk}/change/"
    seen = viewer.get(url).content.decode()
    assert "https://hooks.example.com" in seen and "SECRET-PATH-TOKEN" not in seen
    # Positive control: who may change the channel sees (and edits) the whole URL.
    assert "SECRET-PATH-TOKEN" in root.get(url).content.decode()


def test_a_channel_added_later_is_attached_to_every_rule_by_one_action(root, operator):
    first = webhook_channel(name="First")
    switch_rule(first)  # installs every rule
    rules = list(AlertRule.objects.all())
    assert len(rules) > 2
    later = webhook_channel("https://hooks.example.com/later", name="Later")
    action = {"action": "attach_to_all_rules", "_selected_action": [later.pk]}
    # Attaching changes the rules: who may change channels only is refused and nothing changes.
    refused = operator.post("/admin/monitoring/notificationchannel/", action, follow=True)
    assert "monitoring.change_alertrule" in refused.content.decode()
    assert not later.rules.exists()
    done = root.post("/admin/monitoring/notificationchannel/", action, follow=True)
    assert f"Later: attached to {len(rules)} more alert rule(s)." in done.content.decode()
    assert {rule.pk for rule in later.rules.all()} == {rule.pk for rule in rules}
    assert AuditEvent.objects.filter(action="monitoring.channel.attach").count() == 1
