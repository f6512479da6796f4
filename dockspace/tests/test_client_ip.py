import pytest
from django.test import RequestFactory

from dockspace.client_ip import client_ip, client_ip_key


def request(remote, forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_without_trusted_proxies_the_header_is_ignored(settings):
    settings.TRUSTED_PROXIES = []
    assert client_ip(request("192.0.2.1", "6.6.6.6")) == "192.0.2.1"


@pytest.mark.parametrize(
    "forwarded, expected",
    [
        ("203.0.113.5", "203.0.113.5"),
        ("6.6.6.6, 203.0.113.5", "203.0.113.5"),  # a client cannot spoof by prepending
        ("203.0.113.5, 10.0.0.3", "203.0.113.5"),  # a second trusted hop is skipped
        ("garbage", "10.0.0.2"),
    ],
)
def test_a_trusted_proxy_is_believed(settings, forwarded, expected):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert client_ip(request("10.0.0.2", forwarded)) == expected


def test_an_untrusted_peer_cannot_claim_an_address(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert client_ip(request("192.0.2.1", "203.0.113.5")) == "192.0.2.1"


@pytest.mark.parametrize(
    "ip, key",
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("::1", "::/64"),
        (None, None),
        ("", None),
    ],
)
def test_limits_count_ipv4_by_address_and_ipv6_by_its_64(ip, key):
    assert client_ip_key(ip) == key
