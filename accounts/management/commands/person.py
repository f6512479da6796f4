"""Operator commands for people when the admin is out of reach (a lost phone, a locked-out administrator)."""

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from accounts.authz import add_actor_argument, command_actor, command_actor_label
from accounts.models import LoginThrottle, User, normalize_email
from dockspace.validation import error_text

ACTOR = "manage.py person"
FIELDS = {"user": "email", "is_active": "email"}


class Command(BaseCommand):
    help = (
        "Look after people from the shell. `person list [--json]` lists everyone; `person reset-2fa EMAIL` "
        "removes their TOTP devices and backup codes (they sign in with the password alone, then enrol "
        "again); `person unlock EMAIL` clears their sign-in lockout; `person sign-out EMAIL` ends every "
        "browser session they have; `person deactivate EMAIL` switches them off (no sign-in to Dockspace, mail or "
        "apps; their sessions and app tokens end for good) and `person activate EMAIL` switches them back on "
        "(they sign in afresh). Every change is audited. Acts as the host; `--as EMAIL` acts with that "
        "staff member's permissions instead (who may act on whom: docs/security.md)."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        listing = sub.add_parser("list", help="List people.")
        listing.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
        for name, text in [
            ("reset-2fa", "Remove every second factor of a person."),
            ("unlock", "Clear a person's sign-in lockout."),
            ("sign-out", "Revoke every browser session of a person."),
            ("deactivate", "Switch a person off: no sign-in anywhere; their sessions and app tokens end."),
            ("activate", "Switch a person back on; they sign in afresh."),
        ]:
            sub.add_parser(name, help=text).add_argument("email", help="The person's email address.")
        for parser in sub.choices.values():
            add_actor_argument(parser)

    def handle(self, *args, action, **options):
        actor = command_actor(options)
        if action == "list":
            return self._list(options["json"])
        email = normalize_email(options["email"])
        user = User.objects.filter(email=email).first()
        if user is None:
            raise CommandError(f"email: no person has the address {email!r}.")
        who = {"actor": actor, "actor_label": command_actor_label(ACTOR, actor)}
        try:
            self._act(action, email, user, who)
        except ValidationError as e:
            # Every refusal here is about the person EMAIL names, whatever model field the service names.
            raise CommandError(error_text(e, FIELDS)) from None

    def _act(self, action, email, user, who):
        if action == "reset-2fa":
            services.second_factor_reset(user=user, **who)
            self.stdout.write(f"Removed every second factor of {email}.")
        elif action == "unlock":
            count = services.lockouts_clear(
                throttles=LoginThrottle.objects.filter(scope=LoginThrottle.SCOPE_ACCOUNT, key=email), **who
            )
            self.stdout.write(f"Cleared {count} lockout(s) of {email}.")
        elif action == "sign-out":
            count = services.sessions_revoke_all(user=user, **who)
            self.stdout.write(f"Revoked {count} session(s) of {email}.")
        elif action == "deactivate":
            was_active = user.is_active
            count = services.person_deactivate(user=user, **who)
            state = "Deactivated" if was_active else "Already inactive:"
            self.stdout.write(f"{state} {email}; ended {count} browser session(s) and app token(s).")
        elif action == "activate":
            pending = user.is_pending_registration
            if not services.person_activate(user=user, **who):
                self.stdout.write(f"{email} was already active.")
            elif pending:
                self.stdout.write(
                    f"Activated {email}, ending their pending registration: the password they chose at sign-up "
                    "was removed, so send them a reset link."
                )
            else:
                self.stdout.write(f"Activated {email}; they sign in afresh.")

    def _list(self, as_json):
        rows = [
            {
                "email": u.email,
                "name": u.full_name,
                "uuid": str(u.uuid),
                "staff": u.is_staff,
                "active": u.is_active,
                "totp": TOTPDevice.objects.filter(user=u, confirmed=True).exists(),
            }
            for u in User.objects.order_by("email")
        ]
        if as_json:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        for row in rows:
            flags = ",".join(k for k in ("staff", "totp") if row[k]) + ("" if row["active"] else ",inactive")
            self.stdout.write(f"{row['email']:40} {row['name'][:30]:30} {flags.strip(',')}")
