"""Sign in with an email address in any letter case; a suspended or disabled mailbox blocks sign-in."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend

from accounts.models import normalize_email


def mailbox_allows_sign_in(user):
    mailbox = getattr(user, "mailbox", None) if user is not None else None
    return mailbox is None or mailbox.state == "active"


def _align_mail_password(user, password):
    """One password for web and mail: a person whose mail hash predates their web password (they had
    a password before they got a mailbox, or were adopted from DMS next to an existing account) gets
    the password they just proved written for mail too."""
    from django.conf import settings

    from mail.passwords import mail_hash, verify_mail_hash

    if getattr(user, "mailbox", None) is None or verify_mail_hash(password, user.mail_password_hash):
        return
    user.mail_password_hash = mail_hash(password, settings.MAIL_HASH_SCHEME)
    user.save(update_fields=["mail_password_hash"])


class EmailBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, email=None, **kwargs):
        email = email or username or kwargs.get("email")
        if email is None or password is None:
            return None
        user = super().authenticate(request, username=normalize_email(email), password=password)
        if user is not None:
            _align_mail_password(user, password)
        return user

    def user_can_authenticate(self, user):
        return super().user_can_authenticate(user) and mailbox_allows_sign_in(user)

    def get_user(self, user_id):
        # A session of a person whose mailbox was suspended since ends at their next request.
        # One query per request: the person with their mailbox, not a second lookup for it.
        user = get_user_model()._default_manager.select_related("mailbox").filter(pk=user_id).first()
        if user is None or not self.user_can_authenticate(user):
            return None
        return user
