"""Django's createsuperuser, with the new administrator recorded in the audit log."""

import os

from django.contrib.auth.management.commands import createsuperuser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from accounts.audit import audit
from accounts.first_run import setup_code_forget
from accounts.models import User


class Command(createsuperuser.Command):
    help = "Create an administrator (email address and password). The creation is audited."

    def handle(self, *args, **options):
        if not options.get("interactive", True):
            self._check_noinput_values()
        before = set(User.objects.values_list("pk", flat=True))
        super().handle(*args, **options)
        for user in User.objects.exclude(pk__in=before):
            audit(
                "user.create",
                actor_label="manage.py createsuperuser",
                target=user,
                description="Created administrator with manage.py createsuperuser.",
            )
        if User.objects.exists():
            setup_code_forget()  # the first-run page is gone, and its one-time code with it

    def _check_noinput_values(self):
        """Django checks the password rules only when it asks on a terminal; --noinput takes
        DJANGO_SUPERUSER_PASSWORD as is. The same rules apply to every way a password is set."""
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if password is None:
            return
        try:
            validate_password(password, User(email=os.environ.get("DJANGO_SUPERUSER_EMAIL", "")))
        except ValidationError as e:
            raise CommandError("DJANGO_SUPERUSER_PASSWORD: " + " ".join(e.messages)) from None
