"""manage.py export_dms_files: writes the DMS files now, into DMS_DIR or --output-dir, or shows a diff."""

import io
import os
import subprocess

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from mail.dms import catalog
from mail.models import DmsSyncState
from mail.tests.factories import dms_lines, make_domain, make_mailbox, run

pytestmark = pytest.mark.django_db

MAIL_FILES = [
    "dovecot-quotas.cf",
    "postfix-accounts.cf",
    "postfix-receive-access.cf",
    "postfix-send-access.cf",
    "postfix-virtual.cf",
]
# Without DKIM keys: mail's files and any other app's (a test-only app declares one), each written even empty.
DMS_FILES = sorted(item.path for item in catalog.declared_files() if isinstance(item, catalog.DmsFile))
N = len(DMS_FILES)


def test_mail_s_files_are_among_them():
    assert set(MAIL_FILES) <= set(DMS_FILES)


@pytest.fixture
def bob():
    make_domain("example.com")
    return make_mailbox("bob@example.com", quota=1024**3)


def files_in(directory):
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_it_writes_every_file_into_the_dms_dir_and_records_the_sync(bob, dms_dir, settings):
    out = run("export_dms_files")
    assert files_in(dms_dir) == DMS_FILES
    for name in DMS_FILES:
        assert f"wrote   {name}" in out
    assert f"{N} written, 0 removed, 0 unchanged" in out
    assert dms_lines(settings, "postfix-accounts.cf")[0].startswith("bob@example.com|{SHA512-CRYPT}$6$")
    assert DmsSyncState.load().last_success_at is not None


def test_a_second_run_with_nothing_changed_writes_nothing(bob, dms_dir):
    run("export_dms_files")
    before = {name: os.stat(dms_dir / name).st_mtime_ns for name in DMS_FILES}
    assert f"0 written, 0 removed, {N} unchanged" in run("export_dms_files")
    assert {name: os.stat(dms_dir / name).st_mtime_ns for name in DMS_FILES} == before


def test_dry_run_prints_a_unified_diff_and_writes_nothing(bob, dms_dir):
    out = run("export_dms_files", "--dry-run")
    assert files_in(dms_dir) == []
    assert "--- /dev/null\n+++ b/postfix-accounts.cf\n@@" in out
    assert "+bob@example.com:1G" in out
    assert out.rstrip().endswith("nothing written.")
    assert f"Dry run: {N} file(s) would change" in out


def test_dry_run_shows_only_what_changed_since_the_last_write(bob, dms_dir):
    run("export_dms_files")
    before = {name: (dms_dir / name).read_bytes() for name in DMS_FILES}
    make_mailbox("ann@example.com", quota=2 * 1024**3)
    out = run("export_dms_files", "--dry-run")
    assert "--- a/dovecot-quotas.cf\n+++ b/dovecot-quotas.cf" in out
    assert "+ann@example.com:2G" in out
    assert " bob@example.com:1G" in out
    assert "postfix-virtual.cf" not in out
    assert "Dry run: 2 file(s) would change" in out
    assert {name: (dms_dir / name).read_bytes() for name in DMS_FILES} == before


def test_output_dir_writes_there_and_leaves_the_dms_dir_alone(bob, dms_dir, tmp_path):
    elsewhere = tmp_path / "seed" / "config"
    out = run("export_dms_files", "--output-dir", str(elsewhere))
    assert files_in(elsewhere) == DMS_FILES
    assert files_in(dms_dir) == []
    assert f"in {elsewhere}." in out
    assert "bob@example.com:1G" in (elsewhere / "dovecot-quotas.cf").read_text()


def test_output_dir_with_dry_run_writes_nothing_there(bob, tmp_path):
    elsewhere = tmp_path / "seed"
    out = run("export_dms_files", "--output-dir", str(elsewhere), "--dry-run")
    assert "+++ b/postfix-accounts.cf" in out
    assert files_in(elsewhere) == []


def test_without_a_mailbox_it_warns_that_dms_will_stop(dms_dir):
    make_domain("example.com")
    out, err = io.StringIO(), io.StringIO()
    call_command("export_dms_files", stdout=out, stderr=err)
    assert "no mailbox exists" in err.getvalue()
    assert "120 s" in err.getvalue()
    assert files_in(dms_dir) == DMS_FILES


@pytest.mark.parametrize("where", ["a-file", "a-file/below"])
def test_an_output_dir_that_is_not_a_directory_is_refused_cleanly(bob, tmp_path, where):
    (tmp_path / "a-file").write_text("not a directory\n")
    with pytest.raises(CommandError) as e:
        run("export_dms_files", "--output-dir", str(tmp_path / where))
    message = str(e.value)
    assert message.startswith("--output-dir: ")
    assert str(tmp_path / where) in message
    assert "not a directory" in message.lower()
    assert (tmp_path / "a-file").read_text() == "not a directory\n"


def test_an_unwritable_output_dir_is_refused_cleanly(bob, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if os.geteuid() == 0:  # root ignores the mode bits, not the immutable attribute
        subprocess.run(["chattr", "+i", str(locked)], check=True)
    try:
        with pytest.raises(CommandError) as e:
            run("export_dms_files", "--output-dir", str(locked))
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
        locked.chmod(0o755)
    assert str(e.value).startswith("--output-dir: ")
    assert "Permission denied" in str(e.value) or "not writable" in str(e.value)
    assert files_in(locked) == []


def test_an_unwritable_dms_dir_is_reported_and_recorded(bob, settings, tmp_path):
    (tmp_path / "not-a-dir").write_text("x\n")
    settings.DMS_DIR = tmp_path / "not-a-dir"
    with pytest.raises(CommandError) as e:
        run("export_dms_files")
    assert str(e.value).startswith(f"DOCKSPACE_DMS_DIR: could not write to {tmp_path / 'not-a-dir'}: ")
    assert str(tmp_path / "not-a-dir") in DmsSyncState.load().last_error


def test_an_export_never_removes_files_it_did_not_write_in_that_directory(bob, tmp_path):
    domain = bob.domain
    run("dkim", "generate", domain.name, "--algorithm", "ed25519")
    run("export_dms_files", "--output-dir", str(tmp_path / "first"))
    run("dkim", "rotate", domain.name, "--algorithm", "ed25519", "--selector", "next")
    operators_key = tmp_path / "second" / "opendkim" / "keys" / "example.com" / "mail.private"
    operators_key.parent.mkdir(parents=True)
    operators_key.write_text("the operator's own key\n")
    out = run("export_dms_files", "--output-dir", str(tmp_path / "second"))
    assert not [line for line in out.splitlines() if line.startswith("removed")]
    assert operators_key.read_text() == "the operator's own key\n"


def test_it_refuses_to_replace_an_existing_dms_setup_until_forced(bob, settings):
    settings.DMS_DIR.mkdir(parents=True, exist_ok=True)
    theirs = settings.DMS_DIR / "postfix-virtual.cf"
    theirs.write_text("info@example.com bob@example.com\n")
    with pytest.raises(CommandError) as e:
        run("export_dms_files")
    assert "postfix-virtual.cf (1 lines)" in str(e.value) and "--force" in str(e.value)
    assert theirs.read_text() == "info@example.com bob@example.com\n"
    out = run("export_dms_files", "--force")
    assert "wrote   postfix-virtual.cf" in out
    assert theirs.read_text().startswith("# Generated by Dockspace")
