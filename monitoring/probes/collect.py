"""One probe of a DMS host: the fixed commands to run (as argument lists) and the reading made from their output.
The caller supplies `run` (the SSH module, or a stand-in in tests); one failed reading never fails the rest."""

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from monitoring.probes.parse import (
    DiskUse,
    LoadAverage,
    Memory,
    QueueStats,
    QuotaUsage,
    expected_services,
    parse_cpu_count,
    parse_df,
    parse_dms_settings,
    parse_dms_version,
    parse_loadavg,
    parse_meminfo,
    parse_postqueue,
    parse_quota,
    parse_supervisorctl,
)

T = TypeVar("T")


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class HostReading:
    """What one probe read; a field is None (or empty) when its reading failed, and `errors` says why, keyed by the
    reading's name (the keys of probe_commands)."""

    services: dict[str, str] | None = None
    expected_services: frozenset[str] | None = None
    settings: dict[str, str] | None = None
    queue: QueueStats | None = None
    disk: DiskUse | None = None
    load: LoadAverage | None = None
    memory: Memory | None = None
    cpus: int | None = None
    quota: list[QuotaUsage] | None = None
    version: str | None = None
    errors: dict[str, str] = field(default_factory=dict)


# Docker's own rule for container names (daemon/names: validContainerNamePattern).
_CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
# An absolute path of ordinary characters: nothing a shell would read specially, even though commands are argument
# lists (the SSH module joins them with shlex.join, and a path like "-x" or "a;b" has no business here).
_MAIL_VOLUME = re.compile(r"/[A-Za-z0-9_./@+=,:-]*")


def _validate(container: str, mail_volume: str) -> None:
    if not isinstance(container, str) or not _CONTAINER_NAME.fullmatch(container) or len(container) > 128:
        raise ValueError(
            "container: a Docker container name: letters, digits, '_', '.', '-', starting with a letter or digit"
        )
    if (
        not isinstance(mail_volume, str)
        or not _MAIL_VOLUME.fullmatch(mail_volume)
        or "/../" in f"{mail_volume}/"
        or len(mail_volume) > 4096
    ):
        raise ValueError(
            "mail_volume: an absolute path (starting with '/') of letters, digits and _ . / @ + = , : - only, no '..'"
        )


def probe_commands(container: str, mail_volume: str) -> dict[str, list[str]]:
    """The fixed argument list of each reading, run on the mail host. Raises ValueError naming the field."""
    _validate(container, mail_volume)
    in_container = ["docker", "exec", container]
    return {
        "settings": [*in_container, "cat", "/etc/dms-settings"],
        "services": [*in_container, "supervisorctl", "status"],
        "queue": [*in_container, "postqueue", "-j"],
        "quota": [*in_container, "doveadm", "-f", "tab", "quota", "get", "-A"],
        "version": [*in_container, "printenv", "DMS_RELEASE"],
        "disk": ["df", "-P", "-B1", mail_volume],
        "load": ["cat", "/proc/loadavg"],
        "memory": ["cat", "/proc/meminfo"],
        "cpus": ["nproc"],
    }


# Exit statuses that still carry a reading: `supervisorctl status` exits 3 when a listed program is stopped, exited
# or fatal (Supervisor >= 4.0, supervisorctl.py do_status: LSBStatusExitStatuses.NOT_RUNNING; 4 = supervisord not
# answering, a failure), and printenv exits 1 when the variable is unset (an image without DMS_RELEASE: no version).
_READING_EXIT_STATUSES = {"services": {0, 3}, "version": {0, 1}}


def _failure(result: CommandResult) -> str:
    detail = next((line.strip() for line in result.stderr.splitlines() if line.strip()), "")
    if not detail:
        detail = next((line.strip() for line in result.stdout.splitlines() if line.strip()), "no output")
    if len(detail) > 200:
        detail = detail[:200] + "..."
    return f"exit status {result.exit_status}: {detail}"


def collect(
    run: Callable[[list[str]], CommandResult],
    container: str,
    mail_volume: str,
    *,
    clock: Callable[[], float] = time.time,
) -> HostReading:
    """Run each reading's command through `run` and parse it. A command that fails, or prints what its parser
    refuses, gives an entry in `errors` and None for that reading; an exception from `run` itself (the connection
    dropped) is recorded the same way. `clock` gives the epoch seconds the queue ages are measured against."""
    commands = probe_commands(container, mail_volume)
    errors: dict[str, str] = {}

    def read(name: str, parse: Callable[[str], T]) -> T | None:
        try:
            result = run(commands[name])
        except Exception as exc:  # the transport's failure is this reading's failure, not the probe's
            errors[name] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return None
        if result.exit_status not in _READING_EXIT_STATUSES.get(name, {0}):
            errors[name] = _failure(result)
            return None
        try:
            return parse(result.stdout)
        except ValueError as exc:
            errors[name] = str(exc)
            return None

    settings = read("settings", parse_dms_settings)
    services = read("services", parse_supervisorctl)
    queue = read("queue", lambda text: parse_postqueue(text, clock()))
    # Quotas exist only with Dovecot and its quota plugin (DMS: ENABLE_QUOTAS=1 and not SMTP_ONLY): asking otherwise
    # is an error that says nothing about the host's health.
    quota: list[QuotaUsage] | None
    if settings is not None and (settings.get("ENABLE_QUOTAS") == "0" or settings.get("SMTP_ONLY") == "1"):
        quota = []
    else:
        quota = read("quota", parse_quota)
    return HostReading(
        services=services,
        expected_services=None if settings is None else expected_services(settings),
        settings=settings,
        queue=queue,
        quota=quota,
        version=read("version", parse_dms_version),
        disk=read("disk", parse_df),
        load=read("load", parse_loadavg),
        memory=read("memory", parse_meminfo),
        cpus=read("cpus", parse_cpu_count),
        errors=errors,
    )
