"""Walking a domain's SPF record through DNS: the limits receivers enforce, what the record authorises, and what a
receiver would conclude for one IP."""

import ipaddress

import pytest

from deliverability.records.common import FAILED, OK, WARNING
from deliverability.records.spf_walk import NOT_EVALUABLE, spf_authorises, spf_walk
from deliverability.tests.zones import Zone

DOMAIN = "example.com"


def includes(count, prefix="inc"):
    """`count` include targets, each a plain record authorising one /24."""
    return {(f"{prefix}{n}.example.net", "TXT"): f"v=spf1 ip4:198.51.{n}.0/24 -all" for n in range(count)}


def record_with(terms, extra=None):
    return Zone({(DOMAIN, "TXT"): f"v=spf1 {terms} -all", **(extra or {})})


def reasons(result, level=None):
    return [problem.reason for problem in result.problems if level is None or problem.level == level]


def test_ten_lookups_are_within_the_limit():
    zone = record_with(" ".join(f"include:inc{n}.example.net" for n in range(10)), includes(10))
    result = spf_walk(DOMAIN, zone)
    assert result.lookup_count == 10
    assert result.level == OK
    assert spf_authorises(result, "198.51.9.1") is True


def test_an_eleventh_lookup_fails_naming_the_term_that_goes_over():
    zone = record_with(" ".join(f"include:inc{n}.example.net" for n in range(11)), includes(11))
    result = spf_walk(DOMAIN, zone)
    assert result.lookup_count == 11
    assert result.level == FAILED
    assert reasons(result, FAILED) == [
        "example.com: SPF needs 11 DNS lookups (limit 10); the 11th is include:inc10.example.net in example.com: "
        "receivers return permerror"
    ]
    # Receivers count as they go: a match before the 11th lookup still passes, one after it is a permerror.
    assert spf_authorises(result, "198.51.0.1") is True
    assert spf_authorises(result, "198.51.10.1") is False


def test_lookups_inside_includes_count_toward_the_limit():
    nested = {
        ("inc0.example.net", "TXT"): "v=spf1 a mx include:deep.example.net -all",
        ("inc0.example.net", "A"): "198.51.0.1",
        ("inc0.example.net", "MX"): "10 inc0.example.net",
        ("deep.example.net", "TXT"): "v=spf1 " + " ".join(f"exists:e{n}.example.net" for n in range(7)) + " -all",
    }
    result = spf_walk(DOMAIN, record_with("include:inc0.example.net", nested))
    # include (1) + a, mx, include (3) + 7 exists = 11
    assert result.lookup_count == 11
    assert "the 11th is exists:e6.example.net in deep.example.net" in reasons(result, FAILED)[0]
    assert [step.term.text for step in result.steps][:4] == [
        "include:inc0.example.net",
        "a",
        "mx",
        "include:deep.example.net",
    ]


def test_ip4_ip6_and_all_cost_no_lookup():
    zone = record_with("ip4:192.0.2.0/24 ip6:2001:db8::/32 ip4:198.51.100.1")
    result = spf_walk(DOMAIN, zone)
    assert (result.lookup_count, result.void_count, result.level) == (0, 0, OK)
    assert zone.asked == [(DOMAIN, "TXT")]


def test_two_void_lookups_warn_and_a_third_fails():
    two = spf_walk(DOMAIN, record_with("a:gone1.example.com mx:gone2.example.com ip4:192.0.2.1"))
    assert two.void_count == 2
    assert two.level == WARNING
    assert reasons(two) == [
        "example.com: a:gone1.example.com in example.com finds nothing (a void lookup; limit 2)",
        "example.com: mx:gone2.example.com in example.com finds nothing (a void lookup; limit 2)",
    ]
    assert spf_authorises(two, "192.0.2.1") is True

    three = spf_walk(DOMAIN, record_with("a:gone1.example.com mx:gone2.example.com a:gone3.example.com ip4:192.0.2.1"))
    assert three.void_count == 3
    assert reasons(three, FAILED) == [
        "example.com: SPF has 3 void lookups (limit 2): a:gone1.example.com in example.com, mx:gone2.example.com in "
        "example.com, a:gone3.example.com in example.com: receivers return permerror"
    ]
    assert spf_authorises(three, "192.0.2.1") is False


