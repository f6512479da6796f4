"""form-action for the pages whose form ends in a redirect to an app.

Browsers apply CSP form-action to every redirect that follows a form submission. Signing into an app
posts the password (or the code, or the consent) to this site, which then redirects to the app's
registered redirect URI: with `form-action 'self'` alone Chromium blocks that last step. On those
pages only, the origins of the registered redirect and post-logout URIs are added (the function named
by settings.CSP_FORM_ACTION_ORIGINS, provided by the OIDC app: this layer does not import it)."""

from django.conf import settings
from django.utils.module_loading import import_string

# URL names (namespace:name) of the pages whose form can end at an app.
APP_BOUND_FORMS = {
    "accounts:login",
    "accounts:sign_in_code",
    "accounts:verify_code",
    "accounts:reauth",
    "accounts:totp_confirm",
    "oauth2_provider:authorize",
    "oauth2_provider:rp-initiated-logout",
}


REDIRECTS = {301, 302, 303, 307, 308}


class FormActionForAppsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code in REDIRECTS:
            # form-action is the policy of the page that sent the form: a redirect answering it shows no
            # page, so its own header changes nothing (and the registered apps need not be read).
            return response
        match = getattr(request, "resolver_match", None)
        hook = getattr(settings, "CSP_FORM_ACTION_ORIGINS", None)
        if match is not None and match.view_name in APP_BOUND_FORMS and hook:
            origins = sorted(import_string(hook)())
            if origins:
                update = dict(getattr(response, "_csp_update", None) or {})
                update["form-action"] = [*update.get("form-action", []), *origins]
                response._csp_update = update
        return response
