"""The probe history: hourly rollups upserted from the raw probes, raw probes kept 7 days and rollups 90 days."""

from datetime import UTC, datetime, timedelta

import pytest

from monitoring import probing
from monitoring.models import HostProbe, HostProbeHourly, MailHost

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def host():
    return MailHost.objects.create(
        name="mx1",
        ssh_user="root",
        ssh_host="192.0.2.1",
        key_path="/k",
        host_key_type="ssh-ed25519",
        host_key_fingerprint="SHA256:x",
        host_key="AAAA",
    )


def probe(host, at, status="healthy", **readings):
    return HostProbe.objects.create(
        host=host, started_at=at, duration_ms=100, reachable=status != "down", status=status, **readings
    )


def test_an_hour_rolls_up_its_probes_and_a_later_probe_updates_it(host):
    probe(host, NOON + timedelta(minutes=5), queue_count=2, disk_percent=40.0, load1=0.5, memory_available_bytes=900)
    probe(host, NOON + timedelta(minutes=10), "degraded", queue_count=10, disk_percent=42.0, load1=1.5)
    probe(host, NOON + timedelta(minutes=70), queue_count=99)  # the next hour
    probing.hourly_rollup(host=host, hour=NOON + timedelta(minutes=10))
    row = HostProbeHourly.objects.get(hour=NOON)
    assert (row.probes, row.down, row.degraded) == (2, 0, 1)
    assert (row.queue_count_avg, row.queue_count_max, row.disk_percent_max, row.load1_avg) == (6, 10, 42.0, 1.0)
    assert row.memory_available_bytes_min == 900
    probe(host, NOON + timedelta(minutes=15), "down")
    probing.hourly_rollup(host=host, hour=NOON + timedelta(minutes=15))
    probing.hourly_rollup(host=host, hour=NOON + timedelta(minutes=15))  # idempotent
    row = HostProbeHourly.objects.get(hour=NOON)
    assert (row.probes, row.down, row.queue_count_max) == (3, 1, 10)
    assert HostProbeHourly.objects.count() == 1


def test_pruning_keeps_7_days_of_probes_and_90_days_of_rollups(host, monkeypatch):
    monkeypatch.setattr(probing, "PRUNE_BATCH", 2)  # several batches
    for days in (1, 6, 8, 9, 30):
        at = NOON - timedelta(days=days)
        probe(host, at)
        probing.hourly_rollup(host=host, hour=at)
    old = HostProbeHourly.objects.create(host=host, hour=NOON - timedelta(days=91), probes=12, down=0, degraded=0)
    assert probing.probe_history_prune(now=NOON) == (3, 1)
    kept = sorted((NOON - p.started_at).days for p in HostProbe.objects.all())
    assert kept == [1, 6]
    assert HostProbeHourly.objects.count() == 5 and not HostProbeHourly.objects.filter(pk=old.pk).exists()
    assert probing.probe_history_prune(now=NOON) == (0, 0)


def test_the_prune_task_says_what_it_deleted(host):
    from monitoring import tasks

    probe(host, datetime.now(UTC) - timedelta(days=8))
    assert tasks.prune_probe_history() == "deleted 1 probe(s) older than 7 days and 0 hourly rollup(s) past retention"


def test_removing_a_host_removes_its_history(host):
    probe(host, NOON)
    probing.hourly_rollup(host=host, hour=NOON)
    from monitoring.hosts import mailhost_remove

    mailhost_remove(host=host)
    assert not HostProbe.objects.exists() and not HostProbeHourly.objects.exists()
