"""Scopes: what exists, and what each client may ask for (its allowed_scopes)."""

from oauth2_provider.scopes import BaseScopes
from oauth2_provider.settings import oauth2_settings

KNOWN_SCOPES = ("openid", "profile", "email", "groups", "mail", "introspection")
# Scopes that describe a person; a client-credentials token has no person behind it.
PERSON_SCOPES = {"openid", "profile", "email", "groups", "mail"}


class ClientScopes(BaseScopes):
    def get_all_scopes(self):
        return oauth2_settings.SCOPES

    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        if application is None:
            return list(KNOWN_SCOPES)
        allowed = [s for s in KNOWN_SCOPES if s in application.scope_set]
        if application.authorization_grant_type == application.GRANT_CLIENT_CREDENTIALS:
            return [s for s in allowed if s not in PERSON_SCOPES]
        # A client holding "introspection" may call the introspection endpoint with its own
        # credentials; the people signing into it never get tokens that introspect others'.
        return [s for s in allowed if s != "introspection"]

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        if application is not None and application.authorization_grant_type == application.GRANT_CLIENT_CREDENTIALS:
            return self.get_available_scopes(application, request)
        return ["openid"]
