"""Every process logs through one handler (settings.LOGGING's root console): a Django warning is one line."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
LOG_A_FORBIDDEN_REQUEST = (
    "import logging; logging.getLogger('django.request').warning('Forbidden: %s', '/metrics'); "
    "logging.getLogger('dockspace').warning('control line')"
)


def test_a_django_warning_under_debug_is_logged_once_formatted(tmp_path):
    unset = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(DEBUG="1", DOCKSPACE_DATA_DIR=str(tmp_path / "data"), LOG_LEVEL="INFO")
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", LOG_A_FORBIDDEN_REQUEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    # Positive control: a record of a logger outside "django" is printed by the root's handler, formatted.
    assert [line for line in lines if "control line" in line][0].endswith("WARNING dockspace: control line")
    [forbidden] = [line for line in lines if "Forbidden: /metrics" in line]
    assert forbidden.endswith("WARNING django.request: Forbidden: /metrics")
