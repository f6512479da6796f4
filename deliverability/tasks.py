"""Celery tasks for deliverability: thin; the work is in deliverability.dns_checks."""

from celery import shared_task

from accounts.authz import SystemActor
from deliverability import dns_checks
from deliverability.models import DnsCheckRun
from mail.models import Domain


def _summary(runs):
    levels = [run.level for run in runs]
    return f"checked {len(runs)} domain(s): {levels.count('failed')} failed, {levels.count('warning')} with warnings"


@shared_task(name="deliverability.dns_check_all", is_periodic=True)
def dns_check_all():
    """The daily DNS check of every active domain, through one resolver run (each name asked once)."""
    runs = dns_checks.dns_check_domains(actor=SystemActor("daily DNS check"), trigger=DnsCheckRun.DAILY)
    return _summary(runs)


@shared_task(name="deliverability.dns_check_domain")
def dns_check_domain(domain_id, trigger=DnsCheckRun.MANUAL):
    """Check one domain now (queued after a change of its DKIM keys). A domain removed since is skipped."""
    domain = Domain.objects.filter(pk=domain_id).first()
    if domain is None:
        return "domain removed"
    run = dns_checks.domain_dns_check(domain, actor=SystemActor(f"DNS check ({trigger})"), trigger=trigger)
    return f"{domain.name}: {run.level}"


@shared_task(name="deliverability.prune_dns_checks", is_periodic=True)
def prune_dns_checks():
    """Delete DNS check runs older than 90 days (each domain's latest kept)."""
    return f"deleted {dns_checks.dns_check_prune()} check run(s)"
