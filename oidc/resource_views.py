"""Endpoints resource servers call with a token: RFC 7662 introspection for trusted clients, and the endpoint
Dovecot's oauth2 passdb calls to turn a mail token into a mailbox address (docs/mail-oauth.md).

Neither writes an audit entry (one per IMAP login would drown the log), and neither logs a token.
"""

import calendar
import hashlib
import re
from urllib.parse import parse_qs

from django.http import JsonResponse
from django.http.request import RawPostDataException
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider import views as dot_views
from oauth2_provider.compat import login_not_required
from oauth2_provider.models import get_access_token_model, get_refresh_token_model, refresh_token_expire_timedelta
from oauth2_provider.views.mixins import OAuthLibMixin
from oauthlib.common import Request as OauthlibRequest

from mail.models import Mailbox
from oidc.models import TokenFamily
from oidc.validator import person_may_use, user_is_usable

INTROSPECTION_SCOPE = "introspection"
MAIL_SCOPE = "mail"

# RFC 6750 b64token. Anything else is refused before it reaches the database (lone surrogates, NULs, spaces).
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_TOKEN_MAX_LENGTH = 4096


def _well_formed(token):
    return bool(token) and len(token) <= _TOKEN_MAX_LENGTH and _TOKEN_SHAPE.fullmatch(token) is not None


def bearer_from_header(request):
    """The token of an `Authorization: Bearer <token>` header; "" for any other header, None without one."""
    header = request.META.get("HTTP_AUTHORIZATION")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


def form_value(request, name):
    """A field of a form-encoded body, read from the raw body so that a body sent without a Content-Type (which
    leaves Django's request.POST empty) still counts. None when absent or when the body is not a small form."""
    try:
        fields = parse_qs(request.body.decode("utf-8", errors="replace"), max_num_fields=20)
    except (ValueError, RawPostDataException):
        return None
    values = fields.get(name)
    return values[-1] if values else None


def authenticated_client(core, request):
    """The client that authenticated this request with client_secret_basic or client_secret_post, or None.

    What OAuthLibCore.authenticate_client does, keeping the oauthlib request to learn which client it was.
    Inactive clients never authenticate (the validator loads clients through is_usable).
    """
    try:
        uri, http_method, body, headers = core._extract_params(request)
        oauth_request = OauthlibRequest(uri, http_method, body, headers)
    except ValueError:
        return None
    if not core.server.request_validator.authenticate_client(oauth_request):
        return None
    client = oauth_request.client
    # A public client "authenticates" with its client_id alone (an empty secret matches an empty secret).
    if client is None or client.client_type != client.CLIENT_CONFIDENTIAL:
        return None
    return client


def verify_token(core, request, token, scopes):
    """Check a presented access token as DOT's protected-resource views do (validator.validate_bearer_token:
    expiry, scopes, client usable, account usable). Returns the oauthlib request, or None if refused."""
    if not _well_formed(token):
        return None
    uri = request.build_absolute_uri(request.path)
    valid, oauth_request = core.server.verify_request(
        uri, "GET", None, {"Authorization": f"Bearer {token}"}, scopes=scopes
    )
    return oauth_request if valid else None


def _error(status, error, description=None, challenge=None):
    body = {"error": error}
    if description:
        body["error_description"] = description
    response = JsonResponse(body, status=status)
    if challenge:
        response["WWW-Authenticate"] = challenge
    return response


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(login_not_required, name="dispatch")
@method_decorator(never_cache, name="dispatch")
class IntrospectView(dot_views.IntrospectTokenView):
    """RFC 7662 for callers that hold "introspection": a confidential client with it in allowed_scopes
    (client_secret_basic or client_secret_post), or a bearer token carrying that scope.

    DOT lets any authenticated client introspect any token; here the caller must be trusted for it. POST only:
    a token in a query string ends up in access logs. Access tokens and refresh tokens are known (a refresh token
    is active while a refresh with it would succeed); anything else is inactive.
    """

    http_method_names = ["post", "options"]

    def dispatch(self, request, *args, **kwargs):
        if request.method not in ("POST", "OPTIONS"):
            return _error(405, "invalid_request", "Send the token with POST (RFC 7662).")
        if request.method == "OPTIONS":
            return View.dispatch(self, request, *args, **kwargs)
        refusal = self.caller_refusal(request)
        if refusal is not None:
            return refusal
        return View.dispatch(self, request, *args, **kwargs)

    def caller_refusal(self, request):
        core = self.get_oauthlib_core()
        presented = bearer_from_header(request)
        if presented is not None and presented != "":
            if verify_token(core, request, presented, [INTROSPECTION_SCOPE]) is None:
                return _error(
                    401,
                    "invalid_token",
                    "The access token is invalid or does not carry the introspection scope.",
                    challenge=f'Bearer error="invalid_token", scope="{INTROSPECTION_SCOPE}"',
                )
            return None
        client = authenticated_client(core, request)
        if client is None:
            return _error(401, "invalid_client", "Client authentication failed.", challenge='Basic realm="Dockspace"')
        if INTROSPECTION_SCOPE not in client.scope_set:
            return _error(
                403,
                "unauthorized_client",
                f'This client may not introspect tokens (needs the "{INTROSPECTION_SCOPE}" scope).',
            )
        return None

    def post(self, request, *args, **kwargs):
        token = request.POST.get("token") or form_value(request, "token")
        return self.get_token_response(token)

    @staticmethod
    def get_token_response(token_value=None):
        if not token_value:
            return JsonResponse(
                {"error": "invalid_request", "error_description": "The token parameter is missing."}, status=400
            )
        if not _well_formed(token_value):
            return JsonResponse({"active": False})
        checksum = hashlib.sha256(token_value.encode("utf-8")).hexdigest()
        # Checksums of access and refresh tokens are both SHA-256 of a random value: the hint is not needed.
        data = access_token_info(checksum) or refresh_token_info(checksum)
        return JsonResponse(data or {"active": False})


