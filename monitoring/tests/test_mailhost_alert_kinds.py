"""The mail hosts' alert kinds, read from the latest recorded probe of each host: down, a DMS service down, the
queue, the disk and the certificates fire after their "for" and resolve when a later probe is fine."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from monitoring import alert_services
from monitoring.alert_models import Alert, AlertRule
from monitoring.models import HostProbe, MailHost

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HEALTHY_SERVICES = {"postfix": "RUNNING", "dovecot": "RUNNING", "fail2ban": "RUNNING"}


@pytest.fixture
def host():
    return MailHost.objects.create(
        name="mx1",
        ssh_user="root",
        ssh_host="192.0.2.1",
        mail_hostname="mx1.example.com",
        key_path="/k",
        host_key_type="ssh-ed25519",
        host_key_fingerprint="SHA256:x",
        host_key="AAAA",
    )


def probe(host, at, status="healthy", **fields):
    values = {
        "reachable": True,
        "services": HEALTHY_SERVICES,
        "expected_services": sorted(HEALTHY_SERVICES),
        "queue_count": 0,
        "queue_deferred": 0,
        "disk_percent": 40.0,
        **fields,
    }
    return HostProbe.objects.create(
        host=host, started_at=START + timedelta(seconds=at), duration_ms=10, status=status, **values
    )


def evaluate(at, kind):
    with time_machine.travel(START + timedelta(seconds=at), tick=False):
        alert_services.alerts_evaluate()
    return {alert.subject: alert for alert in Alert.objects.filter(rule__kind=kind)}


def test_the_host_kinds_are_installed_with_their_defaults():
    evaluate(0, "monitoring.host_down")
    rules = {rule.kind: rule for rule in AlertRule.objects.filter(kind__startswith="monitoring.")}
    assert rules["monitoring.mail_queue_large"].thresholds == {"messages": 100, "oldest_minutes": 30}
    assert rules["monitoring.disk_full"].thresholds == {"percent": 90}
    assert rules["monitoring.certificate_expiring"].thresholds == {"days": 14}
    assert rules["monitoring.host_down"].is_enabled and rules["monitoring.dms_service_down"].is_enabled


def test_a_host_down_fires_after_five_minutes_and_resolves_with_a_healthy_probe(host):
    probe(host, 0)
    assert evaluate(0, "monitoring.host_down") == {}  # healthy: no alert
    probe(host, 60, "down", reachable=False, reasons=["host unreachable: mx1 refused the connection"])
    assert evaluate(60, "monitoring.host_down")["mx1"].state == "pending"
    alert = evaluate(360, "monitoring.host_down")["mx1"]
    assert alert.state == "firing"
    assert alert.summary == "mx1 is down: host unreachable: mx1 refused the connection."
    probe(host, 400)
    assert evaluate(420, "monitoring.host_down")["mx1"].state == "resolved"


def test_a_stopped_service_fires_per_host_and_service(host):
    probe(host, 0, "degraded", services={**HEALTHY_SERVICES, "fail2ban": "FATAL"})
    evaluate(0, "monitoring.dms_service_down")
    alerts = evaluate(300, "monitoring.dms_service_down")
    assert alerts["mx1: fail2ban"].state == "firing"
    assert alerts["mx1: fail2ban"].summary == "fail2ban on mx1 is FATAL (supervisorctl status)."
    assert "mx1: postfix" not in alerts  # running: no alert row at all
    probe(host, 400)
    assert evaluate(420, "monitoring.dms_service_down")["mx1: fail2ban"].state == "resolved"


@pytest.mark.parametrize(
    ("fields", "firing"),
    [
        ({"queue_count": 100}, False),
        ({"queue_count": 101}, True),
        ({"queue_count": 1, "queue_oldest_age_seconds": 30 * 60}, False),
        ({"queue_count": 1, "queue_oldest_age_seconds": 31 * 60}, True),
    ],
)
def test_the_queue_fires_over_either_threshold(host, fields, firing):
    probe(host, 0, **fields)
    evaluate(0, "monitoring.mail_queue_large")
    alerts = evaluate(600, "monitoring.mail_queue_large")
    assert (alerts.get("mx1") is not None and alerts["mx1"].state == "firing") is firing
    if firing:
        assert alerts["mx1"].value == fields["queue_count"]


def test_a_full_disk_fires_at_the_operators_threshold(host):
    probe(host, 0, disk_percent=85.0)
    evaluate(0, "monitoring.disk_full")
    assert evaluate(900, "monitoring.disk_full") == {}
    rule = AlertRule.objects.get(kind="monitoring.disk_full")
    rule.thresholds = {"percent": 80}
    rule.save()
    evaluate(901, "monitoring.disk_full")
    alert = evaluate(1801, "monitoring.disk_full")["mx1"]
    assert (alert.state, alert.value) == ("firing", 85.0)
    assert alert.summary == "The mail volume / on mx1 is 85 % used."


def test_a_certificate_expiring_soon_fires_at_once_per_port(host):
    certificates = [
        {"port": 25, "mode": "smtp-starttls", "days_left": 5, "not_after": "2025-03-06T13:00:00+00:00", "error": ""},
        {"port": 993, "mode": "tls", "days_left": 60, "not_after": "2025-04-30T13:00:00+00:00", "error": ""},
        {"port": 465, "mode": "tls", "days_left": None, "not_after": None, "error": "connection refused"},
    ]
    probe(host, 0, certificates=certificates)
    alerts = evaluate(0, "monitoring.certificate_expiring")
    assert set(alerts) == {"mx1.example.com:25"}
    assert (alerts["mx1.example.com:25"].state, alerts["mx1.example.com:25"].value) == ("firing", 5)
    assert "expires in 5 day(s), on 2025-03-06" in alerts["mx1.example.com:25"].summary


def test_an_unreachable_host_reports_no_service_queue_or_disk_alerts(host):
    probe(host, 0, "degraded", services={**HEALTHY_SERVICES, "fail2ban": "FATAL"}, queue_count=500)
    evaluate(0, "monitoring.dms_service_down")
    evaluate(0, "monitoring.mail_queue_large")
    probe(host, 60, "down", reachable=False, services={}, queue_count=None, disk_percent=None)
    assert evaluate(60, "monitoring.dms_service_down")["mx1: fail2ban"].state == "resolved"
    assert evaluate(60, "monitoring.mail_queue_large")["mx1"].state == "resolved"
