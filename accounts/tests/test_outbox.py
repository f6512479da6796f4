"""The outbox as Dockspace's EMAIL_BACKEND: every message is a row written in the sender's transaction, delivered
after commit; the reset and registration flows work through it against a real SMTP server."""

import pytest
from django.core.mail import EmailMultiAlternatives, send_mail
from django.db import transaction
from django.test import Client

from accounts.models import AppSettings, OutboundMessage, User
from accounts.tests.factories import UserFactory
from accounts.tests.smtp_server import SmtpServer, use_smtp

pytestmark = pytest.mark.django_db

NEW = "a brand new pass phrase 7"


@pytest.fixture
def primary(settings):
    server = SmtpServer().start()
    use_smtp(settings, server)
    yield server
    server.stop()


def test_a_message_is_stored_with_its_envelope_and_sent_once_the_transaction_commits(
    primary, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        message = EmailMultiAlternatives(
            "Hello", "plain text", "Ops <ops@dockspace.test>", ["ann@example.com"], bcc=["audit@example.com"]
        )
        message.attach_alternative("<p>html</p>", "text/html")
        assert message.send() == 1
        row = OutboundMessage.objects.get()
        assert (row.status, row.recipients, row.from_email) == (
            "queued",
            ["ann@example.com", "audit@example.com"],
            "Ops <ops@dockspace.test>",
        )
        assert primary.received == []  # nothing leaves before the commit
    assert len(callbacks) == 1
    (received,) = primary.received
    assert received.rcpt_tos == ["ann@example.com", "audit@example.com"]
    assert received.message.get_body(preferencelist=("html",)).get_content().strip() == "<p>html</p>"
    assert "Bcc" not in received.message  # the envelope carries it, the headers do not
    row.refresh_from_db()
    assert (row.status, row.sent_via, row.attempts, row.has_body) == ("sent", "primary", 1, False)


def test_a_rolled_back_transaction_leaves_no_message_and_sends_nothing(primary, django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        send_mail("Hello", "text", None, ["ann@example.com"])
        raise RuntimeError("the caller's work failed")
    assert OutboundMessage.objects.count() == 0
    assert callbacks == [] and primary.received == []


def test_a_message_waits_queued_when_the_broker_is_down_and_the_drain_sends_it(
    primary, django_capture_on_commit_callbacks, monkeypatch
):
    from accounts import outbox
    from accounts.outbox_delivery import outbox_drain

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(outbox, "queue_task", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        send_mail("Hello", "text", None, ["ann@example.com"])
    assert OutboundMessage.objects.get().status == "queued" and primary.received == []
    assert outbox_drain()["sent"] == 1
    assert [r.rcpt_tos for r in primary.received] == [["ann@example.com"]]


def test_inside_delivered_here_the_sender_delivers_its_mail_itself_without_the_broker(
    primary, django_capture_on_commit_callbacks, monkeypatch
):
    from accounts import outbox

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(outbox, "queue_task", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        send_mail("For the worker", "text", None, ["ann@example.com"])
        with outbox.delivered_here() as stored:
            send_mail("Sent here", "text", None, ["bob@example.com"])
    here = OutboundMessage.objects.get(subject="Sent here")
    assert stored == [here.pk]
    assert [r.rcpt_tos for r in primary.received] == [["bob@example.com"]]
    assert (here.status, here.sent_via) == ("sent", "primary")
    # Positive control: the same message outside the block waits for the worker the broker cannot reach.
    assert OutboundMessage.objects.get(subject="For the worker").status == "queued"


def test_without_an_smtp_server_the_message_is_delivered_as_a_private_file(settings, tmp_path):
    from accounts.outbox_delivery import outbox_drain

    settings.EMAIL_BACKEND = "accounts.outbox.OutboxBackend"
    settings.EMAIL_HOST, settings.EMAIL_BACKUP_HOST = "", ""
    settings.EMAIL_FILE_PATH = str(tmp_path / "outbox")
    send_mail("Reset", "follow https://dockspace.test/password/reset/MQ/tok/", None, ["ann@example.com"])
    assert outbox_drain()["sent"] == 1
    (written,) = (tmp_path / "outbox").iterdir()
    assert "/password/reset/MQ/tok/" in written.read_text()
    assert (written.stat().st_mode & 0o777) == 0o600
    row = OutboundMessage.objects.get()
    assert (row.status, row.sent_via, row.has_body) == ("sent", "file", False)


def test_password_reset_end_to_end_through_the_outbox_and_a_real_smtp_server(
    primary, django_capture_on_commit_callbacks
):
    UserFactory(email="ann@example.com")
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/password/reset/", {"email": "ann@example.com"})
    (received,) = primary.received
    assert received.rcpt_tos == ["ann@example.com"]
    row = OutboundMessage.objects.get()
    assert (row.kind, row.status, row.has_body) == ("password reset", "sent", False)  # the link is not kept
    form_page = client.get(received.link("/password/reset/"), follow=True)
    response = client.post(form_page.redirect_chain[-1][0], {"new_password1": NEW, "new_password2": NEW})
    assert response["Location"] == "/password/reset/done/"
    assert User.objects.get(email="ann@example.com").check_password(NEW)


def test_registration_end_to_end_through_the_outbox_and_a_real_smtp_server(primary, django_capture_on_commit_callbacks):
    UserFactory(email="root@example.com")  # past the first run
    AppSettings.objects.update_or_create(pk=1, defaults={"self_registration_enabled": True})
    client = Client()
    form = {"email": "new@example.com", "full_name": "New", "password1": NEW, "password2": NEW}
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/register/", form)
    (received,) = primary.received
    assert OutboundMessage.objects.get().kind == "registration"
    assert client.post(received.link("/register/confirm/"))["Location"] == "/login/"
    assert User.objects.get(email="new@example.com").is_active
