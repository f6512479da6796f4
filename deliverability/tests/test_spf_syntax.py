"""SPF record syntax (RFC 7208 section 12): what is a term, what breaks one, and which TXT record is the SPF one."""

import contextlib
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deliverability.records.spf import SpfPermError, SpfSyntaxError, find_spf_record, is_spf_record, parse_spf


def only_term(text):
    (term,) = parse_spf(f"v=spf1 {text}").terms
    return term


@pytest.mark.parametrize(
    "text, name, qualifier, domain_spec, network, cidr4, cidr6",
    [
        ("all", "all", "+", "", None, None, None),
        ("-all", "all", "-", "", None, None, None),
        ("~ALL", "all", "~", "", None, None, None),
        ("?all", "all", "?", "", None, None, None),
        ("include:_spf.google.com", "include", "+", "_spf.google.com", None, None, None),
        ("Include:spf.protection.outlook.com.", "include", "+", "spf.protection.outlook.com.", None, None, None),
        ("a", "a", "+", "", None, None, None),
        ("a/24", "a", "+", "", None, 24, None),
        ("a//64", "a", "+", "", None, None, 64),
        ("a:mail.example.com/0//0", "a", "+", "mail.example.com", None, 0, 0),
        ("-mx:example.net/28//56", "mx", "-", "example.net", None, 28, 56),
        ("mx", "mx", "+", "", None, None, None),
        ("ptr", "ptr", "+", "", None, None, None),
        ("ptr:example.org", "ptr", "+", "example.org", None, None, None),
        ("ip4:192.0.2.1", "ip4", "+", "", ipaddress.ip_network("192.0.2.1/32"), None, None),
        ("ip4:192.0.2.77/24", "ip4", "+", "", ipaddress.ip_network("192.0.2.0/24"), 24, None),
        ("ip6:2001:db8::1", "ip6", "+", "", ipaddress.ip_network("2001:db8::1/128"), None, None),
        ("~ip6:2001:DB8:ab::/48", "ip6", "~", "", ipaddress.ip_network("2001:db8:ab::/48"), None, 48),
        ("ip6:::ffff:192.0.2.1", "ip6", "+", "", ipaddress.ip_network("::ffff:192.0.2.1/128"), None, None),
        ("exists:%{i}._spf.%{d}", "exists", "+", "%{i}._spf.%{d}", None, None, None),
        ("exists:%{ir}.%{l1r+-}._spf.%{d2}", "exists", "+", "%{ir}.%{l1r+-}._spf.%{d2}", None, None, None),
        ("include:%{d}.spf.example.net", "include", "+", "%{d}.spf.example.net", None, None, None),
        ("a:%{H}", "a", "+", "%{H}", None, None, None),
        ("a:x%%y%_z%-w.example.com", "a", "+", "x%%y%_z%-w.example.com", None, None, None),
        ("redirect=_spf.example.com", "redirect", "", "_spf.example.com", None, None, None),
        ("exp=explain.%{d}", "exp", "", "explain.%{d}", None, None, None),
    ],
)
def test_it_parses_each_kind_of_term(text, name, qualifier, domain_spec, network, cidr4, cidr6):
    term = only_term(text)
    assert (term.text, term.name, term.qualifier, term.domain_spec) == (text, name, qualifier, domain_spec)
    assert (term.network, term.cidr4, term.cidr6) == (network, cidr4, cidr6)


def test_it_keeps_unknown_modifiers_with_their_value():
    term = only_term("moo.cow-far_out=man:dog/cat%{c}")
    assert (term.name, term.value, term.is_modifier) == ("moo.cow-far_out", "man:dog/cat%{c}", True)


def test_it_splits_on_any_number_of_spaces_and_keeps_the_order():
    record = parse_spf("V=SPF1   ip4:192.0.2.1  include:_spf.example.net   -all ")
    assert [term.text for term in record.terms] == ["ip4:192.0.2.1", "include:_spf.example.net", "-all"]
    assert record.all.text == "-all"
    assert record.redirect is None
    assert parse_spf("v=spf1").terms == ()


