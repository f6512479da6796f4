"""Commands given make run's DOCKSPACE_BIND print the address make run serves (issuer, setup link)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def settings_url(tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("DOCKSPACE_URL", "DOCKSPACE_BIND")}
    environ.update(DEBUG="1", DOCKSPACE_DATA_DIR=str(tmp_path), **env)
    code = "import django; django.setup(); from django.conf import settings; print(settings.DOCKSPACE_URL)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True)
    return done.stdout.strip() or done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        ("127.0.0.1:8111", "http://127.0.0.1:8111"),
        ("0.0.0.0:8112", "http://127.0.0.1:8112"),
        ("[::1]:8113", "http://[::1]:8113"),
    ],
)
def test_the_url_follows_dockspace_bind_when_it_is_not_set(tmp_path, bind, url):
    assert settings_url(tmp_path, DOCKSPACE_BIND=bind) == url


def test_an_explicit_dockspace_url_wins_and_the_default_stays(tmp_path):
    assert settings_url(tmp_path, DOCKSPACE_BIND="127.0.0.1:8111", DOCKSPACE_URL="https://id.example.com") == (
        "https://id.example.com"
    )
    assert settings_url(tmp_path) == "http://127.0.0.1:8000"


def test_a_bad_bind_names_the_variable(tmp_path):
    assert "DOCKSPACE_BIND must be HOST:PORT" in settings_url(tmp_path, DOCKSPACE_BIND="nonsense")
