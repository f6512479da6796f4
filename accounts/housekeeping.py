"""Removing what has outlived its purpose: old audit events, expired sessions, stale lockout counters."""

from datetime import timedelta

from django.utils import timezone

from accounts.models import AppSettings, AuditEvent, LoginThrottle, UserSession


def audit_log_purge(now=None):
    now = now or timezone.now()
    cutoff = now - timedelta(days=AppSettings.load().audit_retention_days)
    return AuditEvent.objects.filter(at__lt=cutoff).delete()[0]


def expired_sessions_purge(now=None):
    now = now or timezone.now()
    sessions = UserSession.objects.filter(expire_date__lt=now).delete()[0]
    stale = now - timedelta(days=1)
    throttles = LoginThrottle.objects.filter(window_started_at__lt=stale).exclude(locked_until__gt=now).delete()[0]
    return sessions, throttles
