"""manage.py oidc_client add|list|show|update|remove|rotate-secret: the apps people sign into with Dockspace."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.authz import add_actor_argument, command_actor, command_actor_label
from dockspace.commandline import not_found, print_json, print_record
from dockspace.validation import error_text
from oidc import services
from oidc.models import Application
from oidc.scopes import KNOWN_SCOPES

ACTOR = "manage.py oidc_client"
DISCOVERY_PATH = "/.well-known/openid-configuration"
CLIENT_ID_HELP = "The client's id, as `manage.py oidc_client list` shows it."

# The option an operator changes to fix a problem the services report on a model field.
OPTION_OF_FIELD = {
    "name": "--name",
    "redirect_uris": "--redirect-uri",
    "post_logout_redirect_uris": "--post-logout-redirect-uri",
    "allowed_scopes": "--scope",
    "allowed_groups": "--group",
    "requires_totp": "--require-totp",
    "requires_pkce": "--no-pkce",
    "skip_authorization": "--skip-consent",
    "client_type": "--public",
    "authorization_grant_type": "--client-credentials",
    "client_secret": "CLIENT_ID",
}


def refused(error, options=None):
    """A CommandError naming the option at fault and the rule, one line per problem."""
    return CommandError(error_text(error, {**OPTION_OF_FIELD, **(options or {})}))


def issuer():
    return settings.OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"].rstrip("/")


def client_data(app):
    """Everything about a client an operator or an app's configuration needs, except its secret."""
    return {
        "name": app.name,
        "client_id": app.client_id,
        "client_type": app.client_type,
        "grant_type": app.authorization_grant_type.replace("-", "_"),
        "redirect_uris": app.redirect_uris.split(),
        "post_logout_redirect_uris": app.post_logout_redirect_uris.split(),
        "scopes": app.allowed_scopes.split(),
        "groups": sorted(g.name for g in app.allowed_groups.all()),
        "requires_totp": app.requires_totp,
        "requires_pkce": app.requires_pkce,
        "skip_consent": app.skip_authorization,
        "skip_consent_for_mail": app.mail_consent_waived,
        "is_active": app.is_active,
        "has_secret": app.client_type == Application.CLIENT_CONFIDENTIAL,
        "created": app.created.isoformat(),
        "updated": app.updated.isoformat(),
        "issuer": issuer(),
        "discovery_url": issuer() + DISCOVERY_PATH,
    }


def consent_text(data):
    if "mail" not in data["scopes"] or data["skip_consent_for_mail"]:
        return "skipped (first-party app)"
    return "skipped, except for mail until a superuser approves (oidc_client update CLIENT_ID --skip-consent)"


def yes_no(value):
    return "yes" if value else "no"


def client_lines(app):
    """`show`: the record as aligned lines an operator reads."""
    data = client_data(app)
    for_people = data["grant_type"] == "authorization_code"
    return {
        "name": data["name"],
        "client id": data["client_id"],
        "type": data["client_type"],
        "grant": data["grant_type"],
        "client secret": "stored hashed, never shown again (rotate-secret issues a new one)"
        if data["has_secret"]
        else "none (public client: PKCE instead)",
        "redirect URIs": data["redirect_uris"] or "-",
        "post-logout URIs": data["post_logout_redirect_uris"] or "-",
        "scopes": data["scopes"],
        "groups": data["groups"] or "everyone with an account",
        "requires TOTP": yes_no(data["requires_totp"]) if for_people else "- (signs nobody in)",
        "requires PKCE": yes_no(data["requires_pkce"]) if for_people else "- (signs nobody in)",
        "consent": (consent_text(data) if data["skip_consent"] else "asked once per person")
        if for_people
        else "- (signs nobody in)",
        "active": yes_no(data["is_active"]),
        "created": data["created"],
        "updated": data["updated"],
        "issuer": data["issuer"],
        "discovery URL": data["discovery_url"],
    }


def find_client(client_id):
    clients = Application.objects.prefetch_related("allowed_groups")
    # The client id, or the client's name (names are unique), as an operator would type it.
    app = clients.filter(client_id=client_id).first() or clients.filter(name__iexact=client_id.strip()).first()
    if app is None:
        raise not_found("CLIENT_ID", "OIDC client", client_id)
    return app


