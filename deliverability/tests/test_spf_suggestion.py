"""The SPF record Dockspace asks a domain owner to publish, and the SPF check's one-line outcome."""

import pytest

from deliverability.records.common import FAILED, OK, WARNING
from deliverability.records.spf import parse_spf
from deliverability.records.spf_suggestion import spf_finding, suggest_spf_record
from deliverability.records.spf_walk import spf_authorises, spf_walk
from deliverability.tests.zones import Zone

DOMAIN = "example.com"
SENDING = ["192.0.2.10", "2001:db8::10"]


def walk(record, extra=None):
    return spf_walk(DOMAIN, Zone({(DOMAIN, "TXT"): record, **(extra or {})}))


def test_without_a_record_it_builds_one_from_the_sending_ips():
    suggestion = suggest_spf_record(["2001:db8::10", "192.0.2.10", "192.0.2.10"])
    assert suggestion.text == "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 ~all"
    assert (suggestion.lookup_count, suggestion.is_within_limits) == (0, True)
    assert suggest_spf_record(SENDING, all_qualifier="-").text == "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all"


def test_it_keeps_the_existing_terms_and_all_and_adds_only_the_missing_ips():
    result = walk(
        "v=spf1 ip4:192.0.2.0/24 include:_spf.google.com -all exp=why.example.com",
        {("_spf.google.com", "TXT"): "v=spf1 ip4:209.85.128.0/17 ~all"},
    )
    suggestion = suggest_spf_record(SENDING, result)
    assert suggestion.text == (
        "v=spf1 ip6:2001:db8::10 ip4:192.0.2.0/24 include:_spf.google.com -all exp=why.example.com"
    )
    assert suggestion.lookup_count == 1
    published = spf_walk(DOMAIN, Zone({(DOMAIN, "TXT"): suggestion.text, **{("_spf.google.com", "TXT"): "v=spf1"}}))
    assert all(spf_authorises(published, ip) for ip in SENDING)


@pytest.mark.parametrize(
    "record, expected_end, dropped",
    [
        ("v=spf1 mx +all", "~all", ["+all: replaced by ~all"]),
        ("v=spf1 mx ?all", "~all", ["?all: replaced by ~all"]),
        ("v=spf1 mx", "~all", []),
        ("v=spf1 mx ~all", "~all", []),
        ("v=spf1 mx -all", "-all", []),
        ("v=spf1 mx redirect=_spf.example.net", "redirect=_spf.example.net", []),
    ],
)
def test_it_ends_with_the_existing_all_or_redirect_or_softfail(record, expected_end, dropped):
    extra = {
        (DOMAIN, "MX"): "10 mx.example.com",
        ("mx.example.com", "A"): "192.0.2.25",
        ("_spf.example.net", "TXT"): "v=spf1 -all",
    }
    suggestion = suggest_spf_record(SENDING, walk(record, extra))
    assert suggestion.text == f"v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 mx {expected_end}"
    assert list(suggestion.dropped) == dropped


def test_it_leaves_out_what_is_broken_or_deprecated():
    result = walk(
        "v=spf1 ptr a:gone.example.com include:nothing.example.net mx mx -all a:after.example.com",
        {(DOMAIN, "MX"): "10 mx.example.com", ("mx.example.com", "A"): "192.0.2.25"},
    )
    suggestion = suggest_spf_record(SENDING, result)
    assert suggestion.text == "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 mx -all"
    assert list(suggestion.dropped) == [
        "ptr: ptr is deprecated",
        "a:gone.example.com: finds nothing",
        "include:nothing.example.net: nothing.example.net has no usable SPF record",
        "mx: repeated",
        "a:after.example.com: after all, never evaluated",
    ]


def heavy_zone(includes, with_covered_a=True):
    terms = " ".join(f"include:inc{n}.example.net" for n in range(includes))
    entries = {(f"inc{n}.example.net", "TXT"): f"v=spf1 ip4:198.51.{n}.0/24 -all" for n in range(includes)}
    entries[(DOMAIN, "A")] = "192.0.2.10"
    entries[(DOMAIN, "MX")] = "10 example.com"
    a_mx = "a mx " if with_covered_a else ""
    return walk(f"v=spf1 {a_mx}{terms} -all", entries)


