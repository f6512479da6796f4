"""manage.py domain add|list|show|update|remove."""

from django.core.management.base import BaseCommand, CommandError

from dockspace.commandline import ServiceCall, not_found, print_json, print_record
from dockspace.validation import error_text
from mail import services
from mail.addresses import normalize_domain
from mail.commandline import quota_argument
from mail.models import Domain, Tier
from mail.quota import format_quota

ACTOR = "manage.py domain"
# The services name model fields; the operator typed these options.
OPTIONS = {"tier": "--tier", "default_quota": "--default-quota"}


def domain_data(domain):
    return {
        "name": domain.name,
        "unicode_name": domain.unicode_name,
        "active": domain.is_active,
        "tier": domain.tier.name if domain.tier else None,
        "default_quota": format_quota(domain.default_quota) if domain.default_quota is not None else None,
        "mailboxes": domain.mailboxes.count(),
        "aliases": domain.aliases.count(),
        "dkim_selectors": list(domain.dkim_keys.exclude(state="retired").values_list("selector", flat=True)),
    }


def find_domain(name):
    from django.core.exceptions import ValidationError

    try:
        name = normalize_domain(name, "NAME")
    except ValidationError as e:
        raise CommandError(error_text(e)) from None
    domain = Domain.objects.select_related("tier").filter(name=name).first()
    if domain is None:
        raise not_found("NAME", "managed domain", name)
    return domain


def find_tier(name, instead="leave --tier out for no tier"):
    if name is None:
        return None
    if not name.strip():
        raise CommandError(f"--tier: a tier name cannot be empty; {instead}.")
    tier = Tier.objects.filter(name=name).first()
    if tier is None:
        names = ", ".join(Tier.objects.values_list("name", flat=True)) or "none yet; add one in the admin"
        raise CommandError(f"--tier: no tier named {name!r} (tiers: {names}).")
    return tier


class Command(BaseCommand):
    help = (
        "Manage mail domains. `domain add example.com [--tier T] [--default-quota 5G]` starts managing a "
        "domain; `domain list [--json]`, `domain show NAME [--json]`; `domain update NAME [--tier T|--no-tier] "
        "[--default-quota Q|--no-default-quota] [--active|--inactive]`; `domain remove NAME` (only an empty "
        "domain). Quotas: a whole number with B, k, M, G or T (binary units), or 0 for no limit."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = sub.add_parser("add", help="Start managing a domain.")
        add.add_argument("name")
        add.add_argument("--tier")
        add.add_argument("--default-quota")
        add.add_argument("--inactive", action="store_true", help="Add it switched off (nothing written to DMS).")
        listing = sub.add_parser("list", help="List domains.")
        listing.add_argument("--json", action="store_true")
        show = sub.add_parser("show", help="Show one domain.")
        show.add_argument("name")
        show.add_argument("--json", action="store_true")
        update = sub.add_parser("update", help="Change a domain.")
        update.add_argument("name")
        update.add_argument("--tier")
        update.add_argument("--no-tier", action="store_true")
        update.add_argument("--default-quota")
        update.add_argument("--no-default-quota", action="store_true")
        update.add_argument("--active", dest="active", action="store_true", default=None)
        update.add_argument("--inactive", dest="active", action="store_false")
        remove = sub.add_parser("remove", help="Stop managing an empty domain.")
        remove.add_argument("name")

    def handle(self, *args, action, **o):
        getattr(self, "_" + action)(o)

    def _add(self, o):
        with ServiceCall(OPTIONS):
            domain = services.domain_create(
                name=o["name"],
                tier=find_tier(o["tier"]),
                default_quota=quota_argument(o["default_quota"], "--default-quota"),
                is_active=not o["inactive"],
                actor_label=ACTOR,
            )
        self.stdout.write(f"Added {domain.name}.")

    def _list(self, o):
        rows = [domain_data(d) for d in Domain.objects.select_related("tier")]
        if o["json"]:
            return print_json(self, rows)
        for r in rows:
            flags = "" if r["active"] else " (inactive)"
            # International names in both forms: the punycode DMS uses, and the name people know.
            name = r["name"] if r["unicode_name"] == r["name"] else f"{r['name']} ({r['unicode_name']})"
            self.stdout.write(
                f"{name:40} {r['mailboxes']:6} mailboxes {r['aliases']:6} aliases  tier {r['tier'] or '-'}{flags}"
            )

    def _show(self, o):
        data = domain_data(find_domain(o["name"]))
        print_record(self, data, o["json"])

    def _update(self, o):
        domain = find_domain(o["name"])
        changes = {}
        if o["tier"] is not None and o["no_tier"]:
            raise CommandError("--tier and --no-tier cannot be used together.")
        if o["tier"] is not None:
            changes["tier"] = find_tier(o["tier"], "--no-tier takes the domain off its tier")
        if o["no_tier"]:
            changes["tier"] = None
        if o["default_quota"] is not None:
            changes["default_quota"] = quota_argument(o["default_quota"], "--default-quota")
        if o["no_default_quota"]:
            changes["default_quota"] = None
        if o["active"] is not None:
            changes["is_active"] = o["active"]
        if not changes:
            raise CommandError("nothing to change: give --tier, --no-tier, --default-quota, --active or --inactive.")
        with ServiceCall(OPTIONS):
            services.domain_update(domain=domain, actor_label=ACTOR, **changes)
        self.stdout.write(f"Updated {domain.name}.")

    def _remove(self, o):
        domain = find_domain(o["name"])
        with ServiceCall():
            services.domain_remove(domain=domain, actor_label=ACTOR)
        self.stdout.write(f"Removed {domain.name}.")
