"""Which IPs send a domain's mail, and the HELO name each presents: what the SPF and PTR checks hold DNS to."""

import ipaddress

from django.conf import settings

from mail.models import Domain

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def ips_for_domain(domain: Domain) -> list[IpAddress]:
    """The IPs `domain`'s mail leaves from: the mail host's default IPs (DOCKSPACE_SENDING_IPS)."""
    return list(settings.SENDING_IPS)


def helo_name(ip: IpAddress) -> str:
    """The name the mail host greets with from `ip` (DOCKSPACE_MAIL_HOSTNAME; "" when not configured)."""
    return settings.MAIL_HOSTNAME
