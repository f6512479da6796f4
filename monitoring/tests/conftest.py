"""Fixtures of the monitoring tests: a real sshd on loopback (monitoring/tests/sshd.py); every test that writes
DMS files writes them into its own temporary directory; `outbound_to_loopback` lets alerts reach the receivers on
loopback (monitoring/tests/stand_ins.py)."""

import ipaddress

import pytest

from monitoring.tests.sshd import silent_port, sshd, sshd_keys  # noqa: F401 (pytest finds fixtures by name)


@pytest.fixture(autouse=True)
def dms_dir(settings, tmp_path):
    settings.DMS_DIR = tmp_path / "dms"
    settings.DMS_HISTORY_DIR = tmp_path / "dms-history"
    return settings.DMS_DIR


@pytest.fixture
def outbound_to_loopback(settings):
    """Alert webhooks and Telegram may reach 127.0.0.0/8, where the stand-ins listen, as an operator allows an
    internal receiver with DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS (processes a test starts: stand_ins.LOOPBACK_ALLOWED).
    Without it Dockspace refuses them (test_channel_addresses.py)."""
    settings.OUTBOUND_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.fixture
def log_path(tmp_path):
    return tmp_path / "mail.log"


@pytest.fixture
def syslog(log_path):
    """A writer appending to `log_path` as rsyslog does (monitoring.tests.mail_log_files.Syslog)."""
    from monitoring.tests.mail_log_files import Syslog

    writer = Syslog(log_path)
    yield writer
    if writer.fd is not None:
        writer.close()
