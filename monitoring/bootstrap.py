"""What a DMS host needs for Dockspace, judged from the output of a fixed set of read-only commands. Pure: command
results in, findings out (the commands are run by monitoring.hosts.mailhost_bootstrap)."""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitoring.probes.collect import CommandResult
from monitoring.probes.parse import DMS_DEFAULTS, parse_dms_settings

DMS_CONFIG_DIR = "/tmp/docker-mailserver"  # noqa: S108 (where DMS reads its config, inside the container)
MAIL_LOG = "/var/log/mail/mail.log"
DMS_SETTINGS = "/etc/dms-settings"
# A file Dockspace puts in its DMS directory; seeing the same one inside the container proves the mount.
MARKER_NAME = ".dockspace-dms-dir"
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
# What DMS v15.1 assumes for a setting its /etc/dms-settings does not list (ENABLE_QUOTAS defaults to on).
SETTING_DEFAULTS = {**DMS_DEFAULTS, "ENABLE_QUOTAS": "1"}


@dataclass(frozen=True)
class Finding:
    """One check: whether it holds, what was seen, how to fix it, and whether --execute may apply that fix
    (`fix_argv`: a command on the host; `fix_local`: something Dockspace does on its own machine)."""

    check: str
    ok: bool
    detail: str
    fix: str = ""
    is_safe_fix: bool = False
    fix_argv: tuple[str, ...] = ()
    fix_local: str = ""


def commands(container: str, compose_dir: str = "") -> dict[str, list[str]]:
    """{name: argv} of the read-only commands bootstrap runs, in order."""
    found = {
        "docker": ["docker", "version", "--format", "{{.Server.Version}}"],
        "compose": ["docker", "compose", "version", "--short"],
        "inspect": ["docker", "inspect", "--type", "container", container],
        "marker": ["docker", "exec", container, "cat", f"{DMS_CONFIG_DIR}/{MARKER_NAME}"],
        "mail_log": ["docker", "exec", container, "test", "-r", MAIL_LOG],
        "settings": ["docker", "exec", container, "cat", DMS_SETTINGS],
    }
    if compose_dir:
        found["compose_dir"] = ["ls", "-1A", compose_dir]
    return found


def required_settings(dkim_layout: str) -> dict[str, tuple[tuple[str, ...], str]]:
    """{VAR: (allowed values, why)} of the DMS settings Dockspace relies on."""
    required = {
        "ACCOUNT_PROVISIONER": (("", "FILE"), "Dockspace writes the account files; another provisioner ignores them"),
        "ENABLE_QUOTAS": (("1",), "Dockspace writes dovecot-quotas.cf; without quotas the limits are not enforced"),
    }
    if dkim_layout == "rspamd":
        required["ENABLE_RSPAMD"] = (("1",), "Dockspace writes Rspamd's DKIM files (DOCKSPACE_DKIM_LAYOUT=rspamd)")
    else:
        required["ENABLE_OPENDKIM"] = (("1",), "Dockspace writes OpenDKIM's keys (DOCKSPACE_DKIM_LAYOUT=opendkim)")
    return required


def _first_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _docker_finding(result: CommandResult) -> Finding:
    if result.exit_status == 0 and result.stdout.strip():
        return Finding("docker", True, f"Docker Engine {result.stdout.strip()}.")
    err = result.stderr.lower()
    if result.exit_status == 127 or "not found" in err:
        return Finding(
            "docker",
            False,
            "docker is not installed (or not on the SSH user's PATH).",
            "Install Docker Engine on the host (https://docs.docker.com/engine/install/).",
        )
    if "permission denied" in err:
        return Finding(
            "docker",
            False,
            "the SSH user may not use Docker (permission denied on the Docker socket).",
            "Add the SSH user to the docker group, or turn on `sudo -n` for this host with a sudoers rule for docker.",
        )
    return Finding(
        "docker",
        False,
        f"`docker version` failed: {_first_line(result.stderr) or 'exit ' + str(result.exit_status)}.",
        "Start the Docker daemon (systemctl start docker).",
    )


def _container_state(result: CommandResult) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str]:
    """(state dict or None, mounts list, error line) from `docker inspect`."""
    if result.exit_status != 0:
        return None, [], _first_line(result.stderr) or f"exit {result.exit_status}"
    try:
        data = json.loads(result.stdout)
        item = data[0] if isinstance(data, list) else data
        return item.get("State") or {}, item.get("Mounts") or [], ""
    except (ValueError, IndexError, AttributeError):
        return None, [], "docker inspect printed something that is not JSON"


def _mount_finding(mounts: list[dict[str, Any]], compose_hint: str) -> Finding:
    config = DMS_CONFIG_DIR.rstrip("/")
    for mount in mounts:
        if str(mount.get("Destination", "")).rstrip("/") == config:
            source = mount.get("Source") or mount.get("Name") or "?"
            return Finding("config mount", True, f"{config} is mounted from {source} ({mount.get('Type', '?')}).")
    single = [str(m["Destination"]) for m in mounts if str(m.get("Destination", "")).startswith(config + "/")]
    fix = (
        "Mount the whole config directory, e.g. `- ./docker-data/dms/config/:/tmp/docker-mailserver/` under the "
        f"service's volumes{compose_hint}, then `docker compose up -d`."
    )
    if single:
        return Finding(
            "config mount",
            False,
            f"files are mounted one by one ({', '.join(single)}): DMS would not see the files Dockspace replaces.",
            fix,
        )
    return Finding("config mount", False, f"nothing is mounted at {config}.", fix)


