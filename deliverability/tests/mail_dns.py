"""What the DNS check tests share: a mail host (mail.example.net, sending from 192.0.2.25) served by the loopback
NSD with its reverse zone, a managed domain with an Ed25519 DKIM key, and the zone lines that make every check of
that domain pass (`right_records`), which each test then breaks one way."""

import ipaddress

import pytest

from mail import services
from mail.dkim import dns_record_value
from mail.models import DkimKey
from mail.tests.factories import make_domain

MAIL_HOSTNAME = "mail.example.net"
SENDING_IP = "192.0.2.25"


def txt(value):
    """A TXT value as zone-file strings (at most 255 characters each)."""
    return " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))


def dkim_line(key, selector=None):
    return f"{selector or key.selector}._domainkey TXT {txt(dns_record_value(key.algorithm, key.public_key_b64))}"


def right_records(domain_name="example.com", *, spf=None, keys=None):
    """The zone lines of `domain_name` that pass MX, SPF, DKIM (each published key) and DMARC."""
    keys = keys if keys is not None else DkimKey.objects.filter(domain__name=domain_name).exclude(state="retired")
    return [
        f"@ MX 10 {MAIL_HOSTNAME}.",
        f"@ TXT {txt(spf or f'v=spf1 ip4:{SENDING_IP} -all')}",
        '_dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc@' + domain_name + '"',
        *[dkim_line(key) for key in keys],
    ]


class MailDns:
    def __init__(self, server):
        self.server = server

    def mail_host(self, ptr=MAIL_HOSTNAME, address=SENDING_IP):
        """The mail host's forward zone and the sending IP's reverse zone (PTR -> `ptr`)."""
        self.server.zone("example.net", [f"mail A {address}", "other A 198.51.100.7"])
        self.server.zone("2.0.192.in-addr.arpa", [f"25 PTR {ptr}."])
        self.server.zone("dbl.spamhaus.org", [])
        return self

    def domain(self, name="example.com", records=None):
        self.server.zone(name, right_records(name) if records is None else records)
        return self


@pytest.fixture
def mail_dns(dns_server, settings):
    settings.MAIL_HOSTNAME = MAIL_HOSTNAME
    settings.SENDING_IPS = [ipaddress.ip_address(SENDING_IP)]
    return MailDns(dns_server).mail_host()


@pytest.fixture
def domain(db):
    domain = make_domain("example.com")
    services.dkim_generate(domain=domain, algorithm="ed25519", actor_label="test")
    return domain
