"""Each mail host's latest probe on /metrics, as Prometheus reads it (prometheus_client's own text parser)."""

from datetime import UTC, datetime

import pytest

from monitoring.models import HostProbe, MailHost
from monitoring.tests.test_metrics import scrape, value

pytestmark = pytest.mark.django_db


def make_host(name, **fields):
    return MailHost.objects.create(
        name=name,
        ssh_user="root",
        ssh_host=f"{name}.example.com",
        key_path="/k",
        host_key_type="ssh-ed25519",
        host_key_fingerprint="SHA256:x",
        host_key="AAAA",
        **fields,
    )


def test_the_latest_probe_of_each_host_is_exposed_by_host_name():
    mx1 = make_host("mx1", restart_needed=True)
    make_host("mx2")
    HostProbe.objects.create(
        host=mx1, started_at=datetime(2026, 12, 6, 11, tzinfo=UTC), duration_ms=5, reachable=False, status="down"
    )
    HostProbe.objects.create(
        host=mx1,
        started_at=datetime(2026, 12, 6, 12, tzinfo=UTC),
        duration_ms=5,
        reachable=True,
        status="degraded",
        services={"postfix": "RUNNING", "fail2ban": "FATAL", "amavis": "STOPPED"},
        expected_services=["fail2ban", "postfix"],
        queue_count=7,
        queue_deferred=2,
        queue_oldest_age_seconds=600.0,
        disk_percent=91.5,
        certificates=[{"port": 465, "not_after": "2027-01-01T00:00:00+00:00", "days_left": 25, "error": ""}],
    )
    families = scrape()
    assert value(families, "dockspace_mail_host_up", host="mx1") == 1
    assert value(families, "dockspace_mail_host_healthy", host="mx1") == 0
    assert (
        value(families, "dockspace_mail_host_probe_timestamp_seconds", host="mx1")
        == datetime(2026, 12, 6, 12, tzinfo=UTC).timestamp()
    )
    assert value(families, "dockspace_mail_host_restart_needed", host="mx1") == 1
    assert value(families, "dockspace_mail_host_restart_needed", host="mx2") == 0
    assert value(families, "dockspace_mail_queue_messages", host="mx1") == 7
    assert value(families, "dockspace_mail_queue_deferred_messages", host="mx1") == 2
    assert value(families, "dockspace_mail_queue_oldest_age_seconds", host="mx1") == 600
    assert value(families, "dockspace_mail_volume_used_ratio", host="mx1") == 0.915
    assert value(families, "dockspace_mail_service_up", host="mx1", service="postfix") == 1
    assert value(families, "dockspace_mail_service_up", host="mx1", service="fail2ban") == 0
    services = {s.labels["service"] for s in families["dockspace_mail_service_up"].samples}
    assert services == {"postfix", "fail2ban"}  # what the settings turn on; amavis is off
    assert (
        value(
            families, "dockspace_mail_certificate_expiry_timestamp_seconds", host="mx1", endpoint="mx1.example.com:465"
        )
        == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    )
    assert not [s for s in families["dockspace_mail_host_up"].samples if s.labels["host"] == "mx2"]  # not probed yet
