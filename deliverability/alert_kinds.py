"""The alert kinds deliverability declares (DeliverabilityConfig.alert_kinds()): a DNS check of a domain failing.
evaluate() reads the stored latest results only; the checks themselves run daily, after a DKIM change and on
request (deliverability.dns_checks)."""

from deliverability.models import FAILED, DnsCheckResult
from dockspace.alert_kinds import SUBJECT_MAX_LENGTH, AlertKind, Observation, RuleView

DNS_CHECK_FAILED = "deliverability.dns_check_failed"


def dns_check_subject(result: DnsCheckResult) -> str:
    """One alert per domain and check (and DKIM selector or sending IP): "example.com DKIM mail"."""
    return f"{result.domain.name} {result.check_label}"[:SUBJECT_MAX_LENGTH]


def dns_check_observations(rule: RuleView) -> list[Observation]:
    """Firing while a domain's latest result of a check is failed; ok or warning resolves it. A check that is no
    longer run (a retired selector, an IP that stopped sending) is no longer reported, which resolves it too."""
    rows = DnsCheckResult.objects.filter(is_latest=True).select_related("domain").order_by("domain__name", "pk")
    return [Observation(dns_check_subject(result), result.level == FAILED, None, _summary(result)) for result in rows]


def _summary(result: DnsCheckResult) -> str:
    if result.level == FAILED and result.record_text:
        return f"{result.reason}. Publish: {result.record_text}"[:1000]
    return result.reason[:1000]


DELIVERABILITY_KINDS = [
    AlertKind(
        name=DNS_CHECK_FAILED,
        label="DNS check failed",
        subject_kind="domain check",
        description="A domain's latest DNS check (MX, SPF, DKIM, DMARC, PTR, DBL) failed; resolved when it passes "
        "again. The notification names the record to publish.",
        evaluate=dns_check_observations,
    ),
]
