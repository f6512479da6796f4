"""An app adds a DMS file by declaring it in its own AppConfig (the test-only extension app declares
postfix-helo-access.cf and its model BlockedHelo): a committed row is written by the coalesced sync, a hand
edit is found by the drift scan and repaired, the dry-run diff and the history show it like mail's files,
an unadopted file is never replaced, and adoption says it is not adopted. mail's code (tests aside) never
names the app. It sits in mail/tests: it uses mail, and a test lives with the highest app it needs."""

from pathlib import Path

import pytest
from django.db import transaction

from dockspace.tests.extension_app.dms import HELO_ACCESS_PATH, parse_helo_access
from dockspace.tests.extension_app.models import BlockedHelo
from mail.dms import catalog, sync
from mail.dms.adoption import adopt_dms_directory
from mail.dms.catalog import HEADER
from mail.models import DmsSyncState
from mail.tests.factories import make_domain, make_mailbox, run, use_temp_dms_dir

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def dms_dir(settings, tmp_path):
    return use_temp_dms_dir(settings, tmp_path)


def _helo_file(dms_dir):
    return (dms_dir / HELO_ACCESS_PATH).read_text()


def test_the_extension_file_is_in_the_catalog_with_its_app_and_model():
    declared = catalog.declared_for(HELO_ACCESS_PATH)
    assert declared is not None and declared.app_label == "extension_app"
    assert BlockedHelo in catalog.sync_models()
    assert HELO_ACCESS_PATH in catalog.files_hint()


