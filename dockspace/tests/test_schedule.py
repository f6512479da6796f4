"""Periodic tasks as data: the apps' declarations, checked against the tasks Celery knows."""

from types import SimpleNamespace

import pytest
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from dockspace.schedule import Crontab, PeriodicTask, declared_periodic_tasks


@pytest.fixture(scope="module")
def celery_tasks():
    from dockspace.celery import app

    app.loader.import_default_modules()  # autodiscovery: every installed app's tasks.py
    return app.tasks


def test_every_declared_task_is_a_registered_celery_task(celery_tasks):
    declared = declared_periodic_tasks()
    assert declared
    assert [spec.task for spec in declared if spec.task not in celery_tasks] == []


def test_every_task_marked_periodic_is_declared(celery_tasks):
    marked = {name for name, task in celery_tasks.items() if getattr(task, "is_periodic", False)}
    assert marked == {spec.task for spec in declared_periodic_tasks()}


def test_no_schedule_is_set_outside_the_declarations():
    # CELERY_BEAT_SCHEDULE would be a second list that beat syncs into its table.
    assert not getattr(settings, "CELERY_BEAT_SCHEDULE", None)


def test_each_app_declares_its_own_tasks_in_installed_apps_order():
    owners = [
        config.label
        for config in apps.get_app_configs()
        for _ in (config.periodic_tasks() if hasattr(config, "periodic_tasks") else [])
    ]
    assert owners == ["accounts"] * 4 + ["mail", "oidc"] + ["deliverability"] * 9 + ["monitoring"] * 11 + [
        "extension_app"
    ]
    assert [spec.task.split(".")[0] for spec in declared_periodic_tasks()] == owners


def test_every_declared_task_expires_within_its_interval():
    for spec in declared_periodic_tasks():
        assert spec.expires_seconds >= 1
        if spec.interval_minutes:
            assert spec.expires_seconds <= spec.interval_minutes * 60


def declare(**changes):
    fields = {
        "name": "Tick",
        "task": "extension_app.count_people",
        "interval_minutes": 5,
        "expires_seconds": 60,
        "description": "Ticks.",
    }
    return PeriodicTask(**{**fields, **changes})


def test_a_well_formed_declaration_is_accepted():
    assert declare().expires_seconds == 60
    assert declare(interval_minutes=None, crontab=Crontab(minute="0")).crontab.hour == "*"


@pytest.mark.parametrize(
    "changes, rule",
    [
        ({"crontab": Crontab(minute="0")}, "exactly one of crontab and interval_minutes"),
        ({"interval_minutes": None}, "exactly one of crontab and interval_minutes"),
        ({"interval_minutes": 0}, "interval_minutes must be at least 1"),
        ({"expires_seconds": 0}, "expires_seconds must be at least 1"),
        ({"expires_seconds": 301}, "must not exceed the interval (300 seconds)"),
        ({"name": ""}, "name: 1 to 200 characters"),
        ({"name": "x" * 201}, "name: 1 to 200 characters"),
        ({"task": ""}, "task must name a Celery task"),
        ({"description": ""}, "description must say what the task does"),
    ],
)
def test_a_malformed_declaration_is_refused_naming_the_rule(changes, rule):
    with pytest.raises(ValueError) as refused:
        declare(**changes)
    assert rule in str(refused.value)


def test_an_expiry_is_required():
    with pytest.raises(TypeError):
        PeriodicTask(name="Tick", task="t", interval_minutes=5, description="Ticks.")


def test_two_apps_declaring_the_same_name_is_refused(monkeypatch):
    one = SimpleNamespace(label="one", periodic_tasks=lambda: [declare()])
    two = SimpleNamespace(label="two", periodic_tasks=lambda: [declare(task="two.tick")])
    monkeypatch.setattr(apps, "get_app_configs", lambda: [one, SimpleNamespace(label="none"), two])
    with pytest.raises(ImproperlyConfigured, match="'Tick' is declared by both one and two"):
        declared_periodic_tasks()
