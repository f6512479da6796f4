"""Pure parsers of what a DMS host prints (supervisorctl, /etc/dms-settings, postqueue -j, df, /proc, doveadm quota).
Each takes text and returns plain values, or raises ValueError("<what>: <rule>"), never another exception."""

import json
import math
import re
from dataclasses import dataclass

SERVICE_STATES = frozenset({"RUNNING", "STARTING", "BACKOFF", "STOPPING", "STOPPED", "EXITED", "FATAL", "UNKNOWN"})


@dataclass(frozen=True)
class QueueStats:
    count: int
    deferred: int
    active: int
    hold: int
    oldest_age_seconds: float | None


@dataclass(frozen=True)
class DiskUse:
    path: str
    total_bytes: int
    used_bytes: int
    available_bytes: int
    percent_used: float


@dataclass(frozen=True)
class LoadAverage:
    load1: float
    load5: float
    load15: float


@dataclass(frozen=True)
class Memory:
    total_bytes: int
    available_bytes: int


@dataclass(frozen=True)
class QuotaUsage:
    user: str
    used_bytes: int
    limit_bytes: int | None


def _clip(line: str, limit: int = 80) -> str:
    line = line.strip()
    return repr(line if len(line) <= limit else line[:limit] + "...")


# ---------------------------------------------------------------------------------------------------- supervisorctl

# `supervisorctl status` prints '%(namespec)-Ns%(state)-10s%(desc)s' per process, namespec "group:name" when the
# group is not the program's own (Supervisor 4.3.0, supervisor/supervisorctl.py `_show_statuses`, `make_namespec`):
# the name has no spaces, the description is free text and may be empty.
_SUPERVISOR_LINE = re.compile(r"^(?P<name>[A-Za-z0-9_.:@+-]+)\s+(?P<state>[A-Z]+)(?:\s+(?P<description>.*))?$")


