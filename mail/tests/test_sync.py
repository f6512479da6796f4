import os
import shutil
import subprocess

import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings

from mail import services, sync
from mail.dms.writer import WriteError
from mail.models import DmsSyncState, Mailbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def domain(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return services.domain_create(name="example.com")


def _file(name):
    return (settings.DMS_DIR / name).read_text()


def test_a_committed_change_writes_the_dms_files(domain, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.mailbox_create(address="bob@example.com")
    assert "bob@example.com|{SHA512-CRYPT}$6$" in _file("postfix-accounts.cf")
    assert DmsSyncState.load().last_success_at is not None


def test_many_changes_in_one_transaction_schedule_one_sync(domain, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        for i in range(30):
            services.mailbox_create(address=f"user{i}@example.com")
        services.alias_create(address="all@example.com", targets=[f"user{i}@example.com" for i in range(30)])
    assert [f for f in callbacks if f is sync._on_commit] == [sync._on_commit]


def test_a_rolled_back_change_schedules_nothing_and_the_next_one_still_syncs(
    domain, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                services.mailbox_create(address="ghost@example.com")
                raise RuntimeError("abort")
        except RuntimeError:
            pass
    assert not callbacks
    with django_capture_on_commit_callbacks(execute=True):
        services.mailbox_create(address="real@example.com")
    assert "real@example.com|" in _file("postfix-accounts.cf")
    assert "ghost@" not in _file("postfix-accounts.cf")


def test_syncs_requested_while_one_is_queued_are_coalesced(domain, django_capture_on_commit_callbacks, monkeypatch):
    from mail import tasks

    queued = []
    monkeypatch.setattr(tasks.sync_dms_files, "apply_async", lambda **kw: queued.append(kw))
    for i in range(5):
        with django_capture_on_commit_callbacks(execute=True):
            services.mailbox_create(address=f"u{i}@example.com")
    assert len(queued) == 1
    sync.sync_started()  # the worker picked it up: the next change queues a new sync
    with django_capture_on_commit_callbacks(execute=True):
        services.mailbox_create(address="later@example.com")
    assert len(queued) == 2


def test_states_are_written_as_dms_understands_them(domain):
    services.mailbox_create(address="active@example.com")
    sus = services.mailbox_create(address="sus@example.com")
    dis = services.mailbox_create(address="dis@example.com")
    services.mailbox_set_state(mailbox=sus, state=Mailbox.SUSPENDED)
    services.mailbox_set_state(mailbox=dis, state=Mailbox.DISABLED)
    services.alias_create(address="@example.com", targets=["active@example.com"])
    sync.dms_sync()
    accounts = _file("postfix-accounts.cf")
    sus_line = next(line for line in accounts.splitlines() if line.startswith("sus@example.com|"))
    assert sus_line.startswith("sus@example.com|{SHA512-CRYPT}$6$") and sus_line.endswith("|fail=y")
    assert "dis@example.com" not in accounts
    assert "sus@example.com\tREJECT" in _file("postfix-send-access.cf")
    assert "dis@example.com\tREJECT" in _file("postfix-receive-access.cf")
    virtual = _file("postfix-virtual.cf")
    assert "active@example.com active@example.com" in virtual
    assert "sus@example.com sus@example.com" in virtual
    assert "dis@example.com" not in virtual


def test_an_inactive_domain_writes_nothing(domain):
    services.mailbox_create(address="bob@example.com")
    services.domain_update(domain=domain, is_active=False)
    sync.dms_sync()
    assert "bob@" not in _file("postfix-accounts.cf")


def test_a_list_delivers_to_its_members_mailboxes(domain):
    services.mailbox_create(address="bob@example.com")
    services.mailbox_create(address="al@example.com")
    services.group_create(name="team", address="team@example.com", members=["bob@example.com", "al@example.com"])
    services.alias_create(address="bob@example.com", targets=["x@gmail.com"], keep_copy=True)
    sync.dms_sync()
    virtual = _file("postfix-virtual.cf")
    assert "team@example.com al@example.com,bob@example.com\n" in virtual
    assert "bob@example.com x@gmail.com,bob@example.com\n" in virtual


def test_a_sync_with_nothing_changed_writes_nothing(domain):
    services.mailbox_create(address="bob@example.com")
    first = sync.dms_sync()
    inode = os.stat(settings.DMS_DIR / "postfix-accounts.cf").st_ino
    second = sync.dms_sync()
    assert "postfix-accounts.cf" in first.changed and second.changed == []
    assert os.stat(settings.DMS_DIR / "postfix-accounts.cf").st_ino == inode


def _lock_dir(path):
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "+i", str(path)], check=True)
        return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)
    os.chmod(path, 0o500)
    return lambda: os.chmod(path, 0o755)


def test_an_unwritable_dms_directory_is_reported_and_the_old_files_stay(domain):
    services.mailbox_create(address="bob@example.com")
    sync.dms_sync()
    before = {p.name: p.read_bytes() for p in settings.DMS_DIR.glob("*.cf")}
    services.mailbox_create(address="al@example.com")
    unlock = _lock_dir(settings.DMS_DIR)
    try:
        with pytest.raises(WriteError):
            sync.dms_sync()
        assert {p.name: p.read_bytes() for p in settings.DMS_DIR.glob("*.cf")} == before
        state = DmsSyncState.load()
        assert "WriteError" in state.last_error
    finally:
        unlock()
    sync.dms_sync()
    assert "al@example.com|" in _file("postfix-accounts.cf")
    assert DmsSyncState.load().last_error == ""


def test_the_sync_task_retries_when_the_directory_is_unwritable(domain):
    from mail.tasks import sync_dms_files

    services.mailbox_create(address="bob@example.com")
    settings.DMS_DIR.mkdir(parents=True, exist_ok=True)
    unlock = _lock_dir(settings.DMS_DIR)
    try:
        result = sync_dms_files.apply()
        assert result.state in ("RETRY", "FAILURE")
    finally:
        unlock()
    assert sync_dms_files.apply().get().startswith("wrote ")
    assert "bob@example.com|" in _file("postfix-accounts.cf")


def test_drift_is_reported_line_by_line_and_repaired(domain):
    services.mailbox_create(address="bob@example.com")
    sync.dms_sync()
    path = settings.DMS_DIR / "postfix-virtual.cf"
    path.write_text(path.read_text() + "intruder@example.com evil@x.org\n")
    drift = sync.dms_scan(repair=False)
    assert "+intruder@example.com evil@x.org" not in drift["postfix-virtual.cf"]
    assert "-intruder@example.com evil@x.org" in drift["postfix-virtual.cf"]
    assert "intruder" in path.read_text()
    assert DmsSyncState.load().drift_found_at is not None
    sync.dms_scan(repair=True)
    assert "intruder" not in path.read_text()
    assert sync.dms_scan(repair=False) == {}


def test_dkim_changes_flag_a_restart(domain, settings):
    settings.DKIM_LAYOUT = "opendkim"
    services.dkim_generate(domain=domain)
    sync.dms_sync()
    state = DmsSyncState.load()
    assert state.restart_needed and "Restart" in state.restart_reason
    assert (settings.DMS_DIR / "opendkim/keys/example.com/mail.private").exists()


def test_an_existing_dms_setup_is_never_replaced_until_adopted(domain, settings):
    # A DMS directory that DMS's own `setup` filled before Dockspace arrived.
    settings.DMS_DIR.mkdir(parents=True, exist_ok=True)
    (settings.DMS_DIR / "postfix-accounts.cf").unlink(missing_ok=True)
    theirs = "ann@example.com|{SHA512-CRYPT}$6$abcdefghijklmnop$xyz\n"
    (settings.DMS_DIR / "postfix-accounts.cf").write_text(theirs)
    services.mailbox_create(address="bob@example.com")
    with pytest.raises(sync.ForeignFiles) as e:
        sync.dms_sync()
    assert "postfix-accounts.cf (1 lines)" in str(e.value) and "import_dms_files" in str(e.value)
    assert (settings.DMS_DIR / "postfix-accounts.cf").read_text() == theirs
    assert "ForeignFiles" in DmsSyncState.load().last_error
    sync.dms_sync(force=True)
    assert "bob@example.com|" in _file("postfix-accounts.cf")


def test_a_committed_change_is_not_an_error_when_the_cache_is_unreachable(domain, django_capture_on_commit_callbacks):
    unreachable = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
    }
    with override_settings(CACHES=unreachable), django_capture_on_commit_callbacks(execute=True):
        services.mailbox_create(address="bob@example.com")
    assert Mailbox.objects.filter(address="bob@example.com").exists()


