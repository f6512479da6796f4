"""DMARC records at _dmarc.<domain>: tags, the one record among a name's TXT records, and what the check reports."""

import pytest

from deliverability.records.common import FAILED, OK, WARNING
from deliverability.records.dmarc import (
    DmarcError,
    dmarc_check,
    find_dmarc_record,
    parse_dmarc,
    render_dmarc_record,
    suggest_dmarc_record,
)
from deliverability.tests.zones import Zone

DOMAIN = "example.com"


def test_it_reads_every_tag():
    record = parse_dmarc(
        "v=DMARC1; p=Reject; sp=quarantine; np=reject; adkim=s; aspf=r; pct=50; "
        "rua=mailto:dmarc@example.com,mailto:reports@dmarc.example.net!10m; ruf=mailto:forensic@example.com; "
        "fo=0:d:S; rf=afrf; ri=3600; t=y; psd=n"
    )
    assert (record.p, record.sp, record.np, record.adkim, record.aspf) == ("reject", "quarantine", "reject", "s", "r")
    assert (record.pct, record.ri, record.t, record.psd) == (50, 3600, "y", "n")
    assert [(uri.address, uri.domain, uri.size_limit) for uri in record.rua] == [
        ("dmarc@example.com", "example.com", ""),
        ("reports@dmarc.example.net", "dmarc.example.net", "10m"),
    ]
    assert [uri.address for uri in record.ruf] == ["forensic@example.com"]
    assert (record.fo, record.rf) == (("0", "d", "s"), ("afrf",))
    assert record.is_testing


@pytest.mark.parametrize(
    "text, policy, subdomain_policy, alignment",
    [
        ("v=DMARC1; p=none", "none", "none", ("r", "r")),
        ("v=DMARC1;p=quarantine;", "quarantine", "quarantine", ("r", "r")),
        ("v = DMARC1 ;\tp = reject ; sp=none ;; ", "reject", "none", ("r", "r")),
        ("v=DMARC1; p=reject; adkim=s; aspf=s", "reject", "reject", ("s", "s")),
        ("v=DMARC1; rua=mailto:d@example.com", "none", "none", ("r", "r")),  # RFC 9989: no p, but rua
        ("v=DMARC1; sp=reject", None, "reject", ("r", "r")),  # no p, no rua: no DMARC processing
        ("v=DMARC1; rua=mailto:d@example.com; p=reject", "reject", "reject", ("r", "r")),  # any order (RFC 9989)
    ],
)
def test_policy_defaults(text, policy, subdomain_policy, alignment):
    record = parse_dmarc(text)
    assert (record.policy, record.subdomain_policy) == (policy, subdomain_policy)
    assert (record.dkim_alignment, record.spf_alignment) == alignment


def test_unknown_tags_are_kept_aside_and_percent_encoded_addresses_decoded():
    record = parse_dmarc("v=DMARC1; p=none; foo=bar; rua=mailto:dmarc%2Breports@example.com")
    assert record.unknown_tags == ("foo",)
    assert record.rua[0].address == "dmarc+reports@example.com"


