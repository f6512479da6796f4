"""Fixtures shared by every app's tests."""

import os

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


@pytest.fixture
def page(live_server):
    """A headless Chromium page on the live server (`page.base` is its URL), for the tests marked `browser`."""
    from dockspace.tests.chromium import CHROMIUM

    if not CHROMIUM:
        pytest.skip("Chromium is not installed (CI installs Debian's chromium package)")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright runs an event loop in this thread; the test's own database calls are synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        context = browser.new_context(viewport={"width": 1100, "height": 800})
        page = context.new_page()
        page.set_default_timeout(15000)
        page.base = live_server.url
        yield page
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
