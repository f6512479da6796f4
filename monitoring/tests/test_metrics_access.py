"""Who may read /metrics: the bearer token (DOCKSPACE_METRICS_TOKEN) from anywhere, or, while no token is set, a
client on this machine talking to Dockspace directly (a request relayed by a proxy is not). Each refusal sits next to
the request that gets through on the same path."""

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.test import Client

pytestmark = pytest.mark.django_db

TOKEN = "Zm9yIHRoZSBtZXRyaWNz-0123456789_abc"


def metrics(remote="127.0.0.1", **headers):
    return Client(REMOTE_ADDR=remote).get("/metrics", **headers)


def is_exposition(response):
    return response.status_code == 200 and b"# TYPE dockspace_mailboxes gauge" in response.content


# --- no token set: loopback only -------------------------------------------------------------------------------


@pytest.mark.parametrize("loopback", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_without_a_token_a_client_on_this_machine_reads_the_metrics(loopback):
    assert is_exposition(metrics(loopback))


@pytest.mark.parametrize("remote", ["10.0.0.5", "192.168.1.20", "2001:db8::1", "::ffff:10.0.0.5", "", "unix"])
def test_without_a_token_any_other_client_is_refused_and_learns_nothing(remote):
    response = metrics(remote)
    assert response.status_code == 403
    assert response.content == b"Forbidden: /metrics answers loopback only, unless DOCKSPACE_METRICS_TOKEN is set.\n"
    assert is_exposition(metrics("127.0.0.1"))  # positive control


@pytest.mark.parametrize(
    "header, text",
    [
        ("HTTP_X_FORWARDED_FOR", "203.0.113.7"),
        ("HTTP_X_FORWARDED_FOR", "127.0.0.1"),  # a proxy relaying a client that claims to be local
        ("HTTP_FORWARDED", "for=203.0.113.7;proto=https"),
        ("HTTP_X_REAL_IP", "203.0.113.7"),
        ("HTTP_X_FORWARDED_PROTO", "https"),
        ("HTTP_X_FORWARDED_HOST", "id.example.com"),
    ],
)
def test_a_request_relayed_by_a_proxy_on_this_machine_is_not_loopback(settings, header, text):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]  # even a proxy Dockspace believes relays someone else
    assert metrics("127.0.0.1", **{header: text}).status_code == 403
    assert is_exposition(metrics("127.0.0.1"))  # the same path, straight from this machine


def test_without_a_token_a_bearer_header_changes_nothing():
    assert metrics("10.0.0.5", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 403
    assert is_exposition(metrics("127.0.0.1", HTTP_AUTHORIZATION="Bearer anything"))


# --- a token set ------------------------------------------------------------------------------------------------


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


@pytest.mark.parametrize("remote", ["10.0.0.5", "127.0.0.1", "2001:db8::1"])
def test_with_the_token_prometheus_reads_the_metrics_from_anywhere(token, remote):
    assert is_exposition(metrics(remote, HTTP_AUTHORIZATION=f"Bearer {token}"))
    assert is_exposition(metrics(remote, HTTP_AUTHORIZATION=f"bearer   {token} "))  # scheme in any case


def test_with_a_token_set_a_request_without_it_is_refused_even_from_loopback(token):
    response = metrics("127.0.0.1")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="Dockspace metrics"'
    assert response.content == b"Unauthorized: send Authorization: Bearer <DOCKSPACE_METRICS_TOKEN>.\n"
    assert is_exposition(metrics("127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}"))


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN.upper()}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer ",
        f"Bearer {TOKEN[:-1]}é",
    ],
)
def test_a_wrong_token_is_refused_the_same_way_whatever_it_is(token, authorization):
    response = metrics("10.0.0.5", HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 401
    assert b"dockspace_" not in response.content and token.encode() not in response.content
    assert response["WWW-Authenticate"].startswith('Bearer realm="Dockspace metrics"')
    assert is_exposition(metrics("10.0.0.5", HTTP_AUTHORIZATION=f"Bearer {token}"))


def test_health_endpoints_need_no_token(token):
    assert Client(REMOTE_ADDR="10.0.0.5").get("/health").status_code == 200


# --- the setting ------------------------------------------------------------------------------------------------


def settings_value(tmp_path, **env):
    """DOCKSPACE_METRICS_TOKEN as a fresh Dockspace process reads it (settings are read once, at start)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DOCKSPACE_METRICS_TOKEN")}
    environ.update(DOCKSPACE_DATA_DIR=str(tmp_path / "data"), **env)
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(repr(settings.METRICS_TOKEN))",
        ],
        cwd=django_settings.BASE_DIR,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_token_can_come_from_a_file_and_a_weak_one_is_refused_at_start(tmp_path):
    secret = tmp_path / "metrics_token"
    secret.write_text(TOKEN + "\n")
    from_file = settings_value(tmp_path, DOCKSPACE_METRICS_TOKEN_FILE=str(secret))
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout.strip() == repr(TOKEN)

    for weak in ("short", "has spaces in the middle of it", "ünïcödé-and-long-enough"):
        refused = settings_value(tmp_path, DOCKSPACE_METRICS_TOKEN=weak)
        assert refused.returncode != 0
        assert "DOCKSPACE_METRICS_TOKEN must be at least 16 characters" in refused.stderr
        assert weak not in refused.stderr  # the value is never echoed

    unset = settings_value(tmp_path)
    assert unset.returncode == 0 and unset.stdout.strip() == "''"