@pytest.mark.parametrize(
    "text, tag, rule",
    [
        ("p=none; v=DMARC1", "v", "a DMARC record starts with v=DMARC1"),
        ("v=DMARC2; p=none", "v", "a DMARC record starts with v=DMARC1"),
        ("v=dmarc1; p=none", "v", "a DMARC record starts with v=DMARC1"),
        ("v=DMARC1; p=none; v=DMARC1", "v", "must be the first tag and appear once"),
        ("v=DMARC1; p=rejet", "p", "'rejet' is not none, quarantine or reject"),
        ("v=DMARC1; p=none; sp=quarantin", "sp", "'quarantin' is not none, quarantine or reject"),
        ("v=DMARC1; p=none; np=", "np", "'' is not none, quarantine or reject"),
        ("v=DMARC1; p=none; p=reject", "p", "appears more than once"),
        ("v=DMARC1; p=none; adkim=relaxed", "adkim", "'relaxed' is not r (relaxed) or s (strict)"),
        ("v=DMARC1; p=none; pct=101", "pct", "'101' is not a whole number from 0 to 100"),
        ("v=DMARC1; p=none; pct=-1", "pct", "is not a whole number from 0 to 100"),
        ("v=DMARC1; p=none; ri=1d", "ri", "'1d' is not a number of seconds"),
        ("v=DMARC1; p=none; fo=2", "fo", "'2' is not one of 0, 1, d, s"),
        ("v=DMARC1; p=none; rf=iodef", "rf", "'iodef' is not one of afrf"),
        ("v=DMARC1; p=none; t=yes", "t", "'yes' is not y or n"),
        ("v=DMARC1; p=none; psd=x", "psd", "'x' is not y or n or u"),
        ("v=DMARC1; p=none; rua=dmarc@example.com", "rua", "'dmarc@example.com' is not a mailto: URI"),
        ("v=DMARC1; p=none; rua=https://example.com/r", "rua", "is not a mailto: URI"),
        ("v=DMARC1; p=none; rua=mailto:dmarc@example.com!10x", "rua", "is not a mailto: URI"),
        ("v=DMARC1; p=none; ruf=mailto:nobody", "ruf", "does not hold an email address"),
        ("v=DMARC1; p=none; rua=mailto:a@example.com,", "rua", "'' is not a mailto: URI"),
        ("v=DMARC1; p=none; rua=mailto:a b@example.com", "rua", "does not hold an email address"),
        ("v=DMARC1; p none", "p none", "a tag is name=value"),
        ("v=DMARC1; p=none; 1x=y", "1x=y", "a tag is name=value"),
    ],
)
def test_it_refuses_a_broken_tag_naming_it_and_the_rule(text, tag, rule):
    with pytest.raises(DmarcError) as caught:
        parse_dmarc(text)
    assert caught.value.tag == tag
    assert rule in caught.value.rule
    assert str(caught.value).startswith(f"{tag}: ")


def test_it_picks_the_one_dmarc_record():
    assert find_dmarc_record(["v=spf1 -all", "v=DMARC1; p=none"]) == "v=DMARC1; p=none"
    assert find_dmarc_record(["v=DMARC10; p=none", "v=spf1 -all"]) is None
    assert find_dmarc_record(["v=DMARC1"]) == "v=DMARC1"
    with pytest.raises(DmarcError, match="v: 2 TXT records start with v=DMARC1; there must be exactly one"):
        find_dmarc_record(["v=DMARC1; p=none", "v=DMARC1; p=reject"])


def test_a_rendered_record_parses_and_refuses_a_bad_tag():
    text = render_dmarc_record("quarantine", rua=["dmarc!x@example.com"], adkim="s")
    assert text == "v=DMARC1; p=quarantine; adkim=s; rua=mailto:dmarc%21x@example.com"
    assert parse_dmarc(text).rua[0].address == "dmarc!x@example.com"
    with pytest.raises(DmarcError, match="p: 'block' is not none"):
        render_dmarc_record("block")


def check(records, extra=None, **kwargs):
    return dmarc_check(DOMAIN, Zone({(f"_dmarc.{DOMAIN}", "TXT"): records, **(extra or {})}), **kwargs)


def test_a_strict_policy_with_own_reports_is_ok():
    result = check("v=DMARC1; p=reject; rua=mailto:dmarc@example.com; adkim=s")
    assert result.finding.level == OK
    assert result.finding.reason == (
        "example.com: DMARC policy reject (alignment: DKIM strict, SPF relaxed) from _dmarc.example.com"
    )
    assert result.finding.record_to_publish is None
    assert (result.policy, result.alignment, result.rua_addresses) == ("reject", ("s", "r"), ("dmarc@example.com",))


