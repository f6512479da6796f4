"""Declared seam: any committed change to mail state schedules one coalesced DMS sync."""

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete, post_save

from mail import models

_MODELS = (models.Domain, models.Mailbox, models.Alias, models.AliasTarget, models.Group, models.DkimKey)


def request_sync():
    from mail.sync import request_sync as schedule

    schedule()


def _changed(sender, **kwargs):
    request_sync()


# Saves that cannot change what DMS sees (a sign-in stamps last_login).
_IRRELEVANT_FIELDS = {"last_login"}


def _person_saved(sender, instance, update_fields=None, **kwargs):
    # A new password or switching the person on/off changes their account line; only people with a
    # mailbox matter. A sync that finds nothing different writes nothing.
    if update_fields is not None and set(update_fields) <= _IRRELEVANT_FIELDS:
        return
    if models.Mailbox.objects.filter(person_id=instance.pk).exists():
        request_sync()


def connect():
    for model in _MODELS:
        post_save.connect(_changed, sender=model, dispatch_uid=f"mail.sync.save.{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"mail.sync.delete.{model.__name__}")
    m2m_changed.connect(_changed, sender=models.Group.members.through, dispatch_uid="mail.sync.group_members")
    post_save.connect(_person_saved, sender=get_user_model(), dispatch_uid="mail.sync.person")
