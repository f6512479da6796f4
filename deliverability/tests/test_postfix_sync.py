"""The pool plumbing as DMS files: declared by deliverability, written by mail's sync after a committed change to an
IP, a pool or its domains, flagged as needing a DMS restart; an IP that leaves rotation leaves the files at the next
sync; an operator's own user-patches.sh is left alone without holding back mail's files; a deployed file an earlier
release wrote differently is rewritten by the drift repair and asks for a new container."""

import pytest

from accounts.authz import SYSTEM
from deliverability import ip_lifecycle, ip_pools
from deliverability.dms_files import read_pool_routes
from deliverability.models import IpPool, SendingIp
from deliverability.postfix_transports import MAIN_PATH, MAP_PATH, USER_PATCHES_PATH, parse_main, parse_user_patches
from deliverability.tests.factories import make_ip, make_pool, move
from mail.dms import catalog, sync
from mail.dms.catalog import HEADER
from mail.models import DmsSyncState
from mail.services import dms_restart_done
from mail.tasks import repair_dms_drift
from mail.tests.factories import make_domain, make_mailbox, make_tier, use_temp_dms_dir

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def dms_dir(settings, tmp_path):
    return use_temp_dms_dir(settings, tmp_path)


def _rotation(dms_dir):
    entries, problems = parse_main((dms_dir / MAIN_PATH).read_text(), MAIN_PATH)
    assert problems == []
    return dict(entries)["sender_dependent_default_transport_maps"]


def _entries(dms_dir):
    return parse_user_patches((dms_dir / USER_PATCHES_PATH).read_text(), "f")[0]


def _transports(dms_dir):
    return [entry.split()[0] for entry in _entries(dms_dir)]


def test_deliverability_declares_its_three_files_and_the_models_that_change_them():
    for path in (MAP_PATH, MAIN_PATH, USER_PATCHES_PATH):
        declared = catalog.declared_for(path)
        assert declared is not None and declared.app_label == "deliverability"
        assert "Recreate the mailserver container" in declared.restart_reason(path)
    assert {SendingIp, IpPool, IpPool.domains.through, IpPool.tiers.through} <= set(catalog.sync_models())
    # mail declares no Postfix main.cf of its own: deliverability owns it.
    assert [item.app_label for item in catalog.declared_files() if item.owns(MAIN_PATH)] == ["deliverability"]