def parse_supervisorctl(text: str) -> dict[str, str]:
    """Program name (as supervisorctl prints it, so `supervisorctl start NAME` takes it) -> state."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _SUPERVISOR_LINE.match(line.strip())
        if match is None or match["state"] not in SERVICE_STATES:
            raise ValueError(f"supervisorctl status: expected 'program STATE description' lines, got {_clip(line)}")
        states[match["name"]] = match["state"]
    if not states:
        raise ValueError("supervisorctl status: no programs listed")
    return states


# ---------------------------------------------------------------------------------------------------- dms-settings

_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_dms_settings(text: str) -> dict[str, str]:
    """`VAR='value'` lines as DMS writes them (target/scripts/startup/variables-stack.sh,
    __environment_variables_export: `echo "${VAR}='${VARS[${VAR}]}'"`), read literally: never evaluated. The value
    is what lies between the outer quotes, so a value holding a quote (which DMS does not escape) is kept whole."""
    settings: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        if not sep or not _SETTING_NAME.match(name):
            raise ValueError(f"dms-settings line {number}: expected VAR='value', got {_clip(raw)}")
        if value[:1] in ("'", '"'):
            if len(value) < 2 or value[-1] != value[0]:
                raise ValueError(f"dms-settings line {number}: the value of {name} has no closing quote")
            value = value[1:-1]
        elif any(ch.isspace() or ch in "'\"" for ch in value):
            raise ValueError(f"dms-settings line {number}: the value of {name} has spaces or quotes but no quotes")
        settings[name] = value
    return settings


# Defaults of DMS v15.1 for the settings that decide which supervisor programs start, used when a setting is absent
# from /etc/dms-settings. Source: docker-mailserver v15.1.0, target/scripts/startup/variables-stack.sh
# (__environment_variables_general_setup: `VARS[ENABLE_AMAVIS]="${ENABLE_AMAVIS:=1}"`, ENABLE_OPENDKIM=1,
# ENABLE_OPENDMARC=1, ENABLE_RSPAMD_REDIS defaults to ENABLE_RSPAMD, everything else 0, ACCOUNT_PROVISIONER=FILE,
# SASLAUTHD_MECHANISMS=ldap).
DMS_DEFAULTS = {
    "SMTP_ONLY": "0",
    "ACCOUNT_PROVISIONER": "FILE",
    "ENABLE_AMAVIS": "1",
    "ENABLE_CLAMAV": "0",
    "ENABLE_FAIL2BAN": "0",
    "ENABLE_FETCHMAIL": "0",
    "FETCHMAIL_PARALLEL": "0",
    "ENABLE_GETMAIL": "0",
    "ENABLE_MTA_STS": "0",
    "ENABLE_OPENDKIM": "1",
    "ENABLE_OPENDMARC": "1",
    "ENABLE_POSTGREY": "0",
    "ENABLE_RSPAMD": "0",
    "ENABLE_SASLAUTHD": "0",
    "SASLAUTHD_MECHANISMS": "ldap",
    "ENABLE_SRS": "0",
}

# Supervisor program (target/supervisor/conf.d/dms-services.conf, saslauth.conf) -> the setting that makes
# start-mailserver.sh (_register_functions) start it via startup/daemons-stack.sh (`supervisorctl start NAME`).
_STARTED_WHEN_ENABLED = (
    ("rspamd", "ENABLE_RSPAMD"),
    ("rspamd-redis", "ENABLE_RSPAMD_REDIS"),
    ("opendkim", "ENABLE_OPENDKIM"),
    ("opendmarc", "ENABLE_OPENDMARC"),
    ("postgrey", "ENABLE_POSTGREY"),
    ("postsrsd", "ENABLE_SRS"),
    ("mta-sts-daemon", "ENABLE_MTA_STS"),
    ("fail2ban", "ENABLE_FAIL2BAN"),
    ("clamav", "ENABLE_CLAMAV"),
    ("amavis", "ENABLE_AMAVIS"),
    ("getmail", "ENABLE_GETMAIL"),
)


def _is_on(value: str) -> bool:
    return value.strip() == "1"


def expected_services(settings: dict[str, str]) -> frozenset[str]:
    """The supervisor programs DMS v15 starts, hence must be RUNNING, for these settings (missing ones take DMS's
    defaults). Mirrors docker-mailserver v15.1.0 target/scripts/start-mailserver.sh `_register_functions`: cron,
    rsyslog and postfix always; dovecot unless SMTP_ONLY=1; changedetector with ACCOUNT_PROVISIONER=FILE;
    saslauthd_<SASLAUTHD_MECHANISMS>; fetchmail unless FETCHMAIL_PARALLEL=1 (then fetchmail-1..N, N unknown here).
    update-check is left out: it only runs on stable releases and its state says nothing about mail."""
    merged = {**DMS_DEFAULTS, **settings}
    if "ENABLE_RSPAMD_REDIS" not in settings:
        merged["ENABLE_RSPAMD_REDIS"] = merged["ENABLE_RSPAMD"]
    expected = {"postfix", "cron", "rsyslog"}
    if not _is_on(merged["SMTP_ONLY"]):
        expected.add("dovecot")
    if merged["ACCOUNT_PROVISIONER"].strip() == "FILE":
        expected.add("changedetector")
    for program, setting in _STARTED_WHEN_ENABLED:
        if _is_on(merged[setting]):
            expected.add(program)
    if _is_on(merged["ENABLE_SASLAUTHD"]):
        expected.add(f"saslauthd_{merged['SASLAUTHD_MECHANISMS'].strip()}")
    if _is_on(merged["ENABLE_FETCHMAIL"]) and not _is_on(merged["FETCHMAIL_PARALLEL"]):
        expected.add("fetchmail")
    return frozenset(expected)


# ---------------------------------------------------------------------------------------------------- postqueue -j

_QUEUES = frozenset({"maildrop", "incoming", "active", "deferred", "hold", "corrupt"})


def parse_postqueue(text: str, now: float) -> QueueStats:
    """`postqueue -j`: one JSON object per queued message (postqueue(1), Postfix >= 3.1); `now` in epoch seconds.
    showq does not list atomically: a message moving from active to deferred while it scans may be listed in both,
    under one queue_id. Such a message counts once, in the queue of its last line."""
    queues: dict[object, str] = {}
    oldest: float | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            raise ValueError(f"postqueue -j line {number}: not a JSON object: {_clip(line)}") from None
        if not isinstance(message, dict):
            raise ValueError(f"postqueue -j line {number}: not a JSON object: {_clip(line)}")
        queue = message.get("queue_name")
        if queue not in _QUEUES:
            raise ValueError(f"postqueue -j line {number}: queue_name must be one of {sorted(_QUEUES)}")
        arrival = message.get("arrival_time")
        if isinstance(arrival, bool) or not isinstance(arrival, int | float) or not math.isfinite(arrival):
            raise ValueError(f"postqueue -j line {number}: arrival_time must be a number of epoch seconds")
        queue_id = message.get("queue_id")
        queues[queue_id if isinstance(queue_id, str) and queue_id else ("line", number)] = queue
        oldest = arrival if oldest is None else min(oldest, arrival)
    listed = list(queues.values())
    age = None if oldest is None else max(0.0, float(now) - float(oldest))
    return QueueStats(
        count=len(listed),
        deferred=listed.count("deferred"),
        active=listed.count("active"),
        hold=listed.count("hold"),
        oldest_age_seconds=age,
    )


# ---------------------------------------------------------------------------------------------------- df -P -B1

# POSIX df: "Filesystem 1-blocks Used Available Capacity Mounted on"; the file system name and the mount point may
# hold spaces, the four numbers never do.
_DF_LINE = re.compile(r"^(?P<fs>.+?)\s+(?P<total>\d+)\s+(?P<used>\d+)\s+(?P<avail>\d+)\s+(?:\d+%|-)\s+(?P<mount>/.*)$")


def parse_df(text: str) -> DiskUse:
    """`df -P -B1 PATH`: the file system holding PATH; `path` is its mount point. percent_used is df's own rule
    (used / (used + available), the space reserved for root not counted as available), unrounded."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 2 or not lines[0].startswith("Filesystem"):
        raise ValueError("df -P -B1: expected a 'Filesystem ...' header and one line")
    match = _DF_LINE.match(lines[1].strip())
    if match is None:
        raise ValueError(f"df -P -B1: expected 'filesystem total used available capacity mount', got {_clip(lines[1])}")
    total, used, available = int(match["total"]), int(match["used"]), int(match["avail"])
    usable = used + available
    percent = 100.0 * used / usable if usable else 0.0
    return DiskUse(
        path=match["mount"].rstrip(),
        total_bytes=total,
        used_bytes=used,
        available_bytes=available,
        percent_used=percent,
    )


