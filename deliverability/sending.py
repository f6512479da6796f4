"""Which IPs send a domain's mail, and the HELO name each presents: what the SPF and PTR checks hold DNS to."""

import ipaddress

from django.conf import settings

from deliverability.ip_pools import pool_for_domain
from deliverability.models import SendingIp
from mail.models import Domain

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def ips_for_domain(domain: Domain) -> list[IpAddress]:
    """The IPs `domain`'s mail may leave from: every IP of its pool (or its tier's), whatever the state, since a
    RETIRING one still drains its queue and a RESTING one comes back; without a pool, the mail host's default IPs
    (DOCKSPACE_SENDING_IPS)."""
    pool = pool_for_domain(domain)
    if pool is None:
        return list(settings.SENDING_IPS)
    addresses = SendingIp.objects.filter(pool=pool).order_by("address").values_list("address", flat=True)
    return [ipaddress.ip_address(address) for address in addresses]


def helo_name(ip: IpAddress) -> str:
    """The name the mail host greets with from `ip`: the sending IP's own HELO name when it has one, else
    DOCKSPACE_MAIL_HOSTNAME ("" when neither is configured)."""
    own = SendingIp.objects.filter(address=str(ip)).values_list("helo_name", flat=True).first()
    return own or settings.MAIL_HOSTNAME
