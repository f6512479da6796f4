"""Blocklists served by a loopback NSD for the DNSBL tests: an IP list, a list that answers every query (broken by
RFC 5782's test points) and a domain list, made through the services."""

from accounts.authz import SYSTEM
from deliverability import dnsbl_lists
from deliverability.models import Dnsbl

IP_ZONE = "bl.test"
DOMAIN_ZONE = "dbl.test"


def ip_list_records(**listed):
    """The IP list's zone: its test point 127.0.0.2, and each `address=code`, e.g. {"192.0.2.10": "127.0.0.2"}."""
    rows = ["2.0.0.127 A 127.0.0.2"]
    for address, code in listed.items():
        rows.append(f"{'.'.join(reversed(address.split('.')))} A {code}")
    return rows


def serve_ip_list(server, listed=None, zone=IP_ZONE):
    server.zone(zone, ip_list_records(**(listed or {})))


def make_list(zone=IP_ZONE, *, name=None, kind=Dnsbl.IP, action=Dnsbl.STANDBY, codes=None, **kw):
    codes = codes or ({"127.0.0.2": "SBL", "127.0.0.10": "PBL"} if kind == Dnsbl.IP else {"127.0.1.2": "spam domain"})
    return dnsbl_lists.dnsbl_add(
        name=name or zone,
        zone=zone,
        kind=kind,
        listed_codes=codes,
        action=action,
        removal_url=f"https://{zone}/removal",
        actor=SYSTEM,
        actor_label="test",
        **kw,
    )


def only_test_lists():
    """The shipped lists are real zones on the internet: off in tests."""
    Dnsbl.objects.update(is_enabled=False)
