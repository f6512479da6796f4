"""`manage.py check` warns (deliverability.W001) when the resolver Dockspace asks is a well-known public one, which
Spamhaus and other blocklists refuse: DOCKSPACE_DNS_RESOLVER's addresses, else resolv.conf's nameservers."""

import pytest
from django.core.checks import run_checks

from deliverability.dns import resolver
from deliverability.dns.public_resolvers import public_resolver


def public_resolver_warnings():
    return [problem for problem in run_checks() if problem.id == "deliverability.W001"]


def test_a_public_resolver_in_the_setting_is_named_with_its_provider(settings):
    settings.DNS_NAMESERVERS = [("10.0.0.2", 53), ("8.8.8.8", 53)]
    [warning] = public_resolver_warnings()
    assert warning.msg.startswith("DOCKSPACE_DNS_RESOLVER names a public resolver: 8.8.8.8 (Google Public DNS).")
    assert "Spamhaus answers 127.255.255.254" in warning.msg
    assert "set DOCKSPACE_DNS_RESOLVER" in warning.hint and "The resolver to use" in warning.hint


def test_every_public_resolver_in_the_setting_is_named(settings):
    settings.DNS_NAMESERVERS = [("2606:4700:4700::1111", 53), ("9.9.9.9", 5353)]
    [warning] = public_resolver_warnings()
    assert "public resolvers: 2606:4700:4700::1111 (Cloudflare), 9.9.9.9 (Quad9)." in warning.msg


def test_a_resolver_of_ones_own_passes(settings):
    settings.DNS_NAMESERVERS = [("127.0.0.1", 53), ("172.30.53.53", 53), ("2001:db8::53", 53)]
    assert public_resolver_warnings() == []


@pytest.fixture
def resolv_conf(settings, tmp_path, monkeypatch):
    """DOCKSPACE_DNS_RESOLVER unset, and the system's resolv.conf a file the test writes."""
    settings.DNS_NAMESERVERS = []
    path = tmp_path / "resolv.conf"
    monkeypatch.setattr(resolver, "RESOLV_CONF", str(path))
    return path


def test_when_the_setting_is_unset_resolv_confs_public_nameservers_are_named(resolv_conf):
    resolv_conf.write_text("nameserver 10.0.0.2\nnameserver 208.67.222.222\n")
    [warning] = public_resolver_warnings()
    assert warning.msg.startswith(
        f"DOCKSPACE_DNS_RESOLVER is not set and {resolv_conf} names a public resolver: 208.67.222.222 (OpenDNS)."
    )


def test_a_private_resolv_conf_passes_and_an_unreadable_one_is_left_to_the_lookups(resolv_conf):
    resolv_conf.write_text("nameserver 127.0.0.11\n")  # Docker's embedded DNS: where it forwards is unknown here
    assert public_resolver_warnings() == []
    resolv_conf.unlink()
    assert public_resolver_warnings() == []


@pytest.mark.parametrize(
    "address, provider",
    [
        ("8.8.4.4", "Google Public DNS"),
        ("2001:4860:4860:0:0:0:0:8844", "Google Public DNS"),  # any spelling of the address
        ("::ffff:1.0.0.1", "Cloudflare"),  # IPv4-mapped
        ("149.112.112.112", "Quad9"),
        ("2620:fe::fe", "Quad9"),
        ("208.67.220.220", "OpenDNS"),
        ("8.8.8.9", ""),
        ("192.168.1.1", ""),
        ("fe80::1%eth0", ""),
        ("resolver.internal", ""),
    ],
)
def test_well_known_public_resolvers_are_recognised(address, provider):
    assert public_resolver(address) == provider
