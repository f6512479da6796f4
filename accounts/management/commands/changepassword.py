"""Django's changepassword, audited, and ending the person's sessions like every other password change."""

from django.contrib.auth.management.commands import changepassword

from accounts import services
from accounts.models import User, normalize_email


class Command(changepassword.Command):
    help = "Set a person's password (asked twice on the terminal). Audited; the person's sessions end."

    def handle(self, *args, **options):
        result = super().handle(*args, **options)
        user = User.objects.get(email=normalize_email(options.get("username") or ""))
        services.password_changed(
            user=user, how="Password set with manage.py changepassword.", actor_label="manage.py changepassword"
        )
        services.sessions_revoke_all(user=user, actor_label="manage.py changepassword")
        return result
