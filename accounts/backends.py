"""Sign in with an email address in any letter case."""

from django.contrib.auth.backends import ModelBackend

from accounts.models import normalize_email


class EmailBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, email=None, **kwargs):
        email = email or username or kwargs.get("email")
        if email is None or password is None:
            return None
        return super().authenticate(request, username=normalize_email(email), password=password)
