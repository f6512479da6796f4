"""manage.py mailhost add|list|show|check|update|default|remove|recreate|restart|reload|bootstrap: the DMS hosts, over
SSH."""

from django.core.management.base import BaseCommand, CommandError

from accounts.authz import add_actor_argument, command_actor, command_actor_label
from dockspace.commandline import ServiceCall, describe_actions, not_found, print_json, print_record
from monitoring import hosts, probing, selectors
from monitoring.models import HostProbe, MailHost

ACTOR = "manage.py mailhost"
# The services name fields; the operator typed these.
OPTIONS = {
    "name": "NAME",
    "ssh": "--ssh",
    "key_path": "--key",
    "key_env": "--key-env",
    "container": "--container",
    "compose_dir": "--compose-dir",
    "mail_volume": "--mail-volume",
    "mail_hostname": "--mail-hostname",
    "trust": "--trust",
    "service": "SERVICE",
    "notes": "--notes",
}


def mailhost_data(host):
    probe = probing.latest_probe(host)
    return {
        "name": host.name,
        "ssh": host.ssh_target,
        "key": host.key_source,
        "sudo": host.use_sudo,
        "container": host.container,
        "compose_dir": host.compose_dir,
        "mail_volume": host.mail_volume,
        "mail_hostname": host.tls_hostname,
        "host_key_type": host.host_key_type,
        "host_key_fingerprint": host.host_key_fingerprint,
        "is_default": host.is_default,
        "restart_needed": host.restart_needed,
        "restart_reason": host.restart_reason,
        "notes": host.notes,
        "created_at": host.created_at.isoformat(),
        "status": probe.status if probe else "not probed yet",
        "probed_at": probe.started_at.isoformat() if probe else None,
    }


def find_host(name):
    """The host an action names; the action's service checks the actor's permission."""
    host = MailHost.objects.filter(name=(name or "").strip().lower()).first()
    if host is None:
        raise not_found("NAME", "mail host", name)
    return host


NAME_HELP = "The host's name, as `manage.py mailhost list` shows it (e.g. mx1)."


