"""manage.py dnsbl_list add|list|update|remove: manage the blocklists as the admin does."""

import json

from django.core.management.base import BaseCommand, CommandError

from accounts import authz
from accounts.authz import add_actor_argument, command_actor, command_actor_label
from deliverability import dnsbl_keys, dnsbl_lists
from deliverability.models import Dnsbl
from dockspace.commandline import ServiceCall, describe_actions, print_json

ACTOR = "manage.py dnsbl_list"


def list_data(d):
    return {
        "name": d.name,
        "zone": d.zone,
        "kind": d.kind,
        "action": d.action,
        "listed_codes": d.listed_codes,
        "alert_only_codes": d.alert_only_codes,
        "key_zone": d.key_zone,
        "access_key": dnsbl_keys.key_state(d.access_key_env, d.access_key_encrypted),
        "removal_url": d.removal_url,
        "test_point": d.test_point,
        "enabled": d.is_enabled,
        "health": d.health,
        "health_reason": d.health_reason,
        "health_checked_at": d.health_checked_at.isoformat() if d.health_checked_at else None,
    }


def _codes(text):
    try:
        return json.loads(text)
    except ValueError:
        raise CommandError('--codes: JSON such as \'{"127.0.0.2": "listed"}\'.') from None


class Command(BaseCommand):
    help = (
        "Manage the blocklists (DNSBLs) the sweep asks: `list` (with health), `add NAME ZONE --codes JSON`, "
        "`update NAME [...]`, `remove NAME`. --action standby rests a listed sending IP at once; alert only alerts; "
        "information only shows it. An access key (Spamhaus DQS) is read from stdin with --access-key-stdin "
        "(stored encrypted, never shown) or from a DOCKSPACE_DNSBL_ variable with --access-key-env. Acts as the "
        "host; `--as EMAIL` needs that staff member's blocklist permissions."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action_name", required=True)
        listing = sub.add_parser("list", help="Show every list with its health.")
        listing.add_argument("--json", action="store_true", help="Print the lists as JSON (the key is never shown).")
        add_actor_argument(listing)
        for name, text in (("add", "Add a list."), ("update", "Change a list's settings; what is not given stays.")):
            adding = name == "add"
            p = sub.add_parser(name, help=text, description=text)
            if adding:
                p.add_argument("name", help="What operators call the list, e.g. 'Spamhaus ZEN' (unique).")
                p.add_argument("zone", help="The DNS zone asked, e.g. zen.spamhaus.org (unique).")
            else:
                p.add_argument("name", help="The list to change, by its current name.")
                p.add_argument("--zone", help="A new DNS zone to ask (the list is tested again at the next sweep).")
                p.add_argument("--name", dest="new_name", help="A new name for the list.")
            p.add_argument(
                "--kind",
                choices=["ip", "domain"],
                help="What the list lists: IP addresses or domain names."
                + (" Default: ip." if adding else " Default: unchanged."),
            )
            p.add_argument(
                "--codes",
                help='Listing codes and their meanings as JSON: \'{"127.0.0.2": "SBL"}\'. Codes are inside '
                "127.0.0.0/8 and never an error answer such as 127.0.0.1."
                + (" Required." if adding else " Default: unchanged."),
            )
            p.add_argument(
                "--action",
                dest="list_action",
                choices=["standby", "alert", "information"],
                help="What a listing does: standby rests a listed ACTIVE or WARMING sending IP at once and alerts "
                "(IP lists only); alert only fires the alert; information only shows it in the history."
                + (" Default: alert." if adding else " Default: unchanged."),
            )
            p.add_argument(
                "--removal-url",
                help="The list's delisting page, named in the alert."
                + ("" if adding else " '' removes it. Default: unchanged."),
            )
            p.add_argument(
                "--test-point",
                metavar="NAME_OR_IP",
                help="What the list must answer as listed before its answers are trusted, when it documents its own "
                "permanent test entry: an IP address for an IP list, a domain name for a domain list (e.g. dbltest.com "
                "for the Spamhaus DBL). It is asked under the list's zone (with a key, under the key zone) like any "
                "question; the list must still not list 127.0.0.1 (invalid for a domain list). "
                + (
                    "Default: RFC 5782's, 127.0.0.2 or test."
                    if adding
                    else "'' goes back to RFC 5782's (127.0.0.2 or test). Default: unchanged."
                ),
            )
            p.add_argument(
                "--key-zone",
                help="The zone asked with an access key, e.g. zen.dq.spamhaus.net (queries become "
                "<query>.<key>.<key-zone>); required with a key." + ("" if adding else " Default: unchanged."),
            )
            p.add_argument(
                "--access-key-env",
                metavar="VARIABLE",
                help="Read the access key from this environment variable (its name starts with DOCKSPACE_DNSBL_; "
                "set it in the worker's environment). '' stops reading a variable."
                + ("" if adding else " Default: unchanged."),
            )
            p.add_argument(
                "--access-key-stdin",
                action="store_true",
                help="Read the access key (8 to 64 lower-case letters and digits) from the first line of stdin; "
                "stored encrypted, never shown. A variable named with --access-key-env wins over it."
                + (" Empty stdin (</dev/null) removes the stored key." if not adding else ""),
            )
            switch = p.add_mutually_exclusive_group()
            switch.add_argument(
                "--enable",
                dest="enabled",
                action="store_true",
                default=None,
                help="Ask the list in the sweep." + (" Default for a new list." if adding else ""),
            )
            switch.add_argument(
                "--disable",
                dest="enabled",
                action="store_false",
                help="Stop asking the list; its history and current standings are kept.",
            )
            add_actor_argument(p)
        remove = sub.add_parser("remove", help="Remove a list and its history (--disable keeps the history).")
        remove.add_argument("name", help="The list to remove, by name.")
        add_actor_argument(remove)
        describe_actions(sub)

    def handle(self, *args, action_name, **o):
        actor = command_actor(o)
        label = command_actor_label(ACTOR, actor)
        if action_name == "list":
            with ServiceCall():
                authz.require_perm(actor, dnsbl_lists.VIEW)
            rows = [list_data(d) for d in Dnsbl.objects.all()]
            if o["json"]:
                return print_json(self, rows)
            for r in rows:
                on = "on " if r["enabled"] else "off"
                self.stdout.write(f"{on} {r['name']:22} {r['zone']:28} {r['kind']:6} {r['action']:11} {r['health']}")
            return
        with ServiceCall({"listed_codes": "--codes", "zone": "ZONE", "test_point": "--test-point"}):
            if action_name == "remove":
                dnsbl_lists.dnsbl_remove(
                    dnsbl=dnsbl_lists.dnsbl_visible_to(actor, o["name"], "NAME"), actor=actor, actor_label=label
                )
                self.stdout.write(f"Removed {o['name']}.")
                return
            values = {
                "kind": o.get("kind"),
                "listed_codes": _codes(o["codes"]) if o.get("codes") else None,
                "action": o.get("list_action"),
                "removal_url": o.get("removal_url"),
                "test_point": o.get("test_point"),
                "key_zone": o.get("key_zone"),
                "access_key_env": o.get("access_key_env"),
                "is_enabled": o.get("enabled"),
            }
            values = {k: v for k, v in values.items() if v is not None}
            key = self.stdin_key() if o.get("access_key_stdin") else None
            if action_name == "add":
                d = dnsbl_lists.dnsbl_add(
                    name=o["name"], zone=o["zone"], access_key=key, actor=actor, actor_label=label, **values
                )
                before = None
            else:
                before = dnsbl_lists.dnsbl_visible_to(actor, o["name"], "NAME")
                if o.get("zone"):
                    values["zone"] = o["zone"]
                if o.get("new_name"):
                    values["name"] = o["new_name"]
                d = dnsbl_lists.dnsbl_update(dnsbl=before, access_key=key, actor=actor, actor_label=label, **values)
        point = f", test point {d.test_point}" if d.test_point else ""
        state = "enabled" if d.is_enabled else "disabled"
        self.stdout.write(f"{d.name} ({d.zone}): {d.kind}, {d.action}, {state}{point}.")
        self.stdout.write(f"access key: {dnsbl_keys.key_state(d.access_key_env, d.access_key_encrypted)}")
        for note in _key_notes(before, d, key):
            self.stdout.write(note)

    def stdin_key(self):
        import sys

        return sys.stdin.readline().strip()


def _key_notes(before, after, key):
    """What changed about where the key comes from that the key state alone does not say. A named variable wins over
    the stored key, which dnsbl_update keeps (unused) until it is removed: `--access-key-env ''` goes back to it."""
    variable = after.access_key_env
    if not (variable and after.access_key_encrypted):
        return []
    if key:
        return [f"the key just stored is not used while the key comes from {variable} (--access-key-env '' uses it)"]
    if before is not None and before.access_key_encrypted and not before.access_key_env:
        return [
            f"the stored key is no longer used (it is kept); the key now comes from {variable} "
            "(--access-key-env '' uses the stored key again, --access-key-stdin </dev/null removes it)"
        ]
    return []
