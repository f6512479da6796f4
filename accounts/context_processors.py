"""Template context shared by every page: the app settings row (site name and policies)."""

from django.db import DatabaseError

from accounts.models import AppSettings


def app_settings(request):
    try:
        return {"app_settings": AppSettings.load()}
    except DatabaseError:
        # Error pages must still render when the database is the problem.
        return {"app_settings": AppSettings()}
