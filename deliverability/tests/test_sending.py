"""Which IPs the DNS checks hold a domain's SPF and PTR to: its pool's IPs (whatever their state), else the mail
host's default IPs; and the HELO name each IP presents."""

import ipaddress

import pytest

from deliverability.sending import helo_name, ips_for_domain
from deliverability.tests.factories import make_ip, make_pool, move
from mail.tests.factories import make_domain

pytestmark = pytest.mark.django_db


def test_a_domain_without_a_pool_sends_from_the_default_ips(settings):
    settings.SENDING_IPS = [ipaddress.ip_address("198.51.100.7")]
    assert ips_for_domain(make_domain("example.com")) == [ipaddress.ip_address("198.51.100.7")]


def test_a_pooled_domain_sends_from_every_ip_of_its_pool_whatever_the_state(settings):
    settings.SENDING_IPS = [ipaddress.ip_address("198.51.100.7")]
    domain = make_domain("example.com")
    pool = make_pool("bulk", domains=[domain])
    make_ip("192.0.2.10", pool=pool, state="ACTIVE")
    resting = make_ip("192.0.2.11", pool=pool)
    move(resting, "RESTING")
    make_ip("192.0.2.12")  # in no pool: not this domain's
    assert ips_for_domain(domain) == [ipaddress.ip_address("192.0.2.10"), ipaddress.ip_address("192.0.2.11")]


def test_an_ip_presents_its_own_helo_name_else_the_mail_hostname(settings):
    settings.MAIL_HOSTNAME = "mail.example.com"
    make_ip("192.0.2.20", helo_name="out20.example.com")
    assert helo_name(ipaddress.ip_address("192.0.2.20")) == "out20.example.com"
    assert helo_name(ipaddress.ip_address("198.51.100.9")) == "mail.example.com"
