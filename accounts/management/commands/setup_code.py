"""manage.py setup_code [--regenerate] [--if-needed]."""

from django.core.management.base import BaseCommand, CommandError

from accounts.first_run import setup_code_forget, setup_code_issue
from accounts.models import User


class Command(BaseCommand):
    help = (
        "Print the one-time setup code that the first-run page asks for (it creates the first administrator). "
        "--regenerate replaces it with a new one. Once an administrator exists there is no code and the file is "
        "deleted. `make run` and the container run this at every start."
    )

    def add_arguments(self, parser):
        parser.add_argument("--regenerate", action="store_true", help="Replace the code with a new one.")
        parser.add_argument(
            "--if-needed", action="store_true", help="Print nothing (and exit 0) when Dockspace is already set up."
        )

    def handle(self, *args, regenerate=False, if_needed=False, **options):
        from django.conf import settings

        if User.objects.exists():
            setup_code_forget()
            if if_needed:
                return
            if regenerate:
                raise CommandError("setup code: Dockspace is already set up; sign in instead (no code is needed).")
            self.stdout.write("Dockspace is already set up: no setup code is needed.")
            return
        code = setup_code_issue(regenerate=regenerate)
        self.stdout.write(
            f"First run: open {settings.DOCKSPACE_URL}/setup/ and enter the setup code {code} "
            "to create the first administrator."
        )
