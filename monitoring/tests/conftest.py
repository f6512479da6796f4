"""Every monitoring test that writes DMS files writes them into its own temporary directory."""

import pytest


@pytest.fixture(autouse=True)
def dms_dir(settings, tmp_path):
    settings.DMS_DIR = tmp_path / "dms"
    settings.DMS_HISTORY_DIR = tmp_path / "dms-history"
    return settings.DMS_DIR
