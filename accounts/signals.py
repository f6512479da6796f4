"""Declared seams: the audit log hears about sign-outs from Django's auth signals."""

from django.contrib.auth.signals import user_logged_out


def _on_logged_out(sender, request, user, **kwargs):
    from accounts.audit import audit

    if user is not None:
        audit("signout", request=request, actor=user, target=user, description="Signed out.")


def connect():
    user_logged_out.connect(_on_logged_out, dispatch_uid="accounts.audit_signout")