def test_an_a_term_with_only_an_ipv6_address_is_not_void():
    zone = record_with("a:v6only.example.com", {("v6only.example.com", "AAAA"): "2001:db8::25"})
    result = spf_walk(DOMAIN, zone)
    assert (result.void_count, result.level) == (0, OK)
    assert spf_authorises(result, "2001:db8::25") is True


def test_an_include_loop_fails_and_does_not_walk_forever():
    zone = Zone(
        {
            (DOMAIN, "TXT"): "v=spf1 include:a.example.net -all",
            ("a.example.net", "TXT"): "v=spf1 include:b.example.net -all",
            ("b.example.net", "TXT"): "v=spf1 include:a.example.net -all",
        }
    )
    result = spf_walk(DOMAIN, zone)
    assert reasons(result, FAILED) == [
        "b.example.net: include:a.example.net loops back to a.example.net: receivers return permerror"
    ]
    assert result.lookup_count == 3
    assert spf_authorises(result, "192.0.2.1") is False


def test_a_domain_including_itself_is_a_loop():
    result = spf_walk(DOMAIN, record_with("include:example.com"))
    assert "example.com: include:example.com loops back to example.com" in reasons(result, FAILED)[0]


def test_the_same_include_twice_is_no_loop_but_counts_twice():
    zone = record_with("include:inc0.example.net include:inc0.example.net", includes(1))
    result = spf_walk(DOMAIN, zone)
    assert (result.lookup_count, result.level) == (2, OK)


def test_two_spf_records_fail():
    zone = Zone({(DOMAIN, "TXT"): ["v=spf1 mx -all", "v=spf1 include:_spf.example.net ~all", "other=1"]})
    result = spf_walk(DOMAIN, zone)
    assert reasons(result) == ["example.com: 2 TXT records start with v=spf1; there must be exactly one at example.com"]
    assert result.record is None
    assert spf_authorises(result, "192.0.2.1") is False


def test_an_include_of_a_name_with_two_spf_records_fails():
    zone = record_with(
        "include:_spf.example.net", {("_spf.example.net", "TXT"): ["v=spf1 ip4:192.0.2.1 -all", "v=spf1 -all"]}
    )
    result = spf_walk(DOMAIN, zone)
    assert reasons(result, FAILED) == [
        "example.com: include:_spf.example.net: 2 TXT records start with v=spf1; there must be exactly one at "
        "_spf.example.net"
    ]


def test_no_spf_record_fails():
    result = spf_walk("Example.COM.", Zone({(DOMAIN, "TXT"): "google-site-verification=x"}))
    assert result.domain == DOMAIN
    assert reasons(result) == ["example.com: no SPF record (a TXT record starting v=spf1)"]
    assert spf_authorises(result, "192.0.2.1") is False


def test_an_include_without_an_spf_record_fails_and_counts_a_void_lookup():
    result = spf_walk(DOMAIN, record_with("include:nothing.example.net ip4:192.0.2.1"))
    assert reasons(result, FAILED) == [
        "example.com: include:nothing.example.net: nothing.example.net has no SPF record: receivers return permerror"
    ]
    assert result.void_count == 1
    assert spf_authorises(result, "192.0.2.1") is False  # permerror before ip4 is reached


def test_a_syntax_error_fails_naming_the_domain_and_term():
    result = spf_walk(DOMAIN, Zone({(DOMAIN, "TXT"): "v=spf1 ip4:192.0.2.999 -all"}))
    assert reasons(result) == ["example.com: term 'ip4:192.0.2.999': '192.0.2.999' is not a dotted-quad IPv4 address"]


