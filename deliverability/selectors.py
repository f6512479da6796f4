"""Reads of the DNS checks: a domain's latest results, and how many domains stand at each level."""

from __future__ import annotations

from collections import Counter

from deliverability.models import FAILED, OK, WARNING, DnsCheckResult
from mail.models import Domain

LEVEL_ORDER = {OK: 0, WARNING: 1, FAILED: 2}


def latest_results(domain: Domain) -> list[DnsCheckResult]:
    """The results of the domain's latest check run, in the order the checks run (empty: never checked)."""
    order = [kind for kind, _ in DnsCheckResult.CHECKS]
    rows = DnsCheckResult.objects.filter(domain=domain, is_latest=True).select_related("domain")
    return sorted(rows, key=lambda row: (order.index(row.kind) if row.kind in order else len(order), row.subject))


def domain_levels() -> dict[str, str]:
    """{domain name: its worst latest level} for every domain checked at least once."""
    worst: dict[str, str] = {}
    rows = DnsCheckResult.objects.filter(is_latest=True).values_list("domain__name", "level")
    for name, level in rows:
        if LEVEL_ORDER.get(level, 0) >= LEVEL_ORDER.get(worst.get(name, OK), 0):
            worst[name] = level
    return worst


def level_counts() -> dict[str, int]:
    """How many checked domains are failed, warning and ok (by their worst latest result)."""
    counts = Counter(domain_levels().values())
    return {level: counts.get(level, 0) for level in (FAILED, WARNING, OK)}