def _marker_finding(result: CommandResult, local_marker: str, dms_dir: str) -> Finding:
    if not local_marker:
        return Finding(
            "same directory",
            False,
            f"Dockspace's marker file is not in {dms_dir} yet, so the mount cannot be compared.",
            f"Write the marker file {dms_dir}/{MARKER_NAME} (bootstrap --execute does).",
            is_safe_fix=True,
            fix_local="write_marker",
        )
    if result.exit_status == 0 and result.stdout.strip() == local_marker.strip():
        return Finding(
            "same directory", True, f"the container's {DMS_CONFIG_DIR} is {dms_dir}, which Dockspace writes."
        )
    seen = "has no marker file" if result.exit_status != 0 else "holds another Dockspace's marker file"
    return Finding(
        "same directory",
        False,
        f"the container's {DMS_CONFIG_DIR} {seen}: it is not {dms_dir}, the directory Dockspace writes.",
        f"Mount {dms_dir} (or what it syncs to) at {DMS_CONFIG_DIR}, or set DOCKSPACE_DMS_DIR to the directory "
        "the container mounts.",
    )


def _mail_log_finding(result: CommandResult) -> Finding:
    if result.exit_status == 0:
        return Finding("mail log", True, f"{MAIL_LOG} is readable in the container.")
    return Finding(
        "mail log",
        False,
        f"{MAIL_LOG} is not readable in the container ({_first_line(result.stderr) or 'missing'}).",
        "Keep DMS's default logging to /var/log/mail (mount `./docker-data/dms/mail-logs/:/var/log/mail/`) and "
        "do not set LOG_LEVEL to a level that turns the mail log off.",
    )


def _settings_findings(result: CommandResult, dkim_layout: str) -> list[Finding]:
    if result.exit_status != 0:
        return [
            Finding(
                "DMS settings",
                False,
                f"{DMS_SETTINGS} cannot be read in the container ({_first_line(result.stderr) or 'missing'}).",
                "Use docker-mailserver v13 or later (it writes /etc/dms-settings at start).",
            )
        ]
    try:
        values = parse_dms_settings(result.stdout)
    except ValueError as e:
        return [Finding("DMS settings", False, f"{DMS_SETTINGS} cannot be read: {e}.", "Restart DMS to rewrite it.")]
    findings = []
    for name, (allowed, why) in required_settings(dkim_layout).items():
        value = values.get(name, SETTING_DEFAULTS.get(name, ""))
        shown = f"{name}={value!r}" if name in values else f"{name} is not set (DMS's default: {value!r})"
        if value in allowed:
            findings.append(Finding(f"setting {name}", True, f"{shown}."))
        else:
            wanted = allowed[-1]
            findings.append(
                Finding(
                    f"setting {name}",
                    False,
                    f"{shown}: {why}.",
                    f"Set {name}={wanted} in the DMS environment (mailserver.env), then recreate the container "
                    "(docker compose up -d).",
                )
            )
    return findings


def _compose_finding(result: CommandResult, compose_dir: str) -> Finding:
    if result.exit_status != 0:
        return Finding(
            "compose file",
            False,
            f"{compose_dir} cannot be listed ({_first_line(result.stderr) or 'missing'}).",
            "Set the compose directory to the directory holding DMS's compose.yaml (or leave it empty).",
        )
    names = set(result.stdout.split())
    found = [name for name in COMPOSE_FILES if name in names]
    if found:
        return Finding("compose file", True, f"{compose_dir}/{found[0]}.")
    return Finding(
        "compose file",
        False,
        f"{compose_dir} holds no compose file ({', '.join(COMPOSE_FILES)}).",
        "Set the compose directory to the directory holding DMS's compose.yaml (or leave it empty).",
    )


def assess(
    results: Mapping[str, CommandResult],
    *,
    container: str,
    compose_dir: str = "",
    dkim_layout: str = "opendkim",
    local_marker: str = "",
    dms_dir: str = "",
) -> list[Finding]:
    """Findings from {name: CommandResult} of commands(); a check that cannot run says why."""
    findings = [_docker_finding(results["docker"])]
    if not findings[0].ok:
        return findings + [Finding("other checks", False, "skipped: Docker must work first.")]
    compose = results["compose"]
    if compose.exit_status == 0:
        findings.append(Finding("docker compose", True, f"Docker Compose {compose.stdout.strip()}."))
    else:
        findings.append(
            Finding(
                "docker compose",
                False,
                "`docker compose` is not available.",
                "Install the Docker Compose plugin (Debian/Ubuntu: apt install docker-compose-plugin).",
            )
        )
    if compose_dir:
        findings.append(_compose_finding(results["compose_dir"], compose_dir))
    hint = f" in {compose_dir}/compose.yaml" if compose_dir else ""
    state, mounts, error = _container_state(results["inspect"])
    if state is None:
        findings.append(
            Finding(
                "container",
                False,
                f"no container named {container} ({error}).",
                f"Start DMS (docker compose up -d{' in ' + compose_dir if compose_dir else ''}), or set this host's "
                "container name to the one `docker ps` shows.",
            )
        )
        return findings + [Finding("other checks", False, "skipped: the container must exist first.")]
    running = bool(state.get("Running"))
    if running:
        findings.append(Finding("container", True, f"{container} is running (since {state.get('StartedAt', '?')})."))
    else:
        findings.append(
            Finding(
                "container",
                False,
                f"{container} exists but is {state.get('Status') or 'not running'}.",
                f"Start it: docker start {container}.",
                is_safe_fix=True,
                fix_argv=("docker", "start", container),
            )
        )
    findings.append(_mount_finding(mounts, hint))
    if not running:
        return findings + [Finding("checks inside the container", False, "skipped: the container is not running.")]
    findings.append(_marker_finding(results["marker"], local_marker, dms_dir))
    findings.append(_mail_log_finding(results["mail_log"]))
    findings.extend(_settings_findings(results["settings"], dkim_layout))
    return findings
