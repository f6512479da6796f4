"""OIDC endpoints: DOT's views, with Dockspace's policy on every authorization request, audit at the
token and revocation endpoints, keys from the database, and discovery that lists only what works."""

import base64
import hashlib
import json
import time
from urllib.parse import parse_qsl, unquote, urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core import signing
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django_otp import user_has_device
from jwcrypto import jwt
from jwcrypto.common import JWException
from oauth2_provider import views as dot_views
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.scopes import get_scopes_backend
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views.metadata import ServerMetadataViewMixin

from accounts.sessions import AFTER_TOTP, AUTH_AT
from oidc import keys, policy, services
from oidc.models import Application, Consent
from oidc.request_context import audit_oauth, oauth_request
from oidc.validator import CLAIMS_SUPPORTED, client_admits_user, user_is_usable

FRESH_PARAM = "ds_fresh"
FRESH_SALT = "oidc.fresh-login"
FRESH_MAX_AGE = 15 * 60


def issuer():
    return oauth2_settings.OIDC_ISS_ENDPOINT


def _request_fingerprint(params):
    parts = [params.get(k, "") for k in ("client_id", "redirect_uri", "state", "nonce")]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def url_with_fresh_marker(request):
    """The authorization URL to come back to after signing in, marked 'a sign-in started now'."""
    params = [(k, v) for k, v in parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True)]
    params = [(k, v) for k, v in params if k != FRESH_PARAM]
    marker = signing.dumps({"fp": _request_fingerprint(dict(params)), "at": time.time()}, salt=FRESH_SALT)
    return f"{request.path}?{urlencode([*params, (FRESH_PARAM, marker)])}"


def fresh_login_at(request):
    raw = request.GET.get(FRESH_PARAM)
    if not raw:
        return None
    try:
        data = signing.loads(raw, salt=FRESH_SALT, max_age=FRESH_MAX_AGE)
    except signing.BadSignature:
        return None
    if data.get("fp") != _request_fingerprint(request.GET):
        return None
    return data.get("at")


def hint_subject(id_token_hint):
    """sub of an ID token this provider issued (expired ones count), "" when it is not one of ours."""
    if not id_token_hint:
        return None
    try:
        token = jwt.JWT(key=keys.jwk_set(), jwt=id_token_hint, check_claims={})
        claims = json.loads(token.claims)
    except (JWException, ValueError, TypeError):
        return ""
    if claims.get("iss") != issuer() or not isinstance(claims.get("sub"), str):
        return ""
    return claims["sub"]


def _essential_acr(credentials):
    claims = credentials.get("claims") or {}
    if isinstance(claims, str):
        try:
            claims = json.loads(claims)
        except ValueError:
            return ()
    acr = ((claims or {}).get("id_token") or {}).get("acr") or {}
    if not isinstance(acr, dict) or not acr.get("essential"):
        return ()
    values = acr.get("values") or ([acr["value"]] if acr.get("value") else [])
    return tuple(v for v in values if isinstance(v, str))


def session_auth_context(request):
    context = policy.auth_context(
        auth_at=request.session.get(AUTH_AT) or time.time(), verified=request.user.is_verified()
    )
    key = request.session.session_key or ""
    context["session_key_hash"] = hashlib.sha256(key.encode()).hexdigest() if key else ""
    return context


