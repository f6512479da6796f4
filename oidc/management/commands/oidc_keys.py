"""manage.py oidc_keys list|rotate: the RS256 keys that sign ID tokens, rotated without a restart."""

from django.core.management.base import BaseCommand

from dockspace.commandline import print_json
from oidc import keys, services
from oidc.models import SigningKey

ACTOR = "manage.py oidc_keys"
STATE_ORDER = {SigningKey.ACTIVE: 0, SigningKey.NEXT: 1, SigningKey.RETIRING: 2, SigningKey.RETIRED: 3}


def stamp(moment):
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "-"


def key_data(key, published):
    return {
        "kid": key.kid,
        "state": key.state,
        "published": key.pk in published,
        "created": key.created_at.isoformat(),
        "activated": key.activated_at.isoformat() if key.activated_at else None,
        "published_until": key.publish_until.isoformat() if key.publish_until else None,
    }


def published_until(key, published):
    if key.state in (SigningKey.ACTIVE, SigningKey.NEXT):
        # Both stay published through their signing life and one token lifetime after it.
        return "retirement + token lifetime"
    return stamp(key.publish_until) if key.pk in published else "no longer published"


class Command(BaseCommand):
    help = (
        "The keys that sign ID tokens. `oidc_keys list [--json]` shows each key's kid, state (active: signs now; "
        "next: published in JWKS ahead of its turn; retiring: still published so tokens it signed verify; retired), "
        "and dates. `oidc_keys rotate` makes the next key sign from now on, keeps the old one published until its "
        "tokens have expired and prepares a new next key. No restart is needed; apps pick the new key up from "
        "/.well-known/jwks.json. Rotate regularly, or at once if the database or a backup may have leaked."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        listing = sub.add_parser("list", help="List the signing keys: kid, state, created, activated, published until.")
        listing.add_argument("--json", action="store_true", help="Print a JSON list.")
        rotate = sub.add_parser(
            "rotate", help="Sign with the next key from now on; the old key stays in JWKS until its tokens expire."
        )
        rotate.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, action, **options):
        getattr(self, "_" + action)(options)

    def _list(self, o):
        published = {key.pk for key in keys.published_keys()}
        rows = sorted(SigningKey.objects.all(), key=lambda k: (STATE_ORDER[k.state], -k.created_at.timestamp()))
        if o["json"]:
            return print_json(self, [key_data(key, published) for key in rows])
        if not rows:
            self.stdout.write("No signing keys yet: `manage.py migrate` creates them (so does the first sign-in).")
            return
        table = [("KID", "STATE", "CREATED", "ACTIVATED", "PUBLISHED UNTIL")]
        for key in rows:
            table.append(
                (key.kid, key.state, stamp(key.created_at), stamp(key.activated_at), published_until(key, published))
            )
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())

    def _rotate(self, o):
        old, new = services.signing_key_rotate(actor_label=ACTOR)
        upcoming = SigningKey.objects.get(state=SigningKey.NEXT)
        if o["json"]:
            return print_json(
                self,
                {
                    "active_kid": new.kid,
                    "retiring_kid": old.kid,
                    "retiring_published_until": old.publish_until.isoformat(),
                    "next_kid": upcoming.kid,
                },
            )
        self.stdout.write(f"New active key {new.kid}: ID tokens are signed with it from now on.")
        self.stdout.write(
            f"Old key {old.kid} stays published in JWKS until {stamp(old.publish_until)}, so tokens it signed "
            "still verify."
        )
        self.stdout.write(f"New next key {upcoming.kid} is published ahead of the next rotation. No restart needed.")
