"""Finding 15: Dockspace's data directory and files are private to its user, whatever the umask."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail

from dockspace.checks import check_data_dir, check_private_file_modes
from dockspace.outbox import PrivateFileEmailBackend

ROOT = Path(settings.BASE_DIR)


def manage(tmp_path, *args, **env):
    unset = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")
    environ = {k: v for k, v in os.environ.items() if k not in unset}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300
    )


def mode(path):
    return path.stat().st_mode & 0o777


def test_migrate_into_a_data_dir_that_does_not_exist_creates_it_private_under_a_loose_umask(tmp_path):
    data_dir = tmp_path / "new" / "data"
    old = os.umask(0o022)
    try:
        result = manage(tmp_path, "migrate", "--noinput", DEBUG="1", DOCKSPACE_DATA_DIR=str(data_dir))
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr
    assert mode(data_dir) == 0o700
    assert mode(tmp_path / "new") == 0o700  # parents created on the way too
    assert mode(data_dir / "dockspace.sqlite3") == 0o600
    assert mode(data_dir / "dev-secret-key") == 0o600
    assert (data_dir / "dockspace.sqlite3").stat().st_size > 0  # a real, migrated database
    check = manage(tmp_path, "check", DEBUG="1", DOCKSPACE_DATA_DIR=str(data_dir))
    assert "dockspace.W003" not in check.stdout + check.stderr


def test_an_sqlite_database_in_a_missing_directory_is_named_with_the_fix(tmp_path):
    missing = tmp_path / "elsewhere" / "db.sqlite3"
    result = manage(
        tmp_path, "migrate", DEBUG="1", DOCKSPACE_DATA_DIR=str(tmp_path / "d"), DATABASE_URL=f"sqlite:///{missing}"
    )
    assert result.returncode != 0
    assert f"mkdir -m 0700 -p {missing.parent}" in result.stderr
    assert "Traceback" not in result.stderr
    check = manage(
        tmp_path, "check", DEBUG="1", DOCKSPACE_DATA_DIR=str(tmp_path / "d"), DATABASE_URL=f"sqlite:///{missing}"
    )
    assert "dockspace.E005" in check.stderr


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_check_warns_when_the_data_dir_or_database_is_readable_by_others(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    database = tmp_path / "dockspace.sqlite3"
    database.write_text("")
    settings.DATABASES = {"default": {**settings.DATABASES["default"], "ENGINE": "django.db.backends.sqlite3"}}
    settings.DATABASES["default"]["NAME"] = str(database)
    tmp_path.chmod(0o700)
    database.chmod(0o600)
    assert check_private_file_modes() == []  # positive control: private modes pass

    database.chmod(0o644)
    warnings = check_private_file_modes()
    assert [w.id for w in warnings] == ["dockspace.W003"]
    assert f"{database} (0644)" in warnings[0].msg

    database.chmod(0o600)
    tmp_path.chmod(0o755)
    assert f"{tmp_path} (0755)" in check_private_file_modes()[0].msg
    tmp_path.chmod(0o700)


def test_the_data_dir_check_still_passes_for_a_writable_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "fresh"
    assert check_data_dir() == []


def test_outbox_messages_are_written_0600_in_a_0700_directory(tmp_path):
    outbox = tmp_path / "outbox"
    old = os.umask(0o022)
    try:
        backend = PrivateFileEmailBackend(file_path=str(outbox))
        sent = backend.send_messages([mail.EmailMessage("Reset", "link /password/reset/MQ/tok/", to=["a@example.com"])])
    finally:
        os.umask(old)
    assert sent == 1
    files = list(outbox.iterdir())
    assert len(files) == 1
    assert "/password/reset/MQ/tok/" in files[0].read_text()
    assert mode(outbox) == 0o700
    assert mode(files[0]) == 0o600


def test_every_message_goes_through_the_outbox_table_whether_or_not_smtp_is_configured():
    from dockspace import settings as configured  # the test runner swaps in locmem; the module keeps ours

    # Without EMAIL_HOST the outbox delivers through PrivateFileEmailBackend (accounts/tests/test_outbox.py).
    assert configured.EMAIL_BACKEND == "accounts.outbox.OutboxBackend"