def test_no_record_fails_and_suggests_p_none_with_the_report_address():
    result = dmarc_check(DOMAIN, Zone({}), rua=["dmarc@example.com"])
    assert (result.finding.level, result.finding.reason) == (
        FAILED,
        "example.com: no DMARC record at _dmarc.example.com",
    )
    assert str(result.finding.record_to_publish) == (
        '_dmarc.example.com. TXT "v=DMARC1; p=none; rua=mailto:dmarc@example.com"'
    )
    assert result.policy is None


def test_two_records_fail():
    result = check(["v=DMARC1; p=none", "v=DMARC1; p=reject"])
    assert result.finding.reason == (
        "_dmarc.example.com: 2 TXT records start with v=DMARC1; there must be exactly one: "
        "receivers then apply no DMARC"
    )
    assert result.finding.level == FAILED


def test_a_broken_tag_fails_naming_it():
    result = check("v=DMARC1; p=rejet")
    assert result.finding.reason == "_dmarc.example.com: p: 'rejet' is not none, quarantine or reject"
    assert result.finding.record_to_publish.value == "v=DMARC1; p=none"


@pytest.mark.parametrize(
    "text, level, reasons",
    [
        (
            "v=DMARC1; p=none; rua=mailto:d@example.com",
            WARNING,
            [
                "_dmarc.example.com: p=none: mail failing DMARC is delivered as usual; move to quarantine, then "
                "reject, once reports show your mail aligned"
            ],
        ),
        (
            "v=DMARC1; p=reject; pct=25",
            WARNING,
            [
                "_dmarc.example.com: pct=25: RFC 7489 receivers apply p=reject to only 25% of failing mail (RFC 9989 "
                "removed pct)"
            ],
        ),
        ("v=DMARC1; p=reject; pct=100", OK, []),
        (
            "v=DMARC1; p=quarantine; t=y",
            WARNING,
            ["_dmarc.example.com: t=y: testing mode, receivers apply one step less than quarantine"],
        ),
        (
            "v=DMARC1; p=reject; sp=none",
            WARNING,
            ["_dmarc.example.com: sp=none leaves subdomains unprotected under p=reject"],
        ),
        ("v=DMARC1; p=reject; aspf=x1", FAILED, ["_dmarc.example.com: aspf: 'x1' is not r (relaxed) or s (strict)"]),
        ("v=DMARC1; p=reject; adkimm=s", WARNING, ["_dmarc.example.com: unknown tag adkimm is ignored"]),
        (
            "v=DMARC1; rua=mailto:d@example.com",
            FAILED,
            ["_dmarc.example.com: p is missing: RFC 7489 receivers ignore the record, RFC 9989 receivers read p=none"],
        ),
        (
            "v=DMARC1; sp=reject",
            FAILED,
            ["_dmarc.example.com: p is missing: RFC 7489 receivers ignore the record, receivers apply no DMARC"],
        ),
    ],
)
def test_what_the_check_reports(text, level, reasons):
    result = check(text)
    assert [problem.reason for problem in result.problems] == reasons
    assert result.finding.level == level


def test_a_record_without_p_gets_a_suggestion_that_adds_it():
    result = check("v=DMARC1; rua=mailto:d@example.com; adkim=s")
    assert result.finding.record_to_publish.value == "v=DMARC1; p=none; adkim=s; rua=mailto:d@example.com"


def test_pct_is_dropped_from_the_suggestion():
    result = check("v=DMARC1; p=quarantine; pct=10; rua=mailto:d@example.com!5m")
    assert result.finding.record_to_publish.value == "v=DMARC1; p=quarantine; rua=mailto:d@example.com"


def test_p_none_gets_no_record_to_publish_when_the_record_says_it_already():
    result = check("v=DMARC1;p=none;rua=MAILTO:d@example.com!1m")
    assert result.finding.level == WARNING
    assert result.finding.record_to_publish is None