def test_a_person_switched_off_in_dockspace_is_refused_by_mail_too(domain):
    mailbox = services.mailbox_create(address="bob@example.com")
    person = mailbox.person
    person.is_active = False
    person.save()
    sync.dms_sync()
    assert next(line for line in _file("postfix-accounts.cf").splitlines() if line.startswith("bob@")).endswith(
        "|fail=y"
    )
    assert "bob@example.com\tREJECT" in _file("postfix-send-access.cf")


def test_a_person_without_a_usable_password_keeps_their_mailbox_line(domain):
    services.mailbox_create(address="ann@example.com")
    services.mailbox_create(address="bob@example.com")
    services.alias_create(address="@example.com", targets=["bob@example.com"])
    ann = Mailbox.objects.get(address="ann@example.com").person
    ann.set_unusable_password()
    ann.save()
    sync.dms_sync()
    assert "ann@example.com|{SHA512-CRYPT}$6$" in _file("postfix-accounts.cf")
    assert "ann@example.com ann@example.com\n" in _file("postfix-virtual.cf")


def test_targets_that_no_longer_receive_mail_are_dropped_and_an_emptied_alias_is_refused(domain):
    services.mailbox_create(address="ann@example.com")
    services.mailbox_create(address="bob@example.com")
    services.alias_create(address="info@example.com", targets=["ann@example.com"])
    services.alias_create(address="all@example.com", targets=["ann@example.com", "bob@example.com"])
    services.mailbox_set_state(mailbox=Mailbox.objects.get(address="ann@example.com"), state=Mailbox.DISABLED)
    sync.dms_sync()
    virtual = _file("postfix-virtual.cf")
    assert "all@example.com bob@example.com\n" in virtual
    assert "info@example.com" not in virtual
    assert "info@example.com\tREJECT" in _file("postfix-receive-access.cf")


def test_renaming_a_list_takes_the_old_address_out_of_aliases(domain):
    services.mailbox_create(address="bob@example.com")
    group = services.group_create(name="team", address="team@example.com", members=["bob@example.com"])
    services.alias_create(address="hello@example.com", targets=["team@example.com", "x@gmail.com"])
    services.group_update(group=group, address="crew@example.com")
    sync.dms_sync()
    assert "hello@example.com x@gmail.com\n" in _file("postfix-virtual.cf")


def test_the_tasks_report_an_unadopted_dms_setup_without_failing_or_retrying(domain, settings):
    from mail.tasks import repair_dms_drift, sync_dms_files

    (settings.DMS_DIR / "postfix-accounts.cf").write_text("ann@example.com|{SHA512-CRYPT}$6$x$y\n")
    services.mailbox_create(address="bob@example.com")  # the files are behind: the task must try
    for task in (sync_dms_files, repair_dms_drift):
        result = task.apply()
        assert result.state == "SUCCESS" and result.get().startswith("refused: ")
    assert (settings.DMS_DIR / "postfix-accounts.cf").read_text().startswith("ann@example.com|")