def scope_list(value):
    """--scope accepts 'openid profile' as well as one scope per option."""
    return value.replace(",", " ").split()


class Command(BaseCommand):
    help = (
        "Manage OIDC clients: the apps (Grafana, Nextcloud, a wiki...) whose people sign in with Dockspace, and "
        "automation clients using client credentials. `oidc_client add --name NAME --redirect-uri URI` prints the "
        "client id and secret ONCE plus the issuer/discovery URL to paste into the app; `list`, `show CLIENT_ID`, "
        "`update CLIENT_ID ...`, `rotate-secret CLIENT_ID` (prints a new secret once), `remove CLIENT_ID --yes` "
        "(revokes its tokens). Run `manage.py oidc_client ACTION --help` for an action's options. Acts as the host; "
        "`--as EMAIL` acts with that staff member's permissions (a client allowed the mail or introspection scope "
        "is set up by a superuser only: docs/security.md)."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        add = sub.add_parser(
            "add",
            help="Register an app. Prints its client id, its secret (once: it is stored hashed) and the discovery URL.",
        )
        add.add_argument("--name", required=True, help="What people see on the consent page, e.g. Grafana.")
        add.add_argument(
            "--redirect-uri",
            action="append",
            default=[],
            dest="redirect_uris",
            metavar="URI",
            help="The app's callback URL, matched exactly. https:// only (http:// only on 127.0.0.1 or [::1]). "
            "Repeat for several; needed unless --client-credentials.",
        )
        add.add_argument(
            "--post-logout-redirect-uri",
            action="append",
            default=[],
            dest="post_logout_redirect_uris",
            metavar="URI",
            help="Where the app may send people after signing them out (exact match). Repeatable.",
        )
        add.add_argument(
            "--public",
            action="store_true",
            help="A client that cannot keep a secret (single-page or native app): no secret, PKCE always.",
        )
        add.add_argument(
            "--require-totp", action="store_true", help="People must prove a second factor (TOTP) to sign in."
        )
        add.add_argument(
            "--group",
            action="append",
            default=[],
            dest="groups",
            metavar="NAME",
            help="Only members of this group may sign in (repeat for several; any one suffices). "
            "Default: everyone with an account. Groups are made with `manage.py group add`.",
        )
        add.add_argument(
            "--skip-consent",
            action="store_true",
            help="First-party app: do not ask people to allow it (they are asked once otherwise).",
        )
        add.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            metavar="SCOPE",
            help=f"A scope the app may ask for (repeatable). Known: {' '.join(KNOWN_SCOPES)}. "
            "Default: openid profile email groups; a client-credentials client needs --scope introspection.",
        )
        add.add_argument(
            "--client-credentials",
            action="store_true",
            help="An automation client that acts for itself (no person, no redirect URI), e.g. to introspect tokens.",
        )
        add.add_argument(
            "--no-pkce",
            action="store_true",
            help="Let a confidential app that cannot do PKCE sign in without it (not allowed with --public).",
        )
        add.add_argument("--json", action="store_true", help="Print one JSON object (the secret included, once).")

        listing = sub.add_parser("list", help="List the clients: name, client id, type, TOTP, groups, consent, active.")
        listing.add_argument("--json", action="store_true", help="Print a JSON list.")

        show = sub.add_parser("show", help="Show one client's settings and discovery URL (never its secret).")
        show.add_argument("client_id", metavar="CLIENT_ID", help=CLIENT_ID_HELP)
        show.add_argument("--json", action="store_true", help="Print one JSON object.")

        update = sub.add_parser(
            "update",
            help="Change a client. Repeated options (--redirect-uri, --scope, --group, ...) REPLACE the current list.",
        )
        update.add_argument("client_id", metavar="CLIENT_ID", help=CLIENT_ID_HELP)
        update.add_argument("--name", help="A new display name.")
        update.add_argument(
            "--redirect-uri",
            action="append",
            dest="redirect_uris",
            metavar="URI",
            help="The callback URLs from now on (repeat for several; replaces the current ones).",
        )
        update.add_argument(
            "--post-logout-redirect-uri",
            action="append",
            dest="post_logout_redirect_uris",
            metavar="URI",
            help="The post-logout URLs from now on (repeatable; replaces the current ones).",
        )
        update.add_argument(
            "--no-post-logout-redirect-uris", action="store_true", help="Remove every post-logout redirect URI."
        )
        update.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            metavar="SCOPE",
            help=f"The scopes from now on (repeatable; replaces the current ones). Known: {' '.join(KNOWN_SCOPES)}.",
        )
        update.add_argument(
            "--group",
            action="append",
            dest="groups",
            metavar="NAME",
            help="Only members of these groups may sign in from now on (repeatable; replaces the current ones).",
        )
        update.add_argument("--everyone", action="store_true", help="Remove the group gate: everyone may sign in.")
        totp = update.add_mutually_exclusive_group()
        totp.add_argument(
            "--require-totp", action="store_const", const=True, dest="requires_totp", help="Require a second factor."
        )
        totp.add_argument(
            "--no-require-totp", action="store_const", const=False, dest="requires_totp", help="Password suffices."
        )
        consent = update.add_mutually_exclusive_group()
        consent.add_argument(
            "--skip-consent", action="store_const", const=True, dest="skip_consent", help="Do not ask people."
        )
        consent.add_argument(
            "--ask-consent", action="store_const", const=False, dest="skip_consent", help="Ask each person once."
        )
        pkce = update.add_mutually_exclusive_group()
        pkce.add_argument("--pkce", action="store_const", const=True, dest="requires_pkce", help="Require PKCE.")
        pkce.add_argument(
            "--no-pkce",
            action="store_const",
            const=False,
            dest="requires_pkce",
            help="Let a confidential app sign in without PKCE.",
        )
        active = update.add_mutually_exclusive_group()
        active.add_argument(
            "--activate", action="store_const", const=True, dest="is_active", help="Let the client work again."
        )
        active.add_argument(
            "--deactivate",
            action="store_const",
            const=False,
            dest="is_active",
            help="Stop sign-ins and refuse its tokens, without deleting it.",
        )

        remove = sub.add_parser(
            "remove",
            help="Delete a client and revoke every token it holds. Needs --yes (the command never asks interactively).",
        )
        remove.add_argument("client_id", metavar="CLIENT_ID", help=CLIENT_ID_HELP)
        remove.add_argument("--yes", action="store_true", help="Confirm the removal.")

        rotate = sub.add_parser(
            "rotate-secret",
            help="Issue a new secret, printed once; the old one stops working at once (issued tokens live on "
            "until they expire). Update the app's configuration right after.",
        )
        rotate.add_argument("client_id", metavar="CLIENT_ID", help=CLIENT_ID_HELP)
        rotate.add_argument("--json", action="store_true", help="Print one JSON object with the new secret.")
        for parser_ in (add, update, remove, rotate):
            add_actor_argument(parser_)

    def handle(self, *args, action, **options):
        actor = command_actor(options)
        self.who = {"actor": actor, "actor_label": command_actor_label(ACTOR, actor)}
        getattr(self, "_" + action.replace("-", "_"))(options)

    def _add(self, o):
        try:
            app, secret = services.client_create(
                name=o["name"],
                redirect_uris=o["redirect_uris"],
                post_logout_redirect_uris=o["post_logout_redirect_uris"],
                public=o["public"],
                requires_totp=o["require_totp"],
                groups=o["groups"],
                skip_consent=o["skip_consent"],
                scopes=[s for value in o["scopes"] for s in scope_list(value)] if o["scopes"] else None,
                client_credentials=o["client_credentials"],
                requires_pkce=not o["no_pkce"],
                **self.who,
            )
        except ValidationError as e:
            raise refused(e) from None
        self._print_secret(app, secret, o["json"], f"Created OIDC client {app.name}.")

    def _print_secret(self, app, secret, as_json, headline):
        data = client_data(app)
        if as_json:
            return print_json(self, {"client_id": app.client_id, "client_secret": secret, **data})
        self.stdout.write(headline)
        lines = {"client id": app.client_id, "client secret": secret or "none (public client: it uses PKCE)"}
        lines.update({"issuer": data["issuer"], "discovery URL": data["discovery_url"]})
        if data["redirect_uris"]:
            lines["redirect URIs"] = data["redirect_uris"]
        print_record(self, lines, False)
        if secret:
            self.stdout.write(
                "Copy the client secret now: it is stored hashed and is never shown again. "
                f"`manage.py oidc_client rotate-secret {app.client_id}` issues a new one."
            )

    def _list(self, o):
        apps = list(Application.objects.order_by("name", "client_id").prefetch_related("allowed_groups"))
        rows = [client_data(app) for app in apps]
        if o["json"]:
            return print_json(self, rows)
        if not rows:
            self.stdout.write(
                "No OIDC clients. Add one with `manage.py oidc_client add --name NAME --redirect-uri URI`."
            )
            return
        table = [("NAME", "CLIENT ID", "TYPE", "TOTP", "GROUPS", "CONSENT", "ACTIVE")]
        for r in rows:
            if r["grant_type"] == "client_credentials":
                table.append((r["name"], r["client_id"], "client-credentials", "-", "-", "-", yes_no(r["is_active"])))
                continue
            table.append(
                (
                    r["name"],
                    r["client_id"],
                    r["client_type"],
                    yes_no(r["requires_totp"]),
                    ",".join(r["groups"]) or "everyone",
                    "skipped" if r["skip_consent"] else "asked",
                    yes_no(r["is_active"]),
                )
            )
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())

    def _show(self, o):
        app = find_client(o["client_id"])
        if o["json"]:
            return print_json(self, client_data(app))
        print_record(self, client_lines(app), False)

    def _update(self, o):
        app = find_client(o["client_id"])
        if o["groups"] and o["everyone"]:
            raise CommandError("--everyone: cannot be used with --group; --group alone replaces the groups.")
        if any(not name.strip() for name in o["groups"] or []):
            raise CommandError("--group: a group name cannot be empty; --everyone removes the group gate.")
        if o["post_logout_redirect_uris"] and o["no_post_logout_redirect_uris"]:
            raise CommandError("--no-post-logout-redirect-uris: cannot be used with --post-logout-redirect-uri.")
        changes = {
            "name": o["name"],
            "redirect_uris": o["redirect_uris"],
            "post_logout_redirect_uris": [] if o["no_post_logout_redirect_uris"] else o["post_logout_redirect_uris"],
            "scopes": [s for value in o["scopes"] for s in scope_list(value)] if o["scopes"] else None,
            "groups": [] if o["everyone"] else o["groups"],
            "requires_totp": o["requires_totp"],
            "requires_pkce": o["requires_pkce"],
            "skip_consent": o["skip_consent"],
            "is_active": o["is_active"],
        }
        if all(value is None for value in changes.values()):
            raise CommandError(
                "nothing to change: give --name, --redirect-uri, --post-logout-redirect-uri, --scope, --group, "
                "--everyone, --[no-]require-totp, --skip-consent/--ask-consent, --[no-]pkce or --activate/--deactivate."
            )
        try:
            services.client_update(application=app, **self.who, **changes)
        except ValidationError as e:
            raise refused(e) from None
        self.stdout.write(f"Updated OIDC client {changes['name'] or app.name} ({app.client_id}).")

    def _remove(self, o):
        app = find_client(o["client_id"])
        if not o["yes"]:
            raise CommandError(
                f"--yes: removing {app.name} ({app.client_id}) deletes it and revokes every token it holds, so "
                "people are signed out of it. Run again with --yes to confirm."
            )
        try:
            services.client_remove(application=app, **self.who)
        except ValidationError as e:
            raise refused(e) from None
        self.stdout.write(f"Removed OIDC client {app.name} ({o['client_id']}); its tokens are revoked.")

    def _rotate_secret(self, o):
        app = find_client(o["client_id"])
        try:
            secret = services.client_rotate_secret(application=app, **self.who)
        except ValidationError as e:
            raise refused(e, {"client_type": "CLIENT_ID"}) from None
        self._print_secret(
            app, secret, o["json"], f"New secret for {app.name}; the old one no longer works. Put this one in the app."
        )
