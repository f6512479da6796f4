"""How bad a hard-bounce or complaint rate is, against the reference's safety thresholds (docs: deliverability,
"Safety thresholds": the warmup gates advance below the first, hold at the watch band, step back at bad and pull the
IP at standby). Pure: percentages in, a level out."""

from __future__ import annotations

from dataclasses import dataclass

OK, WATCH, BAD, STANDBY = "ok", "watch", "bad", "standby"
LEVELS = (OK, WATCH, BAD, STANDBY)  # from good to worst
NOT_JUDGED = ""  # too few recipients to tell

# The smallest sample a rate is judged from (recipients tried in the window): a handful of bounces says nothing.
MINIMUM_SAMPLE = 200


@dataclass(frozen=True)
class Bands:
    """The lowest percentage of each level above ok."""

    watch: float
    bad: float
    standby: float

    def level(self, percent: float | None) -> str:
        if percent is None:
            return NOT_JUDGED
        if percent >= self.standby:
            return STANDBY
        if percent >= self.bad:
            return BAD
        if percent >= self.watch:
            return WATCH
        return OK


# Hard bounces: < 2 % ok, 2-5 % hold, >= 5 % step back, >= 10 % standby (Amazon SES: review at 5 %, pause at 10 %).
HARD_BOUNCES = Bands(watch=2.0, bad=5.0, standby=10.0)
# Complaints: < 0.08 % ok, >= 0.1 % step back (Gmail's and SES's line), >= 0.3 % standby (Gmail's and Yahoo's limit).
COMPLAINTS = Bands(watch=0.08, bad=0.1, standby=0.3)


def percent(part: int, whole: int) -> float | None:
    """part of whole in percent; None when whole is 0."""
    return 100 * part / whole if whole else None


def worst(*levels: str) -> str:
    """The worst of some levels (NOT_JUDGED when none is judged)."""
    judged = [level for level in levels if level in LEVELS]
    return max(judged, key=LEVELS.index) if judged else NOT_JUDGED


def rank(level: str) -> int:
    """A sort key: higher is worse, NOT_JUDGED below ok."""
    return LEVELS.index(level) + 1 if level in LEVELS else 0