def test_external_report_destinations_need_an_authorisation_record():
    result = check(
        "v=DMARC1; p=reject; rua=mailto:a@example.com,mailto:b@reports.example.com,mailto:x@dmarc.example.net; "
        "ruf=mailto:y@dmarc.example.net,mailto:z@other.example.org"
    )
    assert [(d.domain, d.authorisation_name) for d in result.external_destinations] == [
        ("dmarc.example.net", "example.com._report._dmarc.dmarc.example.net"),
        ("other.example.org", "example.com._report._dmarc.other.example.org"),
    ]
    assert [problem.reason for problem in result.problems] == [
        "_dmarc.example.com: reports to x@dmarc.example.net need a TXT record v=DMARC1 at "
        "example.com._report._dmarc.dmarc.example.net (published by dmarc.example.net)",
        "_dmarc.example.com: reports to z@other.example.org need a TXT record v=DMARC1 at "
        "example.com._report._dmarc.other.example.org (published by other.example.org)",
    ]
    assert result.finding.level == WARNING


def test_a_subdomain_without_its_own_record_is_covered_by_its_parents():
    zone = Zone({("_dmarc.example.com", "TXT"): "v=DMARC1; p=reject; sp=quarantine"})
    result = dmarc_check("mail.example.com", zone)
    assert zone.asked == [("_dmarc.mail.example.com", "TXT"), ("_dmarc.example.com", "TXT")]
    assert (result.record_domain, result.policy) == ("example.com", "quarantine")
    assert result.finding.level == OK
    assert result.finding.reason == (
        "mail.example.com: DMARC policy quarantine (alignment: DKIM relaxed, SPF relaxed) from _dmarc.example.com"
    )


def test_a_record_with_problems_still_names_its_policy_and_alignment():
    result = check("v=DMARC1; p=none; aspf=s; rua=mailto:dmarc@example.com")
    assert result.finding.level == WARNING
    assert result.finding.reason.startswith("_dmarc.example.com: p=none: mail failing DMARC is delivered as usual")
    assert result.finding.reason.endswith("; in force: DMARC policy none (alignment: DKIM relaxed, SPF strict)")


def test_a_parents_sp_none_is_a_warning_for_the_subdomain():
    zone = Zone({("_dmarc.example.com", "TXT"): "v=DMARC1; p=reject; sp=none"})
    result = dmarc_check("mail.example.com", zone)
    assert result.finding.reason.startswith("_dmarc.example.com: sp=none: mail failing DMARC is delivered as usual")


def test_the_tree_walk_stops_short_of_the_top_level_domain():
    zone = Zone({})
    result = dmarc_check("a.b.example.com", zone)
    assert zone.asked == [
        ("_dmarc.a.b.example.com", "TXT"),
        ("_dmarc.b.example.com", "TXT"),
        ("_dmarc.example.com", "TXT"),
    ]
    assert result.finding.reason == "a.b.example.com: no DMARC record at _dmarc.a.b.example.com"


def test_a_failed_lookup_warns_and_suggests_nothing():
    result = check("timeout")
    assert (result.finding.level, result.finding.reason) == (
        WARNING,
        "_dmarc.example.com: the TXT lookup failed (timeout); checked again later",
    )
    assert result.finding.record_to_publish is None


def test_the_suggestion_keeps_what_the_existing_record_says():
    existing = parse_dmarc("v=DMARC1; p=reject; sp=quarantine; aspf=s; ruf=mailto:f@example.com; fo=1; ri=60")
    suggestion = suggest_dmarc_record("Example.com.", existing, rua=["d@example.com"])
    assert suggestion.name == "_dmarc.example.com"
    assert suggestion.value == (
        "v=DMARC1; p=reject; sp=quarantine; aspf=s; rua=mailto:d@example.com; ruf=mailto:f@example.com; fo=1"
    )
