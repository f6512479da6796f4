"""The test extension's own rows (no migrations: Django creates the table in the test database)."""

from django.db import models


class BlockedHelo(models.Model):
    """A HELO/EHLO name that Postfix refuses: one line of postfix-helo-access.cf (its DMS file)."""

    name = models.CharField(max_length=253, unique=True)

    def __str__(self):
        return self.name
