"""The reference's safety thresholds as levels (monitoring.sending_levels): pure, table-driven."""

import pytest

from monitoring.sending_levels import (
    BAD,
    COMPLAINTS,
    HARD_BOUNCES,
    NOT_JUDGED,
    OK,
    STANDBY,
    WATCH,
    percent,
    rank,
    worst,
)


@pytest.mark.parametrize(
    ("value", "level"),
    [(None, NOT_JUDGED), (0, OK), (1.99, OK), (2, WATCH), (4.99, WATCH), (5, BAD), (9.99, BAD), (10, STANDBY),
     (100, STANDBY)],
)  # fmt: skip
def test_hard_bounces_are_ok_under_2_watched_to_5_bad_from_5_and_standby_from_10_percent(value, level):
    assert HARD_BOUNCES.level(value) == level


@pytest.mark.parametrize(
    ("value", "level"),
    [(0, OK), (0.079, OK), (0.08, WATCH), (0.099, WATCH), (0.1, BAD), (0.299, BAD), (0.3, STANDBY), (5, STANDBY)],
)
def test_complaints_are_ok_under_0_08_bad_from_0_1_and_standby_from_0_3_percent(value, level):
    assert COMPLAINTS.level(value) == level


@pytest.mark.parametrize(
    ("levels", "expected"),
    [((OK, WATCH), WATCH), ((STANDBY, BAD), STANDBY), ((NOT_JUDGED, OK), OK), ((NOT_JUDGED,), NOT_JUDGED), ((), "")],
)
def test_the_worst_level_wins_and_not_judged_counts_for_nothing(levels, expected):
    assert worst(*levels) == expected


def test_levels_rank_from_not_judged_to_standby_and_a_rate_of_nothing_is_none():
    assert [rank(level) for level in (NOT_JUDGED, OK, WATCH, BAD, STANDBY)] == [0, 1, 2, 3, 4]
    assert (percent(1, 4), percent(0, 4), percent(3, 0)) == (25.0, 0.0, None)
