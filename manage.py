#!/usr/bin/env python
"""Django's command-line utility for Dockspace."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockspace.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - load settings now, to report bad configuration plainly
    except ImproperlyConfigured as exc:
        sys.exit(f"Dockspace configuration error: {exc}")
    from django.db import DatabaseError

    try:
        execute_from_command_line(sys.argv)
    except DatabaseError as exc:
        # Typically a command run before the first `make run` / `manage.py migrate`: say so, no traceback.
        hint = (
            " Run `make run` once (or `manage.py migrate`) first."
            if "no such table" in str(exc) or ("does not exist" in str(exc))
            else ""
        )
        if "unable to open database file" in str(exc):
            folder = os.path.dirname(str(settings.DATABASES["default"]["NAME"]))
            hint = f" SQLite cannot create its file in {folder}: mkdir -m 0700 -p {folder}, or fix DATABASE_URL."
        sys.exit(f"Dockspace database error: {str(exc).strip().splitlines()[0]}.{hint}")


if __name__ == "__main__":
    main()