@pytest.mark.parametrize(
    "term, rule",
    [
        ("ip4:192.0.2.300", "'192.0.2.300' is not a dotted-quad IPv4 address"),
        ("ip4:192.0.2", "is not a dotted-quad IPv4 address"),
        ("ip4:192.0.2.01", "is not a dotted-quad IPv4 address"),
        ("ip4:192.0.2.1/33", "the CIDR length of ip4 is 0-32"),
        ("ip4:192.0.2.1/024", "the CIDR length of ip4 is 0-32"),
        ("ip4:2001:db8::1", "is not a dotted-quad IPv4 address"),
        ("ip4", "ip4 needs a dotted-quad IPv4 address"),
        ("ip6:2001:db8::/129", "the CIDR length of ip6 is 0-128"),
        ("ip6:192.0.2.1", "is not an IPv6 address"),
        ("ip6:fe80::1%eth0", "is not an IPv6 address"),
        ("include", "include needs a domain"),
        ("include:", "include needs a domain"),
        ("include:localhost", "'localhost' is not a domain"),
        ("include:192.0.2.1", "'192.0.2.1' is not a domain"),
        ("include:example.com/24", "is not a domain"),
        ("a:example..com", "empty label"),
        ("a:" + "x" * 64 + ".example.com", "label over 63"),
        ("exists", "exists needs a domain"),
        ("a/33", "CIDR lengths are /0-32 for IPv4 then //0-128 for IPv6"),
        ("mx//129", "CIDR lengths are /0-32 for IPv4 then //0-128 for IPv6"),
        ("a:example.com/24/", "CIDR lengths"),
        ("ptr/24", "ptr takes no CIDR length"),
        ("all:example.com", "all takes no domain or CIDR length"),
        ("-all/8", "all takes no domain or CIDR length"),
        ("ip5:192.0.2.1", "unknown mechanism"),
        ("allow", "unknown mechanism"),
        ("*all", "unknown mechanism"),
        ("+-all", "unknown mechanism"),
        ("-redirect=example.com", "a modifier (name=value) takes no qualifier"),
        ("redirect=", "redirect needs a domain"),
        ("exists:%{i}.%{d", "'%' starts a macro"),
        ("exists:100%.example.com", "'%' starts a macro"),
        ("exists:%{x}.example.com", "%{x} is not a macro letter"),
        ("exists:%{c}.example.com", "the macro letter c is allowed only in explanation text"),
        ("a:%{d0}.example.com", "digit transformer must not be zero"),
        ("a:%{d}.", "is not a domain"),
        ("9x=y", "unknown mechanism"),
        ("a:exämple.com", "character '\\xe4' is not allowed"),
        ("ip4:192.0.2.1\t-all", "character '\\t' is not allowed"),
    ],
)
def test_it_refuses_a_malformed_term_naming_it_and_the_rule(term, rule):
    with pytest.raises(SpfSyntaxError) as caught:
        parse_spf(f"v=spf1 mx {term} -all")
    assert caught.value.term == term
    assert rule in caught.value.rule
    assert str(caught.value).startswith("term '")


@pytest.mark.parametrize("modifier", ["redirect=a.example.com", "exp=a.example.com"])
def test_it_refuses_redirect_or_exp_twice(modifier):
    with pytest.raises(SpfSyntaxError, match="may appear only once"):
        parse_spf(f"v=spf1 {modifier} mx {modifier.replace('a.', 'b.')}")
    assert parse_spf(f"v=spf1 {modifier} mx").terms[0].name == modifier.split("=")[0]


@pytest.mark.parametrize(
    "text, is_spf",
    [
        ("v=spf1", True),
        ("v=spf1 -all", True),
        ("V=Spf1 mx", True),
        ("v=spf10 -all", False),
        ("v=spf1\t-all", False),
        (" v=spf1 -all", False),
        ("spf1 -all", False),
        ("google-site-verification=abc", False),
    ],
)
def test_it_tells_an_spf_record_by_its_version_then_a_space_or_end(text, is_spf):
    assert is_spf_record(text) is is_spf


def test_it_picks_the_one_spf_record_among_the_txt_records():
    assert find_spf_record(["google-site-verification=x", "v=spf1 mx -all", "v=spf10 a"]) == "v=spf1 mx -all"
    assert find_spf_record(["google-site-verification=x", "v=DMARC1; p=none"]) is None
    assert find_spf_record([]) is None


def test_two_spf_records_are_a_permerror():
    with pytest.raises(SpfPermError, match="2 TXT records start with v=spf1; there must be exactly one"):
        find_spf_record(["v=spf1 mx -all", "v=spf1 include:_spf.example.net ~all"])


def test_a_record_not_starting_with_the_version_is_refused():
    with pytest.raises(SpfSyntaxError, match="an SPF record starts with v=spf1"):
        parse_spf("spf1 mx -all")


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_the_parser_raises_only_its_own_syntax_error_on_any_text(text):
    for candidate in (text, f"v=spf1 {text}"):
        try:
            record = parse_spf(candidate)
        except SpfSyntaxError as exc:
            assert "\n" not in str(exc) or "\n" in candidate  # the message shows the term escaped
            continue
        assert [term.text for term in record.terms] == [word for word in candidate.split(" ")[1:] if word]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(alphabet="+-~?aAlLiIpP46:./%{}_=-0123456789dDmMxXnNcCuUeEsStTrR", min_size=1, max_size=24),
        max_size=8,
    )
)
def test_the_parser_raises_only_its_own_syntax_error_on_term_like_text(words):
    with contextlib.suppress(SpfSyntaxError):
        parse_spf("v=spf1 " + " ".join(words))
