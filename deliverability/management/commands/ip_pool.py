"""manage.py ip_pool add|list|show|update|remove|routing: the pools of sending IPs that domains and tiers send through,
and what Postfix will do with them."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts import authz
from accounts.authz import add_actor_argument, command_actor, command_actor_label
from deliverability import ip_pools, selectors
from deliverability.commandline import pool_data, routing_data
from dockspace.commandline import ServiceCall, describe_actions, print_json, print_record
from dockspace.validation import field_error
from mail.models import Tier
from mail.services.domains import managed_domain

ACTOR = "manage.py ip_pool"
OPTIONS = {
    "pool": "NAME",
    "name": "NAME",
    "description": "--description",
    "domains": "--domain",
    "tiers": "--tier",
    "rotation_enabled": "--rotation",
}
UPDATE_OPTIONS = {
    **OPTIONS,
    "name": "--rename",
    "domains": "--add-domain",
    "tiers": "--add-tier",
    "remove_domain": "--remove-domain",
    "remove_tier": "--remove-tier",
}
NAME_HELP = "The pool's name, as `manage.py ip_pool list` shows it (e.g. bulk)."


def tier_by_name(name, field="tiers"):
    tier = Tier.objects.filter(name=(name or "").strip()).first()
    if tier is None:
        raise field_error(field, f"{name!r} is not a tier; see manage.py tier list.")
    return tier


def on_off(value):
    value = (value or "").strip().lower()
    if value not in ("on", "off"):
        raise field_error("rotation_enabled", f"give on or off; got {value!r}.")
    return value == "on"


def _settings(pool):
    """What `ip_pool update` may change of a pool, to tell an update that changed nothing."""
    domains = frozenset(pool.domains.values_list("pk", flat=True))
    tiers = frozenset(pool.tiers.values_list("pk", flat=True))
    return (pool.name, pool.description, pool.rotation_enabled, domains, tiers)


class Command(BaseCommand):
    help = (
        "Manage the pools of sending IPs. A domain sends through its own pool, else its tier's pool, else the mail "
        "host's default IP; a domain (and a tier) is in at most one pool. `add NAME [--domain D ...] [--tier T ...] "
        "[--rotation on]`, `list`, `show NAME` (both with --json: the pool's IPs, and those in rotation with their "
        "weights), `update NAME [--rename NEW] [--description TEXT] [--add-domain D] [--remove-domain D] [--add-tier "
        "T] [--remove-tier T] [--rotation on|off]`, `remove NAME` (only a pool without IPs), `routing [--json]` (what "
        "Postfix will do with each pool: its domains, its IPs in rotation with their transports and shares of mail, "
        "the IPs out of rotation and the domains on the default transport with the reason, and whether the files on "
        "disk differ from what the next sync writes). Monthly rotation (off by "
        "default): on the 1st, the longest-ACTIVE IP of a pool with more than one moves to RETIRING when a "
        "replacement is ready. Commands act as the host; `--as EMAIL` acts with that staff member's permissions."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = sub.add_parser("add", help="Add a pool, with the domains and tiers that send through it.")
        add.add_argument("name", metavar="NAME", help="Lower case letters, digits and '-', e.g. bulk.")
        add.add_argument("--description", default="", help="What the pool is for.")
        add.add_argument("--domain", action="append", default=[], metavar="DOMAIN", help="A domain (repeatable).")
        add.add_argument("--tier", action="append", default=[], metavar="TIER", help="A tier (repeatable).")
        add.add_argument("--rotation", default="off", metavar="on|off", help="Monthly rotation (default off).")

        listing = sub.add_parser("list", help="List the pools with their IPs in rotation.")
        listing.add_argument("--json", action="store_true", help="Print JSON.")
        show = sub.add_parser("show", help="Show one pool: domains, tiers, IPs and those in rotation with weights.")
        show.add_argument("name", metavar="NAME", help=NAME_HELP)
        show.add_argument("--json", action="store_true", help="Print JSON.")

        update = sub.add_parser("update", help="Rename a pool, or change its description, domains, tiers, rotation.")
        update.add_argument("name", metavar="NAME", help=NAME_HELP)
        update.add_argument("--rename", metavar="NEW", help="A new name.")
        update.add_argument("--description", help="What the pool is for.")
        update.add_argument("--add-domain", action="append", default=[], metavar="DOMAIN", help="Repeatable.")
        update.add_argument("--remove-domain", action="append", default=[], metavar="DOMAIN", help="Repeatable.")
        update.add_argument("--add-tier", action="append", default=[], metavar="TIER", help="Repeatable.")
        update.add_argument("--remove-tier", action="append", default=[], metavar="TIER", help="Repeatable.")
        update.add_argument("--rotation", metavar="on|off", help="Monthly rotation.")

        remove = sub.add_parser("remove", help="Remove a pool without IPs; its domains send through the default IP.")
        remove.add_argument("name", metavar="NAME", help=NAME_HELP)

        routing = sub.add_parser(
            "routing",
            help="Show what Postfix will do with each pool once the next sync's files are in a new container, and "
            "the difference between the files on disk and that sync's.",
        )
        routing.add_argument("--json", action="store_true", help="Print JSON (the files' differences as diffs).")
        for parser_ in sub.choices.values():
            add_actor_argument(parser_)
        describe_actions(sub)

    def handle(self, *args, action, **o):
        self.actor = command_actor(o)
        self.label = command_actor_label(ACTOR, self.actor)
        getattr(self, "_" + action)(o)

    def _who(self):
        return {"actor": self.actor, "actor_label": self.label}

    def _pool(self, o):
        # Looked up for those who may view pools only, so a refusal tells nothing about which pools exist.
        with ServiceCall(OPTIONS):
            return selectors.pool_visible_to(self.actor, o["name"])

    def _may_name_domains(self, names, options):
        # Domains are looked up for those who may see them only (the service asks the same before changing them).
        if names:
            with ServiceCall(options):
                authz.require_perm(self.actor, ip_pools.VIEW_DOMAIN, "domains")

    def _add(self, o):
        self._may_name_domains(o["domain"], OPTIONS)
        with ServiceCall(OPTIONS):
            pool = ip_pools.pool_add(
                name=o["name"],
                description=o["description"],
                domains=[managed_domain(d, "domains") for d in o["domain"]],
                tiers=[tier_by_name(t) for t in o["tier"]],
                rotation_enabled=on_off(o["rotation"]),
                **self._who(),
            )
        self.stdout.write(f"Added pool {pool.name}. Add its IPs: manage.py sending_ip add ADDRESS --pool {pool.name}")

    def _list(self, o):
        with ServiceCall(OPTIONS):
            pools = selectors.pools_visible_to(self.actor)
        data = [pool_data(pool) for pool in pools]
        if o["json"]:
            return print_json(self, data)
        if not data:
            self.stdout.write("No IP pools. Add one: manage.py ip_pool add NAME --domain DOMAIN")
        for r in data:
            rotation = ", ".join(f"{ip['address']} ({ip['weight']})" for ip in r["in_rotation"]) or "no IP in rotation"
            sends = ", ".join(r["domains"] + [f"tier {t}" for t in r["tiers"]]) or "nobody"
            self.stdout.write(f"{r['name']:20} {len(r['ips'])} IP(s); in rotation: {rotation}; for {sends}")

    def _show(self, o):
        with ServiceCall(OPTIONS):
            pool = selectors.pool_visible_to(self.actor, o["name"])
        data = pool_data(pool)
        if o["json"]:
            return print_json(self, data)
        data["ips"] = [f"{ip['address']} {ip['state']} weight {ip['weight']}" for ip in data["ips"]]
        data["in_rotation"] = [f"{ip['address']} weight {ip['weight']}" for ip in data["in_rotation"]]
        print_record(self, {k: "-" if v == "" or v == [] else v for k, v in data.items()}, False)

    def _update(self, o):
        pool = self._pool(o)
        self._may_name_domains(o["add_domain"] + o["remove_domain"], UPDATE_OPTIONS)
        changes = {}
        asked = []  # what the pool is after the update, in words, for "Nothing changed: pool bulk already ..."
        with ServiceCall(UPDATE_OPTIONS):
            if o["rename"] is not None:
                changes["name"] = o["rename"]
                asked.append("is named {name}")  # the name as the service normalises it
            if o["description"] is not None:
                changes["description"] = o["description"]
                asked.append("has that description")
            if o["rotation"] is not None:
                changes["rotation_enabled"] = on_off(o["rotation"])
                asked.append(f"has monthly rotation {o['rotation'].strip().lower()}")
            if o["add_domain"] or o["remove_domain"]:
                gone = [managed_domain(d, "remove_domain") for d in o["remove_domain"]]
                added = [managed_domain(name, "domains") for name in o["add_domain"]]
                domains = {d.pk: d for d in pool.domains.all() if d.pk not in {d.pk for d in gone}}
                domains.update({d.pk: d for d in added})
                changes["domains"] = list(domains.values())
                asked += [f"sends for {d.name}" for d in added] + [f"does not send for {d.name}" for d in gone]
            if o["add_tier"] or o["remove_tier"]:
                gone = [tier_by_name(t, "remove_tier") for t in o["remove_tier"]]
                added = [tier_by_name(name) for name in o["add_tier"]]
                tiers = {t.pk: t for t in pool.tiers.all() if t.pk not in {t.pk for t in gone}}
                tiers.update({t.pk: t for t in added})
                changes["tiers"] = list(tiers.values())
                asked += [f"has tier {t.name}" for t in added] + [f"does not have tier {t.name}" for t in gone]
            if not changes:
                raise CommandError(
                    "nothing to change: give --rename, --description, --add-domain, --remove-domain, --add-tier, "
                    "--remove-tier or --rotation."
                )
            before = _settings(pool)
            pool = ip_pools.pool_update(pool=pool, **changes, **self._who())
        if _settings(pool) == before:
            already = ", ".join(asked).replace("{name}", pool.name)
            self.stdout.write(f"Nothing changed: pool {pool.name} already {already}.")
        else:
            self.stdout.write(f"Updated pool {pool.name}.")

    def _remove(self, o):
        pool = self._pool(o)
        with ServiceCall(OPTIONS):
            ip_pools.pool_remove(pool=pool, **self._who())
        self.stdout.write(f"Removed pool {pool.name}; its domains send through the default IP.")

    def _routing(self, o):
        with ServiceCall(OPTIONS):
            routing = selectors.postfix_routing(self.actor)
        if o["json"]:
            return print_json(self, routing_data(routing))
        for pool in routing.pools:
            self._pool_routing(pool)
        if not routing.pools:
            self.stdout.write("No IP pools: every domain sends through the mail host's default transport.")
        self.stdout.write(f"{routing.unpooled_domains} other active domain(s) in no pool: the default transport.")
        self._routing_files(routing.files)

    def _pool_routing(self, pool):
        write = self.stdout.write
        sends = ", ".join(d.name + (f" (tier {d.via_tier})" if d.via_tier else "") for d in pool.routed_domains)
        write(f"Pool {pool.name}: sends for {sends or 'no domain'}")
        if not pool.in_rotation:
            write("  no IP in rotation: the pool's domains keep the default transport")
        for ip in pool.in_rotation:
            write(
                f"  {ip.address:15} {ip.transport:22} HELO {ip.helo_name}  {ip.state}  weight {ip.weight}  "
                f"{ip.share_percent} %"
            )
        for ip in pool.not_in_rotation:
            since = timezone.localtime(ip.since).strftime("%Y-%m-%d %H:%M")
            write(f"  not in rotation: {ip.address} {ip.state} since {since}: {ip.reason}")
        for domain in pool.default_domains:
            via = f" (tier {domain.via_tier})" if domain.via_tier else ""
            write(f"  default transport: {domain.name}{via}: {domain.reason}")
        for note in pool.notes:
            write(f"  note: {note}")

    def _routing_files(self, files):
        write = self.stdout.write
        if files.problem:
            write(f"Files: not compared: {files.problem}")
        elif files.is_up_to_date:
            write(f"Files: {', '.join(files.paths)} on disk are what the next sync writes.")
        else:
            write(f"Files: the next sync changes {', '.join(files.diffs)}:")
            for diff in files.diffs.values():
                write(diff.rstrip("\n"))
        for note in files.not_written:
            write(f"not written: {note}")
        if files.restart_needed:
            write(f"Restart needed: {files.restart_reason}")
