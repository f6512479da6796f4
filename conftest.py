"""Fixtures shared by every app's tests."""

import pytest
from django.test import Client


@pytest.fixture(autouse=True)
def _fresh_cache():
    """App settings are cached; each test starts from the database."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _tasks_run_inline():
    """Tasks queued by a request run at once in tests; the real worker has its own test."""
    from dockspace.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def csrf_client():
    return Client(enforce_csrf_checks=True)