def test_a_committed_ip_writes_the_files_and_flags_a_restart(dms_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        pool = make_pool("bulk", domains=[make_domain("a.example")])
        make_ip("192.0.2.10", pool=pool, weight=1)
        make_ip("192.0.2.11", pool=pool, weight=2, state=ip_lifecycle.ACTIVE)

    assert (dms_dir / MAP_PATH).read_text() == HEADER + "@a.example bulk\n"
    assert "inline:{bulk=bulk}, randmap:{out-192-0-2-10, out-192-0-2-11, out-192-0-2-11}}" in _rotation(dms_dir)
    assert _transports(dms_dir) == ["out-192-0-2-10", "out-192-0-2-11"]
    state = DmsSyncState.load()
    assert state.restart_needed and "Recreate the mailserver container" in state.restart_reason


def test_an_ip_moved_to_resting_leaves_the_files_at_the_next_sync(dms_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        pool = make_pool("bulk", domains=[make_domain("a.example")])
        make_ip("192.0.2.10", pool=pool)
        resting = make_ip("192.0.2.11", pool=pool)
    assert "out-192-0-2-11" in _rotation(dms_dir)

    with django_capture_on_commit_callbacks(execute=True):
        move(resting, ip_lifecycle.RESTING)

    assert "out-192-0-2-11" not in _rotation(dms_dir)
    assert "inline:{bulk=out-192-0-2-10}" in _rotation(dms_dir)
    assert _transports(dms_dir) == ["out-192-0-2-10"]


def test_a_tiers_domains_send_through_its_pool_unless_in_a_pool_of_their_own():
    tier = make_tier(name="bulk-tier")
    make_domain("own.example", tier=tier)
    make_domain("tiered.example", tier=tier)
    make_domain("inactive.example", tier=tier, is_active=False)
    make_domain("unpooled.example")
    by_tier = make_pool("bulk", tiers=[tier])
    own = make_pool("own", domains=[ip_pools.Domain.objects.get(name="own.example")])
    make_ip("192.0.2.10", pool=by_tier)
    make_ip("192.0.2.11", pool=own)

    routes = {route.pool: route.domains for route in read_pool_routes()}

    assert routes == {"bulk": ("tiered.example",), "own": ("own.example",)}


def test_a_pools_new_domain_is_written_by_the_next_sync(dms_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        pool = make_pool("bulk")
        make_ip("192.0.2.10", pool=pool)
        domain = make_domain("late.example")
    assert "@late.example" not in (dms_dir / MAP_PATH).read_text()

    with django_capture_on_commit_callbacks(execute=True):
        ip_pools.pool_update(pool=pool, domains=[domain], actor=SYSTEM, actor_label="test")

    assert (dms_dir / MAP_PATH).read_text().endswith("@late.example bulk\n")


def test_an_operators_own_user_patches_is_left_alone_and_mails_files_are_still_written(
    dms_dir, django_capture_on_commit_callbacks
):
    dms_dir.mkdir(parents=True)
    own = "#!/bin/bash\necho 'my patch'\n"
    (dms_dir / USER_PATCHES_PATH).write_text(own)

    with django_capture_on_commit_callbacks(execute=True):
        make_mailbox("me@example.com")
        make_ip("192.0.2.10", pool=make_pool("bulk"))

    assert (dms_dir / USER_PATCHES_PATH).read_text() == own
    assert "me@example.com|" in (dms_dir / "postfix-accounts.cf").read_text()
    assert (dms_dir / MAIN_PATH).exists()
    assert f"{USER_PATCHES_PATH}: left alone (not written): it holds 1 line(s)" in DmsSyncState.load().skipped

    # Once the operator lets Dockspace take over (--force), the file is Dockspace's.
    sync.dms_sync(force=True)
    assert _transports(dms_dir) == ["out-192-0-2-10"]


def test_files_that_route_nothing_ask_for_no_restart_when_first_written(dms_dir):
    make_mailbox("me@example.com")
    make_pool("bulk", domains=[make_domain("a.example")])  # a pool without IPs routes nothing

    sync.dms_sync()

    assert (dms_dir / USER_PATCHES_PATH).exists() and (dms_dir / MAIN_PATH).exists()
    assert DmsSyncState.load().restart_needed is False
    # The positive control: the first IP changes the routing, and asks for a new container.
    make_ip("192.0.2.10", pool=IpPool.objects.get(name="bulk"))
    sync.dms_sync()
    assert DmsSyncState.load().restart_needed is True


def test_scan_and_export_dry_runs_say_an_operators_own_main_cf_is_left_alone_and_what_to_do(dms_dir):
    from mail.tests.factories import run

    make_mailbox("me@example.com")
    make_ip("192.0.2.10", pool=make_pool("bulk"))
    sync.dms_sync()
    own = "message_size_limit = 52428800\nsmtpd_banner = $myhostname ESMTP\n"
    (dms_dir / MAIN_PATH).write_text(own)

    scan = run("scan_dms_files", "--dry-run")
    export = run("export_dms_files", "--dry-run")

    for out in (scan, export):
        assert f"{MAIN_PATH}: left alone (not written): it holds 2 line(s) Dockspace did not write" in out
        assert "`manage.py export_dms_files --force` adopts it, replacing those lines: they are lost" in out
        assert "Dockspace has no place for arbitrary Postfix settings (main.cf lines)" in out
    assert "No drift: " not in scan
    assert "No drift in the files Dockspace writes in" in scan and "1 file(s) left alone (above), not compared" in scan
    assert f"not written: {MAIN_PATH}: left alone" in export
    assert (dms_dir / MAIN_PATH).read_text() == own

    (dms_dir / MAIN_PATH).unlink()  # without a foreign copy: nothing is left alone
    sync.dms_sync()
    assert "left alone" not in run("scan_dms_files", "--dry-run")
    assert "left alone" not in run("export_dms_files", "--dry-run")


def test_a_deployed_user_patches_gets_each_transports_log_tag_at_the_next_drift_repair_and_asks_for_a_new_container(
    dms_dir,
):
    """An upgrade: the user-patches.sh an earlier release wrote (no syslog_name) is not what the sync writes now. No
    change is pending, so the periodic drift repair writes it; the new entry reaches Postfix in a new container."""
    make_mailbox("me@example.com")
    make_ip("192.0.2.10", pool=make_pool("bulk", domains=[make_domain("a.example")]))
    sync.dms_sync()
    dms_restart_done(actor=SYSTEM, actor_label="test")  # the container was recreated after that sync
    patches = dms_dir / USER_PATCHES_PATH
    patches.write_text(patches.read_text().replace(" -o syslog_name=postfix/out-192-0-2-10", ""))
    assert not sync.is_behind() and DmsSyncState.load().restart_needed is False

    assert repair_dms_drift() == "repaired drift in 1 file(s)"

    assert _entries(dms_dir) == [
        "out-192-0-2-10 unix - - n - - smtp -o syslog_name=postfix/out-192-0-2-10 -o inet_protocols=ipv4 "
        "-o smtp_bind_address=192.0.2.10 -o smtp_helo_name=out-192-0-2-10.example.com"
    ]
    state = DmsSyncState.load()
    assert state.restart_needed is True
    assert state.restart_reason.startswith(f"{USER_PATCHES_PATH} (the sending IPs' Postfix transports) changed")
