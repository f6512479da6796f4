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


@pytest.fixture
def csrf_client():
    return Client(enforce_csrf_checks=True)
