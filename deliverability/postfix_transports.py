"""The Postfix plumbing of the sending IP pools, as pure functions: plain values in, the lines of three DMS files out
(and those files read back, and what they make of each pool: route_outcome). No database, no settings, no filesystem.

- postfix-sender-pools.cf (texthash): `@domain pool` for each active domain that sends through a pool with an IP in
  rotation.
- postfix-main.cf (DMS appends it to main.cf at start): `sender_dependent_default_transport_maps`, one table per
  pool: `pipemap:{texthash:<the map>, inline:{pool=pool}, randmap:{out-a, out-a, out-b}}` picks one of the pool's
  transports at random, each IP repeated by its weight (a pool with one IP names its transport directly). randmap
  is a table type, not a lookup result, which is why the pool's choice lives in main.cf and the map only names the
  pool. A domain in no pool finds no table and keeps the default transport.
- user-patches.sh (DMS runs it at start, after applying postfix-main.cf): one `smtp` service per IP in rotation,
  `out-192-0-2-10 unix - - n - - smtp -o syslog_name=postfix/out-192-0-2-10 -o smtp_bind_address=192.0.2.10
  -o smtp_helo_name=...`, added with `postconf -M` between markers in master.cf after removing (`postconf -MX`)
  what the last run added. `postfix-master.cf` cannot do this: DMS applies it with `postconf -P`, which only edits
  existing services. The syslog_name tags every log line of mail leaving through the IP
  (`postfix/out-192-0-2-10/smtp[pid]: ...`), so the mail log ties each delivery attempt to its sending IP.
"""

from __future__ import annotations

import ipaddress
import math
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mail.dms.catalog import OnSkip, refuse
from mail.dms.parse import Problem

MAP_PATH = "postfix-sender-pools.cf"
MAIN_PATH = "postfix-main.cf"
USER_PATCHES_PATH = "user-patches.sh"
# Where DMS sees its config directory, inside the container.
DMS_CONFIG_DIR = "/tmp/docker-mailserver"  # noqa: S108
PARAMETER = "sender_dependent_default_transport_maps"
TRANSPORT_PREFIX = "out-"
BEGIN_MARKER = "# BEGIN Dockspace transports"
END_MARKER = "# END Dockspace transports"

_HOST_RE = re.compile(r"^(?=.{1,253}\Z)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\Z")
_POOL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")


@dataclass(frozen=True)
class PoolIp:
    """An IP a pool sends through now (ip_pools.RotationIp's values)."""

    address: str
    helo_name: str
    weight: int


@dataclass(frozen=True)
class PoolRoute:
    """One pool: the active domains that send through it (its own and its tiers') and its IPs in rotation."""

    pool: str
    domains: tuple[str, ...]
    ips: tuple[PoolIp, ...]


def transport_name(address: str) -> str:
    """The master.cf service of one IP: out-192-0-2-10, out-2001-db8--1."""
    return TRANSPORT_PREFIX + re.sub(r"[.:]", "-", str(ipaddress.ip_address(address)))


def _ip_refusal(ip: PoolIp) -> str | None:
    try:
        parsed = ipaddress.ip_address(ip.address)
    except ValueError:
        return f"sending IP {ip.address!r} is not an IP address: left out of the Postfix transports"
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.scope_id is not None:
        return f"sending IP {ip.address!r} has a %zone (an interface name): left out of the Postfix transports"
    if str(parsed) != ip.address:
        return f"sending IP {ip.address!r} is not stored normalised ({parsed}): left out of the Postfix transports"
    if not _HOST_RE.match(ip.helo_name):
        return (
            f"sending IP {ip.address}: HELO name {ip.helo_name!r} is not a host name: left out of the Postfix "
            "transports"
        )
    if not 1 <= ip.weight <= 10_000:
        return f"sending IP {ip.address}: weight {ip.weight} is out of range: left out of the Postfix transports"
    return None


