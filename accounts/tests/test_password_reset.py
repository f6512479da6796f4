import re

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

NEW = "a brand new pass phrase 7"


def reset_link():
    body = mail.outbox[-1].body
    return re.search(r"https://dockspace\.test(/password/reset/\S+/)", body).group(1)


def test_the_answer_is_identical_whether_or_not_the_address_exists(client):
    UserFactory(email="ann@example.com")
    known = client.post("/password/reset/", {"email": "ann@example.com"})
    unknown = client.post("/password/reset/", {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == "/password/reset/sent/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ann@example.com"]


def test_the_link_sets_a_new_password_once_and_signs_out_other_browsers(client):
    user = UserFactory(email="ann@example.com")
    other_browser = client.__class__()
    other_browser.force_login(user)
    client.post("/password/reset/", {"email": "ANN@example.com"})
    link = reset_link()
    form_page = client.get(link, follow=True)
    assert "Set a new password" in form_page.content.decode()
    response = client.post(form_page.redirect_chain[-1][0], {"new_password1": NEW, "new_password2": NEW})
    assert response["Location"] == "/password/reset/done/"
    user.refresh_from_db()
    assert user.check_password(NEW)
    assert other_browser.get("/profile/").status_code == 302
    assert AuditEvent.objects.filter(action="password.change", target_label="ann@example.com").exists()
    # Used once: the same link no longer works.
    again = client.get(link, follow=True)
    assert "has expired or was already used" in again.content.decode()


def test_an_expired_link_is_refused_and_changes_nothing(client, settings):
    user = UserFactory(email="ann@example.com")
    client.post("/password/reset/", {"email": "ann@example.com"})
    link = reset_link()
    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT + 60)):
        response = client.get(link, follow=True)
    assert "has expired or was already used" in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_a_malformed_address_gets_a_clear_message(client):
    UserFactory()
    response = client.post("/password/reset/", {"email": "not an address"})
    assert response.status_code == 200
    assert "Enter a valid email address" in response.content.decode()
    assert mail.outbox == []


def test_a_weak_new_password_is_refused(client):
    user = UserFactory(email="ann@example.com")
    client.post("/password/reset/", {"email": "ann@example.com"})
    form_page = client.get(reset_link(), follow=True)
    response = client.post(form_page.redirect_chain[-1][0], {"new_password1": "12345", "new_password2": "12345"})
    assert response.status_code == 200
    assert "too short" in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def _queued_messages(settings):
    """The raw messages waiting in the broker's default queue, whichever broker this run uses."""
    if settings.CELERY_BROKER_URL == "filesystem://":
        from pathlib import Path

        queue = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        return {p.name: p.read_text() for p in queue.glob("*.msg")}
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    return {f"redis-{i}": m.decode() for i, m in enumerate(client.lrange("celery", 0, -1))}


def _drop_queued(settings, names):
    if settings.CELERY_BROKER_URL == "filesystem://":
        from pathlib import Path

        for name in names:
            (Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]) / name).unlink()
    else:
        import redis

        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("celery")


def test_the_request_only_queues_the_address_and_the_link_never_enters_the_queue(client, settings):
    """Sending inline would make requests for real addresses slower; a queued link would be a secret at rest."""
    from dockspace.celery import app

    UserFactory(email="ann@example.com")
    before = _queued_messages(settings)
    app.conf.task_always_eager = False
    response = client.post("/password/reset/", {"email": "ann@example.com"})
    assert response["Location"] == "/password/reset/sent/"
    assert mail.outbox == []
    after = _queued_messages(settings)
    new = [text for name, text in after.items() if name not in before or before[name] != text]
    try:
        assert len(new) == 1
        assert "accounts.send_password_reset" in new[0] and "ann@example.com" in new[0]
        assert "/password/reset/" not in new[0]
    finally:
        _drop_queued(settings, [name for name in after if name not in before])


def test_resetting_while_signed_in_as_that_person_ends_cleanly(client):
    user = UserFactory(email="ann@example.com")
    client.force_login(user)
    client.post("/password/reset/", {"email": "ann@example.com"})
    form_page = client.get(reset_link(), follow=True)
    response = client.post(form_page.redirect_chain[-1][0], {"new_password1": NEW, "new_password2": NEW})
    assert response.status_code == 302 and response["Location"] == "/password/reset/done/"
    assert client.get("/profile/").status_code == 302


@pytest.mark.parametrize("path, form", [("/password/reset/", {}), ("/register/", {"full_name": "Ann"})])
def test_with_the_task_queue_unreachable_the_mail_is_sent_at_once(client, monkeypatch, path, form):
    """The request queues the task by name (dockspace.celery.queue_task); a broker that refuses it costs the person
    nothing but the timing guarantee."""
    from accounts.models import AppSettings
    from dockspace.celery import app

    AppSettings.objects.update_or_create(pk=1, defaults={"self_registration_enabled": True})
    UserFactory(email="root@example.com")  # past the first-run page
    queued = []
    for name in ("accounts.send_password_reset", "accounts.send_registration_mail"):
        monkeypatch.setattr(app.tasks[name], "apply_async", lambda *a, **kw: queued.append(1) or _refuse())

    fields = {"email": "ann@example.com", "password1": NEW, "password2": NEW, **form}
    if path == "/password/reset/":
        UserFactory(email="ann@example.com")
    response = client.post(path, fields)

    assert response.status_code == 302
    assert queued == [1]  # it was tried first
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ann@example.com"]


def _refuse():
    raise OSError("the broker is down")
