import os
import shutil
import subprocess

import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings

from mail import services
from mail.dms import sync
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
    assert state.restart_needed and "Recreate the mailserver container" in state.restart_reason
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


# The files are behind: durable state -----------------------------------------------------------------------


def test_a_change_records_that_the_files_are_behind_in_its_own_transaction(domain):
    from mail.models import DmsPendingChange

    try:
        with transaction.atomic():
            services.mailbox_create(address="ghost@example.com")
            assert sync.is_behind()
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert not sync.is_behind()  # rolled back with the change

    with transaction.atomic():
        services.mailbox_create(address="bob@example.com")
        services.alias_create(address="info@example.com", targets=["bob@example.com"])
    assert DmsPendingChange.objects.count() == 1  # one per transaction
    sync.dms_sync()
    assert not sync.is_behind()
    assert "bob@example.com|" in _file("postfix-accounts.cf")


@pytest.mark.django_db(transaction=True)  # each change commits on its own, as in two processes
def test_a_change_committed_during_the_write_keeps_the_files_behind(domain, monkeypatch):
    from mail.dms import collection

    real_accounts = collection.dms_accounts
    committed_meanwhile = []

    def accounts_while_someone_commits():
        if not committed_meanwhile:
            committed_meanwhile.append(services.mailbox_create(address="late@example.com"))
        return real_accounts()

    services.mailbox_create(address="bob@example.com")
    from mail import tasks

    monkeypatch.setattr(tasks.sync_dms_files, "apply_async", lambda **kw: None)  # the worker is busy with ours
    monkeypatch.setattr(collection, "dms_accounts", accounts_while_someone_commits)
    sync.dms_sync()
    monkeypatch.undo()

    assert committed_meanwhile
    assert sync.is_behind(), "the change made during the write was cleared without being written for sure"
    assert sync.catch_up() is not None
    assert not sync.is_behind()
    assert "late@example.com|" in _file("postfix-accounts.cf")


def test_a_failed_write_keeps_the_files_behind_until_one_succeeds(domain):
    services.mailbox_create(address="bob@example.com")
    sync.dms_sync()
    services.mailbox_create(address="al@example.com")
    unlock = _lock_dir(settings.DMS_DIR)
    try:
        with pytest.raises(WriteError):
            sync.dms_sync()
    finally:
        unlock()
    assert sync.is_behind()
    sync.catch_up()
    assert not sync.is_behind() and "al@example.com|" in _file("postfix-accounts.cf")


def test_a_lost_task_does_not_hold_up_the_next_change_for_longer_than_the_delay(
    domain, django_capture_on_commit_callbacks, monkeypatch, settings
):
    import time_machine

    from mail import tasks

    settings.DMS_SYNC_DELAY = 2
    # A cache whose expiry follows the travelling clock (Redis, in CI, counts real seconds on its side).
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    queued = []
    monkeypatch.setattr(tasks.sync_dms_files, "apply_async", lambda **kw: queued.append(kw))
    with time_machine.travel(1_000_000, tick=False) as clock:
        sync._note_sync_start()  # a sync just started: the next change waits out the delay
        with django_capture_on_commit_callbacks(execute=True):
            services.mailbox_create(address="one@example.com")
        assert len(queued) == 1 and 0 < queued[0]["countdown"] <= 2  # ... and this task is lost
        with django_capture_on_commit_callbacks(execute=True):
            services.mailbox_create(address="two@example.com")
        assert len(queued) == 1  # coalesced into the (lost) queued one
        clock.shift(3.1)
        with django_capture_on_commit_callbacks(execute=True):
            services.mailbox_create(address="three@example.com")
        assert len(queued) == 2 and queued[1]["countdown"] == 0  # a quiet spell: at once
    assert sync.is_behind()
    tasks.sync_dms_files.apply()
    accounts = _file("postfix-accounts.cf")
    assert all(f"{name}@example.com|" in accounts for name in ("one", "two", "three"))
    assert not sync.is_behind()


def test_the_periodic_check_writes_changes_whose_task_was_lost(domain, django_capture_on_commit_callbacks, monkeypatch):
    from mail import tasks

    monkeypatch.setattr(tasks.sync_dms_files, "apply_async", lambda **kw: None)  # every task is lost
    with django_capture_on_commit_callbacks(execute=True):
        services.mailbox_create(address="bob@example.com")
    assert sync.is_behind()

    assert tasks.repair_dms_drift.apply().get() == "no drift"  # behind is caught up, not reported as drift

    assert "bob@example.com|" in _file("postfix-accounts.cf")
    assert not sync.is_behind()


