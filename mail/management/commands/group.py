"""manage.py group add|list|show|update|remove."""

from django.core.management.base import BaseCommand, CommandError

from dockspace.commandline import ServiceCall, not_found, print_json, print_record
from mail import services
from mail.commandline import acting_as, actor_arguments, warn_plus
from mail.models import Group
from mail.selectors import groups_for

ACTOR = "manage.py group"


def group_data(g):
    return {
        "name": g.name,
        "description": g.description,
        "address": g.list_address,
        "members": sorted(m.email for m in g.members.all()),
    }


def find_group(name, groups=None):
    # Names are unique without regard to case (services.group_create), so this finds at most one.
    if groups is None:
        groups = Group.objects.prefetch_related("members")
    group = groups.filter(name__iexact=name).first()
    if group is None:
        raise not_found("NAME", "group", name)
    return group


class Command(BaseCommand):
    help = (
        "Manage groups of people. A group gates sign-in to apps (OIDC) and, with --address, is also a "
        "distribution list delivering to its members' mailboxes. `group add NAME [--address list@example.com] "
        "[--member ADDRESS ...] [--description TEXT]`; `group update NAME [--rename NEW] [--address A|--no-address] "
        "[--add ADDRESS ...] [--remove ADDRESS ...]`; `group list [--json]`; `group show NAME [--json]`; "
        "`group remove NAME`. Members are people, named by their sign-in or mailbox address. Acts as the host; "
        "`--as EMAIL` acts with that staff member's permissions instead."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = sub.add_parser("add", help="Create a group.")
        add.add_argument("name")
        add.add_argument("--address", help="Make it a distribution list at this address.")
        add.add_argument("--member", action="append", default=[], dest="members")
        add.add_argument("--description", default="")
        update = sub.add_parser("update", help="Change a group.")
        update.add_argument("name")
        update.add_argument("--rename")
        update.add_argument("--address")
        update.add_argument("--no-address", action="store_true", help="Stop being a distribution list.")
        update.add_argument("--add", action="append", default=[])
        update.add_argument("--remove", action="append", default=[])
        update.add_argument("--description")
        listing = sub.add_parser("list", help="List groups.")
        listing.add_argument("--json", action="store_true")
        show = sub.add_parser("show", help="Show a group.")
        show.add_argument("name")
        show.add_argument("--json", action="store_true")
        sub.add_parser("remove", help="Remove a group.").add_argument("name")
        actor_arguments(sub)

    def handle(self, *args, action, **o):
        actor, label = acting_as(o, ACTOR)
        self.who = {"actor": actor, "actor_label": label}
        getattr(self, "_" + action)(o)

    def _add(self, o):
        if o["address"] == "":
            raise CommandError(
                "--address: an empty list address is not allowed; leave --address out for a group that is not "
                "a distribution list."
            )
        with ServiceCall():
            group = services.group_create(
                name=o["name"],
                address=o["address"],
                members=o["members"],
                description=o["description"],
                **self.who,
            )
        suffix = f" with list address {group.list_address}" if group.list_address else ""
        self.stdout.write(f"Created group {group.name}{suffix}, {group.members.count()} member(s).")
        warn_plus(self, group.list_address)

    def _update(self, o):
        group = find_group(o["name"])
        if o["address"] is not None and o["no_address"]:
            raise CommandError("--address and --no-address cannot be used together.")
        # An empty value given on purpose (or from an unset shell variable) is refused, not taken as "not
        # given" nor as --no-address: dropping a list address bounces its mail and unhooks aliases from it.
        if o["address"] == "":
            raise CommandError(
                "--address: an empty list address is not allowed; give one like list@example.com, or "
                "--no-address to stop being a distribution list."
            )
        if o["rename"] is not None and not o["rename"].strip():
            raise CommandError("--rename: a group name cannot be empty.")
        address = None if o["no_address"] else (... if o["address"] is None else o["address"])
        if not any([o["rename"], o["add"], o["remove"], o["description"] is not None, address is not ...]):
            raise CommandError(
                "nothing to change: give --rename, --address, --no-address, --add, --remove or --description."
            )
        with ServiceCall():
            services.group_update(
                group=group,
                name=o["rename"],
                address=address,
                description=o["description"],
                add=o["add"],
                remove=o["remove"],
                **self.who,
            )
        self.stdout.write(f"Updated group {o['rename'] or group.name}.")

    def _visible(self):
        """The groups the actor may see; refused (non-zero exit) without the permission to view groups."""
        with ServiceCall({"__all__": "--as"}):
            return groups_for(self.who["actor"])

    def _list(self, o):
        rows = [group_data(g) for g in self._visible()]
        if o["json"]:
            return print_json(self, rows)
        for r in rows:
            self.stdout.write(f"{r['name']:30} {r['address'] or '-':40} {len(r['members'])} member(s)")

    def _show(self, o):
        data = group_data(find_group(o["name"], self._visible()))
        print_record(self, data, o["json"])

    def _remove(self, o):
        group = find_group(o["name"])
        with ServiceCall():
            services.group_remove(group=group, **self.who)
        self.stdout.write(f"Removed group {group.name}.")
