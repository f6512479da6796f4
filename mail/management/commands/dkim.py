"""manage.py dkim generate|rotate|show|retire."""

from django.core.management.base import BaseCommand, CommandError

from dockspace.commandline import ServiceCall, print_json
from mail import services
from mail.commandline import acting_as, add_actor_argument
from mail.dkim import dns_record_value, split_txt_for_dns
from mail.management.commands.domain import find_domain
from mail.models import DkimKey

ACTOR = "manage.py dkim"


def key_data(key):
    return {
        "selector": key.selector,
        "state": key.state,
        "algorithm": key.algorithm,
        "bits": key.bits or None,
        "dns_name": f"{key.selector}._domainkey.{key.domain.name}",
        "dns_type": "TXT",
        "dns_value": dns_record_value(key.algorithm, key.public_key_b64),
        "created_at": key.created_at.isoformat(),
    }


class Command(BaseCommand):
    help = (
        "DKIM keys. `dkim generate DOMAIN [--selector mail] [--algorithm rsa|ed25519] [--bits 2048]` creates the "
        "signing key and prints the TXT record to publish; `dkim rotate DOMAIN` makes a new key (new selector) "
        "sign from now on and keeps the old one published until you `dkim retire DOMAIN SELECTOR` (wait a few "
        "days so mail signed with it still verifies); `dkim show DOMAIN [--json]` prints every record that must "
        "be in DNS. Private keys are never printed. With DMS's OpenDKIM, recreate the mailserver container after a "
        "change (`docker compose up -d --force-recreate mailserver`, or `manage.py mailhost recreate NAME`): a "
        "restart does not apply it. generate, rotate and retire act as the host; `--as EMAIL` acts with that staff "
        "member's permissions (change domains for generate and rotate, change DKIM keys for retire)."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        for name, text in [("generate", "Create the first key."), ("rotate", "Replace the signing key.")]:
            p = sub.add_parser(name, help=text)
            p.add_argument("domain")
            p.add_argument("--selector")
            p.add_argument("--algorithm", choices=["rsa", "ed25519"])
            p.add_argument("--bits", type=int, choices=[1024, 2048, 3072, 4096])
            p.add_argument("--json", action="store_true")
            add_actor_argument(p)
        show = sub.add_parser("show", help="Print the DNS records to publish.")
        show.add_argument("domain")
        show.add_argument("--json", action="store_true")
        retire = sub.add_parser("retire", help="Stop publishing a rotated-out key.")
        retire.add_argument("domain")
        retire.add_argument("selector")
        retire.add_argument(
            "--force",
            action="store_true",
            help="Retire even when Dockspace cannot see the new selector in DNS (you checked it yourself).",
        )
        add_actor_argument(retire)

    def handle(self, *args, action, **o):
        actor, label = acting_as(o, ACTOR)  # show has no --as: the host
        domain = find_domain(o["domain"])
        if action in ("generate", "rotate"):
            service = services.dkim_generate if action == "generate" else services.dkim_rotate
            with ServiceCall({"selector": "--selector"}):
                key = service(
                    domain=domain,
                    selector=o["selector"],
                    algorithm=o["algorithm"],
                    bits=o["bits"],
                    actor=actor,
                    actor_label=label,
                )
            self._print([key], o["json"], intro=f"New DKIM key for {domain.name}; publish:")
            if not o["json"]:
                # OpenDKIM takes the new key only in a new container: that, not this command, is when signing
                # switches. Mail signed before the record is visible in DNS fails DKIM at receivers.
                name = f"{key.selector}._domainkey.{domain.name}"
                self.stdout.write(
                    f"Next: publish it, wait until `dig +short TXT {name}` shows it (every DNS server of the domain), "
                    "then recreate the mailserver container: only then does mail carry the new signature."
                )
                if action == "rotate":
                    self.stdout.write(
                        "The old selector stays published: once mail signed with it has been delivered (a few days), "
                        f"`manage.py dkim retire {domain.name} SELECTOR` removes it."
                    )
            return
        if action == "retire":
            key = domain.dkim_keys.filter(selector=o["selector"]).first()
            if key is None:
                raise CommandError(f"selector: {domain.name} has no DKIM key with selector {o['selector']!r}.")
            with ServiceCall():
                services.dkim_retire(key=key, actor=actor, actor_label=label, force=o["force"])
            self.stdout.write(f"Retired {key}; remove its TXT record from DNS.")
            return
        keys = list(domain.dkim_keys.exclude(state=DkimKey.RETIRED).select_related("domain"))
        if not keys:
            raise CommandError(f"domain: {domain.name} has no DKIM key; run `manage.py dkim generate {domain.name}`.")
        self._print(keys, o["json"], intro=f"DNS records for {domain.name}:")

    def _print(self, keys, as_json, intro):
        rows = [key_data(k) for k in keys]
        if as_json:
            return print_json(self, rows if len(rows) > 1 or intro.startswith("DNS") else rows[0])
        self.stdout.write(intro)
        for r in rows:
            # One zone-file string holds at most 255 bytes and an RSA 2048 value is longer: write it as
            # several strings on the line, which DNS joins back (--json has the value in one piece).
            strings = " ".join(f'"{part}"' for part in split_txt_for_dns(r["dns_value"]))
            self.stdout.write(f"{r['dns_name']}. IN TXT {strings}   ({r['state']})")
