"""Celery tasks for deliverability: thin; the work is in deliverability.ip_duties, deliverability.dns_checks,
deliverability.dnsbl and deliverability.ip_warmup."""

from celery import shared_task

from accounts.authz import SystemActor
from deliverability import dns_checks, dnsbl, ip_duties, ip_warmup, warmup_sends
from deliverability.models import DnsCheckRun
from mail.models import Domain


@shared_task(name="deliverability.rotate_ip_pools", is_periodic=True)
def rotate_ip_pools():
    """On the 1st of each month: the longest-ACTIVE IP of each rotating pool retires when a replacement is ready."""
    return ip_duties.duty_run(ip_duties.ROTATION).summary()


@shared_task(name="deliverability.drain_retiring_ips", is_periodic=True)
def drain_retiring_ips():
    """Hourly: RETIRING IPs that have drained for DOCKSPACE_IP_DRAIN_DAYS move to RESTING."""
    return ip_duties.duty_run(ip_duties.DRAIN).summary()


@shared_task(name="deliverability.release_resting_ips", is_periodic=True)
def release_resting_ips():
    """Hourly: RESTING IPs clear of listings for DOCKSPACE_IP_QUARANTINE_DAYS move to WARMING."""
    return ip_duties.duty_run(ip_duties.RELEASE).summary()


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


@shared_task(name="deliverability.dnsbl_sweep", is_periodic=True)
def dnsbl_sweep():
    """Hourly: ask the blocklists about what is due (every pair every 4 hours, listed ones every hour)."""
    return dnsbl.dnsbl_sweep(actor=SystemActor("blocklist sweep"), only_due=True).summary()


@shared_task(name="deliverability.prune_dnsbl_results", is_periodic=True)
def prune_dnsbl_results():
    """Delete blocklist history older than 90 days (current standings kept)."""
    return f"deleted {dnsbl.dnsbl_prune()} blocklist result(s)"


@shared_task(name="deliverability.evaluate_ip_warmup", is_periodic=True)
def evaluate_ip_warmup():
    """Daily: each WARMING IP advances, holds, steps back, is pulled (standby) or becomes ACTIVE, from its results."""
    return ip_warmup.warmup_evaluate_all(
        actor=SystemActor(ip_warmup.TASK_LABEL), actor_label=ip_warmup.TASK_LABEL
    ).summary()


@shared_task(name="deliverability.carry_policy_sends", is_periodic=True)
def carry_policy_sends():
    """Every 10 minutes: the recipients the policy service routed to each sending IP, into its warmup state."""
    carried = warmup_sends.carry_policy_sends()
    return f"carried {sum(carried.values())} recipient(s) to {len(carried)} IP(s)"
