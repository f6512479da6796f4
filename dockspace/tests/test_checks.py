import os

import pytest

from dockspace.checks import check_data_dir, check_production_settings


def test_an_unwritable_data_dir_is_reported(settings, tmp_path):
    if os.geteuid() == 0:
        blocked = tmp_path / "file"
        blocked.write_text("not a directory")
        settings.DATA_DIR = blocked / "data"  # cannot be created: its parent is a file
    else:
        tmp_path.chmod(0o500)
        settings.DATA_DIR = tmp_path
    errors = check_data_dir()
    assert [e.id for e in errors] == ["dockspace.E001"]
    assert "DOCKSPACE_DATA_DIR" in errors[0].hint


def test_a_writable_data_dir_passes(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "new"
    assert check_data_dir() == []


@pytest.mark.parametrize(
    "debug, url, ids",
    [
        (False, "http://id.example.com", {"dockspace.E002"}),
        (False, "https://id.example.com", set()),
        (True, "http://127.0.0.1:8000", {"dockspace.W001"}),
    ],
)
def test_insecure_production_settings_are_reported(settings, debug, url, ids):
    settings.DEBUG = debug
    settings.DOCKSPACE_URL = url
    assert {e.id for e in check_production_settings()} - {"dockspace.W002"} == ids


def test_sqlite_in_production_is_a_warning(settings):
    settings.DEBUG = False
    found = {e.id for e in check_production_settings()}
    assert ("dockspace.W002" in found) == settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
