"""Password-reset mail, built and sent by the Celery worker.

The request only queues the address, so it takes the same time whether or not an account uses it,
and the reset link (a secret) never sits in the task queue.
"""

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.forms import PasswordResetForm

from accounts.audit import audit
from accounts.mail_limits import NOT_SENT, mail_request_allowed
from accounts.models import AppSettings, normalize_email
from accounts.outbox import mail_kind
from dockspace.celery import queue_task
from dockspace.client_ip import client_ip

logger = logging.getLogger(__name__)


class ResetForm(PasswordResetForm):
    def get_users(self, email):
        """Django's rule (active, usable password) plus: a person given a mailbox without a password
        sets their first one through this link; a suspended or disabled mailbox gets nothing."""
        from django.contrib.auth import get_user_model

        from accounts.backends import mailbox_allows_sign_in

        people = get_user_model().objects.filter(email=normalize_email(email), is_active=True)
        people = people.select_related("mailbox")
        return (p for p in people if mailbox_allows_sign_in(p) and (p.has_usable_password() or hasattr(p, "mailbox")))


def password_reset_mail_send(email, *, by_administrator=False):
    """Mail a reset link to the account using this address, if there is one. Returns how many were sent.
    BY_ADMINISTRATOR: an administrator sent it (the mail says so instead of "Someone asked")."""
    form = ResetForm({"email": email})
    if not form.is_valid():
        return 0
    users = list(form.get_users(email))
    with mail_kind("password reset"):
        form.save(
            domain_override=urlsplit(settings.DOCKSPACE_URL).netloc,
            email_template_name="accounts/email/password_reset.txt",
            subject_template_name="accounts/email/password_reset_subject.txt",
            extra_email_context={
                "base_url": settings.DOCKSPACE_URL,
                "site_name": AppSettings.load().site_name,
                "sent_by_administrator": by_administrator,
            },
        )
    return len(users)


def password_reset_request(*, email, request):
    """A visitor asked for a reset link: queue it, unless this address or client asked too often (then
    nothing is sent, and the answer is the same)."""
    allowed = mail_request_allowed(email=email, ip=client_ip(request))
    description = f"Reset link requested for {email[:120]}." + ("" if allowed else NOT_SENT)
    audit("password.reset_requested", request=request, description=description)
    if allowed:
        password_reset_mail_queue(email)


def password_reset_mail_queue(email, *, by_administrator=False):
    """Hand the address to the worker; if the broker is unreachable, build the mail here rather than not at all (it
    waits in the outbox until a worker delivers it)."""
    try:
        queue_task("accounts.send_password_reset", email, by_administrator=by_administrator)
    except Exception:  # the broker is down: the person still gets the link, only without the timing guarantee
        logger.warning("Task queue unreachable; writing the password-reset mail to the outbox directly.")
        password_reset_mail_send(email, by_administrator=by_administrator)
