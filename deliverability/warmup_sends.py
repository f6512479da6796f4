"""What the policy service routed to each sending IP, carried into the IPs' warmup state (sent in the step, last
sent): the counters say how many recipients each IP took per UTC day; what was already carried is kept beside them,
so each recipient is carried once whichever process runs this and however often."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from deliverability import ip_warmup
from deliverability import policy_rules as rules
from deliverability.policy_counters import Count, open_counters

CARRIED = "ipr:"


def carry_policy_sends(now: dt.datetime | None = None) -> dict[str, int]:
    """Add the recipients routed since the last run (yesterday's and today's counters) to each IP's warmup state;
    returns {address: recipients carried}."""
    now = now or timezone.now()
    counters = open_counters()
    carried: dict[str, int] = {}
    try:
        for day in (rules.day_of(now - dt.timedelta(days=1)), rules.day_of(now)):
            routed = counters.scan("ipd:", f":{day}")
            addresses = [key[4 : -len(day) - 1] for key in routed]
            done = counters.get([f"{CARRIED}{address}:{day}" for address in addresses])
            for total, address, already in zip(routed.values(), addresses, done, strict=True):
                delta = total - already
                if delta <= 0:
                    continue
                counters.try_add([Count(f"{CARRIED}{address}:{day}", None)], delta)
                carried[address] = carried.get(address, 0) + delta
    finally:
        counters.close()
    if carried:
        ip_warmup.warmup_record_sends(carried, now)
    return carried
