"""Findings: the shape every record check reports in, and the one-line outcome a domain check stores."""

import pytest

from deliverability.records.common import FAILED, OK, WARNING, Finding, RecordToPublish, one_line, outcome

RECORD = RecordToPublish("example.com", "TXT", "v=spf1 -all")


@pytest.mark.parametrize(
    "problems, expected",
    [
        ([], Finding(OK, "all good")),
        ([Finding(WARNING, "w1")], Finding(WARNING, "w1", RECORD)),
        (
            [Finding(WARNING, "w1"), Finding(FAILED, "f1"), Finding(FAILED, "f2")],
            Finding(FAILED, "f1 (and 2 more)", RECORD),
        ),
        (
            [Finding(FAILED, "f1", RecordToPublish("x", "TXT", "own"))],
            Finding(FAILED, "f1", RecordToPublish("x", "TXT", "own")),
        ),
    ],
)
def test_the_outcome_is_the_first_worst_problem_with_the_record(problems, expected):
    assert outcome(problems, "all good", RECORD) == expected


@pytest.mark.parametrize(
    "level, reason, message",
    [
        ("error", "x", "level: 'error' is not one of ok, warning, failed."),
        (OK, "", "reason: must not be empty."),
    ],
)
def test_a_finding_refuses_what_cannot_be_stored(level, reason, message):
    with pytest.raises(ValueError, match=message):
        Finding(level, reason)


def test_a_reason_quoting_dns_stays_on_one_line():
    assert Finding(OK, "name\nwith\x00control").reason == "name\\nwith\\x00control"


def test_a_record_is_shown_as_a_zone_line_with_strings_of_at_most_255():
    assert str(RECORD) == 'example.com. TXT "v=spf1 -all"'
    long = RecordToPublish("example.com", "TXT", 'v=spf1 "' + "x" * 300)
    strings = long.strings()
    assert [len(string) for string in strings] == [255 + 3, 53 + 2]  # 308 characters: quotes, and the escaped quote
    assert strings[0].startswith('"v=spf1 \\"x')


def test_text_from_dns_is_shown_on_one_line():
    assert one_line("a\nb\tc") == "a\\nb\\tc"
    assert len(one_line("x" * 500)) == 200
