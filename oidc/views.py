"""OIDC endpoints: DOT's views, with Dockspace's policy on every authorization request, audit at the
token and revocation endpoints, keys from the database, and discovery that lists only what works."""

import base64
import hashlib
import json
import time
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
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
from oauth2_provider.exceptions import InvalidOIDCClientError, OAuthToolkitError
from oauth2_provider.scopes import get_scopes_backend
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views.metadata import ServerMetadataViewMixin

from accounts.sessions import AFTER_TOTP, AUTH_AT
from oidc import keys, policy, services
from oidc.models import Application, Consent
from oidc.request_context import audit_oauth, oauth_request
from oidc.scopes import CLAIMS_SUPPORTED, REQUESTABLE_CLAIMS
from oidc.validator import client_admits_user, user_is_usable

FRESH_PARAM = "ds_fresh"
FRESH_SALT = "oidc.fresh-login"
FRESH_MAX_AGE = 15 * 60


def issuer():
    return oauth2_settings.OIDC_ISS_ENDPOINT


REQUEST_KEYS = ("client_id", "redirect_uri", "state", "nonce")


def _fingerprint(values, keys=REQUEST_KEYS, extra=()):
    """A digest of the authorization request's identifying parameters, for signed markers."""
    parts = [str(values.get(k) or "") for k in keys] + list(extra)
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def url_with_fresh_marker(request):
    """The authorization URL to come back to after signing in, marked 'a sign-in started now'."""
    params = [(k, v) for k, v in parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True)]
    params = [(k, v) for k, v in params if k != FRESH_PARAM]
    marker = signing.dumps({"fp": _fingerprint(dict(params)), "at": time.time()}, salt=FRESH_SALT)
    return f"{request.path}?{urlencode([*params, (FRESH_PARAM, marker)])}"