class Command(BaseCommand):
    help = (
        "Manage the DMS hosts Dockspace reaches over SSH. First contact: `mailhost add NAME --ssh "
        "USER@HOST[:PORT] --key /path/to/private_key` (the file must be inside the SSH key directory, "
        "DOCKSPACE_SSH_KEY_DIR, by default <data dir>/ssh-keys; or `--key-env DOCKSPACE_SSH_KEY_...`, a variable "
        "holding the key, whose name must start with DOCKSPACE_SSH_KEY_) prints the fingerprint of the host key "
        "the host offers and stores nothing; compare it with the host's own "
        "(`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host), then run the same command with "
        "`--trust SHA256:...` to store the host with that key pinned. A host offering another key later is "
        "refused and nothing runs on it. `list`, `show NAME`, `check NAME` (probes the host now: services, "
        "queue, disk, load, quotas, TLS certificates; exits non-zero when it is down), all three with --json; "
        "`update NAME ...`, `default NAME`, `remove NAME`. Actions are dry runs that print the exact command "
        "unless given --execute, and are audited: `recreate NAME` (a new DMS container from its compose file, so "
        "DMS applies OpenDKIM keys, postfix-main.cf and user-patches.sh; clears 'restart needed'; needs the host's "
        "compose directory), `restart NAME` (docker restart of the same container, e.g. a hung daemon; applies none "
        "of those and keeps 'restart needed'), `reload NAME postfix|dovecot`, `bootstrap NAME` (checks what DMS "
        "needs for Dockspace and prints each fix; --execute applies only the safe ones). Commands act as the host; "
        "`--as EMAIL` acts with that staff member's permissions instead."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = sub.add_parser(
            "add",
            help="Contact a host and print its host key fingerprint; with --trust SHA256:..., store it pinned.",
        )
        add.add_argument("name", metavar="NAME", help="What Dockspace calls the host (a-z, 0-9, '-'), e.g. mx1.")
        add.add_argument("--ssh", required=True, metavar="USER@HOST[:PORT]", help="SSH user, host and port (22).")
        key_help = {name: text.replace("%", "%%") for name, text in hosts.key_help().items()}  # argparse formats help
        key = add.add_mutually_exclusive_group(required=True)
        key.add_argument("--key", dest="key_path", metavar="PATH", help=key_help["key_path"])
        key.add_argument("--key-env", metavar="VAR", help=key_help["key_env"])
        self._settings_arguments(add, defaults=True)
        add.add_argument(
            "--trust",
            metavar="SHA256:...",
            help="The fingerprint printed by a first `add` without --trust, after checking it on the host.",
        )

        listing = sub.add_parser("list", help="List the mail hosts.")
        listing.add_argument("--json", action="store_true", help="Print JSON.")
        show = sub.add_parser("show", help="Show one mail host, with its pinned host key.")
        show.add_argument("name", metavar="NAME", help=NAME_HELP)
        show.add_argument("--json", action="store_true", help="Print JSON.")
        check = sub.add_parser(
            "check",
            help="Probe the host now (DMS services, mail queue, disk of the mail volume, load, memory, quotas, DMS "
            "version, TLS certificates of ports 25/465/587/993), store the result and print it. Exits non-zero "
            "when the host is down.",
        )
        check.add_argument("name", metavar="NAME", help=NAME_HELP)
        check.add_argument("--json", action="store_true", help="Print JSON.")

        update = sub.add_parser("update", help="Change a host's key source, sudo, container, directories or notes.")
        update.add_argument("name", metavar="NAME", help=NAME_HELP)
        key = update.add_mutually_exclusive_group()
        key.add_argument("--key", dest="key_path", metavar="PATH", help=key_help["key_path"])
        key.add_argument("--key-env", metavar="VAR", help=key_help["key_env"])
        self._settings_arguments(update, defaults=False)

        repin = sub.add_parser(
            "repin",
            help="Pin the host key a host offers now (it was reinstalled or its keys rotated); its settings and "
            "history stay. Without --trust, prints the offered and the pinned fingerprints and changes nothing.",
        )
        repin.add_argument("name", metavar="NAME", help=NAME_HELP)
        repin.add_argument(
            "--trust", metavar="SHA256:...", help="The fingerprint you checked on the host (ssh-keygen -lf ...)."
        )

        default = sub.add_parser("default", help="Make this host the default one.")
        default.add_argument("name", metavar="NAME", help=NAME_HELP)
        remove = sub.add_parser("remove", help="Forget a host (nothing on the host changes).")
        remove.add_argument("name", metavar="NAME", help=NAME_HELP)

        recreate = sub.add_parser(
            "recreate",
            help="Replace the DMS container by a new one (`docker compose ... up --detach --force-recreate --no-deps "
            "SERVICE`, the service and project read from the container's compose labels), so DMS runs its set-up "
            "again and applies OpenDKIM keys, postfix-main.cf and user-patches.sh; clears 'restart needed'. Needs "
            "the host's compose directory (--compose-dir); refused for a container not created by compose. Dry run "
            "(reads the labels, prints the command) without --execute.",
        )
        recreate.add_argument("name", metavar="NAME", help=NAME_HELP)
        recreate.add_argument("--execute", action="store_true", help="Run it (otherwise print the command only).")
        restart = sub.add_parser(
            "restart",
            help="Restart the same DMS container (`docker restart CONTAINER`, e.g. a hung daemon). DMS skips its "
            "set-up on a restart, so this keeps 'restart needed' (use recreate). Dry run without --execute.",
        )
        restart.add_argument("name", metavar="NAME", help=NAME_HELP)
        restart.add_argument("--execute", action="store_true", help="Run it (otherwise print the command only).")
        reload = sub.add_parser(
            "reload", help="Reload Postfix (`postfix reload`) or Dovecot (`doveadm reload`) in the container."
        )
        reload.add_argument("name", metavar="NAME", help=NAME_HELP)
        reload.add_argument(
            "service", metavar="SERVICE", nargs="?", default="postfix", help="postfix (default) or dovecot."
        )
        reload.add_argument("--execute", action="store_true", help="Run it (otherwise print the command only).")
        boot = sub.add_parser(
            "bootstrap",
            help="Check docker, compose, the container, its config mount, the mail log and the DMS settings "
            "Dockspace relies on; print each fix. Exits non-zero while something is missing.",
        )
        boot.add_argument("name", metavar="NAME", help=NAME_HELP)
        boot.add_argument("--execute", action="store_true", help="Apply the fixes marked safe, then check again.")
        boot.add_argument("--json", action="store_true", help="Print JSON.")
        for parser in sub.choices.values():
            add_actor_argument(parser)
        describe_actions(sub)

    def _settings_arguments(self, parser, *, defaults):
        sudo = parser.add_mutually_exclusive_group()
        sudo.add_argument(
            "--sudo",
            dest="use_sudo",
            action="store_true",
            default=False if defaults else None,
            help="Run docker as `sudo -n docker` (the SSH user needs passwordless sudo for docker).",
        )
        if not defaults:
            sudo.add_argument("--no-sudo", dest="use_sudo", action="store_false", help="Run docker without sudo.")
        parser.add_argument(
            "--container",
            default="mailserver" if defaults else None,
            help="Name of the DMS container on the host (default mailserver).",
        )
        parser.add_argument(
            "--compose-dir",
            default="" if defaults else None,
            metavar="DIR",
            help="Directory of DMS's compose.yaml on the host (checked by bootstrap).",
        )
        parser.add_argument(
            "--mail-volume",
            default="/" if defaults else None,
            metavar="PATH",
            help="Path on the host of the mail data volume, for its disk use (default /).",
        )
        parser.add_argument(
            "--mail-hostname",
            default="" if defaults else None,
            metavar="NAME",
            help="The name the mail ports answer to, checked against their TLS certificates (default: the SSH host).",
        )
        parser.add_argument("--notes", default="" if defaults else None, help="Free text for operators.")

    def handle(self, *args, action, **o):
        self.actor = command_actor(o)
        self.label = command_actor_label(ACTOR, self.actor)
        getattr(self, "_" + action)(o)

    def _who(self):
        return {"actor": self.actor, "actor_label": self.label}

    def _add(self, o):
        with ServiceCall(OPTIONS):
            added = hosts.mailhost_add(
                name=o["name"],
                ssh_target=o["ssh"],
                key_path=o["key_path"] or "",
                key_env=o["key_env"] or "",
                container=o["container"],
                compose_dir=o["compose_dir"],
                mail_volume=o["mail_volume"],
                mail_hostname=o["mail_hostname"],
                use_sudo=o["use_sudo"],
                notes=o["notes"],
                trust=o["trust"],
                **self._who(),
            )
        offered = added.offered
        if added.host is None:
            self.stdout.write(
                f"{o['ssh']} offers the host key {offered.fingerprint} ({offered.type}).\n"
                "Nothing was stored. Check it on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub, or the "
                "key of that type), then run the same command again with:\n"
                f"  --trust {offered.fingerprint}"
            )
            return
        host = added.host
        default = " It is the default host." if host.is_default else ""
        self.stdout.write(f"Added {host.name} ({host.ssh_target}) with host key {offered.fingerprint} pinned.{default}")

    def _visible_host(self, name):
        """The host `name` for a read (show, check): refused without the permission to view mail hosts."""
        with ServiceCall(OPTIONS):
            host = selectors.mailhost_for(self.actor, name)
        if host is None:
            raise not_found("NAME", "mail host", name)
        return host

    def _list(self, o):
        with ServiceCall(OPTIONS):
            rows = [mailhost_data(h) for h in selectors.mailhosts_for(self.actor)]
        if o["json"]:
            return print_json(self, rows)
        if not rows:
            self.stdout.write("No mail hosts. Add one: manage.py mailhost add NAME --ssh USER@HOST --key PATH")
            return
        self.stdout.write(_list_line("NAME", "SSH", "CONTAINER", "STATUS", "FLAGS"))
        for r in rows:
            flags = " ".join(
                f for f, on in (("default", r["is_default"]), ("restart-needed", r["restart_needed"])) if on
            )
            self.stdout.write(_list_line(r["name"], r["ssh"], r["container"], r["status"], flags))

    def _show(self, o):
        print_record(self, mailhost_data(self._visible_host(o["name"])), o["json"])

    def _check(self, o):
        host = self._visible_host(o["name"])
        with ServiceCall(OPTIONS):
            probe = probing.mailhost_check(host=host, **self._who_reads())
        data = probing.probe_data(probe)
        if o["json"]:
            print_json(self, data)
        else:
            for line in probe_lines(probe):
                self.stdout.write(line)
        if probe.status == HostProbe.DOWN:
            raise CommandError(f"{host.name} is down.")

    def _who_reads(self):
        return {"actor": self.actor}

    def _update(self, o):
        host = find_host(o["name"])
        changes = {key: o[key] for key in hosts.EDITABLE if o.get(key) is not None}
        if not changes:
            raise CommandError(
                "nothing to change: give --key, --key-env, --sudo, --no-sudo, --container, --compose-dir, "
                "--mail-volume, --mail-hostname or --notes."
            )
        with ServiceCall(OPTIONS):
            hosts.mailhost_update(host=host, **changes, **self._who())
        self.stdout.write(f"Updated {host.name}.")

    def _repin(self, o):
        host = find_host(o["name"])
        with ServiceCall(OPTIONS):
            offered = hosts.mailhost_repin(host=host, trust=o["trust"], **self._who())
        unneeded = hosts.repin_unneeded(host, offered)
        if unneeded:
            self.stdout.write(unneeded)
            return
        if o["trust"] is None:
            self.stdout.write(
                f"{host.ssh_target} offers the host key {offered.fingerprint} ({offered.type}); "
                f"{host.host_key_fingerprint} is pinned.\nNothing was changed. Check the offered key on the host "
                "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then run again with:\n"
                f"  --trust {offered.fingerprint}"
            )
            return
        self.stdout.write(f"{host.name}: host key {offered.fingerprint} pinned.")

    def _default(self, o):
        host = find_host(o["name"])
        with ServiceCall(OPTIONS):
            hosts.mailhost_set_default(host=host, **self._who())
        self.stdout.write(f"{host.name} is the default mail host.")

    def _remove(self, o):
        host = find_host(o["name"])
        with ServiceCall(OPTIONS):
            hosts.mailhost_remove(host=host, **self._who())
        self.stdout.write(f"Removed {host.name}; nothing on the host was changed.")

    def _report(self, done):
        if done.compose is not None:
            self.stdout.write(
                f"{done.host.container} is service {done.compose.service} of compose project {done.compose.project} "
                f"(its labels, read with: {done.lookup})"
            )
        if not done.executed:
            self.stdout.write(f"Dry run on {done.host.name} ({done.host.ssh_target}), would run:\n  {done.command}")
            self.stdout.write("Add --execute to run it.")
            return
        result = done.result
        self.stdout.write(f"Ran on {done.host.name}: {done.command} (exit {result.exit_status})")
        for text in (result.stdout.strip(), result.stderr.strip()):
            if text:
                self.stdout.write(text)
        if not done.ok:
            raise CommandError(f"{done.command} failed on {done.host.name} with exit status {result.exit_status}.")

    def _restart(self, o):
        host = find_host(o["name"])
        with ServiceCall(OPTIONS):
            done = hosts.mailhost_restart(host=host, execute=o["execute"], **self._who())
        self._report(done)
        if done.ok and host.restart_needed:
            self.stdout.write(
                f"{host.name} restarted; 'restart needed' stays: DMS skips its set-up on a restart. Apply the change "
                f"with a new container: manage.py mailhost recreate {host.name}"
            )

    def _recreate(self, o):
        host = find_host(o["name"])
        with ServiceCall(OPTIONS):
            done = hosts.mailhost_recreate(host=host, execute=o["execute"], **self._who())
        self._report(done)
        if done.ok:
            self.stdout.write(f"{host.name}: the container was recreated; 'restart needed' is cleared.")

    def _reload(self, o):
        host = find_host(o["name"])
        with ServiceCall(OPTIONS):
            done = hosts.mailhost_reload(host=host, service=o["service"], execute=o["execute"], **self._who())
        self._report(done)

    def _bootstrap(self, o):
        host = find_host(o["name"])
        with ServiceCall(OPTIONS):
            report = hosts.mailhost_bootstrap(host=host, execute=o["execute"], **self._who())
        failed = [f for f in report.findings if not f.ok]
        if o["json"]:
            print_json(
                self,
                {
                    "host": host.name,
                    "ok": report.ok,
                    "applied": report.applied,
                    "findings": [
                        {"check": f.check, "ok": f.ok, "detail": f.detail, "fix": f.fix, "is_safe_fix": f.is_safe_fix}
                        for f in report.findings
                    ],
                },
            )
        else:
            for applied in report.applied:
                self.stdout.write(f"applied: {applied}")
            for f in report.findings:
                self.stdout.write(f"[{'ok' if f.ok else 'FAIL'}] {f.check}: {f.detail}")
                if not f.ok and f.fix:
                    safe = " (safe: bootstrap --execute applies it)" if f.is_safe_fix else ""
                    self.stdout.write(f"       fix: {f.fix}{safe}")
            if failed and not o["execute"] and any(f.is_safe_fix for f in failed):
                self.stdout.write("Run again with --execute to apply the fixes marked safe; the others are yours.")
            elif failed and not any(f.is_safe_fix for f in failed):
                self.stdout.write("No fix here is safe to apply automatically: each one above is yours to make.")
        if failed:
            raise CommandError(f"{len(failed)} check(s) failed on {host.name}.")


def _list_line(name, ssh_target, container, status, flags):
    return f"{name:20} {ssh_target:40} {container:15} {status:15} {flags}".rstrip()


def _bytes(value):
    if value is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value} B"  # pragma: no cover


