"""`mailhost check`, the admin's "Check now" and the periodic probe, against a real sshd whose docker stand-in plays
a DMS v15.1 container (df, /proc and nproc are this machine's own), a TLS listener with a certificate the test
makes, and a real local Postfix for the queue when one can run."""

import json
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management.base import CommandError
from django.test import Client

from monitoring import probing
from monitoring.models import HostProbe, HostProbeHourly, MailboxQuotaUsage
from monitoring.tests.factories import add_host, run
from monitoring.tests.sshd import SUPERVISORCTL
from monitoring.tests.test_probe_postqueue import closed_port, private_postfix  # noqa: F401 (fixtures)
from monitoring.tests.test_probe_tls import Authority, implicit_tls, listeners  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_tls(monkeypatch):
    """Probes read no certificate (the tests that are not about them)."""
    monkeypatch.setattr(probing, "TLS_PORTS", ())


def check(*args):
    """(stdout, error or None) of `mailhost check`."""
    try:
        return run("mailhost", "check", *args), None
    except CommandError as e:
        return None, str(e)


def test_a_healthy_host_is_recorded_with_every_reading(sshd, no_tls):
    add_host(sshd)
    out, error = check("mx1")
    assert error is None
    assert out.startswith("mx1: healthy (probed in ")
    assert "postfix RUNNING" in out and "queue     0 message(s), 0 deferred" in out and "DMS       v15.1.0" in out
    probe = HostProbe.objects.get()
    assert (probe.status, probe.reachable, probe.reasons, probe.errors) == ("healthy", True, [], {})
    assert probe.services["fail2ban"] == "RUNNING" and "fail2ban" in probe.expected_services
    assert probe.queue_count == 0 and probe.dms_version == "v15.1.0"
    assert probe.cpus == os.cpu_count() or probe.cpus >= 1
    assert 0 < probe.disk_percent < 100 and probe.disk_total_bytes > probe.disk_used_bytes > 0
    assert probe.load1 is not None and probe.memory_total_bytes > probe.memory_available_bytes > 0
    hourly = HostProbeHourly.objects.get()
    assert (hourly.probes, hourly.down, hourly.queue_count_max) == (1, 0, 0)


def test_check_json_is_the_stored_probe(sshd, no_tls):
    add_host(sshd)
    out, _ = check("mx1", "--json")
    data = json.loads(out)
    assert data["status"] == "healthy" and data["host"] == "mx1"
    assert data["services"]["postfix"] == "RUNNING"
    assert data["queue"] == {"count": 0, "deferred": 0, "oldest_age_seconds": None}
    assert data["disk"]["path"] == "/" and data["dms_version"] == "v15.1.0"
    listed = json.loads(run("mailhost", "list", "--json"))
    assert (listed[0]["status"], listed[0]["probed_at"]) == ("healthy", data["started_at"])


def test_quota_use_is_kept_per_mailbox_and_follows_dovecot(sshd, no_tls):
    add_host(sshd)
    check("mx1")
    rows = {u.address: (u.used_bytes, u.limit_bytes) for u in MailboxQuotaUsage.objects.all()}
    assert rows == {"bob@example.com": (1024 * 1024, 2 * 1024**3), "alice@example.com": (512000 * 1024, None)}
    sshd.answer(
        ["docker", "exec", "mailserver", "doveadm", "-f", "tab", "quota", "get", "-A"],
        stdout="Username\tQuota name\tType\tValue\tLimit\t%\nbob@example.com\tUser quota\tSTORAGE\t2048\t2097152\t0\n",
    )
    check("mx1")
    assert list(MailboxQuotaUsage.objects.values_list("address", "used_bytes")) == [("bob@example.com", 2048 * 1024)]


def test_a_stopped_service_degrades_and_a_stopped_postfix_is_down(sshd, no_tls):
    add_host(sshd)
    services = ["docker", "exec", "mailserver", "supervisorctl", "status"]
    sshd.answer(
        services, stdout=SUPERVISORCTL.replace("fail2ban                         RUNNING", "fail2ban  FATAL"), exit=3
    )
    out, error = check("mx1")
    assert error is None and out.startswith("mx1: degraded") and "  - fail2ban is FATAL" in out
    sshd.answer(
        services, stdout=SUPERVISORCTL.replace("postfix                          RUNNING", "postfix  STOPPED"), exit=3
    )
    out, error = check("mx1")
    assert error == "mx1 is down."
    probe = HostProbe.objects.order_by("-started_at").first()
    assert probe.status == "down" and "postfix is STOPPED" in probe.reasons


def test_a_full_mail_volume_degrades(sshd, no_tls):
    add_host(sshd, mail_volume="/srv/mail")
    sshd.stand_in("df")
    sshd.answer(
        ["df", "-P", "-B1", "/srv/mail"],
        stdout="Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/sdb1 1000000 950000 50000 95% /srv/mail\n",
    )
    check("mx1")
    probe = HostProbe.objects.get()
    assert probe.status == "degraded" and "disk /srv/mail 95 % used" in probe.reasons


def test_a_host_whose_key_changed_is_down_naming_both_keys_and_nothing_runs(sshd, no_tls):
    add_host(sshd)
    sshd.restart(host_key="second")
    out, error = check("mx1")
    assert error == "mx1 is down."
    probe = HostProbe.objects.get()
    assert probe.reachable is False and probe.status == "down"
    assert sshd.fingerprint("first") in probe.reasons[0] and sshd.fingerprint("second") in probe.reasons[0]
    assert sshd.calls() == []