def _epoch(dt):
    return int(calendar.timegm(dt.utctimetuple()))


def _who(data, application, user):
    if application is not None:
        data["client_id"] = application.client_id
    if user is not None:
        data["sub"] = str(user.uuid)
        data["username"] = user.get_username()
    return data


def access_token_info(checksum):
    """RFC 7662 fields of a live access token, or None."""
    token = get_access_token_model().objects.select_related("user", "application").filter(token_checksum=checksum)
    token = token.first()
    if token is None or not token.is_valid():
        return None
    application, user = token.application, token.user
    if application is not None and not application.is_usable(None):
        return None
    if user is not None and not user_is_usable(user):
        return None
    data = {"active": True, "scope": token.scope, "token_type": "Bearer", "exp": _epoch(token.expires)}
    data["iat"] = _epoch(token.created)
    if token.resource:
        data["aud"] = token.resource
    return _who(data, application, user)


def refresh_token_info(checksum):
    """RFC 7662 fields of a refresh token that a refresh would accept now, or None: not revoked or rotated away,
    its family not revoked, within its idle lifetime, its client active and its person still admitted."""
    token = (
        get_refresh_token_model()
        .objects.select_related("user", "application", "access_token")
        .filter(token_checksum=checksum, revoked__isnull=True)
        .first()
    )
    if token is None or token.access_token is None or token.user is None:
        return None
    if not token.token_family or not TokenFamily.objects.filter(family=token.token_family).exists():
        return None
    idle = refresh_token_expire_timedelta()
    expires = token.access_token.expires + idle if idle else None
    if expires is not None and expires <= timezone.now():
        return None
    application = token.application
    if not application.is_usable(None) or not person_may_use(application, token.user):
        return None
    data = {"active": True, "scope": token.access_token.scope, "token_type": "refresh_token"}
    if expires is not None:
        data["exp"] = _epoch(expires)
    data["iat"] = _epoch(token.created)
    return _who(data, application, token.user)


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(login_not_required, name="dispatch")
@method_decorator(never_cache, name="dispatch")
class MailTokenView(OAuthLibMixin, View):
    """What Dovecot's oauth2 passdb (DMS ENABLE_OAUTH2=1) asks: whose mailbox does this token open?

    introspection_mode = auth: GET with `Authorization: Bearer <token>`. introspection_mode = post: body
    `token=<token>` (form-encoded; read from the raw body, so a missing Content-Type does not matter) with
    HTTP Basic auth of a client holding "introspection". 200 {"email": <mailbox address>, ...} only for a valid
    token with scope "mail" whose person may still use the app and has an active mailbox; Dovecot then checks
    that "email" equals the login name.

    Anything else is a 401 whose body also says "active": false. Dovecot 2.3.19 ignores the status of a 4xx
    answer and reads its body: "active": false makes it a plain authentication failure, while a body without
    "email" or "active" is a "temporary failure" that mail clients retry (docs/mail-oauth.md). So a refusal
    must never carry "email".
    """

    http_method_names = ["get", "post"]
    required_scopes = [MAIL_SCOPE]

    def get(self, request, *args, **kwargs):
        return self.answer(request, bearer_from_header(request))

    def post(self, request, *args, **kwargs):
        presented = bearer_from_header(request)
        if presented:
            return self.answer(request, presented)
        # Read the raw body before anything parses request.POST (a multipart body could not be re-read).
        token = form_value(request, "token")
        client = authenticated_client(self.get_oauthlib_core(), request)
        if client is None or INTROSPECTION_SCOPE not in client.scope_set:
            return _error(401, "invalid_client", challenge='Basic realm="Dockspace"')
        return self.answer(request, token)

    def answer(self, request, token):
        oauth_request = verify_token(self.get_oauthlib_core(), request, token, self.required_scopes)
        person = oauth_request.user if oauth_request is not None else None
        if person is None or oauth_request.client is None or not person_may_use(oauth_request.client, person):
            return self.refused()
        mailbox = Mailbox.objects.usable().filter(person=person).first()
        if mailbox is None:
            return self.refused()
        return JsonResponse(
            {"email": mailbox.address, "active": True, "sub": str(person.uuid), "scope": " ".join(oauth_request.scopes)}
        )

    @staticmethod
    def refused():
        response = JsonResponse({"error": "invalid_token", "active": False}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="mail", error="invalid_token"'
        return response
