"""Self-registration with a verified address.

The page answers the same for every address ("check your mail"); the account starts inactive and
pending, and only the link mailed to the address activates it. Links are built in the worker, so
no secret sits in the task queue, and an existing account's owner is told instead.
"""

import logging

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from accounts.audit import audit
from accounts.mail_limits import NOT_SENT, mail_request_allowed
from accounts.models import AppSettings, User, normalize_email
from accounts.outbox import mail_kind
from dockspace.celery import queue_task
from dockspace.client_ip import client_ip

logger = logging.getLogger(__name__)


class RegistrationTokenGenerator(PasswordResetTokenGenerator):
    """Single use: the token stops matching once the account is no longer pending, is activated, or its
    password changes (a later sign-up for the address)."""

    key_salt = "accounts.registration.RegistrationTokenGenerator"

    def _make_hash_value(self, user, timestamp):
        return f"{user.pk}{user.password}{user.is_pending_registration}{user.is_active}{user.email}{timestamp}"


def registration_may_replace(user):
    """Only a sign-up nobody has taken over yet may be restarted or finished from a registration link:
    pending, never activated, and without a mailbox. An operator who activated the person or gave them
    a mailbox made it theirs; a later sign-up for the address must not choose its password."""
    return user.is_pending_registration and not user.is_active and getattr(user, "mailbox", None) is None


registration_tokens = RegistrationTokenGenerator()


def registration_request(*, email, password, full_name, request):
    """Start or restart a sign-up; mail the address either way. Nothing here depends on what exists.

    An address or client over its mail limit changes nothing and gets no mail (the page is the same)."""
    email = normalize_email(email)
    if not mail_request_allowed(email=email, ip=client_ip(request)):
        audit("user.register_requested", request=request, description=f"Sign-up requested for {email[:120]}.{NOT_SENT}")
        return
    with transaction.atomic():
        user = User.objects.select_for_update().filter(email=email).first()
        if user is None:
            user = User(email=email, is_active=False, is_pending_registration=True)
        if registration_may_replace(user):
            # A second sign-up for a pending address replaces the first: only the mailbox owner can finish it.
            user.full_name = full_name
            user.set_password(password)
            user.save()
        else:
            User().set_password(password)  # same work as the other branch, so the timing matches
    audit("user.register_requested", request=request, description=f"Sign-up requested for {email[:120]}.")
    registration_mail_queue(email)


def registration_mail_send(email):
    """Worker side: the activation link for a pending sign-up, or a notice to an existing account."""
    user = User.objects.filter(email=normalize_email(email)).first()
    if user is None:
        return 0
    site_name = AppSettings.load().site_name
    context = {"site_name": site_name, "email": user.email, "base_url": settings.DOCKSPACE_URL}
    if registration_may_replace(user):
        context["link"] = settings.DOCKSPACE_URL + registration_link_path(user)
        template = "accounts/email/registration_confirm.txt"
        subject = f"Confirm your {site_name} account"
    else:
        template = "accounts/email/registration_exists.txt"
        subject = f"You already have a {site_name} account"
    with mail_kind("registration"):
        send_mail(subject, render_to_string(template, context), None, [user.email])
    return 1


def registration_mail_queue(email):
    try:
        queue_task("accounts.send_registration_mail", email)
    except Exception:  # broker down: still mail the person, without the timing guarantee
        logger.warning("Task queue unreachable; writing the registration mail to the outbox directly.")
        registration_mail_send(email)


def registration_link_path(user):
    from django.urls import reverse

    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("accounts:register_confirm", args=[uid, registration_tokens.make_token(user)])


def _linked_person(uidb64, token, queryset):
    try:
        pk = int(force_str(urlsafe_base64_decode(uidb64)))
    except (TypeError, ValueError, OverflowError):
        return None
    user = queryset.filter(pk=pk, is_pending_registration=True).first()
    if user is None or not registration_may_replace(user) or not registration_tokens.check_token(user, token):
        return None
    return user


def registration_link_person(*, uidb64, token):
    """The pending person a still-valid link names, or None. Reads only: opening the link changes nothing."""
    return _linked_person(uidb64, token, User.objects.all())


def registration_confirm(*, uidb64, token, request):
    """Activate the pending account the link names. Returns the person, or None for a bad or used link."""
    with transaction.atomic():
        user = _linked_person(uidb64, token, User.objects.select_for_update())
        if user is None:
            return None
        user.is_pending_registration = False
        user.is_active = True
        user.email_verified_at = timezone.now()
        user.save()
    audit("user.create", request=request, actor=user, target=user, description="Created account by self-registration.")
    return user