@method_decorator(never_cache, name="dispatch")
class AuthorizationView(dot_views.AuthorizationView):
    """DOT validates the request and makes the code; Dockspace decides, on every request, whether to."""

    template_name = "oidc/authorize.html"

    def handle_no_permission(self):
        prompt = set(self.request.GET.get("prompt", "").split())
        if "none" not in prompt:
            return redirect_to_login(url_with_fresh_marker(self.request), settings.LOGIN_URL)
        try:
            _scopes, credentials = self.validate_authorization_request(self.request)
        except OAuthToolkitError as error:
            return self.error_response(error, self._application_of(self.request.GET.get("client_id")))
        application = self._application_of(credentials["client_id"])
        return self._error_redirect("login_required", "Nobody is signed in.", credentials, application)

    @staticmethod
    def _application_of(client_id):
        return Application.objects.filter(client_id=client_id).first() if client_id else None

    def _error_redirect(self, code, description, credentials, application):
        params = {"error": code, "error_description": description}
        if credentials.get("state"):
            params["state"] = credentials["state"]
        params["iss"] = issuer()
        uri = credentials["redirect_uri"]
        return self.redirect(f"{uri}{'&' if '?' in uri else '?'}{urlencode(params)}", application)

    def _facts(self, request, application, scopes, credentials, *, interactive):
        user = request.user
        consent = Consent.objects.filter(user=user, application=application).first()
        return policy.AuthorizationFacts(
            account_usable=user_is_usable(user),
            client_admits=client_admits_user(application, user),
            requires_totp=application.requires_totp,
            skip_consent=application.skip_authorization,
            now=time.time(),
            auth_at=request.session.get(AUTH_AT),
            verified=user.is_verified(),
            has_device=user_has_device(user),
            prompt=frozenset(request.GET.get("prompt", "").split()) if interactive else frozenset(),
            max_age=request.GET.get("max_age") if interactive else None,
            acr_values=tuple(request.GET.get("acr_values", "").split()),
            essential_acr=_essential_acr(credentials),
            hint_sub=hint_subject(request.GET.get("id_token_hint")) if interactive else None,
            user_sub=str(user.uuid),
            fresh_login_at=fresh_login_at(request) if interactive else None,
            requested_scopes=frozenset(scopes),
            consented_scopes=frozenset(consent.scope_set if consent else ()),
        )

    def get(self, request, *args, **kwargs):
        application = self._application_of(request.GET.get("client_id"))
        try:
            scopes, credentials = self.validate_authorization_request(request)
        except OAuthToolkitError as error:
            return self.error_response(error, application)
        facts = self._facts(request, application, scopes, credentials, interactive=True)
        decision = policy.decide_authorization(facts)
        return self._act(request, decision, application, scopes, credentials)

    def _act(self, request, decision, application, scopes, credentials):
        action = decision.action
        if action == policy.ERROR:
            if decision.error == "access_denied":
                audit_oauth(
                    "oidc.access_denied", user=request.user, application=application, reason="not in the app's groups"
                )
            return self._error_redirect(decision.error, decision.description, credentials, application)
        if action == policy.NO_ACCESS:
            audit_oauth("oidc.access_denied", user=request.user, application=application, reason=decision.description)
            return render(
                request,
                "oidc/no_access.html",
                {"application": application, "reason": decision.description},
                status=403,
            )
        if action == policy.LOGIN:
            return redirect_to_login(url_with_fresh_marker(request), settings.LOGIN_URL)
        if action == policy.SECOND_FACTOR:
            return redirect(f"{reverse('accounts:verify_code')}?{urlencode({'next': request.get_full_path()})}")
        if action == policy.ENROL:
            request.session[AFTER_TOTP] = request.get_full_path()
            messages.info(
                request,
                f"{application.name or 'This app'} needs a second factor: add an authenticator app, "
                "then you will be taken back to it.",
            )
            return redirect("accounts:security")
        if action == policy.CONSENT:
            return self._consent_page(request, application, scopes, credentials)
        try:
            uri, _headers, _body, _status = self.create_authorization_response(
                request, " ".join(scopes), credentials, allow=True
            )
        except OAuthToolkitError as error:
            return self.error_response(error, application)
        return self.redirect(uri, application)

    def _consent_page(self, request, application, scopes, credentials):
        descriptions = get_scopes_backend().get_all_scopes()
        self.oauth2_data = {
            "scopes": scopes,
            "scopes_descriptions": [descriptions[s] for s in scopes],
            "application": application,
            "client_id": credentials["client_id"],
            "redirect_uri": credentials["redirect_uri"],
            "response_type": credentials["response_type"],
            "state": credentials["state"],
            **{k: credentials[k] for k in ("code_challenge", "code_challenge_method", "nonce") if k in credentials},
        }
        if "claims" in credentials:
            self.oauth2_data["claims"] = json.dumps(credentials["claims"])
        context = dict(self.oauth2_data)
        context["form"] = self.get_form(self.get_form_class())
        return self.render_to_response(self.get_context_data(**context))

    def form_valid(self, form):
        application = self._application_of(form.cleaned_data.get("client_id"))
        if application is None:
            return render(self.request, "oidc/no_access.html", {"reason": "Unknown app."}, status=400)
        scopes = form.cleaned_data.get("scope", "").split()
        credentials = {
            "redirect_uri": form.cleaned_data.get("redirect_uri"),
            "state": form.cleaned_data.get("state"),
            "claims": form.cleaned_data.get("claims"),
        }
        if not application.redirect_uri_allowed(credentials["redirect_uri"] or ""):
            return render(self.request, "oidc/no_access.html", {"reason": "Unknown redirect URI."}, status=400)
        # The form carries no prompt or max_age; account, groups and second factor are checked again.
        decision = policy.decide_authorization(
            self._facts(self.request, application, scopes, credentials, interactive=False)
        )
        if decision.action not in (policy.ISSUE, policy.CONSENT):
            return self._act(self.request, decision, application, scopes, credentials)
        if form.cleaned_data.get("allow"):
            services.consent_grant(user=self.request.user, application=application, scopes=scopes, request=self.request)
        return super().form_valid(form)

    def create_authorization_response(self, request, scopes, credentials, allow):
        credentials = {**credentials, "dockspace_auth": session_auth_context(request)}
        return super().create_authorization_response(request, scopes, credentials, allow)


