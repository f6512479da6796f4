"""Finding 17: DEBUG's error pages under `make run` show no credentials, and no URL list when the
server is reachable from the network."""

import sys

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from django.views.debug import ExceptionReporter

from dockspace.debug import mask_url_credentials

pytestmark = pytest.mark.django_db

# Built at run time: the traceback page also shows this file's source lines, which must not count.
REDIS = "redis://:hunter2" + "-redis@redis:6379/0"
POSTGRES = "postgres://dockspace:hunter2" + "-pg@postgres:5432/dockspace"


def technical_500_html(request):
    url = POSTGRES  # noqa: F841 - a local variable the traceback page would show
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        return ExceptionReporter(request, *sys.exc_info()).get_traceback_html()


def test_the_technical_500_page_masks_database_and_redis_urls_everywhere(settings):
    settings.DEBUG = True
    settings.REDIS_URL = REDIS
    settings.DATABASE_URL = POSTGRES
    settings.CELERY_BROKER_URL = REDIS
    settings.CELERY_RESULT_BACKEND = REDIS
    settings.SOME_SERVICE = {"LOCATION": REDIS, "OPTIONS": ["smtp://mailer:hunter2" + "-smtp@mx:587"]}
    settings.TIME_ZONE_NOTE = "visible setting"
    request = RequestFactory().get("/", HTTP_X_UPSTREAM="postgres://u:hunter2" + "-header@db/x")
    html = technical_500_html(request)
    for secret in ("hunter2-redis", "hunter2-pg", "hunter2-smtp", "hunter2-header"):
        assert secret not in html
    # Positive control: the page is the real technical page and shows harmless settings and hosts.
    assert "RuntimeError" in html
    assert "visible setting" in html
    assert "mailer:********************@mx:587" in html.replace("&#x27;", "'")


def test_mask_url_credentials_keeps_urls_without_a_password():
    assert mask_url_credentials("redis://redis:6379/0") == "redis://redis:6379/0"
    assert mask_url_credentials("https://id.example.com/a:b") == "https://id.example.com/a:b"
    assert mask_url_credentials("postgres://u:p@h/d", "*") == "postgres://u:*@h/d"


def test_a_404_on_a_network_bind_does_not_list_the_urls(settings):
    get_user_model().objects.create_user("ann@example.com")  # past the first-run redirect
    settings.DEBUG = True
    settings.DEBUG_ON_NETWORK = True
    response = Client().get("/no/such/page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "URLconf" not in body and "admin/" not in body
    assert "There is no page at this address." in body


def test_a_404_on_loopback_with_debug_still_shows_djangos_page(settings):
    # Positive control: the same request on a loopback bind gets Django's technical 404.
    get_user_model().objects.create_user("ann@example.com")
    settings.DEBUG = True
    settings.DEBUG_ON_NETWORK = False
    response = Client().get("/no/such/page/")
    assert response.status_code == 404
    assert "URLconf" in response.content.decode()
