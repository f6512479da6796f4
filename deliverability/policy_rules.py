"""The sending policy's rules as pure code: who sends a message Postfix asks about, which daily windows count it,
the words of a refusal, and which IP of a pool takes it under the warmup caps. Plain values in and out: the policy
server (deliverability.policy_server) holds the configuration and the counters and calls these."""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

ACTIVE = "active"
# A sender that may not send: its mailbox suspended or disabled, or its person's sign-in switched off.
SUSPENDED = "suspended"
DISABLED = "disabled"
PERSON_INACTIVE = "inactive"


@dataclass(frozen=True, slots=True)
class DomainPolicy:
    """What one managed domain's senders are held to: its tier's limits and the pool it sends through."""

    name: str
    tier: str = ""
    daily_limit: int | None = None
    domain_daily_limit: int | None = None
    max_recipients: int | None = None
    pool: str = ""


@dataclass(frozen=True, slots=True)
class Sender:
    address: str
    domain: DomainPolicy
    state: str = ACTIVE


@dataclass(frozen=True, slots=True)
class RouteIp:
    """An IP of a pool in rotation: its transport, weight, state and warmup caps (None: no cap)."""

    address: str
    transport: str
    weight: int
    state: str
    daily_cap: int | None = None
    hourly_cap: int | None = None


@dataclass(frozen=True)
class PolicyConfig:
    senders: Mapping[str, Sender] = field(default_factory=dict)
    local_domains: frozenset[str] = frozenset()
    domains: Mapping[str, DomainPolicy] = field(default_factory=dict)
    pools: Mapping[str, tuple[RouteIp, ...]] = field(default_factory=dict)
    relay_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def sender_of(config: PolicyConfig, request: Mapping[str, str]) -> Sender | None:
    """The sender the limits apply to: the SASL user when the client signed in, else the envelope sender when the
    client is one of our relaying hosts (DOCKSPACE_POLICY_RELAY_HOSTS). None: mail from outside, or from an address
    Dockspace does not manage; no limit applies to it."""
    username = request.get("sasl_username", "").strip().lower()
    if username:
        return config.senders.get(username)
    if not config.relay_networks:
        return None
    try:
        client = ipaddress.ip_address(request.get("client_address", ""))
    except ValueError:
        return None
    if not any(client in network for network in config.relay_networks):
        return None
    address = request.get("sender", "").strip().lower()
    known = config.senders.get(address)
    if known is not None:
        return known
    # An alias or any other name on a managed domain: its own daily count under its domain's tier.
    policy = config.domains.get(domain_of(address)) if "@" in address else None
    return Sender(address, policy) if policy is not None else None


def state_refusal(sender: Sender) -> str | None:
    """The 5xx for a sender that may not send at all (a hard rule: retrying will not help)."""
    why = {
        SUSPENDED: "its mailbox is suspended",
        DISABLED: "its mailbox is disabled",
        PERSON_INACTIVE: "its owner's account is switched off",
    }.get(sender.state)
    if why is None:
        return None
    return f"554 5.7.1 {sender.address} may not send mail: {why}; ask your administrator"


@dataclass(frozen=True, slots=True)
class Window:
    """One daily limit a message counts against: the counter key, the limit and who it is about."""

    key: str
    limit: int | None  # None: counted (for the usage shown), never refused
    subject: str
    per_domain: bool = False


