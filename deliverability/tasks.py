"""Celery tasks for deliverability: thin; the work is in deliverability.ip_duties."""

from celery import shared_task

from deliverability import ip_duties


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