def _domain_refusal(domain: str) -> str | None:
    if _HOST_RE.match(domain):
        return None
    return f"domain {domain!r} cannot be written to {MAP_PATH}: it keeps the default transport"


def _usable_domains(route: PoolRoute, on_skip: OnSkip) -> list[str]:
    """The route's domains that can be written; each other one is refused (reported by the map only)."""
    domains = []
    for domain in route.domains:
        reason = _domain_refusal(domain)
        if reason is None:
            domains.append(domain)
        else:
            refuse(on_skip, reason)
    return domains


def _usable_ips(route: PoolRoute, on_skip: OnSkip) -> list[PoolIp]:
    """The route's IPs that can be written; each other one is refused (reported by main.cf only)."""
    ips = []
    for ip in route.ips:
        reason = _ip_refusal(ip)
        if reason is None:
            ips.append(ip)
        else:
            refuse(on_skip, reason)
    return ips


def _is_usable_pool(route: PoolRoute) -> bool:
    return bool(_POOL_RE.match(route.pool))


def _ignore(message: str) -> None:
    """on_skip of the files that leave out what another file of the set already reported."""


def rotation(ips: Iterable[PoolIp]) -> list[str]:
    """The pool's transports, each repeated by its weight (weights divided by their common divisor), by address."""
    ips = list(ips)
    divisor = math.gcd(*(ip.weight for ip in ips)) if ips else 1
    return [transport_name(ip.address) for ip in ips for _ in range(ip.weight // divisor)]


def pool_table(pool: str, ips: Iterable[PoolIp], map_path: str) -> str:
    """The one table of sender_dependent_default_transport_maps that routes this pool's domains."""
    transports = rotation(ips)
    if len(set(transports)) == 1:
        return f"pipemap:{{texthash:{map_path}, inline:{{{pool}={transports[0]}}}}}"
    return f"pipemap:{{texthash:{map_path}, inline:{{{pool}={pool}}}, randmap:{{{', '.join(transports)}}}}}"


@dataclass(frozen=True)
class RouteOutcome:
    """What the three files make of one pool, as an operator reads it. routed: the domains the map sends through
    the pool; default: (domain, why it keeps the default transport); shares: (IP, its share of the pool's mail, 0
    to 1: how often the randmap names its transport); left_out: (IP in rotation, why it has no transport)."""

    routed: tuple[str, ...]
    default: tuple[tuple[str, str], ...]
    shares: tuple[tuple[PoolIp, float], ...]
    left_out: tuple[tuple[PoolIp, str], ...]


def route_outcome(route: PoolRoute) -> RouteOutcome:
    """The same decisions as map_lines, main_lines and user_patches_lines (the same checks), for one pool."""
    if not _is_usable_pool(route):
        refused = f"pool {route.pool!r} cannot be written to {MAP_PATH}"
        return RouteOutcome(
            (),
            tuple((d, f"{refused}: its domains keep the default transport") for d in route.domains),
            (),
            tuple((ip, f"{refused}: its IPs get no transport") for ip in route.ips),
        )
    default = [(domain, why) for domain in route.domains if (why := _domain_refusal(domain)) is not None]
    left_out = [(ip, why) for ip in route.ips if (why := _ip_refusal(ip)) is not None]
    domains, ips = _usable_domains(route, _ignore), _usable_ips(route, _ignore)
    if not ips:
        empty = f"pool {route.pool} has no IP in rotation" + (" that can be written" if left_out else "")
        default.extend((domain, f"{empty}: it keeps the default transport") for domain in domains)
        domains = []
    transports = rotation(ips)
    shares = tuple((ip, transports.count(transport_name(ip.address)) / len(transports)) for ip in ips)
    return RouteOutcome(tuple(domains), tuple(sorted(default)), shares, tuple(left_out))


def map_lines(routes: Iterable[PoolRoute], on_skip: OnSkip = None) -> Iterator[str]:
    """postfix-sender-pools.cf: `@domain pool` for the domains of each pool with an IP in rotation."""
    for route in routes:
        if not _is_usable_pool(route):
            refuse(
                on_skip, f"pool {route.pool!r} cannot be written to {MAP_PATH}: its domains keep the default transport"
            )
            continue
        domains, ips = _usable_domains(route, on_skip), _usable_ips(route, _ignore)
        if not ips:
            if domains:
                listing = ", ".join(domains)
                yield f"# pool {route.pool} has no IP in rotation: its domains ({listing}) keep the default transport"
            continue
        for domain in domains:
            yield f"@{domain} {route.pool}"


def main_lines(
    routes: Iterable[PoolRoute], on_skip: OnSkip = None, *, map_path: str = f"{DMS_CONFIG_DIR}/{MAP_PATH}"
) -> Iterator[str]:
    """postfix-main.cf: sender_dependent_default_transport_maps, one pipemap per pool with domains and an IP in
    rotation. Always written, empty without pools: a restarted container keeps the main.cf of its last start."""
    tables = []
    for route in routes:
        if not _is_usable_pool(route):
            continue
        domains, ips = _usable_domains(route, _ignore), _usable_ips(route, on_skip)
        if domains and ips:
            tables.append(pool_table(route.pool, ips, map_path))
    yield "# Sending IP pools: each pooled domain's mail leaves through its pool's IPs in rotation"
    yield f"# ({MAP_PATH} names the pool, {USER_PATCHES_PATH} adds the transports); other domains keep"
    yield "# default_transport."
    if not tables:
        yield f"{PARAMETER} ="
        return
    yield f"{PARAMETER} ="
    for index, table in enumerate(tables):
        yield f"    {table}{',' if index < len(tables) - 1 else ''}"


def master_entry(ip: PoolIp) -> str:
    """The master.cf entry of one IP's transport, as `postconf -M name/unix=entry` takes it."""
    name = transport_name(ip.address)
    version = ipaddress.ip_address(ip.address).version
    bind = "smtp_bind_address6" if version == 6 else "smtp_bind_address"
    # syslog_name: its log lines read postfix/out-192-0-2-10/smtp[pid], naming the IP each delivery attempt used.
    # A bind address holds for its own family only. An IPv4 transport is pinned to IPv4: otherwise it reaches an MX
    # with AAAA records (Gmail, Microsoft) from the host's default IPv6 address, outside the pool, with another PTR.
    # An IPv6 transport prefers IPv6 but is not pinned: an IPv4-only MX is then reached from the host's default
    # IPv4 address rather than not at all (the routing preview warns about pools with IPv6 addresses).
    family = "-o inet_protocols=ipv4" if version == 4 else "-o smtp_address_preference=ipv6"
    options = f"-o syslog_name=postfix/{name} {family} -o {bind}={ip.address} -o smtp_helo_name={ip.helo_name}"
    return f"{name} unix - - n - - smtp {options}"


_SCRIPT_HEAD = f"""\
# Dockspace's outbound transports: one smtp service per sending IP in rotation, the transports that
# postfix-main.cf's {PARAMETER} names. DMS runs this file with bash at every start, after it
# applied postfix-main.cf and before Postfix starts (run by hand in a running container: then `postfix reload`).
# A restarted container keeps its master.cf, so the services the last run added (between the markers) go first.
# Keep your own patches elsewhere: this file is rewritten at each sync.
POSTFIX_DIR="${{DOCKSPACE_POSTFIX_DIR:-/etc/postfix}}"
MASTER_CF="$POSTFIX_DIR/master.cf"
BEGIN_MARKER='{BEGIN_MARKER}'
END_MARKER='{END_MARKER}'
SERVICE_RE='^\\([^#[:space:]][^[:space:]]*\\)[[:space:]][[:space:]]*unix[[:space:]].*'
for name in $(sed -n "/^$BEGIN_MARKER\\$/,/^$END_MARKER\\$/s/$SERVICE_RE/\\1/p" "$MASTER_CF"); do
    postconf -c "$POSTFIX_DIR" -M -X "$name/unix"
done
sed -i "/^$BEGIN_MARKER\\$/d; /^$END_MARKER\\$/d" "$MASTER_CF"
echo "$BEGIN_MARKER" >>"$MASTER_CF\""""


def user_patches_lines(routes: Iterable[PoolRoute], on_skip: OnSkip = None) -> Iterator[str]:
    """user-patches.sh: the transports of every pool's IPs in rotation (an IP in two pools' rows: once)."""
    yield from _SCRIPT_HEAD.splitlines()
    seen = set()
    for route in routes:
        if not _is_usable_pool(route):
            continue
        for ip in _usable_ips(route, _ignore):
            if ip.address in seen:
                continue
            seen.add(ip.address)
            service = shlex.quote(f"{transport_name(ip.address)}/unix={master_entry(ip)}")
            yield f'postconf -c "$POSTFIX_DIR" -M {service}'
    yield 'echo "$END_MARKER" >>"$MASTER_CF"'


# --- read back ---------------------------------------------------------------------------------------------


def _data_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(text.replace("\r", "").split("\n"), start=1):
        if raw.strip() and not raw.lstrip().startswith("#"):
            yield number, raw


def parse_map(text: str, path: str) -> tuple[list[tuple[str, str]], list[Problem]]:
    """postfix-sender-pools.cf -> ([(domain, pool)], problems)."""
    entries, problems = [], []
    for number, raw in _data_lines(text):
        parts = raw.split()
        if len(parts) != 2 or not parts[0].startswith("@") or not _HOST_RE.match(parts[0][1:]):
            problems.append(Problem(path, number, raw, "expected @domain pool"))
            continue
        entries.append((parts[0][1:], parts[1]))
    return entries, problems


def parse_main(text: str, path: str) -> tuple[list[tuple[str, str]], list[Problem]]:
    """A main.cf-format file -> ([(parameter, value)], problems); continuation lines join their parameter."""
    entries: list[tuple[str, str]] = []
    problems = []
    for number, raw in _data_lines(text):
        if raw[0].isspace():
            if entries:
                name, value = entries[-1]
                entries[-1] = (name, f"{value} {raw.strip()}".strip())
            else:
                problems.append(Problem(path, number, raw, "a continuation line with no parameter before it"))
            continue
        name, sep, value = raw.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_]+", name.strip()):
            problems.append(Problem(path, number, raw, "expected parameter = value"))
            continue
        entries.append((name.strip(), value.strip()))
    return entries, problems


def parse_user_patches(text: str, path: str) -> tuple[list[str], list[Problem]]:
    """user-patches.sh -> ([master.cf entry Dockspace adds], problems). Any other shell line is not an entry."""
    entries: list[str] = []
    for _number, raw in _data_lines(text):
        try:
            words = shlex.split(raw, comments=True) if raw.lstrip().startswith("postconf ") else []
        except ValueError:  # unbalanced quotes: not a line Dockspace wrote
            continue
        if "-M" in words and "-X" not in words:
            entries.extend(word.partition("=")[2] for word in words if re.match(r"[^=\s]+/unix=", word))
        elif raw.startswith("DOCKSPACE_POLICY_CHECK="):
            # The policy check user-patches.sh puts in front of smtpd_recipient_restrictions (postfix_policy).
            entries.append(f"smtpd_recipient_restrictions: {raw.partition('=')[2].strip(chr(39))}")
    return entries, []


# A file that routes nothing behaves as if it were absent: creating it needs no DMS restart.
def map_is_inert(text: str) -> bool:
    return not parse_map(text, MAP_PATH)[0]


def main_is_inert(text: str) -> bool:
    return not any(value for _name, value in parse_main(text, MAIN_PATH)[0])


def user_patches_is_inert(text: str) -> bool:
    return not parse_user_patches(text, USER_PATCHES_PATH)[0]
