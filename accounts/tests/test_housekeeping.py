import pytest
from django.utils import timezone

from accounts.models import AppSettings, AuditEvent, LoginThrottle
from accounts.tasks import purge_audit_log, purge_expired_sessions

pytestmark = pytest.mark.django_db


def test_audit_events_past_retention_are_purged_and_recent_ones_kept():
    AppSettings.objects.update_or_create(pk=1, defaults={"audit_retention_days": 30})
    now = timezone.now()
    old = AuditEvent.objects.create(action="old", at=now - timezone.timedelta(days=31))
    recent = AuditEvent.objects.create(action="recent", at=now - timezone.timedelta(days=29))
    assert purge_audit_log() == "deleted 1 audit events past retention"
    assert not AuditEvent.objects.filter(pk=old.pk).exists()
    assert AuditEvent.objects.filter(pk=recent.pk).exists()


def test_stale_lockout_counters_go_but_active_lockouts_stay():
    now = timezone.now()
    LoginThrottle.objects.create(
        scope="ip", key="192.0.2.1", failures=2, window_started_at=now - timezone.timedelta(days=2)
    )
    LoginThrottle.objects.create(
        scope="account",
        key="a@example.com",
        failures=9,
        window_started_at=now - timezone.timedelta(days=2),
        locked_until=now + timezone.timedelta(minutes=5),
    )
    assert "1 stale lockout counters" in purge_expired_sessions()
    assert list(LoginThrottle.objects.values_list("key", flat=True)) == ["a@example.com"]