def test_a_syntax_error_in_an_include_names_the_included_domain():
    zone = record_with("include:_spf.example.net", {("_spf.example.net", "TXT"): "v=spf1 ip4:1.2.3 -all"})
    result = spf_walk(DOMAIN, zone)
    assert reasons(result, FAILED) == ["_spf.example.net: term 'ip4:1.2.3': '1.2.3' is not a dotted-quad IPv4 address"]


def test_a_redirect_is_used_when_the_record_has_no_all():
    zone = Zone(
        {
            (DOMAIN, "TXT"): "v=spf1 ip4:192.0.2.1 redirect=_spf.example.net",
            ("_spf.example.net", "TXT"): "v=spf1 ip4:198.51.100.0/24 -all",
        }
    )
    result = spf_walk(DOMAIN, zone)
    assert (result.lookup_count, result.level) == (1, OK)
    assert result.networks == {ipaddress.ip_network("192.0.2.1/32"), ipaddress.ip_network("198.51.100.0/24")}
    assert spf_authorises(result, "198.51.100.9") is True
    assert spf_authorises(result, "203.0.113.1") is False  # the redirect target's -all


def test_a_redirect_is_ignored_when_the_record_has_an_all():
    zone = Zone(
        {
            (DOMAIN, "TXT"): "v=spf1 redirect=_spf.example.net ip4:192.0.2.1 ~all",
            ("_spf.example.net", "TXT"): "v=spf1 ip4:198.51.100.0/24 -all",
        }
    )
    result = spf_walk(DOMAIN, zone)
    assert reasons(result) == ["example.com: redirect=_spf.example.net is ignored because the record has ~all"]
    assert ("_spf.example.net", "TXT") not in zone.asked
    assert result.lookup_count == 0
    assert spf_authorises(result, "198.51.100.9") is False


def test_a_redirect_to_a_domain_without_spf_fails():
    result = spf_walk(DOMAIN, Zone({(DOMAIN, "TXT"): "v=spf1 redirect=gone.example.net"}))
    assert reasons(result, FAILED) == [
        "example.com: redirect=gone.example.net: gone.example.net has no SPF record: receivers return permerror"
    ]
    assert spf_authorises(result, "192.0.2.1") is False


def test_the_redirect_targets_policy_is_checked_like_the_domains_own():
    zone = Zone(
        {
            (DOMAIN, "TXT"): "v=spf1 redirect=_spf.example.net",
            ("_spf.example.net", "TXT"): "v=spf1 ip4:198.51.100.0/24 ?all",
        }
    )
    result = spf_walk(DOMAIN, zone)
    assert reasons(result) == ["_spf.example.net: ?all makes mail from any other IP neutral; end with ~all or -all"]


@pytest.mark.parametrize(
    "record, expected",
    [
        ("v=spf1 mx +all", ["example.com: +all authorises every IP on the internet"]),
        ("v=spf1 mx all", ["example.com: all authorises every IP on the internet"]),
        ("v=spf1 mx ?all", ["example.com: ?all makes mail from any other IP neutral; end with ~all or -all"]),
        (
            "v=spf1 mx",
            [
                "example.com: the record ends without all or redirect, so mail from any other IP is neutral; "
                "end it with ~all or -all"
            ],
        ),
        ("v=spf1 mx -all", []),
        ("v=spf1 mx ~all", []),
        ("v=spf1 -all mx", ["example.com: mx after -all is never evaluated"]),
    ],
)
def test_the_all_at_the_end_is_checked(record, expected):
    zone = Zone({(DOMAIN, "TXT"): record, (DOMAIN, "MX"): "10 mx.example.com", ("mx.example.com", "A"): "192.0.2.25"})
    result = spf_walk(DOMAIN, zone)
    assert reasons(result) == expected
    assert all(problem.level == WARNING for problem in result.problems)


