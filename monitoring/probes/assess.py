"""Turns one probe (host reading and certificates) into healthy / degraded / down with short reasons an operator
acts on. Pure: thresholds are module defaults a caller may override."""

from dataclasses import dataclass, field
from datetime import datetime

from monitoring.probes.collect import HostReading
from monitoring.probes.tls import CertificateReading

HEALTHY, DEGRADED, DOWN = "healthy", "degraded", "down"

# The services without which mail stops: not RUNNING means the host is down, not degraded.
CORE_SERVICES = ("postfix", "dovecot")


@dataclass(frozen=True)
class Thresholds:
    disk_percent: float = 90.0
    queue_oldest_seconds: float = 30 * 60
    queue_count: int = 100
    certificate_days: int = 14


THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Assessment:
    status: str
    reasons: list[str] = field(default_factory=list)


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


def _days(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"


def _service_reasons(reading: HostReading) -> tuple[list[str], list[str]]:
    """(reasons for down, reasons for degraded) from the service states."""
    down: list[str] = []
    degraded: list[str] = []
    expected = reading.expected_services
    if expected is None:
        # Without the settings, only what DMS always runs is certain.
        expected = frozenset(CORE_SERVICES)
    if reading.services is None:
        error = reading.errors.get("services", "no reading")
        names = " and ".join(name for name in CORE_SERVICES if name in expected)
        down.append(f"state of {names} unknown (supervisorctl status: {error})")
        return down, degraded
    for name in sorted(expected, key=lambda name: (name not in CORE_SERVICES, name)):
        state = reading.services.get(name)
        if state == "RUNNING":
            continue
        reason = f"{name} is not listed by supervisorctl" if state is None else f"{name} is {state}"
        (down if name in CORE_SERVICES else degraded).append(reason)
    return down, degraded


def _certificate_reasons(certificate: CertificateReading, now: datetime, days: int) -> list[str]:
    where = f"certificate on port {certificate.port}"
    if certificate.error:
        return [f"{where}: {certificate.error}"]
    reasons = []
    if certificate.not_after is not None:
        left = certificate.not_after - now
        if left.total_seconds() <= 0:
            ago = (now - certificate.not_after).days
            reasons.append(f"{where} expired {_days(ago)} ago" if ago else f"{where} has expired")
        elif left.days < days:
            reasons.append(f"{where} expires in {_days(left.days)}")
    if not certificate.verified:
        reasons.append(f"{where} does not verify: {certificate.verify_error or 'unknown reason'}")
    return reasons


def _failed_readings(errors: dict[str, str]) -> list[str]:
    """One sentence per distinct error: a stopped container fails every `docker exec` reading the same way."""
    by_error: dict[str, list[str]] = {}
    for name, error in sorted(errors.items()):
        if name != "services":  # said with the services, as what it means for them
            by_error.setdefault(error, []).append(name)
    reasons = []
    for error, names in by_error.items():
        if len(names) == 1:
            reasons.append(f"{names[0]} reading failed: {error}")
        else:
            reasons.append(f"{', '.join(names[:-1])} and {names[-1]} readings failed: {error}")
    return reasons


def assess(
    reading: HostReading | None,
    certificates: list[CertificateReading],
    *,
    reachable: bool,
    reach_error: str = "",
    now: datetime,
    thresholds: Thresholds = THRESHOLDS,
) -> Assessment:
    """down: the host is unreachable, or Postfix/Dovecot is not RUNNING (or their state cannot be read);
    degraded: another expected service is not RUNNING, the disk, queue or a certificate crosses its threshold,
    or a reading failed; healthy otherwise. `now` must be timezone-aware (certificate dates are UTC)."""
    if not reachable:
        return Assessment(DOWN, [f"host unreachable: {reach_error}" if reach_error else "host unreachable"])
    if reading is None:
        return Assessment(DEGRADED, ["no reading from the host"])

    down, degraded = _service_reasons(reading)
    if reading.disk is not None and reading.disk.percent_used >= thresholds.disk_percent:
        degraded.append(f"disk {reading.disk.path} {int(reading.disk.percent_used)} % used")
    queue = reading.queue
    if queue is not None:
        if queue.count > thresholds.queue_count:
            degraded.append(f"{queue.count} messages queued (over {thresholds.queue_count})")
        if queue.oldest_age_seconds is not None and queue.oldest_age_seconds > thresholds.queue_oldest_seconds:
            degraded.append(f"oldest queued message is {_duration(queue.oldest_age_seconds)} old")
    for certificate in certificates:
        degraded.extend(_certificate_reasons(certificate, now, thresholds.certificate_days))
    degraded.extend(_failed_readings(reading.errors))

    if down:
        return Assessment(DOWN, down + degraded)
    if degraded:
        return Assessment(DEGRADED, degraded)
    return Assessment(HEALTHY, [])
