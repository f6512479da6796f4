"""Durations as operators type them ("90s", "5m", "4h", "1d", "1h30m", or plain seconds) and as they read them."""

import re

UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)\s*([dhms])")
_WHOLE = re.compile(r"(?:\d+\s*[dhms]\s*)+\Z")


def parse_duration(text: str) -> int:
    """Seconds in `text`; ValueError with the accepted forms when it is none of them."""
    value = (text or "").strip().lower()
    if value.isdigit():
        return int(value)
    if not value or not _WHOLE.match(value):
        raise ValueError(f"{text!r} is not a duration: write e.g. 90s, 30m, 2h, 1d or 1h30m.")
    return sum(int(number) * UNITS[unit] for number, unit in _PART.findall(value))


def format_duration(seconds: int | None) -> str:
    """'4h', '1h30m', '90s' -> '1m30s', 0 -> '0s'."""
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
