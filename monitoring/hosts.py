"""Mail hosts: adding one (after its host key is trusted), changing, removing, the default, and the actions on a
host (recreate, restart, reload, bootstrap). The admin and `manage.py mailhost` call these; each checks the actor's
permission, refuses with ValidationError({field: [message]}) and writes the audit log with the exact command."""

from __future__ import annotations

import hmac
import ipaddress
import json
import posixpath
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction

from accounts import authz
from accounts.audit import audit
from dockspace.validation import field_error
from monitoring import bootstrap, ssh
from monitoring.models import MailHost
from monitoring.probes.collect import probe_commands

if TYPE_CHECKING:
    from django.http import HttpRequest

ADD = "monitoring.add_mailhost"
CHANGE = "monitoring.change_mailhost"
DELETE = "monitoring.delete_mailhost"
VIEW = "monitoring.view_mailhost"
OPERATE = "monitoring.operate_mailhost"

USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\Z")
# A DNS name: labels of 1 to 63 letters, digits and hyphens (not first or last), 253 characters at most.
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z"
)
HOST_RULE = "an IP address, or a DNS name whose labels are 1 to 63 letters, digits and hyphens (253 characters at most)"
# The key rules live with the SSH module, which applies them again whenever it loads a key.
KEY_DIR_VARIABLE = ssh.KEY_DIR_VARIABLE
KEY_ENV_PREFIX = ssh.KEY_ENV_PREFIX
CONTAINER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
FINGERPRINT_RE = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}\Z")
RELOADS = {"postfix": ("postfix", "reload"), "dovecot": ("doveadm", "reload")}
# The labels Docker Compose puts on the containers it creates, read to recreate one the way it was created.
LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_WORKING_DIR = "com.docker.compose.project.working_dir"
LABEL_CONFIG_FILES = "com.docker.compose.project.config_files"
LABEL_ENV_FILES = "com.docker.compose.project.environment_file"
# Compose's rule for project names; service names: letters, digits, '_', '.', '-' (nothing a shell could read).
COMPOSE_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,127}\Z")
COMPOSE_SERVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
# DMS runs its set-up (OpenDKIM keys, postfix-main.cf, user-patches.sh) only in a new container: on a restart,
# target/scripts/start-mailserver.sh finds /CONTAINER_START and skips it.
RECREATE_BY_HAND = (
    "recreate the container the way it was created (with compose: `docker compose up -d --force-recreate "
    "mailserver` in its compose directory; with docker run: remove it and run it again)"
)
EDITABLE = ("key_path", "key_env", "use_sudo", "container", "compose_dir", "mail_volume", "mail_hostname", "notes")


@dataclass(frozen=True)
class MailHostAdded:
    """What `mailhost_add` did: `host` is None until the offered host key was trusted."""

    offered: ssh.HostKey
    host: MailHost | None = None


@dataclass
class HostAction:
    """An action on a host: the exact command, and its result when it was executed (dry run: None). `lookup`: a
    read-only command run first to find the command (recreate reads the container's compose labels)."""

    host: MailHost
    command: str
    result: ssh.CommandResult | None = None
    lookup: str = ""
    compose: ComposeService | None = None

    @property
    def executed(self) -> bool:
        return self.result is not None

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.exit_status == 0


@dataclass(frozen=True)
class ComposeService:
    """Where a container came from, after its compose labels: what `docker compose up` needs to create it again."""

    project: str
    service: str
    working_dir: str
    config_files: tuple[str, ...] = ()
    env_files: tuple[str, ...] = ()


@dataclass
class Bootstrap:
    host: MailHost
    findings: list[bootstrap.Finding]
    applied: list[str] = field(default_factory=list)  # the safe fixes --execute applied, as run

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)


def _who(request: HttpRequest | None, actor_label: str | None, actor: authz.Actor | None) -> dict[str, Any]:
    return {"request": request, "actor_label": actor_label, "actor": authz.audit_actor(actor)}


