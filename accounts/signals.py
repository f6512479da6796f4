"""Declared seams: the audit log hears about sign-outs from Django's auth signals, and apps above accounts
hear when a person's sign-in is reset (to end what that person is signed into through them) and when a sign-in is
refused for a reason Django's own signals do not tell (monitoring counts sign-ins by result)."""

from django.contrib.auth.signals import user_logged_out
from django.dispatch import Signal

# Sent whenever a person's sign-in is reset: password set, changed or reset, "sign out everywhere", second
# factor reset, mailbox suspended or disabled. Receivers end whatever the person is signed into through them
# (oidc: every app's tokens), audit it, and return how many things they ended. Keyword arguments: user,
# reason (a few words for the audit log), request, actor, actor_label. Sent inside the caller's transaction,
# with `send` (not send_robust): if a receiver fails, the reset fails as a whole rather than half done.
sign_in_revoked = Signal()


# Sent when a sign-in on the sign-in pages is refused without Django's user_login_failed (which a wrong password
# or an unknown address sends): `reason` is "locked_out" (too many failures: nothing was checked) or "code_failure"
# (a wrong or reused second-factor code). Keyword arguments: reason, request. Sent with send_robust: a receiver that
# fails never changes what the person sees.
sign_in_refused = Signal()
SIGN_IN_REFUSED_REASONS = ("locked_out", "code_failure")


def sign_in_refused_send(*, reason, request):
    if reason not in SIGN_IN_REFUSED_REASONS:
        raise ValueError(f"sign_in_refused: reason must be one of {SIGN_IN_REFUSED_REASONS}, got {reason!r}")
    sign_in_refused.send_robust(sender=None, reason=reason, request=request)


def sign_in_revoked_send(*, user, reason, request=None, actor=None, actor_label=None):
    """Tell every receiver that `user`'s sign-in was reset; returns the total they ended."""
    answers = sign_in_revoked.send(
        sender=type(user), user=user, reason=reason, request=request, actor=actor, actor_label=actor_label
    )
    return sum(answer for _receiver, answer in answers if isinstance(answer, int))


def _on_logged_out(sender, request, user, **kwargs):
    from accounts.audit import audit

    if user is not None:
        audit("signout", request=request, actor=user, target=user, description="Signed out.")


def connect():
    user_logged_out.connect(_on_logged_out, dispatch_uid="accounts.audit_signout")