def fresh_login_at(request):
    raw = request.GET.get(FRESH_PARAM)
    if not raw:
        return None
    try:
        data = signing.loads(raw, salt=FRESH_SALT, max_age=FRESH_MAX_AGE)
    except signing.BadSignature:
        return None
    if data.get("fp") != _fingerprint(request.GET):
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
    """Values of an essential "acr" claim request; ValueError when the claims parameter is malformed."""
    claims = credentials.get("claims")
    if claims in (None, "", {}):
        return ()
    if isinstance(claims, str):
        claims = json.loads(claims)
    if claims is None:
        return ()
    if not isinstance(claims, dict):
        raise ValueError("claims must be a JSON object.")
    id_token = claims.get("id_token")
    if id_token is None:
        return ()
    acr = id_token.get("acr") if isinstance(id_token, dict) else None
    if not isinstance(id_token, dict) or not isinstance(acr, (dict, type(None))):
        raise ValueError("claims.id_token and claims.id_token.acr must be JSON objects.")
    if not acr or not acr.get("essential"):
        return ()
    values = acr.get("values", [acr["value"]] if "value" in acr else [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError("claims.id_token.acr.values must be a list of strings.")
    return tuple(values)


def scopes_with_requested_claims(scopes, credentials, available):
    """The scopes to ask consent for and issue: the requested ones, plus the scopes of claims asked for in the
    claims parameter (id_token or userinfo member) that the client may use. Order kept; malformed claims ignored
    (request_problem refuses them first).

    Asking for a claim (oidc.scopes.REQUESTABLE_CLAIMS) asks for its scope: the person consents to it like any
    scope, and a client not allowed the scope does not get the claim."""
    claims = credentials.get("claims")
    if isinstance(claims, str):
        try:
            claims = json.loads(claims)
        except ValueError:
            return list(scopes)
    if "openid" not in scopes or not isinstance(claims, dict):
        return list(scopes)
    wanted = set()
    for member in ("id_token", "userinfo"):
        requested = claims.get(member)
        if isinstance(requested, dict):
            wanted |= {REQUESTABLE_CLAIMS[name] for name in requested if name in REQUESTABLE_CLAIMS}
    return [*scopes, *sorted((wanted & set(available)) - set(scopes))]


# Longer values would not fit the stored code (and no client needs them).
MAX_LENGTHS = {"nonce": 255, "code_challenge": 128}


def request_problem(params, credentials):
    """(error, description) for what DOT and oauthlib let through but Dockspace refuses, else None."""
    # OpenID Connect Core 6: a provider that does not support request objects says so (discovery says it too).
    if "request" in params:
        return "request_not_supported", "Request objects (the request parameter) are not supported."
    if "request_uri" in params:
        return "request_uri_not_supported", "The request_uri parameter is not supported."
    if params.get("resource"):
        return "invalid_target", "Resource indicators are not supported."
    for name, limit in MAX_LENGTHS.items():
        if len(params.get(name) or "") > limit:
            return "invalid_request", f"{name} must be at most {limit} characters."
    try:
        _essential_acr(credentials)
    except ValueError as exc:
        return "invalid_request", f"Malformed claims parameter: {exc}"
    return None


CONSENT_SALT = "oidc.consent-form"
CONSENT_FIELD = "ds_request"


def consent_binding(request, credentials, scopes):
    """A signed record, put in the consent form, of the authorization request that passed every check."""
    return signing.dumps(
        {"u": request.user.pk, "fp": _consent_fingerprint(credentials, scopes), "url": request.get_full_path()},
        salt=CONSENT_SALT,
    )


def _consent_fingerprint(values, scopes):
    claims = values.get("claims") or None
    if isinstance(claims, str):
        try:
            claims = json.loads(claims)
        except ValueError:
            claims = "malformed"
    return _fingerprint(
        values, (*REQUEST_KEYS, "code_challenge"), (json.dumps(claims, sort_keys=True), " ".join(sorted(scopes)))
    )


def session_auth_context(request):
    # The policy sends a session without a sign-in time to sign in again, so AUTH_AT is set here.
    context = policy.auth_context(auth_at=request.session[AUTH_AT], verified=request.user.is_verified())
    key = request.session.session_key or ""
    context["session_key_hash"] = hashlib.sha256(key.encode()).hexdigest() if key else ""
    return context


def skips_consent(application, scopes):
    """Consent is skipped for a first-party client, except for the mail scope (the person's mailbox): that only when
    a superuser set the client up so (oidc.services), whoever may otherwise edit the client."""
    if not application.skip_authorization:
        return False
    return "mail" not in scopes or application.mail_consent_waived


@method_decorator(never_cache, name="dispatch")
class AuthorizationView(dot_views.AuthorizationView):
    """DOT validates the request and makes the code; Dockspace decides, on every request, whether to."""

    template_name = "oidc/authorize.html"

    def handle_no_permission(self):
        prompt = set(self.request.GET.get("prompt", "").split())
        unsupported = "request" in self.request.GET or "request_uri" in self.request.GET
        if "none" not in prompt and not unsupported:
            return redirect_to_login(url_with_fresh_marker(self.request), settings.LOGIN_URL)
        try:
            _scopes, credentials = self.validate_authorization_request(self.request)
        except OAuthToolkitError as error:
            return self.error_response(error, self._application_of(self.request.GET.get("client_id")))
        application = self._application_of(credentials["client_id"])
        if unsupported:  # answered at once: signing in first would not help
            return self._error_redirect(*request_problem(self.request.GET, credentials), credentials, application)
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
            skip_consent=skips_consent(application, scopes),
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

    def redirect(self, redirect_to, application):
        # RFC 9207: every authorization response, errors from DOT and oauthlib included, names the issuer.
        parts = urlsplit(redirect_to)
        params = parse_qsl(parts.query, keep_blank_values=True)
        names = {name for name, _ in params}
        if "error" in names and "iss" not in names:
            redirect_to = urlunsplit(parts._replace(query=urlencode([*params, ("iss", issuer())])))
        return super().redirect(redirect_to, application)

    def get(self, request, *args, **kwargs):
        application = self._application_of(request.GET.get("client_id"))
        try:
            scopes, credentials = self.validate_authorization_request(request)
        except OAuthToolkitError as error:
            return self.error_response(error, application)
        problem = request_problem(request.GET, credentials)
        if problem:
            return self._error_redirect(*problem, credentials, application)
        available = get_scopes_backend().get_available_scopes(application=application, request=request)
        scopes = scopes_with_requested_claims(scopes, credentials, available)
        facts = self._facts(request, application, scopes, credentials, interactive=True)
        decision = policy.decide_authorization(facts)
        return self._act(request, decision, application, scopes, credentials)

    def _act(self, request, decision, application, scopes, credentials):
        action = decision.action
        if action == policy.ERROR:
            if decision.error == "access_denied":
                audit_oauth(
                    "oidc.access_denied", user=request.user, application=application, reason=decision.description
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
        context["binding_field"] = CONSENT_FIELD
        context["binding"] = consent_binding(request, credentials, scopes)
        return self.render_to_response(self.get_context_data(**context))

    def form_valid(self, form):
        application = self._application_of(form.cleaned_data.get("client_id"))
        scopes = (form.cleaned_data.get("scope") or "").split()
        values = {**form.cleaned_data}
        try:
            bound = signing.loads(self.request.POST.get(CONSENT_FIELD, ""), salt=CONSENT_SALT, max_age=FRESH_MAX_AGE)
        except signing.BadSignature:
            bound = None
        if (
            application is None
            or bound is None
            or bound.get("u") != self.request.user.pk
            or bound.get("fp") != _consent_fingerprint(values, scopes)
            or form.cleaned_data.get("resource")
        ):
            # Only the form Dockspace rendered for a request that passed every check is accepted.
            return render(
                self.request,
                "oidc/no_access.html",
                {
                    "application": application,
                    "reason": "This approval form has expired or was changed. Go back to the app and sign in again.",
                },
                status=400,
            )
        credentials = {
            "redirect_uri": values.get("redirect_uri"),
            "state": values.get("state"),
            "claims": values.get("claims"),
        }
        # Account, groups and second factor are checked again at the moment of approval.
        decision = policy.decide_authorization(
            self._facts(self.request, application, scopes, credentials, interactive=False)
        )
        if decision.action in (policy.LOGIN, policy.SECOND_FACTOR, policy.ENROL):
            return redirect(bound["url"])  # the original request, which decides again
        if decision.action not in (policy.ISSUE, policy.CONSENT):
            return self._act(self.request, decision, application, scopes, credentials)
        self._code_issued = False
        response = super().form_valid(form)
        if form.cleaned_data.get("allow") and self._code_issued:
            services.consent_grant(user=self.request.user, application=application, scopes=scopes, request=self.request)
        return response

    def dispatch(self, request, *args, **kwargs):
        with oauth_request(request):  # audit entries written below carry the browser's IP
            return super().dispatch(request, *args, **kwargs)

    def create_authorization_response(self, request, scopes, credentials, allow):
        context = session_auth_context(request)
        credentials = {**credentials, "dockspace_auth": context}
        result = super().create_authorization_response(request, scopes, credentials, allow)
        self._code_issued = allow
        if allow:
            audit_oauth(
                "oidc.signin",
                user=request.user,
                application=self._application_of(credentials.get("client_id")),
                reason=f"signed in ({' '.join(context['amr'])}), scopes {scopes}"[:200],
            )
        return result


GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
CLIENT_REALM = 'Basic realm="Dockspace"'


def client_auth_failure(request, response):
    """RFC 6749 5.2 for a failed client authentication (oauthlib answers 401 with a Bearer challenge, which is
    the scheme of resource servers, not of this endpoint): a client that sent HTTP Basic gets 401 with a Basic
    challenge; one that sent its secret in the body (or nothing) gets 400, and no challenge, since it did not use
    an HTTP authentication scheme. The body stays {"error": "invalid_client"}."""
    if response.status_code != 401:
        return response
    del response["WWW-Authenticate"]
    if request.META.get("HTTP_AUTHORIZATION", "").strip().lower().startswith("basic "):
        response["WWW-Authenticate"] = CLIENT_REALM
    else:
        response.status_code = 400
    return response


class TokenView(dot_views.TokenView):
    def post(self, request, *args, **kwargs):
        grant_type = request.POST.get("grant_type", "")
        if request.POST.get("resource"):
            return JsonResponse(
                {"error": "invalid_target", "error_description": "Resource indicators are not supported."},
                status=400,
                headers={"Cache-Control": "no-store"},
            )
        if grant_type not in GRANT_TYPES:
            # Never reach DOT's password or device grants (the password grant checks the password first).
            audit_oauth(
                "oidc.token_failure",
                application=_calling_application(request),
                reason=f"grant_type={grant_type[:40]} error=unsupported_grant_type",
            )
            return JsonResponse(
                {"error": "unsupported_grant_type", "error_description": f"Supported: {', '.join(GRANT_TYPES)}."},
                status=400,
                headers={"Cache-Control": "no-store"},
            )
        with oauth_request(request):
            response = client_auth_failure(request, super().post(request, *args, **kwargs))
        if response.status_code != 200:
            try:
                error = json.loads(response.content).get("error", "")
            except ValueError:
                error = ""
            application = _calling_application(request)
            audit_oauth(
                "oidc.token_failure",
                application=application,
                reason=f"grant_type={request.POST.get('grant_type', '')[:40]} error={error[:40]}",
            )
        return response


def _calling_application(request):
    """The client a token or revocation request names (for the audit entry), or None."""
    return Application.objects.filter(client_id=_client_id_of(request)).first()


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
            response = client_auth_failure(request, super().post(request, *args, **kwargs))
        if response.status_code == 200:
            audit_oauth(
                "oidc.token_revoke", application=_calling_application(request), reason="the app revoked a token"
            )
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
            # Not a standard name (RFC 8414 allows more): only a confidential client holding this scope in its
            # allowed scopes, or a bearer token carrying it, may introspect.
            "dockspace_introspection_requires_scope": "introspection",
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": list(CLAIMS_SUPPORTED),
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

    def get_request_application(self, id_token, client_id):
        if client_id:
            application = Application.objects.filter(client_id=client_id).first()
            if application is None:
                raise InvalidOIDCClientError()
            return application
        return id_token.application if id_token else None

    def do_logout(self, application=None, post_logout_redirect_uri=None, state=None, token_user=None):
        user = self.request.user
        if user.is_authenticated and application is not None and token_user in (None, user):
            services.app_sessions_end(user=user, application=application, request=self.request)
        if not post_logout_redirect_uri:
            logout(self.request)
            messages.info(self.request, "You are signed out.")
            return redirect("accounts:login")
        return super().do_logout(application, post_logout_redirect_uri, state, token_user)