# --- input ----------------------------------------------------------------------------------------------


def parse_ssh_target(text: str, field_name: str = "ssh") -> tuple[str, str, int]:
    """(user, host, port) from `USER@HOST[:PORT]` (an IPv6 address in brackets: `root@[2001:db8::1]:2222`)."""
    rule = "give the SSH target as USER@HOST or USER@HOST:PORT (an IPv6 address in brackets: USER@[::1]:22)."
    text = (text or "").strip()
    user, at, rest = text.rpartition("@")
    if not at or not user or not rest:
        raise field_error(field_name, rule)
    if not USER_RE.match(user):
        raise field_error(field_name, f"{user!r} is not a user name (letters, digits, '_', '.', '-').")
    port = "22"
    bracketed = rest.startswith("[")
    if bracketed:
        host, bracket, after = rest[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise field_error(field_name, rule)
        if after:
            port = after[1:]
    else:
        host, _, given = rest.partition(":")
        if given or rest.endswith(":"):
            port = given
        if ":" in given:
            raise field_error(field_name, rule)
    if not _is_ip_address(host) and (bracketed or not HOSTNAME_RE.match(host)):
        raise field_error(field_name, f"{host!r} is not a host name or IP address: give {HOST_RULE}.")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise field_error(field_name, f"{port!r} is not a port (1 to 65535).")
    return user, host.lower(), int(port)


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _absolute_path(value: str | None, field_name: str, what: str) -> str:
    value = (value or "").strip()
    if not value.startswith("/") or "\n" in value or "\x00" in value:
        raise field_error(field_name, f"{what} must be an absolute path (starting with /); got {value!r}.")
    return posixpath.normpath(value) if value != "/" else value


def key_help() -> dict[str, str]:
    """What the two key fields take, in the words the admin and `mailhost --help` show."""
    return {
        "key_path": f"Absolute path of the private key file on the Dockspace machine, inside "
        f"{settings.MAILHOST_SSH_KEY_DIR} ({KEY_DIR_VARIABLE}); readable by Dockspace only.",
        "key_env": f"Name of an environment variable starting with {KEY_ENV_PREFIX} that holds the private key (or "
        f"NAME_FILE naming a file that holds it), e.g. {KEY_ENV_PREFIX}MX1.",
    }


def _key_source(key_path: str | None, key_env: str | None) -> tuple[str, str]:
    try:
        return ssh.checked_key_source(key_path, key_env)
    except ssh.KeySourceRefused as e:
        raise field_error(e.field, e.message) from None


def _check_key(key_path: str, key_env: str) -> None:
    try:
        ssh.load_private_key(key_path=key_path, key_env=key_env)
    except ssh.SshError as e:
        raise field_error("key_path" if key_path else "key_env", e.message) from None


def _container(value: str | None) -> str:
    value = (value or "").strip()
    if not CONTAINER_RE.match(value):
        raise field_error("container", f"{value!r} is not a container name (letters, digits, '_', '.', '-').")
    return value


def _clean_settings(values: dict[str, Any]) -> dict[str, Any]:
    """The editable fields, checked and normalised."""
    cleaned = dict(values)
    if "key_path" in values or "key_env" in values:
        cleaned["key_path"], cleaned["key_env"] = _key_source(values.get("key_path"), values.get("key_env"))
    if "container" in values:
        cleaned["container"] = _container(values["container"])
    if values.get("compose_dir"):
        cleaned["compose_dir"] = _absolute_path(values["compose_dir"], "compose_dir", "the compose directory")
        try:  # the mail volume's rule: no character a login shell other than sh could read as syntax
            probe_commands("mailserver", cleaned["compose_dir"])
        except ValueError as e:
            raise field_error("compose_dir", str(e).partition(": ")[2].replace("mail_volume", "compose_dir")) from None
    if "mail_volume" in values:
        cleaned["mail_volume"] = _absolute_path(values["mail_volume"] or "/", "mail_volume", "the mail volume")
        try:  # the probe's own rule for what it passes to df
            probe_commands("mailserver", cleaned["mail_volume"])
        except ValueError as e:
            raise field_error("mail_volume", str(e).partition(": ")[2]) from None
    if values.get("mail_hostname"):
        name = values["mail_hostname"].strip().lower().rstrip(".")
        if not HOSTNAME_RE.match(name):
            raise field_error("mail_hostname", f"{name!r} is not a host name.")
        cleaned["mail_hostname"] = name
    return cleaned


def normalize_fingerprint(value: str | None, field_name: str = "trust") -> str:
    value = (value or "").strip()
    if not FINGERPRINT_RE.match(value):
        raise field_error(
            field_name,
            f"{value!r} is not a host key fingerprint: give it as SHA256:<43 characters>, as printed when the "
            "host was first contacted.",
        )
    return value


def _ssh_refusal(error: ssh.SshError, field_name: str = NON_FIELD_ERRORS) -> ValidationError:
    return field_error(field_name, error.message)


def _failed_field(host: MailHost, error: ssh.SshError) -> str:
    """The input a failed first connection points at: the key when it was refused or unreadable, else the target."""
    if error.kind in ("auth", "key"):
        return "key_path" if host.key_path else "key_env"
    return "ssh"


# --- hosts -----------------------------------------------------------------------------------------------


def mailhost_add(
    *,
    name: str,
    ssh_target: str,
    key_path: str = "",
    key_env: str = "",
    container: str = "mailserver",
    compose_dir: str = "",
    mail_volume: str = "/",
    mail_hostname: str = "",
    use_sudo: bool = False,
    notes: str = "",
    trust: str | None = None,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> MailHostAdded:
    """Contact the host once. Without `trust` nothing is stored: the result names the host key it offered, for the
    operator to check. With `trust` equal to that fingerprint, the host is stored with its key pinned (after the
    configured key was accepted); another fingerprint is refused, naming both. The first host is the default."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, ADD, "name")
    name = (name or "").strip().lower()
    user, host_name, port = parse_ssh_target(ssh_target)
    values = _clean_settings(
        {
            "key_path": key_path,
            "key_env": key_env,
            "container": container,
            "compose_dir": compose_dir,
            "mail_volume": mail_volume,
            "mail_hostname": mail_hostname,
        }
    )
    host = MailHost(name=name, ssh_user=user, ssh_host=host_name, ssh_port=port, use_sudo=use_sudo, notes=notes)
    for key, value in values.items():
        setattr(host, key, value)
    if MailHost.objects.filter(name=name).exists():
        raise field_error("name", f"a mail host named {name} already exists.")
    try:
        host.full_clean(exclude=["host_key_type", "host_key_fingerprint", "host_key"])
    except ValidationError as e:
        raise ValidationError(
            {"ssh" if k in ("ssh_user", "ssh_host", "ssh_port") else k: v for k, v in e.message_dict.items()}
        ) from None
    if trust is not None:
        trust = normalize_fingerprint(trust)
    _check_key(host.key_path, host.key_env)
    try:
        offered = ssh.fetch_host_key(host_name, port)
    except ssh.SshError as e:
        raise _ssh_refusal(e, "ssh") from None
    if trust is None:
        return MailHostAdded(offered=offered)
    if not hmac.compare_digest(trust.encode(), offered.fingerprint.encode()):
        raise field_error(
            "trust",
            f"{host.ssh_target} offers the host key {offered.fingerprint} ({offered.type}), not {trust}: nothing was "
            "stored. Check the fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub).",
        )
    host.host_key_type, host.host_key_fingerprint, host.host_key = offered.type, offered.fingerprint, offered.base64
    try:
        with ssh.session(host):
            pass  # the pinned key is checked and the configured key accepted; nothing runs
    except ssh.SshError as e:
        raise _ssh_refusal(e, _failed_field(host, e)) from None
    try:
        with transaction.atomic():
            host.is_default = not MailHost.objects.filter(is_default=True).exists()
            host.save()
    except IntegrityError:
        if MailHost.objects.filter(name=name).exists():
            raise field_error("name", f"a mail host named {name} already exists.") from None
        with transaction.atomic():  # another host became the default meanwhile
            host.is_default = False
            host.save()
    audit(
        "monitoring.mailhost.add",
        target=host,
        description=(
            f"Added mail host {name} ({host.ssh_target}), pinned host key {offered.fingerprint} ({offered.type}); "
            f"key from the {host.key_source}."
        ),
        **_who(request, actor_label, actor),
    )
    return MailHostAdded(offered=offered, host=host)


@transaction.atomic
def mailhost_update(
    *,
    host: MailHost,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
    **changes: Any,
) -> MailHost:
    """Change what may change without a new host key: the key source, sudo, container, directories, notes."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, CHANGE, "name")
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise field_error(
            sorted(unknown)[0],
            "changes with the SSH target: remove the host and add it again (a new host key: mailhost repin).",
        )
    host = MailHost.objects.select_for_update().get(pk=host.pk)
    if "key_path" in changes or "key_env" in changes:
        changes.setdefault("key_path", "")
        changes.setdefault("key_env", "")
    changes = _clean_settings(changes)
    if changes.get("key_path") or changes.get("key_env"):
        _check_key(changes["key_path"], changes["key_env"])
    changed = {k: v for k, v in changes.items() if getattr(host, k) != v}
    for key, value in changed.items():
        setattr(host, key, value)
    host.full_clean()
    host.save()
    if changed:
        shown = ", ".join(f"{k}={'(notes)' if k == 'notes' else v!r}" for k, v in changed.items())
        audit(
            "monitoring.mailhost.change",
            target=host,
            description=f"Changed {shown}."[:500],
            **_who(request, actor_label, actor),
        )
    return host


def mailhost_repin(
    *,
    host: MailHost,
    trust: str | None = None,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> ssh.HostKey:
    """A host whose key changed on purpose (reinstalled, keys rotated): contact it once and return the key it offers
    now. With `trust` equal to that fingerprint, pin it instead of the old one; its settings and history stay."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, CHANGE, "name")
    if trust is not None:
        trust = normalize_fingerprint(trust)
    try:
        offered = ssh.fetch_host_key(host.ssh_host, host.ssh_port)
    except ssh.SshError as e:
        raise _ssh_refusal(e, "name") from None
    if trust is None:
        return offered
    if not hmac.compare_digest(trust.encode(), offered.fingerprint.encode()):
        raise field_error(
            "trust",
            f"{host.ssh_target} offers the host key {offered.fingerprint} ({offered.type}), not {trust}: the pinned "
            f"key {host.host_key_fingerprint} stays.",
        )
    if repin_unneeded(host, offered):
        return offered  # already the pinned key: nothing to write or audit
    old = host.host_key_fingerprint
    with transaction.atomic():
        host = MailHost.objects.select_for_update().get(pk=host.pk)
        host.host_key_type, host.host_key_fingerprint, host.host_key = offered.type, offered.fingerprint, offered.base64
        host.save(update_fields=["host_key_type", "host_key_fingerprint", "host_key", "updated_at"])
        audit(
            "monitoring.mailhost.repin",
            target=host,
            description=f"Pinned host key {offered.fingerprint} ({offered.type}) instead of {old}.",
            **_who(request, actor_label, actor),
        )
    return offered


def repin_unneeded(host: MailHost, offered: ssh.HostKey) -> str | None:
    """What to tell whoever asked to re-pin a host that still offers its pinned key (nothing changes), else None."""
    if offered.fingerprint != host.host_key_fingerprint:
        return None
    return f"{host.ssh_target} offers the pinned key {offered.fingerprint}; nothing to re-pin."


@transaction.atomic
def mailhost_remove(
    *,
    host: MailHost,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> None:
    """Forget a host (nothing on it changes). When it was the default, the oldest other host becomes the default."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, DELETE, "name")
    host = MailHost.objects.select_for_update().get(pk=host.pk)
    audit(
        "monitoring.mailhost.remove",
        target=host,
        description=f"Removed mail host {host.name} ({host.ssh_target}); nothing on the host was changed.",
        **_who(request, actor_label, actor),
    )
    was_default = host.is_default
    host.delete()
    if was_default:
        successor = MailHost.objects.order_by("created_at", "name").first()
        if successor is not None:
            successor.is_default = True
            successor.save(update_fields=["is_default"])
    return None


@transaction.atomic
def mailhost_set_default(
    *,
    host: MailHost,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> MailHost:
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, CHANGE, "name")
    list(MailHost.objects.select_for_update().all())
    host = MailHost.objects.get(pk=host.pk)
    if host.is_default:
        return host
    MailHost.objects.filter(is_default=True).update(is_default=False)
    host.is_default = True
    host.save(update_fields=["is_default"])
    audit(
        "monitoring.mailhost.default",
        target=host,
        description=f"Made {host.name} the default mail host.",
        **_who(request, actor_label, actor),
    )
    return host


def default_mailhost() -> MailHost | None:
    return MailHost.objects.filter(is_default=True).first()


# --- the restart flag ------------------------------------------------------------------------------------


def mailhosts_need_restart(*, reason: str) -> None:
    """A change DMS applies only in a new container was written (mail's restart seam): every host mounts the
    directory Dockspace writes, so every host's container must be recreated (a restart is not enough)."""
    MailHost.objects.update(restart_needed=True, restart_reason=reason[:200])


def mailhosts_restarted() -> None:
    """An operator recreated the mailserver container by hand (mail's restart_done seam): no host waits for one."""
    MailHost.objects.filter(restart_needed=True).update(restart_needed=False, restart_reason="")


def _recreated(host: MailHost) -> None:
    from mail.models import DmsSyncState

    MailHost.objects.filter(pk=host.pk).update(restart_needed=False, restart_reason="")
    host.restart_needed, host.restart_reason = False, ""
    if not MailHost.objects.filter(restart_needed=True).exists():
        DmsSyncState.objects.filter(restart_needed=True).update(restart_needed=False, restart_reason="")


# --- actions ---------------------------------------------------------------------------------------------


def restart_argv(host: MailHost) -> list[str]:
    """`docker restart CONTAINER`: the same container again (a hung daemon). DMS skips its set-up on a restart, so
    this applies no OpenDKIM key, postfix-main.cf or user-patches.sh: that takes `recreate`."""
    return ["docker", "restart", host.container]


def labels_argv(host: MailHost) -> list[str]:
    """Read-only: the container's labels as JSON (`null` when it has none)."""
    return ["docker", "inspect", "--type", "container", "--format", "{{json .Config.Labels}}", host.container]


def _label_paths(labels: dict[str, Any], name: str) -> tuple[str, ...]:
    """The absolute paths a comma-separated compose label lists, each checked against the probes' path rule."""
    paths = tuple(part for part in str(labels.get(name) or "").split(",") if part)
    for path in paths:
        if not path.startswith("/") or posixpath.normpath(path) != path:
            raise ValueError(f"its label {name} names {path!r}, which is not a plain absolute path")
        try:
            probe_commands("mailserver", path)
        except ValueError:
            raise ValueError(
                f"its label {name} names {path!r}, which has characters Dockspace does not pass to a shell "
                "(letters, digits and _ . / @ + = , : - only)"
            ) from None
    return paths


def compose_service(labels_json: str, *, compose_dir: str) -> ComposeService:
    """The compose service and project a container's labels name (`docker inspect --format '{{json
    .Config.Labels}}'`). ValueError, saying why, when it was not created by compose, was created in another directory
    than `compose_dir`, or a label has a character outside the safe rule (nothing is run with it)."""
    try:
        labels = json.loads(labels_json or "null")
    except ValueError:
        raise ValueError("its labels could not be read (docker inspect did not print JSON)") from None
    if not isinstance(labels, dict) or not labels.get(LABEL_SERVICE) or not labels.get(LABEL_PROJECT):
        raise ValueError(
            f"it has no compose labels ({LABEL_SERVICE}, {LABEL_PROJECT}): it was not created by docker compose"
        )
    service, project = str(labels[LABEL_SERVICE]), str(labels[LABEL_PROJECT])
    if not COMPOSE_SERVICE_RE.match(service):
        raise ValueError(
            f"its label {LABEL_SERVICE} is {service[:80]!r}, not a service name Dockspace runs commands with "
            "(letters, digits, '_', '.', '-', starting with a letter or digit)"
        )
    if not COMPOSE_PROJECT_RE.match(project):
        raise ValueError(
            f"its label {LABEL_PROJECT} is {project[:80]!r}, not a compose project name (lower-case letters, digits, "
            "'_', '-', starting with a letter or digit)"
        )
    working_dir = str(labels.get(LABEL_WORKING_DIR) or "")
    if posixpath.normpath(working_dir or ".") != compose_dir:
        raise ValueError(
            f"it was created by compose in {working_dir[:200]!r} (its label {LABEL_WORKING_DIR}), not in "
            f"{compose_dir}, this host's compose directory: set the compose directory to the one holding its compose "
            "file"
        )
    return ComposeService(
        project=project,
        service=service,
        working_dir=compose_dir,
        config_files=_label_paths(labels, LABEL_CONFIG_FILES),
        env_files=_label_paths(labels, LABEL_ENV_FILES),
    )


def recreate_argv(compose: ComposeService) -> list[str]:
    """`docker compose up --force-recreate` of that one service, with the project, compose files and environment
    files it was created with: a new container (DMS runs its set-up), its dependencies left alone."""
    files = [word for path in compose.config_files for word in ("--file", path)]
    env_files = [word for path in compose.env_files for word in ("--env-file", path)]
    return [
        "docker",
        "compose",
        "--project-directory",
        compose.working_dir,
        "--project-name",
        compose.project,
        *files,
        *env_files,
        "up",
        "--detach",
        "--force-recreate",
        "--no-deps",
        compose.service,
    ]


def reload_argv(host: MailHost, service: str) -> list[str]:
    program = RELOADS[service]
    return ["docker", "exec", host.container, *program]


def command_line(host: MailHost, argv: Sequence[str]) -> str:
    """The exact command string sent to the host for argv (with `sudo -n` where the host uses it)."""
    return ssh.Session(host, None).command_line(argv)


def _execute(
    host: MailHost,
    argv: list[str],
    *,
    action: str,
    what: str,
    request: HttpRequest | None,
    actor: authz.Actor | None,
    actor_label: str | None,
) -> ssh.CommandResult:
    """Run argv on the host and audit it with its outcome. An SSH failure is audited too (whether the command was
    sent or not) and refused."""
    line = command_line(host, argv)
    who = _who(request, actor_label, actor)
    sent = False
    try:
        with ssh.session(host) as session:
            sent = True
            result = session.run(argv)
    except ssh.SshError as e:
        told = f"ran `{line}` on {host.name}, which failed" if sent else f"`{line}` was not run on {host.name}"
        audit(action, target=host, description=f"{what}: {told}: {e.message}"[:500], **who)
        raise _ssh_refusal(e) from None
    outcome = "exit 0" if result.exit_status == 0 else f"exit {result.exit_status}: {result.stderr.strip()[:200]}"
    audit(action, target=host, description=f"{what}: ran `{line}` on {host.name} ({outcome}).", **who)
    return result


def mailhost_restart(
    *,
    host: MailHost,
    execute: bool = False,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> HostAction:
    """Restart the DMS container (dry run: the command only). It keeps "restart needed": DMS skips its set-up on a
    restart, so only `mailhost_recreate` applies what the flag waits for."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, OPERATE, "name")
    argv = restart_argv(host)
    action = HostAction(host, command_line(host, argv))
    if not execute:
        return action
    action.result = _execute(
        host,
        argv,
        action="monitoring.mailhost.restart",
        what="Restart",
        request=request,
        actor=actor,
        actor_label=actor_label,
    )
    return action


def recreate_refusal(host: MailHost) -> str:
    """Why Dockspace cannot recreate this host's container before contacting it ("" when it may try)."""
    if host.compose_dir:
        return ""
    return (
        f"{host.name} has no compose directory, so Dockspace cannot recreate its container (a restart would skip "
        f"DMS's set-up, so it is not done instead; 'restart needed' stays). Either {RECREATE_BY_HAND}, or set the "
        f"compose directory (mailhost update {host.name} --compose-dir DIR) if compose created it."
    )


def mailhost_recreate(
    *,
    host: MailHost,
    execute: bool = False,
    look_up: bool = True,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> HostAction:
    """Replace the DMS container by a new one from its compose file, so DMS runs its set-up again (OpenDKIM keys,
    postfix-main.cf, user-patches.sh); success clears "restart needed". Reads the container's compose labels first
    (read-only) to name the service and project. Dry run: the exact command (without `look_up`: nothing contacted,
    `command` empty). Refused, with nothing run and the flag kept, without a compose directory or compose labels."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, OPERATE, "name")
    refusal = recreate_refusal(host)
    if refusal:
        raise field_error(NON_FIELD_ERRORS, refusal)
    lookup_argv = labels_argv(host)
    action = HostAction(host, "", lookup=command_line(host, lookup_argv))
    if not look_up and not execute:
        return action
    who = _who(request, actor_label, actor)
    sent = False
    try:
        with ssh.session(host) as session:
            labels = session.run(lookup_argv)
            if labels.exit_status != 0:
                why = labels.stderr.strip()[:200] or f"exit {labels.exit_status}"
                raise _recreate_refused(
                    action,
                    f"`{action.lookup}` failed on {host.name} ({why}): nothing was run and 'restart needed' stays.",
                    execute=execute,
                    who=who,
                )
            try:
                action.compose = compose_service(labels.stdout.strip(), compose_dir=host.compose_dir)
            except ValueError as e:
                raise _recreate_refused(
                    action,
                    f"Dockspace cannot recreate the container {host.container} on {host.name}: {e}. Nothing was "
                    f"run and 'restart needed' stays; {RECREATE_BY_HAND}.",
                    execute=execute,
                    who=who,
                ) from None
            argv = recreate_argv(action.compose)
            action.command = session.command_line(argv)
            if not execute:
                return action
            sent = True
            action.result = session.run(argv)
    except ssh.SshError as e:
        told = f"ran `{action.command}`, which failed" if sent else "ran nothing"
        if execute:
            audit(
                "monitoring.mailhost.recreate",
                target=host,
                description=f"Recreate on {host.name}: {told}: {e.message}"[:500],
                **who,
            )
        raise _ssh_refusal(e) from None
    result = action.result
    outcome = "exit 0" if result.exit_status == 0 else f"exit {result.exit_status}: {result.stderr.strip()[-200:]}"
    audit(
        "monitoring.mailhost.recreate",
        target=host,
        description=(
            f"Recreate on {host.name} ({outcome}): ran `{action.command}` after reading the compose labels with "
            f"`{action.lookup}`."
        )[:500],
        **who,
    )
    if action.ok:
        _recreated(host)
    return action


def _recreate_refused(action: HostAction, message: str, *, execute: bool, who: dict[str, Any]) -> ValidationError:
    """The refusal to raise; an executed recreate's refusal is audited too (the labels were read)."""
    if execute:
        audit(
            "monitoring.mailhost.recreate",
            target=action.host,
            description=f"Recreate refused: {message}"[:500],
            **who,
        )
    return field_error(NON_FIELD_ERRORS, message)


def mailhost_reload(
    *,
    host: MailHost,
    service: str,
    execute: bool = False,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> HostAction:
    """Reload Postfix (`postfix reload`) or Dovecot (`doveadm reload`) in the container."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, OPERATE, "name")
    if service not in RELOADS:
        raise field_error("service", f"{service!r} cannot be reloaded; choose postfix or dovecot.")
    argv = reload_argv(host, service)
    action = HostAction(host, command_line(host, argv))
    if execute:
        action.result = _execute(
            host,
            argv,
            action="monitoring.mailhost.reload",
            what=f"Reload {service}",
            request=request,
            actor=actor,
            actor_label=actor_label,
        )
    return action


def _local_marker() -> str:
    try:
        return (settings.DMS_DIR / bootstrap.MARKER_NAME).read_text(encoding="utf-8")
    except OSError:
        return ""


def _write_local_marker() -> str:
    """The marker bootstrap compares with the container's view of its config directory: harmless to DMS (a
    dot file it does not read) and to Dockspace's writer (not a file it manages)."""
    path = settings.DMS_DIR / bootstrap.MARKER_NAME
    if not settings.DMS_DIR.is_dir():
        raise field_error(
            NON_FIELD_ERRORS, f"{settings.DMS_DIR} does not exist yet: it is created by the first DMS sync."
        )
    path.write_text(f"dockspace-dms-dir {secrets.token_hex(16)}\n", encoding="utf-8")
    return f"wrote {path}"


def _findings(session: ssh.Session, host: MailHost) -> list[bootstrap.Finding]:
    results = {name: session.run(argv) for name, argv in bootstrap.commands(host.container, host.compose_dir).items()}
    return bootstrap.assess(
        results,
        container=host.container,
        compose_dir=host.compose_dir,
        dkim_layout=settings.DKIM_LAYOUT,
        local_marker=_local_marker(),
        dms_dir=str(settings.DMS_DIR),
    )


def mailhost_bootstrap(
    *,
    host: MailHost,
    execute: bool = False,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> Bootstrap:
    """Check what the host needs for Dockspace (read-only commands). With `execute`, apply the fixes marked
    safe (start a stopped container, write Dockspace's marker file), audit each, and check again."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, OPERATE if execute else VIEW, "name")
    who = _who(request, actor_label, actor)
    try:
        with ssh.session(host) as session:
            findings = _findings(session, host)
            report = Bootstrap(host, findings)
            if not execute:
                return report
            for finding in findings:
                if finding.ok or not finding.is_safe_fix:
                    continue
                if finding.fix_argv:
                    result = session.run(list(finding.fix_argv))
                    line = session.command_line(list(finding.fix_argv))
                    outcome = "exit 0" if result.exit_status == 0 else f"exit {result.exit_status}"
                    report.applied.append(f"{line} ({outcome})")
                    audit(
                        "monitoring.mailhost.bootstrap",
                        target=host,
                        description=f"Bootstrap fix for {finding.check}: ran `{line}` on {host.name} ({outcome}).",
                        **who,
                    )
                elif finding.fix_local == "write_marker":
                    done = _write_local_marker()
                    report.applied.append(done)
                    audit(
                        "monitoring.mailhost.bootstrap",
                        target=host,
                        description=f"Bootstrap fix for {finding.check}: {done}.",
                        **who,
                    )
            if report.applied:
                report.findings = _findings(session, host)
            return report
    except ssh.SshError as e:
        raise _ssh_refusal(e) from None