class TokenView(dot_views.TokenView):
    def post(self, request, *args, **kwargs):
        with oauth_request(request):
            response = super().post(request, *args, **kwargs)
        if response.status_code != 200:
            try:
                error = json.loads(response.content).get("error", "")
            except ValueError:
                error = ""
            application = Application.objects.filter(client_id=_client_id_of(request)).first()
            audit_oauth(
                "oidc.token_failure",
                application=application,
                reason=f"grant_type={request.POST.get('grant_type', '')[:40]} error={error[:40]}",
            )
        return response


def _client_id_of(request):
    client_id = request.POST.get("client_id", "")
    auth = request.META.get("HTTP_AUTHORIZATION", "")
    if not client_id and auth.lower().startswith("basic "):
        try:
            client_id = unquote(base64.b64decode(auth[6:]).decode().split(":", 1)[0])
        except (ValueError, UnicodeDecodeError):
            client_id = ""
    return client_id[:100]


class RevokeTokenView(dot_views.RevokeTokenView):
    def post(self, request, *args, **kwargs):
        with oauth_request(request):
            response = super().post(request, *args, **kwargs)
        application = Application.objects.filter(client_id=_client_id_of(request)).first()
        if response.status_code == 200:
            audit_oauth("oidc.token_revoke", application=application, reason="the app revoked a token")
        return response


class DiscoveryView(ServerMetadataViewMixin, View):
    def get(self, request, *args, **kwargs):
        url = lambda name: self._get_endpoint_url(request, name, required=True)  # noqa: E731
        data = {
            "issuer": issuer(),
            "authorization_endpoint": url("authorize"),
            "token_endpoint": url("token"),
            "userinfo_endpoint": url("user-info"),
            "jwks_uri": url("jwks-info"),
            "revocation_endpoint": url("revoke-token"),
            "introspection_endpoint": url("introspect"),
            "end_session_endpoint": url("rp-initiated-logout"),
            "scopes_supported": list(get_scopes_backend().get_available_scopes()),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": CLAIMS_SUPPORTED,
            "claims_parameter_supported": True,
            "acr_values_supported": [policy.ACR_PWD, policy.ACR_MFA],
            "prompt_values_supported": ["none", "login", "consent"],
            "authorization_response_iss_parameter_supported": True,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
        }
        response = JsonResponse(data)
        response["Access-Control-Allow-Origin"] = "*"
        return response


class JwksView(View):
    def get(self, request, *args, **kwargs):
        response = JsonResponse({"keys": [keys.public_jwk_dict(k) for k in keys.published_keys()]})
        response["Access-Control-Allow-Origin"] = "*"
        age = oauth2_settings.OIDC_JWKS_MAX_AGE_SECONDS
        response["Cache-Control"] = f"public, max-age={age}, stale-while-revalidate={age}, stale-if-error={age}"
        return response


class LogoutView(dot_views.RPInitiatedLogoutView):
    template_name = "oidc/logout_confirm.html"

    def do_logout(self, application=None, post_logout_redirect_uri=None, state=None, token_user=None):
        user = self.request.user
        if user.is_authenticated and application is not None and token_user in (None, user):
            services.app_sessions_end(user=user, application=application, request=self.request)
        return super().do_logout(application, post_logout_redirect_uri, state, token_user)
