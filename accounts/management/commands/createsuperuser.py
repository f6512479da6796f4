"""Django's createsuperuser, with the new administrator recorded in the audit log."""

from django.contrib.auth.management.commands import createsuperuser

from accounts.audit import audit
from accounts.first_run import setup_code_forget
from accounts.models import User


class Command(createsuperuser.Command):
    help = "Create an administrator (email address and password). The creation is audited."

    def handle(self, *args, **options):
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