def day_of(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y%m%d")


def hour_of(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y%m%d%H")


def mailbox_key(address: str, day: str) -> str:
    return f"mbx:{address}:{day}"


def domain_key(domain: str, day: str) -> str:
    return f"dom:{domain}:{day}"


def ip_day_key(address: str, day: str) -> str:
    return f"ipd:{address}:{day}"


def ip_hour_key(address: str, hour: str) -> str:
    return f"iph:{address}:{hour}"


def windows(sender: Sender, now: dt.datetime) -> list[Window]:
    """The daily windows `sender`'s mail counts against today (UTC): the mailbox's and its domain's total, each
    counted whether or not its tier limits it."""
    day, policy = day_of(now), sender.domain
    return [
        Window(mailbox_key(sender.address, day), policy.daily_limit, sender.address),
        Window(domain_key(policy.name, day), policy.domain_daily_limit, policy.name, per_domain=True),
    ]


def window_refusal(window: Window, used: int, adding: int = 1) -> str:
    """The 4xx while a daily window is full (or too full for this message): it names the limit, what was used and
    when it resets."""
    whose = f"{window.subject} (all its mailboxes together)" if window.per_domain else window.subject
    limit = window.limit if window.limit is not None else used
    used = min(used, limit)
    this = f", and this message has {adding}" if used < limit and adding > 1 else ""
    return f"452 4.5.3 {whose} sent to {used} of {limit} recipients allowed today{this}; the limit resets at 00:00 UTC"


def full_window(found: Sequence[Window], used: Sequence[int], adding: int) -> tuple[Window, int, int] | None:
    """The first window that `adding` more recipients would overflow, with its count and `adding` (window_refusal's
    arguments); None when all have room."""
    for window, count in zip(found, used, strict=True):
        if window.limit is not None and count + adding > window.limit:
            return window, count, adding
    return None


def too_many_recipients(sender: Sender, count: int) -> str | None:
    """The 5xx for a message with more recipients than its tier allows (hard: the same message never fits)."""
    limit = sender.domain.max_recipients
    if limit is None or count <= limit:
        return None
    return (
        f"550 5.5.3 this message has {count} recipients; tier {sender.domain.tier} allows at most {limit} per "
        "message: send it in parts"
    )


def all_remote(recipients: Sequence[str], local_domains: frozenset[str]) -> bool:
    """Whether every recipient is outside the managed domains: only such a message may be routed to an IP's
    transport (a FILTER applies to all recipients, and local mail must stay local). A recipient without a domain
    counts as local."""
    return bool(recipients) and all((domain := domain_of(r)) and domain not in local_domains for r in recipients)


def remote_count(recipients: Sequence[str], local_domains: frozenset[str]) -> int:
    """How many of `recipients` are outside the managed domains."""
    return sum(1 for r in recipients if (domain := domain_of(r)) and domain not in local_domains)


@dataclass(frozen=True, slots=True)
class IpRoom:
    ip: RouteIp
    day_used: int
    hour_used: int

    def room(self, minute: int, *, paced: bool) -> int:
        """Recipients the IP may still take now. A WARMING IP beside an ACTIVE one is paced through the hour
        (its hourly cap spread over the minutes), so its cap is not spent in the first seconds of each hour."""
        rooms = []
        if self.ip.daily_cap is not None:
            rooms.append(self.ip.daily_cap - self.day_used)
        if self.ip.hourly_cap is not None:
            hourly = self.ip.hourly_cap
            if paced:
                hourly = max(1, -(-hourly * (minute + 1) // 60))
            rooms.append(hourly - self.hour_used)
        return min(rooms) if rooms else 1 << 62


def choose_ip(rooms: Sequence[IpRoom], count: int, minute: int, rng: random.Random) -> RouteIp | None:
    """The IP that takes a message of `count` recipients: a WARMING IP with room first (the least used of its hour,
    so several share the mail by their caps), else an ACTIVE IP by weight. None: no IP has room, the message waits."""
    has_active = any(room.ip.state == ACTIVE_IP for room in rooms)
    warming = [room for room in rooms if room.ip.state != ACTIVE_IP and room.room(minute, paced=has_active) >= count]
    if warming:
        return min(warming, key=lambda room: (room.hour_used / max(room.ip.hourly_cap or 1, 1), room.ip.address)).ip
    active = [room.ip for room in rooms if room.ip.state == ACTIVE_IP and room.room(minute, paced=False) >= count]
    if not active:
        return None
    return rng.choices(active, weights=[ip.weight for ip in active])[0]


ACTIVE_IP = "active"
# How far ahead mail waits for warmup room before it is deferred to its sender instead.
HOLD_HORIZON_HOURS = 72


def hour_start(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def future_hours(now: dt.datetime, hours: int = HOLD_HORIZON_HOURS) -> list[dt.datetime]:
    """The starts of the next `hours` UTC hours after the current one."""
    start = hour_start(now)
    return [start + dt.timedelta(hours=n) for n in range(1, hours + 1)]


def earliest_room(
    ips: Sequence[RouteIp], used: Mapping[str, int], count: int, hours: Sequence[dt.datetime]
) -> tuple[RouteIp, dt.datetime] | None:
    """The first later hour in which an IP has room for `count` in both its hourly and its daily cap (`used` holds
    the counters of those hours and days, reservations included), ACTIVE IPs before WARMING ones at the same hour;
    None: no room within the horizon."""
    for hour in hours:
        for ip in sorted(ips, key=lambda ip: (ip.state != ACTIVE_IP, ip.address)):
            day = used.get(ip_day_key(ip.address, day_of(hour)), 0)
            this_hour = used.get(ip_hour_key(ip.address, hour_of(hour)), 0)
            if ip.daily_cap is not None and day + count > ip.daily_cap:
                continue
            if ip.hourly_cap is not None and this_hour + count > ip.hourly_cap:
                continue
            return ip, hour
    return None
