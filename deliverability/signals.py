"""Declared seam: a change to a domain's DKIM keys (generate, rotate, retire: one key saved each) queues a DNS check
of the domain once the change commits, so the admin shows at once whether DNS holds the record to publish."""

from functools import partial

from django.db import transaction
from django.db.models.signals import post_save

from dockspace.celery import queue_task
from mail.models import DkimKey


def _dkim_key_saved(sender, instance, raw=False, **kwargs):
    if raw:  # loaddata
        return
    transaction.on_commit(partial(queue_task, "deliverability.dns_check_domain", instance.domain_id, "dkim"))


def connect():
    post_save.connect(_dkim_key_saved, sender=DkimKey, dispatch_uid="deliverability.dns_check.dkim_key_saved")
