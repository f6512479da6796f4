"""Sign in with an email address in any letter case; a suspended or disabled mailbox blocks sign-in.

Every failed sign-in does the same work, so its timing tells nothing about the address: one Argon2 check
at the configured cost and one mail-hash check of the configured scheme, each either real or a decoy
(unknown address, a password only a mail hash proves, no usable password, an inactive person, a
password over the limit).
"""

import hashlib

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.hashers import identify_hasher, verify_password
from django.core.cache import cache

from accounts import mail_hashes
from accounts.hashers import spend_password_check
from accounts.models import normalize_email
from accounts.selectors import with_second_factor_facts
from accounts.validators import is_password_over_limit


def mailbox_allows_sign_in(user):
    mailbox = getattr(user, "mailbox", None) if user is not None else None
    return mailbox is None or mailbox.is_usable


# How long "these two hashes hold the same password" is remembered (see _align_mail_password).
ALIGNED_SECONDS = 90 * 24 * 3600


def _aligned_key(user):
    pair = f"{user.password}\0{user.mail_password_hash}".encode()
    return "accounts:mail-aligned:" + hashlib.sha256(pair).hexdigest()


def _align_mail_password(user, password):
    """One password for web and mail: a person whose mail hash predates their web password (they had
    a password before they got a mailbox, or were adopted from DMS next to an existing account) gets
    the password they just proved written for mail too.

    Called only after `password` matched user.password. Checking the mail hash costs a mail-hash check
    (milliseconds of CPU) on every sign-in, so the cache remembers the pair of hashes once they held the
    same password: a web hash matches one password only, so while neither hash changes, the mail hash
    still holds the password that just matched. Any new hash (a password set, a mail hash replaced or
    locked, an upgrade) is a new pair, checked once again."""
    from django.conf import settings

    if getattr(user, "mailbox", None) is None:
        return
    key = _aligned_key(user)
    if cache.get(key):
        return
    if not mail_hashes.verify_mail_hash(password, user.mail_password_hash):
        user.mail_password_hash = mail_hashes.mail_hash(password, settings.MAIL_HASH_SCHEME)
        user.save(update_fields=["mail_password_hash"])
        key = _aligned_key(user)
    cache.set(key, True, ALIGNED_SECONDS)


def is_checked_by_mail_hash(encoded):
    """True when this stored web password is verified by a mail hash (a hasher marked `checks_mail_hash`,
    e.g. mail.hashers.DmsCryptPasswordHasher) rather than by Argon2."""
    try:
        return bool(getattr(identify_hasher(encoded), "checks_mail_hash", False))
    except ValueError:
        return False


def spend_failed_sign_in(*, checked_password, checked_mail_hash):
    """Tops a failed sign-in up to one Argon2 check and one mail-hash check, whichever it has not done."""
    from django.conf import settings

    if not checked_password:
        spend_password_check()
    if not checked_mail_hash:
        mail_hashes.spend_mail_hash_check(settings.MAIL_HASH_SCHEME)


def _check_without_upgrade(user, password):
    """User.check_password's work (the same hash, or the same decoy), never rewriting the stored hash."""
    try:
        hasher = identify_hasher(user.password)
    except ValueError:
        hasher = None
    if hasher is not None and not getattr(hasher, "for_passwords", True):
        spend_password_check()  # what User.check_password does for such a hash
        return False
    return verify_password(password, user.password)[0]


class EmailBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, email=None, **kwargs):
        email = email or username or kwargs.get("email")
        if email is None or password is None:
            return None
        user = None
        if not is_password_over_limit(password):
            # A password nobody can have set is not hashed at all; the decoys below stand in for it.
            # The mailbox (and whether a code is needed) come in the same query, so a known address costs no
            # extra query over an unknown one.
            people = with_second_factor_facts(get_user_model()._default_manager.select_related("mailbox"))
            user = people.filter(email=normalize_email(email)).first()
        if user is None:
            spend_failed_sign_in(checked_password=False, checked_mail_hash=False)
            return None
        # Unusable or unknown hashes make Django's check_password hash a random string at the
        # configured cost, which counts as the Argon2 check.
        by_mail_hash = is_checked_by_mail_hash(user.password)
        if self.user_can_authenticate(user):
            if user.check_password(password):
                _align_mail_password(user, password)
                return user
        else:
            # Nobody signs in here, right password or not: the same check without the hash upgrade a right
            # password would cause, whose extra time would tell that the password was right.
            _check_without_upgrade(user, password)
        spend_failed_sign_in(checked_password=not by_mail_hash, checked_mail_hash=by_mail_hash)
        return None

    def user_can_authenticate(self, user):
        return super().user_can_authenticate(user) and mailbox_allows_sign_in(user)

    def get_user(self, user_id):
        # A session of a person whose mailbox was suspended since ends at their next request.
        # One query per request: the person with their mailbox, not a second lookup for it.
        user = get_user_model()._default_manager.select_related("mailbox").filter(pk=user_id).first()
        if user is None or not self.user_can_authenticate(user):
            return None
        return user