def test_a_worker_start_rolls_a_killed_write_forward_and_writes_what_is_behind(domain, monkeypatch):
    from mail.dms import journal

    services.mailbox_create(address="bob@example.com")
    sync.dms_sync()
    services.mailbox_create(address="al@example.com")
    real_apply = journal._apply
    monkeypatch.setattr(journal, "_apply", lambda history, data: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # stands for the kill: the journal stays
        sync.dms_sync()
    monkeypatch.setattr(journal, "_apply", real_apply)
    assert (settings.DMS_HISTORY_DIR / "journal.json").exists()
    assert "al@example.com|" not in _file("postfix-accounts.cf")

    sync.worker_started()  # what the worker_init receiver does (the real worker is in test_dms_sync_worker.py)

    assert not (settings.DMS_HISTORY_DIR / "journal.json").exists()
    assert "al@example.com|" in _file("postfix-accounts.cf")
    assert not sync.is_behind()


def test_a_worker_start_with_nothing_behind_writes_nothing(domain):
    services.mailbox_create(address="bob@example.com")
    sync.dms_sync()
    count = DmsSyncState.load().write_count
    sync.worker_started()
    assert DmsSyncState.load().write_count == count


def test_a_repair_clears_the_drift_shown_on_the_sync_page(domain):
    services.mailbox_create(address="bob@example.com")
    sync.dms_sync()
    path = settings.DMS_DIR / "postfix-virtual.cf"
    path.write_text(path.read_text() + "intruder@example.com evil@x.org\n")
    assert sync.dms_scan(repair=True)
    assert DmsSyncState.load().drift_report == ""
    assert DmsSyncState.load().drift_found_at is None  # the sync page no longer lists drift once repaired


# A value that cannot be written -----------------------------------------------------------------------------


def test_a_bad_dkim_selector_in_the_database_is_reported_and_everything_else_is_written(domain, settings):
    from mail.models import DkimKey

    settings.DKIM_LAYOUT = "opendkim"
    other = services.domain_create(name="other.org")
    services.dkim_generate(domain=domain)
    services.dkim_generate(domain=other)
    services.mailbox_create(address="bob@example.com")
    DkimKey.objects.filter(domain=other).update(selector="mail\n")  # bypassing validation, as a hand edit would

    report = sync.dms_sync()

    state = DmsSyncState.load()
    assert state.last_error == ""
    assert "DKIM selector 'mail\\n' of other.org cannot be written" in state.skipped
    assert report.skipped == [state.skipped]
    assert "bob@example.com|" in _file("postfix-accounts.cf")
    assert (settings.DMS_DIR / "opendkim/keys/example.com/mail.private").exists()
    assert "example.com" in _file("opendkim/KeyTable") and "other.org" not in _file("opendkim/KeyTable")
    assert not (settings.DMS_DIR / "opendkim/keys/other.org").exists()

    DkimKey.objects.filter(domain=other).update(selector="mail")  # the control: repaired, it is written
    sync.dms_sync()
    assert DmsSyncState.load().skipped == ""
    assert "other.org" in _file("opendkim/KeyTable")


def test_a_bad_address_in_the_database_is_left_out_of_every_file_and_the_rest_is_written(domain):
    services.mailbox_create(address="bob@example.com")
    services.mailbox_create(address="al@example.com")
    services.alias_create(address="info@example.com", targets=["al@example.com"])
    Mailbox.objects.filter(address="al@example.com").update(address="al\n@example.com")

    sync.dms_sync()

    skipped = DmsSyncState.load().skipped
    assert "address 'al\\n@example.com' cannot be written" in skipped
    assert "bob@example.com|" in _file("postfix-accounts.cf")
    assert "al\n@" not in _file("postfix-accounts.cf") and "al\n@" not in _file("dovecot-quotas.cf")


def test_the_admin_sync_page_shows_a_value_left_out_next_to_the_files_written(domain, settings):
    from django.test import Client

    from accounts.tests.factories import StaffFactory
    from mail.models import DkimKey

    settings.DKIM_LAYOUT = "opendkim"
    services.dkim_generate(domain=domain)
    services.mailbox_create(address="bob@example.com")
    client = Client()
    client.force_login(StaffFactory(email="root@example.com"))
    state = DmsSyncState.load()
    action = {"action": "write_now", "_selected_action": [state.pk]}

    page = client.post("/admin/mail/dmssyncstate/", action, follow=True)  # control: nothing left out
    assert not [m for m in map(str, page.context["messages"]) if m.startswith("Left out")]

    DkimKey.objects.filter(domain=domain).update(selector="mail\n")
    page = client.post("/admin/mail/dmssyncstate/", action, follow=True)

    shown = [str(m) for m in page.context["messages"]]
    assert any(m.endswith("file(s) written, 5 unchanged.") or "written" in m for m in shown)
    assert (
        "Left out, cannot be written: DKIM selector 'mail\\n' of example.com cannot be written to a DMS file" in shown
    )
    change = client.get(f"/admin/mail/dmssyncstate/{state.pk}/change/").content.decode()
    assert "Some values cannot be written and were left out" in change
    assert "bob@example.com|" in _file("postfix-accounts.cf")


# File modes (finding 15, DMS side) ---------------------------------------------------------------------------


def _mode(path):
    return os.stat(path).st_mode & 0o777


def test_dms_files_get_what_dms_needs_and_dockspaces_own_files_are_private(domain, settings):
    settings.DKIM_LAYOUT = "rspamd"
    services.dkim_generate(domain=domain)
    services.mailbox_create(address="bob@example.com")
    sync.dms_sync()
    services.mailbox_create(address="al@example.com")
    sync.dms_sync()  # a second write keeps a previous version in the history

    dms, history = settings.DMS_DIR, settings.DMS_HISTORY_DIR
    assert _mode(dms / "postfix-accounts.cf") == 0o600  # hashes; DMS reads it as root
    assert _mode(next((dms / "rspamd/dkim").glob("*.private.txt"))) == 0o640  # _rspamd reads it via the group
    assert _mode(dms / "postfix-virtual.cf") == _mode(dms / "dovecot-quotas.cf") == 0o644
    assert _mode(history) == 0o700
    own = [p for p in history.rglob("*")]
    assert own and all(_mode(p) == (0o700 if p.is_dir() else 0o600) for p in own), {str(p): oct(_mode(p)) for p in own}


def test_an_accounts_file_left_world_readable_is_tightened_and_its_drift_still_shown_redacted(domain, settings):
    services.mailbox_create(address="bob@example.com")
    sync.dms_sync()
    path = settings.DMS_DIR / "postfix-accounts.cf"
    path.chmod(0o644)
    path.write_text(path.read_text() + "intruder@example.com|{SHA512-CRYPT}$6$secret$hash\n")

    drift = sync.dms_scan(repair=False)

    assert "-intruder@example.com|{SHA512-CRYPT}…" in drift["postfix-accounts.cf"]
    assert "$6$secret$hash" not in drift["postfix-accounts.cf"]
    sync.dms_scan(repair=True)
    assert _mode(path) == 0o600 and "intruder" not in path.read_text()


def test_a_task_with_nothing_to_write_does_not_delay_the_next_change(
    domain, django_capture_on_commit_callbacks, monkeypatch
):
    from django.core.cache import cache

    from mail import tasks

    services.mailbox_create(address="bob@example.com")
    sync.dms_sync()
    cache.delete(sync.LAST_START_KEY)  # a quiet spell since the setup's writes
    assert tasks.sync_dms_files.apply().get() == "up to date"
    queued = []
    monkeypatch.setattr(tasks.sync_dms_files, "apply_async", lambda **kw: queued.append(kw))

    with django_capture_on_commit_callbacks(execute=True):
        services.mailbox_create(address="al@example.com")

    assert queued == [{"countdown": 0.0}]


def test_a_worker_start_leaves_an_unadopted_dms_setup_alone_and_the_files_behind(domain, settings):
    theirs = "ann@example.com|{SHA512-CRYPT}$6$x$y\n"
    (settings.DMS_DIR / "postfix-accounts.cf").write_text(theirs)
    services.mailbox_create(address="bob@example.com")

    sync.worker_started()  # never raises: a worker must start whatever the files hold

    assert (settings.DMS_DIR / "postfix-accounts.cf").read_text() == theirs
    assert sync.is_behind()
    assert "ForeignFiles" in DmsSyncState.load().last_error


def test_a_dry_run_of_some_files_shows_what_the_next_sync_changes_in_them_and_writes_and_records_nothing(
    domain, settings
):
    settings.DKIM_LAYOUT = "opendkim"
    services.dkim_generate(domain=domain)
    services.mailbox_create(address="bob@example.com")
    sync.dms_sync()
    services.mailbox_create(address="ann@example.com")  # committed, not synced yet
    virtual = settings.DMS_DIR / "postfix-virtual.cf"
    virtual.write_text(virtual.read_text() + "intruder@example.com evil@x.org\n")  # drift in another file
    state = DmsSyncState.load()

    report = sync.dms_dry_run(paths=["postfix-accounts.cf"])

    assert report.changed == ["postfix-accounts.cf"] and list(report.diffs) == ["postfix-accounts.cf"]
    assert "+ann@example.com|" in report.diffs["postfix-accounts.cf"]
    assert report.removed == []  # the files it was not asked about (opendkim/...) are not "removed"
    assert "ann@" not in _file("postfix-accounts.cf") and sync.is_behind()
    after = DmsSyncState.load()
    assert (after.drift_found_at, after.drift_report, after.last_success_at) == (None, "", state.last_success_at)
    # Every file: the drift too.
    assert sorted(sync.dms_dry_run().diffs) == ["dovecot-quotas.cf", "postfix-accounts.cf", "postfix-virtual.cf"]
