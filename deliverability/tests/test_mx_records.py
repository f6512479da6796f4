"""The MX check's verdicts and the record it suggests (records.mx, pure: a table stands in for DNS): the record's
name is the domain checked, and a mail host behind a more preferred exchange is suggested below the lowest."""

import ipaddress

import pytest

from deliverability.records.common import FAILED, OK, WARNING
from deliverability.records.mx import mx_check
from deliverability.tests.zones import Zone

SENDING_IP = ipaddress.ip_address("192.0.2.10")


def check(domain, mx, mail_hostname="mail.example.com", extra=None):
    zone = Zone(
        {
            (domain, "MX"): mx,
            ("mail.example.com", "A"): str(SENDING_IP),
            ("mx.other.test", "A"): "198.51.100.7",
            ("backup.other.test", "A"): "198.51.100.8",
            **(extra or {}),
        }
    )
    return mx_check(domain, zone, mail_hostname=mail_hostname, sending_ips=[SENDING_IP])


@pytest.mark.parametrize(
    ("mx", "level", "record", "advice"),
    [
        (["10 mail.example.com."], OK, None, ""),
        (["5 mx.other.test.", "10 mail.example.com."], WARNING, "example.com. MX 4 mail.example.com.", "below 5"),
        (["1 mx.other.test.", "10 mail.example.com."], WARNING, "example.com. MX 0 mail.example.com.", "below 1"),
        (
            ["0 mx.other.test.", "10 mail.example.com."],
            WARNING,
            "example.com. MX 0 mail.example.com.",
            "raise the others above 0",
        ),
        (["10 mail.example.com.", "10 mx.other.test."], OK, None, ""),
        (["10 mx.other.test."], FAILED, "example.com. MX 10 mail.example.com.", "none is mail.example.com"),
    ],
)
def test_the_suggested_mx_is_the_most_preferred(mx, level, record, advice):
    finding = check("example.com", mx)

    assert finding.level == level
    assert (str(finding.record_to_publish) if finding.record_to_publish else None) == record
    assert advice in finding.reason


def test_publishing_the_suggestion_makes_the_check_pass():
    warned = check("example.com", ["5 mx.other.test.", "10 mail.example.com."])
    suggested = warned.record_to_publish.value  # "4 mail.example.com."

    assert check("example.com", ["5 mx.other.test.", suggested]).level == OK


def test_an_exchange_reaching_a_sending_ip_is_suggested_by_its_own_name():
    finding = check(
        "example.com",
        ["5 mx.other.test.", "10 out.example.org."],
        extra={("out.example.org", "A"): str(SENDING_IP)},
    )

    assert str(finding.record_to_publish) == "example.com. MX 4 out.example.org."


@pytest.mark.parametrize("domain", ["example.com", "example.net", "shop.example.org"])
def test_the_record_to_publish_is_named_after_the_domain_checked(domain):
    assert check(domain, ["10 mx.other.test."]).record_to_publish.name == domain
    assert check(domain, ["5 mx.other.test.", "10 mail.example.com."]).record_to_publish.name == domain
    assert check(domain, []).record_to_publish.name == domain


def test_every_problem_stays_on_the_outcome():
    finding = check("example.com", ["5 mx.other.test.", "10 mail.example.com."], extra={("mail.example.com", "A"): []})

    assert finding.level == FAILED
    assert finding.reason == "example.com: MX mail.example.com has no A or AAAA record (and 1 more)"
    assert [problem.reason for problem in finding.problems] == [
        "example.com: MX mail.example.com has no A or AAAA record",
        "example.com: MX 5 mx.other.test, 10 mail.example.com: none is mail.example.com",
    ]


def test_without_a_mail_hostname_a_missing_mx_says_which_setting_to_set():
    finding = check("example.com", ["10 mx.other.test."], mail_hostname="")

    assert finding.level == FAILED
    assert finding.reason == (
        "example.com: MX 10 mx.other.test: none is the mail host (DOCKSPACE_MAIL_HOSTNAME is not set: only "
        "DOCKSPACE_SENDING_IPS' addresses count)"
    )
    # The positive control: with the name set, the reason names the host and no setting.
    assert check("example.com", ["10 mx.other.test."]).reason.endswith("none is mail.example.com")