def test_an_unreachable_host_is_down_with_the_reason(sshd, no_tls):
    add_host(sshd)
    sshd.stop()
    _, error = check("mx1")
    assert error == "mx1 is down."
    assert HostProbe.objects.get().reasons == [
        f"host unreachable: 127.0.0.1:{sshd.port} refused the connection or cannot be reached."
    ]


def test_a_sudo_asking_for_a_password_is_the_reason_in_every_container_reading(sshd, no_tls):
    add_host(sshd, use_sudo=True)
    sshd.set_sudo("password")
    check("mx1")
    probe = HostProbe.objects.get()
    assert probe.status == "down"
    assert "needs passwordless sudo for docker" in probe.errors["services"]
    assert probe.load1 is not None  # readings on the host itself, without sudo, still work


def in_days(days):
    return datetime.now(UTC).replace(microsecond=0) + timedelta(days=days, hours=1)


def test_a_certificate_expiring_soon_is_a_reason(sshd, monkeypatch, listeners, tmp_path):  # noqa: F811
    authority = Authority(tmp_path)
    certfile, keyfile, _ = authority.issue("mx1", not_after=in_days(5))
    listener = listeners(implicit_tls(certfile, keyfile))
    monkeypatch.setattr(probing, "TLS_PORTS", ((listener.port, "tls"),))
    add_host(sshd)
    out, _ = check("mx1")
    probe = HostProbe.objects.get()
    assert probe.status == "degraded"
    assert f"certificate on port {listener.port} expires in 5 days" in probe.reasons
    assert probe.certificates[0]["days_left"] == 5 and probe.certificates[0]["subject"] == "CN=mx1.test"
    assert f"TLS {listener.port:<5} expires " in out


POSTFIX = shutil.which("postfix") or ("/usr/sbin/postfix" if os.path.exists("/usr/sbin/postfix") else None)


@pytest.mark.skipif(POSTFIX is None or os.geteuid() != 0, reason="a private Postfix needs Postfix and root")
def test_the_queue_comes_from_a_real_postqueue(sshd, no_tls, private_postfix):  # noqa: F811
    from pathlib import Path

    sbin = Path(POSTFIX).parent
    for number in range(1, 4):
        subprocess.run(
            [str(sbin / "sendmail"), "-C", str(private_postfix), "-f", "sender@probe.test", f"r{number}@example.com"],
            input=f"Subject: {number}\n\nbody\n",
            text=True,
            check=True,
            timeout=30,
        )
    postqueue = [str(sbin / "postqueue"), "-c", str(private_postfix), "-j"]
    deadline = time.monotonic() + 30
    while subprocess.run(postqueue, capture_output=True, text=True).stdout.count("queue_id") < 3:
        assert time.monotonic() < deadline, "the private Postfix did not queue the messages"
        time.sleep(0.1)
    sshd.answer(["docker", "exec", "mailserver", "postqueue", "-j"], run=postqueue)
    add_host(sshd)
    check("mx1")
    probe = HostProbe.objects.get()
    assert probe.queue_count == 3 and probe.queue_oldest_age_seconds is not None


# --- who may, and the admin ------------------------------------------------------------------------------


def test_check_needs_the_permission_to_view_mail_hosts(sshd, no_tls):
    from django.contrib.auth.models import Permission

    from accounts.tests.factories import UserFactory

    add_host(sshd)
    staff = UserFactory(email="staff@example.com", is_staff=True)
    _, error = check("mx1", "--as", staff.email)
    assert error == "NAME: you do not have the permission 'monitoring.view_mailhost'."
    assert sshd.calls() == [] and not HostProbe.objects.exists()
    staff.user_permissions.add(Permission.objects.get(codename="view_mailhost"))
    out, error = check("mx1", "--as", staff.email)
    assert error is None and out.startswith("mx1: healthy")


def test_the_admin_shows_the_last_probe_and_checks_on_request(sshd, no_tls):
    from accounts.tests.factories import StaffFactory

    host = add_host(sshd)
    browser = Client()
    browser.force_login(StaffFactory(email="root@example.com"))
    url = f"/admin/monitoring/mailhost/{host.pk}/check/"
    assert "has not been probed yet" in browser.get(url).content.decode()
    assert sshd.calls() == []  # looking runs nothing
    page = browser.post(url).content.decode()
    assert "was <strong>healthy</strong>" in page and "v15.1.0" in page
    assert "healthy (" in browser.get("/admin/monitoring/mailhost/").content.decode()
    assert browser.get("/admin/monitoring/hostprobe/").status_code == 200
    quota = browser.get("/admin/monitoring/mailboxquotausage/").content.decode()
    assert "bob@example.com" in quota and "1.0 MiB" in quota and "no limit" in quota


# --- the periodic probe ----------------------------------------------------------------------------------


def test_the_sweep_probes_every_host_in_a_task_of_its_own(sshd, no_tls):
    from monitoring import tasks

    add_host(sshd, "mx1")
    add_host(sshd, "mx2")
    assert tasks.probe_mail_hosts() == "queued 2 probe(s)"  # eager in tests: each ran at once
    assert sorted(HostProbe.objects.values_list("host__name", "status")) == [("mx1", "healthy"), ("mx2", "healthy")]
    assert tasks.probe_mail_host(999999) == "mail host 999999 is gone"


def test_the_probe_and_prune_tasks_are_declared_with_an_expiry():
    from dockspace.schedule import declared_periodic_tasks

    declared = {task.task: task for task in declared_periodic_tasks()}
    sweep = declared["monitoring.probe_mail_hosts"]
    assert (sweep.interval_minutes, sweep.expires_seconds) == (5, 240)
    prune = declared["monitoring.prune_probe_history"]
    assert prune.crontab is not None and prune.expires_seconds == 3600
