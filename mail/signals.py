"""Declared seam: any committed change to what a DMS file is made of schedules one coalesced DMS sync.

The models are those the files of the catalog declare (DmsFile.sync_on, whichever app owns them); the person
model is followed here, field by field, so that a sign-in does not schedule a sync.
"""

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from mail import models
from mail.dms import catalog, sync


def request_sync():
    sync.request_sync()


def _changed(sender, **kwargs):
    request_sync()


# Saves that cannot change what DMS sees (a sign-in stamps last_login).
_IRRELEVANT_FIELDS = {"last_login"}


def _person_saving(sender, instance, update_fields=None, raw=False, **kwargs):
    # Remember whether the sign-in address changes: on a domain with a catch-all, a sign-in address
    # without a line of its own is refused at SMTP (mail.dms.collection.dms_receive_blocked).
    instance._mail_email_changed = instance.pk is None or (
        (update_fields is None or "email" in update_fields)
        and not sender.objects.filter(pk=instance.pk, email=instance.email).exists()
    )


def _person_saved(sender, instance, created=False, update_fields=None, **kwargs):
    # A new person or a new sign-in address can change postfix-receive-access.cf; a new password or
    # switching the person on/off changes their account line (only people with a mailbox matter).
    # A sync that finds nothing different writes nothing.
    if created or getattr(instance, "_mail_email_changed", False):
        request_sync()
        return
    if update_fields is not None and set(update_fields) <= _IRRELEVANT_FIELDS:
        return
    if models.Mailbox.objects.filter(person_id=instance.pk).exists():
        request_sync()


def connect():
    for model in catalog.sync_models():
        uid = f"mail.sync.{model._meta.label}"
        if model._meta.auto_created:  # a many-to-many table: rows come and go through m2m_changed
            m2m_changed.connect(_changed, sender=model, dispatch_uid=uid)
            continue
        post_save.connect(_changed, sender=model, dispatch_uid=f"{uid}.save")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"{uid}.delete")
    pre_save.connect(_person_saving, sender=get_user_model(), dispatch_uid="mail.sync.person.email")
    post_save.connect(_person_saved, sender=get_user_model(), dispatch_uid="mail.sync.person")
    # A person who goes takes their refused sign-in address (catch-all domains) with them.
    post_delete.connect(_changed, sender=get_user_model(), dispatch_uid="mail.sync.person.delete")
