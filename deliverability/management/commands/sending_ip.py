"""manage.py sending_ip add|list|show|update|set-state|remove: the IPs mail leaves from, and their lifecycle."""

from django.core.management.base import BaseCommand, CommandError

from accounts.authz import add_actor_argument, command_actor, command_actor_label
from deliverability import ip_lifecycle, selectors, sending_ips
from deliverability.commandline import ip_data
from dockspace.commandline import ServiceCall, describe_actions, print_json, print_record

ACTOR = "manage.py sending_ip"
OPTIONS = {
    "address": "ADDRESS",
    "helo_name": "--helo",
    "pool": "--pool",
    "weight": "--weight",
    "state": "STATE",
    "reason": "--reason",
    "notes": "--notes",
}
ADD_OPTIONS = {**OPTIONS, "state": "--state"}
ADDRESS_HELP = "The IP address (IPv4 or IPv6), e.g. 192.0.2.10."
MOVES = "; ".join(f"{state} -> {' or '.join(moves)}" for state, moves in ip_lifecycle.MOVES.items())


class Command(BaseCommand):
    help = (
        "Manage the IPs outbound mail leaves from. `add ADDRESS --helo NAME [--pool POOL] [--weight N]` adds one; it "
        "starts WARMING (no reputation yet) unless given `--state ACTIVE` for an IP that already sends today. "
        f"`set-state ADDRESS STATE --reason TEXT` moves it along its lifecycle; only these moves exist: {MOVES} "
        "(RETIRING drains: no new mail; RESTING is cool-down, standby or quarantine). Every move is kept in the IP's "
        "history and the audit log. `list`, `show ADDRESS` (with --json), `update ADDRESS ...`, `remove ADDRESS` "
        "(an ACTIVE IP is retired first, a WARMING one rested). Commands act as the host; `--as EMAIL` acts with that "
        "staff member's permissions instead."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = sub.add_parser("add", help="Add a sending IP (WARMING unless --state ACTIVE).")
        add.add_argument("address", metavar="ADDRESS", help=ADDRESS_HELP)
        add.add_argument(
            "--helo", dest="helo_name", required=True, metavar="NAME", help="HELO name; the IP's PTR should name it."
        )
        add.add_argument("--pool", metavar="POOL", help="The pool it sends for (manage.py ip_pool list).")
        add.add_argument("--weight", default="1", metavar="N", help="Share of its pool's mail, 1 to 100 (default 1).")
        add.add_argument(
            "--state",
            default=ip_lifecycle.WARMING,
            metavar="STATE",
            help="WARMING (default: a new IP) or ACTIVE (an IP that already sends today).",
        )
        add.add_argument("--notes", default="", help="Free text for operators.")
        add.add_argument("--reason", default="", help="Why it is added (kept in its state history).")

        listing = sub.add_parser("list", help="List the sending IPs with pool, weight and state.")
        listing.add_argument("--pool", metavar="POOL", help="Only this pool's IPs.")
        listing.add_argument("--state", metavar="STATE", help="Only IPs in this state.")
        listing.add_argument("--json", action="store_true", help="Print JSON.")
        show = sub.add_parser("show", help="Show one sending IP with its state history.")
        show.add_argument("address", metavar="ADDRESS", help=ADDRESS_HELP)
        show.add_argument("--json", action="store_true", help="Print JSON.")

        update = sub.add_parser("update", help="Change an IP's HELO name, pool, weight or notes (not its state).")
        update.add_argument("address", metavar="ADDRESS", help=ADDRESS_HELP)
        update.add_argument("--helo", dest="helo_name", metavar="NAME", help="New HELO name.")
        pool = update.add_mutually_exclusive_group()
        pool.add_argument("--pool", metavar="POOL", help="Move it to this pool.")
        pool.add_argument("--no-pool", action="store_true", help="Take it out of its pool.")
        update.add_argument("--weight", metavar="N", help="Share of its pool's mail, 1 to 100.")
        update.add_argument("--notes", help="Free text for operators.")

        state = sub.add_parser("set-state", help=f"Move an IP to another state, with a reason. Allowed moves: {MOVES}.")
        state.add_argument("address", metavar="ADDRESS", help=ADDRESS_HELP)
        state.add_argument("state", metavar="STATE", help="ACTIVE, RETIRING, RESTING or WARMING.")
        state.add_argument("--reason", required=True, help="Why (required; kept in the history and the audit log).")

        remove = sub.add_parser("remove", help="Remove a RETIRING or RESTING IP (with its state history).")
        remove.add_argument("address", metavar="ADDRESS", help=ADDRESS_HELP)
        for parser_ in sub.choices.values():
            add_actor_argument(parser_)
        describe_actions(sub)

    def handle(self, *args, action, **o):
        self.actor = command_actor(o)
        self.label = command_actor_label(ACTOR, self.actor)
        getattr(self, "_" + action.replace("-", "_"))(o)

    def _who(self):
        return {"actor": self.actor, "actor_label": self.label}

    def _ip(self, o):
        # Looked up for those who may view sending IPs only, so a refusal tells nothing about which exist.
        with ServiceCall(OPTIONS):
            return selectors.sending_ip_visible_to(self.actor, o["address"])

    def _add(self, o):
        with ServiceCall(ADD_OPTIONS):
            pool = selectors.pool_visible_to(self.actor, o["pool"]) if o["pool"] else None
            ip = sending_ips.ip_add(
                address=o["address"],
                helo_name=o["helo_name"],
                pool=pool,
                weight=o["weight"],
                state=(o["state"] or "").strip().upper(),
                notes=o["notes"],
                reason=o["reason"],
                **self._who(),
            )
        where = f" in pool {pool.name}" if pool else " (no pool: it sends for no domain yet)"
        self.stdout.write(f"Added {ip.address} ({ip.helo_name}){where}, weight {ip.weight}, {ip.state}.")

    def _list(self, o):
        with ServiceCall(OPTIONS):
            rows = selectors.sending_ips_visible_to(self.actor)
            if o["pool"]:
                rows = rows.filter(pool=selectors.pool_visible_to(self.actor, o["pool"]))
        if o["state"]:
            state = o["state"].strip().upper()
            if state not in ip_lifecycle.STATES:
                states = ", ".join(ip_lifecycle.STATES)
                raise CommandError(f"--state: {o['state']!r} is not a state; choose one of {states}.")
            rows = rows.filter(state=state)
        data = [ip_data(ip) for ip in rows]
        if o["json"]:
            return print_json(self, data)
        if not data:
            self.stdout.write("No sending IPs. Add one: manage.py sending_ip add ADDRESS --helo NAME")
        for r in data:
            line = f"{r['address']:40} {r['state']:9} {r['pool'] or '-':20} weight {r['weight']:<4} {r['helo_name']}"
            self.stdout.write(line)

    def _show(self, o):
        with ServiceCall(OPTIONS):
            ip = selectors.sending_ip_visible_to(self.actor, o["address"])
        data = ip_data(ip, history=True)
        if o["json"]:
            return print_json(self, data)
        history = data.pop("history")
        print_record(self, {k: "-" if v is None or v == "" else v for k, v in data.items()}, False)
        self.stdout.write("history")
        for change in history:
            self.stdout.write(
                f"  {change['at'][:16]}  {change['from'] or 'new'} -> {change['to']}  {change['reason']}  "
                f"({change['by']})"
            )

    def _update(self, o):
        ip = self._ip(o)
        changes = {key: o[key] for key in ("helo_name", "weight", "notes") if o.get(key) is not None}
        with ServiceCall(OPTIONS):
            if o["pool"]:
                changes["pool"] = selectors.pool_visible_to(self.actor, o["pool"])
            elif o["no_pool"]:
                changes["pool"] = None
            if not changes:
                raise CommandError("nothing to change: give --helo, --pool, --no-pool, --weight or --notes.")
            ip = sending_ips.ip_update(ip=ip, **changes, **self._who())
        self.stdout.write(f"Updated {ip.address}.")

    def _set_state(self, o):
        ip = self._ip(o)
        before = ip.state
        with ServiceCall(OPTIONS):
            ip = sending_ips.ip_set_state(ip=ip, state=o["state"], reason=o["reason"], **self._who())
        self.stdout.write(f"{ip.address}: {before} -> {ip.state}.")

    def _remove(self, o):
        ip = self._ip(o)
        with ServiceCall(OPTIONS):
            sending_ips.ip_remove(ip=ip, **self._who())
        self.stdout.write(f"Removed {ip.address}.")