# ---------------------------------------------------------------------------------------------------- /proc, nproc

_DECIMAL = re.compile(r"^\d+(?:\.\d+)?$")


def parse_loadavg(text: str) -> LoadAverage:
    """/proc/loadavg: "0.52 0.58 0.59 1/467 12345"."""
    fields = text.split()
    if len(fields) < 3 or not all(_DECIMAL.match(field) for field in fields[:3]):
        raise ValueError(f"/proc/loadavg: expected three decimal load averages first, got {_clip(text)}")
    return LoadAverage(load1=float(fields[0]), load5=float(fields[1]), load15=float(fields[2]))


_MEMINFO_LINE = re.compile(r"^(?P<key>[A-Za-z0-9_()]+):\s+(?P<value>\d+)(?:\s+kB)?$")


def parse_meminfo(text: str) -> Memory:
    """/proc/meminfo (kB = KiB). MemAvailable exists since Linux 3.14; before it, free + buffers + page cache."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        match = _MEMINFO_LINE.match(line.strip())
        if match is not None:
            values[match["key"]] = int(match["value"]) * 1024
    if "MemTotal" not in values:
        raise ValueError("/proc/meminfo: no 'MemTotal: N kB' line")
    if "MemAvailable" in values:
        available = values["MemAvailable"]
    elif "MemFree" in values:
        available = values["MemFree"] + values.get("Buffers", 0) + values.get("Cached", 0)
    else:
        raise ValueError("/proc/meminfo: neither a 'MemAvailable' nor a 'MemFree' line")
    return Memory(total_bytes=values["MemTotal"], available_bytes=available)


def parse_cpu_count(text: str) -> int:
    """`nproc`: a positive integer."""
    value = text.strip()
    if not value.isascii() or not value.isdigit() or int(value) < 1 or len(value) > 6:
        raise ValueError(f"nproc: expected a positive whole number, got {_clip(text)}")
    return int(value)


# ---------------------------------------------------------------------------------------------------- doveadm quota

# Checked against the real doveadm (Dovecot 2.3.19.1, what DMS v15 ships; monitoring/tests/test_probe_quota.py runs
# it with DMS's quota settings): header "Username\tQuota name\tType\tValue\tLimit\t%", then per user and quota
# root one STORAGE row (Value and Limit in KiB) and one MESSAGE row (counts); Limit is "-" when unlimited.
_QUOTA_HEADER = ["Username", "Quota name", "Type", "Value", "Limit", "%"]


def parse_quota(text: str) -> list[QuotaUsage]:
    """`doveadm -f tab quota get -A`: one QuotaUsage per STORAGE row (KiB -> bytes); MESSAGE rows are ignored."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("doveadm quota get: no output (not even the header)")
    if [cell.strip() for cell in lines[0].split("\t")] != _QUOTA_HEADER:
        raise ValueError(f"doveadm quota get: expected the tab-separated header {' | '.join(_QUOTA_HEADER)}")
    usages = []
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(_QUOTA_HEADER):
            raise ValueError(f"doveadm quota get line {number}: expected 6 tab-separated cells, got {_clip(line)}")
        user, _name, kind, value, limit, _percent = (cell.strip() for cell in cells)
        if not user:
            raise ValueError(f"doveadm quota get line {number}: empty Username")
        if kind == "MESSAGE":
            continue
        if kind != "STORAGE":
            raise ValueError(f"doveadm quota get line {number}: Type must be STORAGE or MESSAGE, got {_clip(kind)}")
        if not (value.isascii() and value.isdigit()):
            raise ValueError(f"doveadm quota get line {number}: Value must be a whole number of KiB")
        if limit == "-":
            limit_bytes = None
        elif limit.isascii() and limit.isdigit():
            limit_bytes = int(limit) * 1024
        else:
            raise ValueError(f"doveadm quota get line {number}: Limit must be a whole number of KiB or '-'")
        usages.append(QuotaUsage(user=user, used_bytes=int(value) * 1024, limit_bytes=limit_bytes))
    return usages


# ---------------------------------------------------------------------------------------------------- DMS version

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


def parse_dms_version(text: str) -> str | None:
    """DMS_RELEASE from `printenv DMS_RELEASE` (the bare value) or from `env` output (a DMS_RELEASE=... line);
    None when it is not there (an image older than the variable, or not DMS)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    if len(lines) == 1 and "=" not in lines[0]:
        value = lines[0]
    else:
        if not all("=" in line for line in lines):
            raise ValueError("DMS_RELEASE: expected the bare value, or NAME=value lines as `env` prints them")
        found = [line.partition("=")[2].strip() for line in lines if line.startswith("DMS_RELEASE=")]
        if not found:
            return None
        value = found[-1].strip("'\"")
    if not _VERSION.match(value):
        raise ValueError(f"DMS_RELEASE: expected a version like v15.1.0 or edge, got {_clip(value)}")
    return value