def test_over_the_limit_it_drops_a_and_mx_the_ip_terms_cover():
    result = heavy_zone(9)
    assert result.lookup_count == 11
    suggestion = suggest_spf_record(["192.0.2.10"], result)
    assert (
        suggestion.text
        == "v=spf1 ip4:192.0.2.10 " + " ".join(f"include:inc{n}.example.net" for n in range(9)) + " -all"
    )
    assert suggestion.lookup_count == 9
    assert suggestion.is_within_limits
    assert suggestion.dropped == (
        "a: its addresses are listed with ip4/ip6 already",
        "mx: its addresses are listed with ip4/ip6 already",
    )


def test_within_the_limit_a_and_mx_that_pass_the_sending_ip_stay():
    within = heavy_zone(8)
    assert suggest_spf_record(["192.0.2.10"], within).text == within.record.text
    text = suggest_spf_record(["192.0.2.10", "192.0.2.11"], within).text
    assert text.startswith("v=spf1 ip4:192.0.2.11 a mx include:inc0.example.net")


def test_an_a_or_mx_that_also_covers_other_hosts_is_kept_over_the_limit():
    result = heavy_zone(9)
    result_zone_a = suggest_spf_record(["192.0.2.99"], result)  # `a` finds 192.0.2.10, which is no sending IP
    assert result_zone_a.text.startswith("v=spf1 ip4:192.0.2.99 a mx include:inc0.example.net")
    assert result_zone_a.problem.startswith("still 11 DNS lookups")


def test_when_the_includes_alone_are_over_the_limit_it_says_so():
    suggestion = suggest_spf_record(SENDING, heavy_zone(11, with_covered_a=False))
    assert not suggestion.is_within_limits
    assert suggestion.problem.startswith("still 11 DNS lookups (limit 10): include:inc0.example.net (1), ")
    assert suggestion.problem.endswith("replace an include by the ip4/ip6 ranges its provider publishes, or drop one")


def test_the_suggested_record_parses():
    result = walk("v=spf1 a:%{d}.example.net exists:%{i}.x.example.net unknown=foo ~all")
    text = suggest_spf_record(SENDING, result).text
    assert parse_spf(text).terms[-1].text == "unknown=foo"


def test_it_refuses_bad_input_naming_the_argument():
    with pytest.raises(ValueError, match="sending_ips: 'mail.example.com' is not an IP address"):
        suggest_spf_record(["mail.example.com"])
    with pytest.raises(ValueError, match="all_qualifier: '\\+' is not ~ or -"):
        suggest_spf_record(SENDING, all_qualifier="+")


def test_the_finding_is_ok_when_the_sending_ips_pass():
    finding = spf_finding(walk("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"), SENDING)
    assert finding.level == OK
    assert finding.reason == "example.com: SPF authorises the sending IPs (0 of 10 DNS lookups)"
    assert finding.record_to_publish is None


def test_the_finding_fails_for_a_sending_ip_not_authorised_and_gives_the_record():
    finding = spf_finding(walk("v=spf1 ip4:192.0.2.0/24 -all"), SENDING)
    assert finding.level == FAILED
    assert finding.reason == "example.com: SPF does not authorise the sending IP 2001:db8::10"
    assert str(finding.record_to_publish) == 'example.com. TXT "v=spf1 ip6:2001:db8::10 ip4:192.0.2.0/24 -all"'


def test_the_finding_fails_without_a_record_and_gives_a_fresh_one():
    finding = spf_finding(spf_walk(DOMAIN, Zone({})), SENDING)
    assert finding.reason == "example.com: no SPF record (a TXT record starting v=spf1) (and 2 more)"
    assert finding.record_to_publish.value == "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 ~all"


def test_the_finding_gives_no_record_when_dns_did_not_answer():
    finding = spf_finding(spf_walk(DOMAIN, Zone({(DOMAIN, "TXT"): "timeout"})), SENDING)
    assert finding.level == WARNING
    assert finding.record_to_publish is None


def test_the_finding_gives_no_record_that_would_still_be_over_the_limit():
    finding = spf_finding(heavy_zone(11, with_covered_a=False), SENDING)
    assert finding.level == FAILED
    assert "SPF needs 11 DNS lookups" in finding.reason
    # Why there is nothing to copy: whatever keeps what the record allows is over the limit too.
    assert "(and 2 more); no record to suggest: still 11 DNS lookups (limit 10): include:inc0" in finding.reason
    assert finding.reason.endswith("; replace an include by the ip4/ip6 ranges its provider publishes, or drop one")
    assert finding.record_to_publish is None


def test_a_warning_only_the_published_record_fixes_comes_with_the_record():
    finding = spf_finding(walk("v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 +all"), SENDING)
    assert (finding.level, finding.reason) == (WARNING, "example.com: +all authorises every IP on the internet")
    assert finding.record_to_publish.value == "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 ~all"
