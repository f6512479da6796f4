"""Durations as operators type and read them (rules in the admin, `alerts silence --for`)."""

import pytest

from monitoring.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("4h", 14400), ("1d", 86400), ("1h30m", 5400), ("1h 30m", 5400), ("2H", 7200),
     ("300", 300), ("0", 0), (" 15m ", 900), ("1d2h3m4s", 93784)],
)  # fmt: skip
def test_it_reads_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "1.5h", "-5m", "m5", "5x", "h"])
def test_it_refuses_anything_else_saying_what_it_takes(text):
    with pytest.raises(ValueError, match="is not a duration: write e.g. 90s, 30m, 2h, 1d or 1h30m"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (90, "1m30s"), (300, "5m"), (14400, "4h"), (5400, "1h30m"), (86400, "1d"), (None, "-")],
)
def test_it_writes_them_back_the_short_way(seconds, text):
    assert format_duration(seconds) == text
    if seconds:
        assert parse_duration(text) == seconds
