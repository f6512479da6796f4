"""Fixtures of the monitoring tests: a real sshd on loopback (monitoring/tests/sshd.py); and every test that writes
DMS files writes them into its own temporary directory."""

import pytest

from monitoring.tests.sshd import silent_port, sshd, sshd_keys  # noqa: F401 (pytest finds fixtures by name)


@pytest.fixture(autouse=True)
def dms_dir(settings, tmp_path):
    settings.DMS_DIR = tmp_path / "dms"
    settings.DMS_HISTORY_DIR = tmp_path / "dms-history"
    return settings.DMS_DIR