def probe_lines(probe):
    """A probe as an operator reads it: the verdict and reasons, then one line per reading."""
    lines = [f"{probe.host.name}: {probe.status} (probed in {probe.duration_ms} ms)"]
    lines += [f"  - {reason}" for reason in probe.reasons]
    if not probe.reachable:
        return lines
    if probe.services:
        lines.append("services  " + ", ".join(f"{name} {state}" for name, state in sorted(probe.services.items())))
    if probe.queue_count is not None:
        oldest = probe.queue_oldest_age_seconds
        age = f", oldest {oldest / 60:.0f} min" if oldest is not None else ""
        lines.append(f"queue     {probe.queue_count} message(s), {probe.queue_deferred} deferred{age}")
    if probe.disk_percent is not None:
        lines.append(
            f"disk      {probe.host.mail_volume} {probe.disk_percent:.1f} % used "
            f"({_bytes(probe.disk_used_bytes)} of {_bytes(probe.disk_total_bytes)})"
        )
    if probe.load1 is not None:
        cpus = f" ({probe.cpus} CPUs)" if probe.cpus else ""
        lines.append(f"load      {probe.load1:g} {probe.load5:g} {probe.load15:g}{cpus}")
    if probe.memory_total_bytes is not None:
        lines.append(
            f"memory    {_bytes(probe.memory_available_bytes)} available of {_bytes(probe.memory_total_bytes)}"
        )
    if probe.dms_version:
        lines.append(f"DMS       {probe.dms_version}")
    for cert in probe.certificates:
        if cert.get("error"):
            lines.append(f"TLS {cert['port']:<5} {cert['error']}")
        else:
            verified = "verified" if cert.get("verified") else f"does not verify: {cert.get('verify_error')}"
            lines.append(
                f"TLS {cert['port']:<5} expires {cert['not_after'][:10]} (in {cert['days_left']} days), {verified}"
            )
    return lines
