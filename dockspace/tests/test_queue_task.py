"""dockspace.celery.queue_task: domain code queues a task by its registered name, never importing a tasks module."""

import sys

import pytest
from celery.exceptions import NotRegistered
from django.contrib.auth import get_user_model

from dockspace.celery import app, queue_task

TASK = "extension_app.count_people"
MODULE = "dockspace.tests.extension_app.tasks"


@pytest.mark.django_db
def test_a_task_whose_module_was_never_imported_is_found_and_runs(monkeypatch):
    get_user_model().objects.create_user("ann@example.com")
    # As in a web process that never imported the app's tasks module.
    monkeypatch.delitem(app.tasks, TASK, raising=False)
    monkeypatch.delitem(sys.modules, MODULE, raising=False)

    assert queue_task(TASK).get() == "1 people"  # tests run tasks eagerly (conftest.py)


def test_an_unknown_name_is_refused_not_sent_to_a_broker_nobody_reads():
    with pytest.raises(NotRegistered):
        queue_task("extension_app.no_such_task")