def test_an_included_record_may_end_without_all_but_not_authorise_everyone():
    zone = record_with(
        "include:a.example.net include:b.example.net",
        {("a.example.net", "TXT"): "v=spf1 ip4:192.0.2.1", ("b.example.net", "TXT"): "v=spf1 +all"},
    )
    result = spf_walk(DOMAIN, zone)
    assert reasons(result) == ["b.example.net: +all authorises every IP on the internet"]
    assert spf_authorises(result, "203.0.113.50") is True


def test_ip6_cidr_lengths():
    zone = record_with(
        "ip6:2001:db8:ab::/48 a:host.example.com//64",
        {("host.example.com", "AAAA"): "2001:db8:cd::1", ("host.example.com", "A"): "192.0.2.1"},
    )
    result = spf_walk(DOMAIN, zone)
    assert result.networks == {
        ipaddress.ip_network("2001:db8:ab::/48"),
        ipaddress.ip_network("2001:db8:cd::/64"),
        ipaddress.ip_network("192.0.2.1/32"),
    }
    assert spf_authorises(result, "2001:db8:ab:ffff::1") is True
    assert spf_authorises(result, "2001:db8:ac::1") is False
    assert spf_authorises(result, "2001:db8:cd::ffff") is True
    assert spf_authorises(result, "2001:db8:cd:1::1") is False


def test_a_and_mx_use_the_ipv4_cidr_length():
    zone = record_with(
        "mx/24",
        {(DOMAIN, "MX"): "10 mx.example.com", ("mx.example.com", "A"): "192.0.2.25"},
    )
    result = spf_walk(DOMAIN, zone)
    assert spf_authorises(result, "192.0.2.200") is True
    assert spf_authorises(result, "192.0.3.1") is False


def mx_zone(count):
    entries = {(DOMAIN, "MX"): [f"{n} mx{n}.example.com" for n in range(count)]}
    entries.update({(f"mx{n}.example.com", "A"): f"192.0.2.{n + 1}" for n in range(count)})
    return record_with("mx", entries)


def test_mx_with_ten_names_is_expanded():
    result = spf_walk(DOMAIN, mx_zone(10))
    assert result.level == OK
    assert result.lookup_count == 1
    assert spf_authorises(result, "192.0.2.10") is True


def test_mx_with_eleven_names_fails():
    result = spf_walk(DOMAIN, mx_zone(11))
    assert reasons(result) == ["example.com: mx: example.com has 11 MX names (limit 10): receivers return permerror"]
    assert spf_authorises(result, "192.0.2.1") is False


def test_a_null_mx_authorises_nothing():
    result = spf_walk(DOMAIN, record_with("mx ip4:192.0.2.1", {(DOMAIN, "MX"): "0 ."}))
    assert result.level == OK
    assert result.networks == {ipaddress.ip_network("192.0.2.1/32")}


def test_macro_terms_count_but_cannot_be_evaluated():
    zone = record_with("ip4:192.0.2.1 exists:%{i}._spf.%{d} include:%{d}.spf.example.net a:%{h}")
    result = spf_walk(DOMAIN, zone)
    assert result.lookup_count == 3
    assert result.level == OK
    assert [step.term.text for step in result.not_evaluable] == [
        "exists:%{i}._spf.%{d}",
        "include:%{d}.spf.example.net",
        "a:%{h}",
    ]
    assert all(step.state == NOT_EVALUABLE for step in result.not_evaluable)
    assert zone.asked == [(DOMAIN, "TXT")]  # nothing is looked up for them
    assert spf_authorises(result, "192.0.2.1") is True  # matched before the macros
    assert spf_authorises(result, "203.0.113.1") is None  # the exists could match it


@pytest.mark.parametrize(
    "a_records, expected, voids",
    [
        ("127.0.0.2", True, 0),  # the name exists: every client matches
        (None, False, 1),  # it does not: no match, and a void lookup
        ("timeout", None, 0),
    ],
)
def test_exists_without_macros_is_the_same_for_every_client(a_records, expected, voids):
    extra = {} if a_records is None else {("flag.example.com", "A"): a_records}
    result = spf_walk(DOMAIN, record_with("exists:flag.example.com", extra))
    assert spf_authorises(result, "203.0.113.1") is expected
    assert (result.lookup_count, result.void_count, result.not_evaluable) == (1, voids, ())


