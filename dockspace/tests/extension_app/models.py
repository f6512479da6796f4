"""The test extension's own rows (no migrations: Django creates the table in the test database)."""

from django.db import models


class BlockedHelo(models.Model):
    """A HELO/EHLO name that Postfix refuses: one line of postfix-helo-access.cf (its DMS file)."""

    name = models.CharField(max_length=253, unique=True)

    def __str__(self):
        return self.name


class AlarmSwitch(models.Model):
    """A condition a test turns on and off: the extension's alert kind fires for each switch that is on."""

    name = models.CharField(max_length=100, unique=True)
    is_on = models.BooleanField(default=False)
    value = models.FloatField(null=True, blank=True)

    def __str__(self):
        return self.name
