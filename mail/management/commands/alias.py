"""manage.py alias add|list|show|remove."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from dockspace.commandline import ServiceCall, not_found, print_json, print_record
from dockspace.validation import error_text
from mail import services
from mail.addresses import normalize_alias_address
from mail.commandline import acting_as, actor_arguments, domain_argument, warn_plus
from mail.models import Alias
from mail.selectors import aliases_for

ACTOR = "manage.py alias"


def alias_data(a):
    return {
        "address": a.address,
        "catch_all": a.is_catch_all,
        "targets": a.target_list,
        "keep_copy": a.keep_copy,
        "active": a.is_active,
        "description": a.description,
    }


def find_alias(address, aliases=None):
    """The alias at `address` among `aliases` (default: all; a read passes what the actor may see)."""
    try:
        address = normalize_alias_address(address, "ADDRESS")
    except ValidationError as e:
        raise CommandError(error_text(e)) from None
    if aliases is None:
        aliases = Alias.objects.prefetch_related("targets")
    alias = aliases.filter(address=address).first()
    if alias is None:
        raise not_found("ADDRESS", "alias", address)
    return alias


class Command(BaseCommand):
    help = (
        "Manage aliases. `alias add ADDRESS TARGET [TARGET ...]` forwards ADDRESS to the targets (mailboxes, "
        "other aliases or lists here, or outside addresses); `alias add @example.com TARGET` makes a catch-all "
        "(real mailboxes of the domain keep their mail); `alias add me@example.com other@x.org --keep-copy` "
        "forwards a mailbox and keeps a copy. `alias update ADDRESS [--target T ...] [--active|--inactive]`, "
        "`alias list [--domain D] [--json]`, `alias show ADDRESS [--json]`, `alias remove ADDRESS`. "
        "Acts as the host; `--as EMAIL` acts with that staff member's permissions instead."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = sub.add_parser("add", help="Create an alias or a catch-all.")
        add.add_argument("address")
        add.add_argument("targets", nargs="+")
        add.add_argument("--keep-copy", action="store_true", help="ADDRESS is a mailbox that also keeps a copy.")
        add.add_argument("--description", default="")
        update = sub.add_parser("update", help="Change an alias.")
        update.add_argument("address")
        update.add_argument("--target", action="append", dest="targets", help="Replaces all targets; repeat.")
        state = update.add_mutually_exclusive_group()
        state.add_argument("--active", dest="active", action="store_true", default=None)
        state.add_argument("--inactive", dest="active", action="store_false")
        listing = sub.add_parser("list", help="List aliases.")
        listing.add_argument("--domain")
        listing.add_argument("--json", action="store_true")
        show = sub.add_parser("show", help="Show one alias.")
        show.add_argument("address")
        show.add_argument("--json", action="store_true")
        sub.add_parser("remove", help="Remove an alias.").add_argument("address")
        actor_arguments(sub)

    def handle(self, *args, action, **o):
        actor, label = acting_as(o, ACTOR)
        self.who = {"actor": actor, "actor_label": label}
        getattr(self, "_" + action)(o)

    def _add(self, o):
        with ServiceCall({"keep_copy": "--keep-copy"}):
            alias = services.alias_create(
                address=o["address"],
                targets=o["targets"],
                keep_copy=o["keep_copy"],
                description=o["description"],
                **self.who,
            )
        copy = f", keeping a copy in the mailbox {alias.address}" if alias.keep_copy else ""
        self.stdout.write(f"Created {alias.address} -> {', '.join(alias.target_list)}{copy}.")
        warn_plus(self, alias.address)

    def _update(self, o):
        alias = find_alias(o["address"])
        if o["targets"] is None and o["active"] is None:
            raise CommandError("nothing to change: give --target or --active/--inactive.")
        with ServiceCall():
            services.alias_update(alias=alias, targets=o["targets"], is_active=o["active"], **self.who)
        self.stdout.write(f"Updated {alias.address}.")

    def _visible(self):
        """The aliases the actor may see; refused (non-zero exit) without the permission to view aliases."""
        with ServiceCall({"__all__": "--as"}):
            return aliases_for(self.who["actor"])

    def _list(self, o):
        qs = self._visible()
        if o["domain"] is not None:
            qs = qs.filter(domain__name=domain_argument(o["domain"]))
        rows = [alias_data(a) for a in qs]
        if o["json"]:
            return print_json(self, rows)
        for r in rows:
            flags = (" (keeps a copy)" if r["keep_copy"] else "") + ("" if r["active"] else " (inactive)")
            self.stdout.write(f"{r['address']:45} -> {', '.join(r['targets'])}{flags}")

    def _show(self, o):
        data = alias_data(find_alias(o["address"], self._visible()))
        print_record(self, data, o["json"])

    def _remove(self, o):
        alias = find_alias(o["address"])
        with ServiceCall():
            services.alias_remove(alias=alias, **self.who)
        self.stdout.write(f"Removed {alias.address}.")
