"""A Celery worker starting runs mail's catch-up through MailConfig.worker_started (dockspace.celery asks every app)."""

import pytest
from django.conf import settings
from django.db import connections

from dockspace.celery import _catch_up_at_worker_start
from mail import services
from mail.dms import sync

pytestmark = pytest.mark.django_db


def test_the_worker_init_receiver_writes_the_dms_files_that_are_behind(monkeypatch):
    monkeypatch.setattr(connections, "close_all", lambda: None)  # the test's transaction stays open
    services.domain_create(name="example.com")
    services.mailbox_create(address="bob@example.com")  # no commit in this test: no sync was scheduled
    assert sync.is_behind()

    _catch_up_at_worker_start(sender=None)

    assert "bob@example.com|" in (settings.DMS_DIR / "postfix-accounts.cf").read_text()
    assert not sync.is_behind()


def test_without_the_mail_app_hook_a_starting_worker_writes_nothing(monkeypatch):
    from django.apps import apps

    monkeypatch.setattr(connections, "close_all", lambda: None)
    monkeypatch.delattr(type(apps.get_app_config("mail")), "worker_started")
    services.domain_create(name="example.com")
    services.mailbox_create(address="bob@example.com")

    _catch_up_at_worker_start(sender=None)

    assert sync.is_behind()
