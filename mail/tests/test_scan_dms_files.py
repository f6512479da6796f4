"""manage.py scan_dms_files: finds hand edits in the DMS files (as DMS's own `setup` makes them), reports
them line by line, exits 1 in a dry run for monitoring, and otherwise puts the files back."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from mail import services
from mail.dms.sync import dms_sync
from mail.models import DmsSyncState, Domain
from mail.tests.factories import make_domain, make_mailbox, run

pytestmark = pytest.mark.django_db

# What `setup email add eve@example.com` appends with `>>`.
SETUP_LINE = "eve@example.com|{SHA512-CRYPT}$6$abcdefghijklmnop$" + "x" * 86
# How the line is reported: the address and scheme, never the hash itself.
SETUP_LINE_SHOWN = "eve@example.com|{SHA512-CRYPT}…"


@pytest.fixture
def synced(dms_dir):
    make_domain("example.com")
    make_mailbox("bob@example.com")
    dms_sync()
    return dms_dir


def dry_run_exit(*args):
    """Run scan_dms_files --dry-run expecting drift: (exit code, output)."""
    out = io.StringIO()
    with pytest.raises(SystemExit) as e:
        call_command("scan_dms_files", "--dry-run", *args, stdout=out)
    return e.value.code, out.getvalue()


def test_no_drift_is_reported_as_such_and_exits_normally(synced):
    assert "No drift" in run("scan_dms_files", "--dry-run")
    assert "No drift" in run("scan_dms_files")


def test_dry_run_reports_an_appended_line_and_exits_1_without_repairing(synced):
    accounts = synced / "postfix-accounts.cf"
    edited = accounts.read_text() + SETUP_LINE + "\n"
    accounts.write_text(edited)
    code, out = dry_run_exit()
    assert code == 1
    assert "drift in postfix-accounts.cf:" in out
    assert f"-{SETUP_LINE_SHOWN}" in out.splitlines()
    assert "abcdefghijklmnop" not in out
    assert "Drift in 1 file(s); nothing repaired (dry run)." in out
    assert accounts.read_text() == edited
    state = DmsSyncState.load()
    assert state.drift_found_at is not None
    assert SETUP_LINE_SHOWN in state.drift_report and "abcdefghijklmnop" not in state.drift_report


def test_without_dry_run_the_hand_edit_is_repaired(synced):
    accounts = synced / "postfix-accounts.cf"
    original = accounts.read_bytes()
    accounts.write_bytes(original + (SETUP_LINE + "\n").encode())
    out = run("scan_dms_files")
    assert SETUP_LINE_SHOWN in out
    assert "Repaired drift in 1 file(s)." in out
    assert accounts.read_bytes() == original
    assert "No drift" in run("scan_dms_files", "--dry-run")
    assert DmsSyncState.load().drift_report == ""


def test_a_changed_line_and_a_deleted_file_are_both_reported_and_repaired(synced):
    quotas = synced / "dovecot-quotas.cf"
    original_quotas = quotas.read_text()
    quotas.write_text(original_quotas.replace("bob@example.com:0", "bob@example.com:10G"))
    virtual = synced / "postfix-virtual.cf"
    original_virtual = virtual.read_text()
    virtual.unlink()
    code, out = dry_run_exit()
    assert code == 1
    assert "-bob@example.com:10G" in out and "+bob@example.com:0" in out
    assert "--- /dev/null\n+++ b/postfix-virtual.cf" in out
    assert "Drift in 2 file(s)" in out
    run("scan_dms_files")
    assert (quotas.read_text(), virtual.read_text()) == (original_quotas, original_virtual)


def test_drift_in_a_private_key_is_reported_without_showing_the_key(synced):
    services.dkim_generate(domain=Domain.objects.get(), algorithm="ed25519")
    dms_sync()
    key = synced / "opendkim/keys/example.com/mail.private"
    original = key.read_bytes()
    key.write_text("-----BEGIN PRIVATE KEY-----\nsomeone else's key\n-----END PRIVATE KEY-----\n")
    code, out = dry_run_exit()
    assert code == 1
    assert "drift in opendkim/keys/example.com/mail.private:" in out
    assert "secret file, contents not shown" in out
    assert "PRIVATE KEY" not in out
    run("scan_dms_files")
    assert key.read_bytes() == original


def test_a_dms_dir_it_cannot_read_is_a_clean_error(settings, tmp_path):
    (tmp_path / "a-file").write_text("x\n")
    settings.DMS_DIR = tmp_path / "a-file"
    with pytest.raises(CommandError) as e:
        run("scan_dms_files", "--dry-run")
    assert str(e.value).startswith(f"DOCKSPACE_DMS_DIR: could not read {tmp_path / 'a-file'}: ")


def test_a_file_replaced_by_a_symlink_out_of_the_directory_is_a_clean_error_and_nothing_is_written(synced, tmp_path):
    outside = tmp_path / "outside.cf"
    outside.write_text("not Dockspace's\n")
    virtual = synced / "postfix-virtual.cf"
    virtual.unlink()
    virtual.symlink_to(outside)
    with pytest.raises(CommandError) as e:
        run("scan_dms_files")
    assert "outside the DMS config directory" in str(e.value)
    assert outside.read_text() == "not Dockspace's\n"
