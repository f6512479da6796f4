"""Every mail test writes its DMS files into its own temporary directory."""

import pytest


@pytest.fixture(autouse=True)
def dms_dir(settings, tmp_path):
    settings.DMS_DIR = tmp_path / "dms"
    settings.DMS_HISTORY_DIR = tmp_path / "dms-history"
    return settings.DMS_DIR


@pytest.fixture
def browser():
    """The admin as root@example.com, a superuser without a TOTP device: the admin site lets them in
    without a code step. A test module needing other staff defines its own `browser`."""
    from django.test import Client

    from accounts.tests.factories import StaffFactory

    client = Client()
    client.force_login(StaffFactory(email="root@example.com"))
    return client