def test_a_committed_row_schedules_one_sync_that_writes_the_file(dms_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        BlockedHelo.objects.create(name="spammer.example")
        BlockedHelo.objects.create(name="bad.example")
        assert not (dms_dir / HELO_ACCESS_PATH).exists()  # nothing before the commit
    assert [f for f in callbacks if f is sync._on_commit] == [sync._on_commit]  # one coalesced sync
    assert _helo_file(dms_dir) == HEADER + "bad.example REJECT\nspammer.example REJECT\n"
    assert not sync.is_behind()


def test_a_deleted_row_leaves_the_file(dms_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        row = BlockedHelo.objects.create(name="bad.example")
    with django_capture_on_commit_callbacks(execute=True):
        row.delete()
    assert _helo_file(dms_dir) == HEADER


def test_a_rolled_back_row_writes_nothing(dms_dir, django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        BlockedHelo.objects.create(name="bad.example")
        raise RuntimeError("abort")
    assert not callbacks and not (dms_dir / HELO_ACCESS_PATH).exists()


def test_a_hand_edit_is_found_by_the_drift_scan_and_repaired(dms_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        BlockedHelo.objects.create(name="bad.example")
    (dms_dir / HELO_ACCESS_PATH).write_text(HEADER + "bad.example OK\nfriend.example REJECT\n")

    with pytest.raises(SystemExit) as exit_code:
        run("scan_dms_files", "--dry-run")
    assert exit_code.value.code == 1
    drift = sync.dms_scan(repair=False)
    assert list(drift) == [HELO_ACCESS_PATH]
    assert "-bad.example OK\n-friend.example REJECT\n+bad.example REJECT\n" in drift[HELO_ACCESS_PATH]
    assert _helo_file(dms_dir).endswith("friend.example REJECT\n")  # a dry scan repairs nothing

    output = run("scan_dms_files")
    assert "Repaired drift in 1 file(s)." in output
    assert _helo_file(dms_dir) == HEADER + "bad.example REJECT\n"
    assert sync.dms_scan(repair=False) == {}


def test_the_dry_run_diff_shows_a_row_not_written_yet(dms_dir):
    sync.dms_sync()
    BlockedHelo.objects.bulk_create([BlockedHelo(name="new.example")])  # no signal: the files are not told
    output = run("export_dms_files", "--dry-run")
    assert f"+++ b/{HELO_ACCESS_PATH}" in output and "+new.example REJECT" in output
    assert _helo_file(dms_dir) == HEADER


def test_the_history_keeps_and_restores_the_previous_version(dms_dir, settings, django_capture_on_commit_callbacks):
    sync.dms_sync()
    with django_capture_on_commit_callbacks(execute=True):
        BlockedHelo.objects.create(name="bad.example")
    listing = run("dms_history", "list", HELO_ACCESS_PATH)
    assert len(listing.splitlines()) == 1
    sha = listing.split()[2]
    run("dms_history", "restore", HELO_ACCESS_PATH, sha[:8])
    assert _helo_file(dms_dir) == HEADER


def test_an_unadopted_file_is_never_replaced_and_adoption_says_it_is_not_adopted(dms_dir):
    dms_dir.mkdir(parents=True)
    (dms_dir / HELO_ACCESS_PATH).write_text("old.example REJECT\nother.example REJECT\n")
    BlockedHelo.objects.create(name="spammer.example")
    make_domain("example.com")
    make_mailbox("ann@example.com", password="long-enough-password-1")
    sync.dms_sync()
    assert _helo_file(dms_dir) == "old.example REJECT\nother.example REJECT\n"
    # The unadopted file holds back only itself: mail's files (who may sign in) are written.
    assert "ann@example.com|" in (dms_dir / "postfix-accounts.cf").read_text()
    assert DmsSyncState.load().skipped == (
        f"{HELO_ACCESS_PATH}: left alone (not written): it holds 2 line(s) Dockspace did not write, and Dockspace "
        "writes this file whole. `manage.py export_dms_files --force` adopts it, replacing those lines: enter what "
        "they do in Dockspace first, or they are lost (import_dms_files adopts mail's files only)"
    )
    assert sync.dms_scan(repair=False) == {}  # left alone is not drift
    sync.dms_sync(force=True)
    assert _helo_file(dms_dir) == HEADER + "spammer.example REJECT\n"
    BlockedHelo.objects.all().delete()
    (dms_dir / HELO_ACCESS_PATH).write_text("old.example REJECT\nother.example REJECT\n")

    (dms_dir / "postfix-accounts.cf").write_text("")
    report = adopt_dms_directory(dms_dir, dry_run=True)
    assert [str(problem) for problem in report.not_adopted] == [
        f"{HELO_ACCESS_PATH}: 2 entries not adopted: import_dms_files adopts postfix-accounts.cf, "
        "dovecot-quotas.cf, postfix-virtual.cf, postfix-send-access.cf, postfix-receive-access.cf only; taking "
        "over replaces this file with what Dockspace's database says"
    ]
    assert HELO_ACCESS_PATH not in report.left_alone


def test_parse_reads_back_what_render_writes():
    files = catalog.render_snapshot(
        {HELO_ACCESS_PATH: ("a.example", "b.example")}, [catalog.declared_for(HELO_ACCESS_PATH)]
    )
    assert parse_helo_access(files[HELO_ACCESS_PATH].decode()) == (["a.example", "b.example"], [])
    names, problems = parse_helo_access("x.example OK\n")
    assert names == [] and str(problems[0]) == f"{HELO_ACCESS_PATH}:1: expected NAME REJECT"


def test_a_value_that_would_break_the_file_is_left_out_and_reported(dms_dir):
    BlockedHelo.objects.bulk_create([BlockedHelo(name="two words"), BlockedHelo(name="ok.example")])
    report = sync.dms_sync()
    assert report.skipped == ["HELO name 'two words' cannot be written to a DMS file"]
    assert _helo_file(dms_dir) == HEADER + "ok.example REJECT\n"


def test_mail_never_names_the_extension_app():
    mail = Path(__file__).resolve().parents[2] / "mail"
    code = [path for path in mail.rglob("*.py") if "tests" not in path.relative_to(mail).parts]
    assert mail / "dms" / "catalog.py" in code  # positive control: the scan reads mail's code
    assert [path for path in code if "extension_app" in path.read_text()] == []