def test_ptr_is_deprecated_and_not_evaluable():
    result = spf_walk(DOMAIN, record_with("ptr ip4:192.0.2.1"))
    assert reasons(result) == [
        "example.com: ptr is deprecated (RFC 7208 5.5) and cannot be checked here: ptr; "
        "list the IPs with ip4:/ip6: instead"
    ]
    assert result.lookup_count == 1
    assert spf_authorises(result, "192.0.2.1") is None  # ptr comes first and could match


def test_a_failed_lookup_warns_and_makes_the_answer_unknown():
    zone = record_with("include:_spf.example.net ip4:192.0.2.1", {("_spf.example.net", "TXT"): "timeout"})
    result = spf_walk(DOMAIN, zone)
    assert reasons(result) == [
        "example.com: include:_spf.example.net: the TXT lookup of _spf.example.net failed (timeout); "
        "checked again later"
    ]
    assert result.level == WARNING
    assert spf_authorises(result, "192.0.2.1") is None


def test_a_failed_lookup_of_the_domain_itself_warns():
    result = spf_walk(DOMAIN, Zone({(DOMAIN, "TXT"): "servfail"}))
    assert reasons(result) == ["example.com: the TXT lookup of example.com failed (servfail); checked again later"]
    assert spf_authorises(result, "192.0.2.1") is None


def test_a_walk_far_over_the_limit_stops_asking():
    zone = record_with(" ".join(f"a:h{n}.example.com" for n in range(60)), {})
    result = spf_walk(DOMAIN, zone)
    assert len(zone.asked) == 1 + 2 * 40  # the TXT, then A and AAAA for the first 40 terms
    assert not result.is_truncated  # the terms not asked cost one lookup each all the same
    assert "SPF needs 60 DNS lookups (limit 10)" in reasons(result, FAILED)[0]

    zone = record_with(" ".join(f"exists:h{n}.example.com" for n in range(40)) + " include:inc0.example.net")
    result = spf_walk(DOMAIN, zone)
    assert result.is_truncated
    assert ("inc0.example.net", "TXT") not in zone.asked
    assert "SPF needs at least 41 DNS lookups (limit 10)" in reasons(result, FAILED)[0]


GOOD = {
    (DOMAIN, "TXT"): "v=spf1 -ip4:192.0.2.66 ip4:192.0.2.0/24 include:_spf.example.net ~all",
    ("_spf.example.net", "TXT"): "v=spf1 ip4:198.51.100.0/24 -ip4:203.0.113.0/24 ?ip4:203.0.114.0/24 -all",
}


@pytest.mark.parametrize(
    "ip, expected",
    [
        ("192.0.2.1", True),
        ("192.0.2.66", False),  # the -ip4 comes first
        ("198.51.100.7", True),  # the include passes
        ("203.0.113.1", False),  # the include fails it: no match, then ~all
        ("203.0.114.1", False),  # neutral in the include is no match either
        ("2001:db8::1", False),  # ~all
        (ipaddress.ip_address("192.0.2.2"), True),
    ],
)
def test_it_tells_whether_one_ip_is_authorised(ip, expected):
    assert spf_authorises(spf_walk(DOMAIN, Zone(GOOD)), ip) is expected


def test_the_set_of_authorised_networks_counts_only_pass_results():
    result = spf_walk(DOMAIN, Zone(GOOD))
    assert result.networks == {ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("198.51.100.0/24")}


def test_a_bad_ip_is_refused_naming_it():
    with pytest.raises(ValueError, match="ip: 'nope' is not an IP address"):
        spf_authorises(spf_walk(DOMAIN, Zone(GOOD)), "nope")
