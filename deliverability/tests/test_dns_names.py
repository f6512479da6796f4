"""The reverse names the resolver module builds for PTR lookups and DNSBL queries (RFC 5782): pure, no server."""

import pytest

from deliverability.dns.resolver import DnsRun, dnsbl_query_name, reverse_name

V6_NIBBLES = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"


@pytest.mark.parametrize(
    "address, name",
    [
        ("192.0.2.1", "1.2.0.192.in-addr.arpa"),
        (" 203.0.113.45 ", "45.113.0.203.in-addr.arpa"),
        ("2001:db8::1", f"{V6_NIBBLES}.ip6.arpa"),
        ("2001:DB8:0:0:0:0:0:1", f"{V6_NIBBLES}.ip6.arpa"),
        ("::ffff:192.0.2.1", "1.2.0.192.in-addr.arpa"),  # IPv4-mapped: the IPv4 address's name
    ],
)
def test_reverse_names_of_addresses(address, name):
    assert reverse_name(address) == name


@pytest.mark.parametrize(
    "address, zone, name",
    [
        ("127.0.0.2", "zen.spamhaus.org", "2.0.0.127.zen.spamhaus.org"),  # RFC 5782 test point
        ("192.0.2.1", "ZEN.Spamhaus.org.", "1.2.0.192.zen.spamhaus.org"),
        ("2001:db8::1", "zen.spamhaus.org", f"{V6_NIBBLES}.zen.spamhaus.org"),
        ("::ffff:127.0.0.2", "bl.spamcop.net", "2.0.0.127.bl.spamcop.net"),
        ("127.0.0.2", "key123.zen.dq.spamhaus.net", "2.0.0.127.key123.zen.dq.spamhaus.net"),
    ],
)
def test_dnsbl_query_names(address, zone, name):
    assert dnsbl_query_name(address, zone) == name


@pytest.mark.parametrize("address", ["192.0.2", "192.0.2.256", "mail.example.com", "", "2001:db8::1::2"])
def test_a_non_address_is_refused_by_name(address):
    with pytest.raises(ValueError, match=f"not an IP address: '{address}'"):
        reverse_name(address)
    with pytest.raises(ValueError, match="not an IP address"):
        dnsbl_query_name(address, "zen.spamhaus.org")


@pytest.mark.parametrize(
    "zone, why",
    [("zen..spamhaus.org", "A DNS label is empty."), (".".join(["a" * 50] * 4), "A DNS name is > 255 octets long.")],
)
def test_a_zone_that_makes_no_name_gives_an_error_answer_without_asking_and_raises_nothing(zone, why):
    # The sweep builds every question first: a bad zone must not stop it (one list's error, not everyone's).
    # Port 9 (discard) would time out if asked: the answer comes back at once, from the name alone.
    answer = DnsRun(nameservers=[("127.0.0.1", 9)], timeout=5).lookup(dnsbl_query_name("2001:db8::1", zone), "A")
    assert (answer.status, answer.error) == ("error", f"not a valid DNS name: {why}")
    # The positive control: the same address under a normal zone makes a name that can be asked.
    assert dnsbl_query_name("2001:db8::1", "zen.test").endswith(".8.b.d.0.1.0.0.2.zen.test")


@pytest.mark.parametrize("address", ["2001:db8::1%x", "fe80::1%eth0", "2001:db8::1%a b:{;}", "::ffff:192.0.2.1%x"])
def test_a_scoped_ipv6_address_is_refused_with_a_value_error_not_a_dns_error(address):
    with pytest.raises(ValueError, match="scoped IPv6 address"):
        reverse_name(address)
    with pytest.raises(ValueError, match="scoped IPv6 address"):
        dnsbl_query_name(address, "zen.spamhaus.org")
    # The positive control: the address without its zone has both names.
    bare = address.split("%")[0]
    assert reverse_name(bare) and dnsbl_query_name(bare, "zen.spamhaus.org")
