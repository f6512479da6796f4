"""OpenID Connect provider on django-oauth-toolkit (issue 4)."""
