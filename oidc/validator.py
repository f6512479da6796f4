"""The oauthlib request validator: DOT's, plus Dockspace's claims, code-replay revocation, policy checks
at code exchange and refresh, and keys from the database.

Stateless: DOT builds one validator per view class and keeps it, so per-request state lives on the
oauthlib request object (`request.dockspace_auth`, `request.dockspace_grant_id`).
"""

import datetime
import hashlib
import json
import logging
from datetime import timedelta

from django.utils import timezone
from jwcrypto import jws
from jwcrypto.common import JWException
from oauth2_provider.models import get_access_token_model, get_grant_model, get_refresh_token_model
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749 import errors

from oidc import keys, policy, scopes
from oidc.models import TokenFamily
from oidc.request_context import audit_oauth

log = logging.getLogger(__name__)

# A used code is kept this long so that a replay within it revokes what the code produced.
REPLAY_WINDOW = timedelta(minutes=10)


def user_is_usable(user):
    mailbox = getattr(user, "mailbox", None)
    return policy.account_usable(
        is_active=user.is_active,
        is_pending_registration=user.is_pending_registration,
        mailbox_usable=mailbox.is_usable if mailbox is not None else None,
    )


def user_group_ids(user):
    return list(user.member_groups.values_list("pk", flat=True))


def client_admits_user(application, user):
    allowed = list(application.allowed_groups.values_list("pk", flat=True))
    return policy.client_admits(allowed, user_group_ids(user) if allowed else [])


def person_may_use(application, user):
    """Account state and group gate, re-checked at code exchange and at every refresh."""
    return user is not None and user_is_usable(user) and client_admits_user(application, user)


def _unverified_claims(token):
    unverified = jws.JWS()
    unverified.deserialize(token)
    return json.loads(unverified.objects["payload"].decode("utf-8"))


def _epoch(dt):
    return int(dt.timestamp())


def _from_epoch(seconds):
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


class DockspaceValidator(OAuth2Validator):
    # The scope that releases each claim, from the scope table (DOT filters get_claim_dict() with it).
    oidc_claim_scope = dict(scopes.CLAIM_SCOPE)

    # --- clients ------------------------------------------------------------------------------------

    def is_pkce_required(self, client_id, request):
        client = request.client or self._load_application(client_id, request)
        if client is None:
            return True
        return client.client_type == client.CLIENT_PUBLIC or client.requires_pkce

    # --- claims -------------------------------------------------------------------------------------

    def get_additional_claims(self, request):
        # Only the granted scopes' claims are computed (the groups claim is a query).
        return scopes.person_claims(request.user, request.scopes)

    def get_discovery_claims(self, request):
        return list(scopes.CLAIMS_SUPPORTED)

    def get_id_token_dictionary(self, token, token_handler, request):
        claims, expiration_time = super().get_id_token_dictionary(token, token_handler, request)
        context = getattr(request, "dockspace_auth", None)
        if not context:
            # Fail closed: an ID token without the real authentication context is never minted.
            raise errors.InvalidGrantError(description="The sign-in behind this grant is unknown.", request=request)
        claims["auth_time"] = context["auth_time"]
        claims["amr"] = list(context["amr"])
        claims["acr"] = context["acr"]
        claims["azp"] = request.client.client_id
        return claims, expiration_time

    # --- keys ---------------------------------------------------------------------------------------

    def _get_key_for_token(self, token):
        try:
            claims = _unverified_claims(token)
        except (JWException, ValueError, TypeError, KeyError, UnicodeDecodeError):
            return None
        audience = claims.get("aud") if isinstance(claims, dict) else None
        if isinstance(audience, str):
            audience = [audience]
        if not isinstance(audience, list) or not all(isinstance(a, str) for a in audience):
            return None
        if self._get_client_by_audience(audience) is None:
            return None
        return keys.jwk_set()

    # DOT decodes the ID token it has just signed to find its row again (JWKS, client and IDToken
    # queries per token response). The row saved for this request is handed over instead; it lives
    # on this oauthlib request only, never beyond it.
    def _save_id_token(self, jti, request, expires, *args, **kwargs):
        id_token = super()._save_id_token(jti, request, expires, *args, **kwargs)
        request.dockspace_id_token = id_token
        return id_token

    # --- ID tokens are not credentials ----------------------------------------------------------------

    def validate_jwt_bearer_token(self, token, scopes, request):
        # oauthlib's OIDC server routes "Bearer <JWT>" here; an ID token must never open userinfo,
        # introspection or mail, and it is not revoked with the access token.
        return False

    def validate_id_token(self, token, scopes, request):
        return False

    def validate_user(self, username, password, client, request, *args, **kwargs):
        # No password grant: never check a password here (it would bypass sign-in throttling).
        return False

    # --- prompt=none and hints: decided by the authorization view, which has the session ------------

    def validate_silent_login(self, request):
        return True

    def validate_silent_authorization(self, request):
        return True

    def validate_user_match(self, id_token_hint, scopes, claims, request):
        return True

    # --- codes --------------------------------------------------------------------------------------

    def _create_authorization_code(self, request, code, expires=None):
        grant = super()._create_authorization_code(request, code, expires)
        context = getattr(request, "dockspace_auth", None) or {}
        get_grant_model().objects.filter(pk=grant.pk).update(
            auth_time=_from_epoch(context["auth_time"]) if context else None,
            amr=list(context.get("amr", [])),
            acr=context.get("acr", ""),
            session_key_hash=context.get("session_key_hash", ""),
        )
        return grant

    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        Grant = get_grant_model()
        grant = Grant.objects.select_related("user").filter(code=code, application=client).first()
        if grant is None:
            return False
        if grant.used_at is not None:
            self.code_replayed(grant, request)
            return False
        if grant.is_expired() or grant.auth_time is None:
            return False
        if not person_may_use(client, grant.user):
            audit_oauth("oidc.token_failure", user=grant.user, application=client, reason="access_denied at exchange")
            return False
        now = timezone.now()
        claimed = Grant.objects.filter(pk=grant.pk, used_at__isnull=True).update(
            used_at=now, expires=now + REPLAY_WINDOW
        )
        if not claimed:
            self.code_replayed(grant, request)
            return False
        request.scopes = grant.scope.split(" ")
        request.user = grant.user
        if grant.nonce:
            request.nonce = grant.nonce
        if grant.claims:
            request.claims = json.loads(grant.claims)
        request.dockspace_auth = {
            "auth_time": _epoch(grant.auth_time),
            "amr": list(grant.amr),
            "acr": grant.acr,
            "session_key_hash": grant.session_key_hash,
        }
        request.dockspace_grant_id = grant.pk
        return True

    def confirm_redirect_uri(self, client_id, code, redirect_uri, client, *args, **kwargs):
        # RFC 6749 5.2: a redirect_uri that differs from the authorization request's is invalid_grant
        # (oauthlib would answer invalid_request).
        if not super().confirm_redirect_uri(client_id, code, redirect_uri, client, *args, **kwargs):
            raise errors.InvalidGrantError(description="redirect_uri does not match the authorization request.")
        return True

    def invalidate_authorization_code(self, client_id, code, request, *args, **kwargs):
        """Keep the used code (for replay detection) with what it produced, instead of deleting it."""
        Grant = get_grant_model()
        grant_id = getattr(request, "dockspace_grant_id", None)
        issued = getattr(request, "dockspace_issued", {})
        updated = Grant.objects.filter(pk=grant_id, replayed_at__isnull=True).update(
            token_family=issued.get("family"), access_token_checksum=issued.get("access_checksum", "")
        )
        if not updated:
            # A replay raced this exchange: revoke what was just issued.
            grant = Grant.objects.filter(pk=grant_id).first()
            if grant is not None:
                grant.token_family = issued.get("family")
                grant.access_token_checksum = issued.get("access_checksum", "")
                self.revoke_issued(grant)
            raise errors.InvalidGrantError(request=request)

    def code_replayed(self, grant, request):
        Grant = get_grant_model()
        Grant.objects.filter(pk=grant.pk).update(replayed_at=timezone.now())
        grant.refresh_from_db(fields=["token_family", "access_token_checksum"])
        self.revoke_issued(grant)
        audit_oauth(
            "oidc.code_replay",
            user=grant.user,
            application=grant.application,
            reason="an authorization code was used twice; the tokens issued from it are revoked",
        )

    @staticmethod
    def revoke_issued(grant):
        if grant.token_family:
            get_refresh_token_model().revoke_family(grant.token_family)
        if grant.access_token_checksum:
            get_access_token_model().objects.filter(token_checksum=grant.access_token_checksum).delete()

    # --- tokens -------------------------------------------------------------------------------------

    def _create_access_token(self, expires, request, token, source_refresh_token=None):
        id_token_row = getattr(request, "dockspace_id_token", None)
        if id_token_row is not None and token.get("id_token"):
            without_id_token = {k: v for k, v in token.items() if k != "id_token"}
            access_token = super()._create_access_token(expires, request, without_id_token, source_refresh_token)
            get_access_token_model().objects.filter(pk=access_token.pk).update(id_token=id_token_row)
            access_token.id_token = id_token_row
        else:
            access_token = super()._create_access_token(expires, request, token, source_refresh_token)
        issued = getattr(request, "dockspace_issued", None)
        if issued is None:
            issued = request.dockspace_issued = {}
        issued["access_checksum"] = access_token.token_checksum
        return access_token

    def _create_refresh_token(self, request, refresh_token_code, access_token, previous_refresh_token):
        refresh_token = super()._create_refresh_token(request, refresh_token_code, access_token, previous_refresh_token)
        issued = getattr(request, "dockspace_issued", None)
        if issued is None:
            issued = request.dockspace_issued = {}
        issued["family"] = refresh_token.token_family
        context = getattr(request, "dockspace_auth", None)
        if previous_refresh_token is None and context:
            TokenFamily.objects.get_or_create(
                family=refresh_token.token_family,
                defaults={
                    "user": request.user,
                    "application": request.client,
                    "auth_time": _from_epoch(context["auth_time"]),
                    "amr": list(context["amr"]),
                    "acr": context["acr"],
                    "session_key_hash": context.get("session_key_hash", ""),
                },
            )
        return refresh_token

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            instance = self._refresh_token_row(refresh_token)
            # A revoked token of a live family was rotated away and is being reused; a family that is gone
            # was revoked on purpose (sign-in reset, access withdrawn, logout): no reuse to report.
            family_live = instance is not None and TokenFamily.objects.filter(family=instance.token_family).exists()
            if instance is not None and instance.revoked is not None and family_live:
                audit_oauth(
                    "oidc.refresh_reuse",
                    user=instance.user,
                    application=instance.application,
                    reason="a rotated refresh token was used again; its whole family is revoked",
                )
            return False
        rt = request.refresh_token_instance
        family = TokenFamily.objects.filter(family=rt.token_family).first() if rt.token_family else None
        if family is None or not client.is_usable(request) or not person_may_use(client, rt.user):
            if rt.token_family:
                get_refresh_token_model().revoke_family(rt.token_family)
            audit_oauth(
                "oidc.token_failure",
                user=rt.user,
                application=client,
                reason="refresh refused: account not usable or no longer in the app's groups; access revoked",
            )
            return False
        request.dockspace_auth = {
            "auth_time": _epoch(family.auth_time),
            "amr": list(family.amr),
            "acr": family.acr,
            "session_key_hash": family.session_key_hash,
        }
        return True

    @staticmethod
    def _refresh_token_row(refresh_token):
        checksum = hashlib.sha256(refresh_token.encode("utf-8")).hexdigest()
        return (
            get_refresh_token_model()
            .objects.select_related("user", "application")
            .filter(token_checksum=checksum)
            .first()
        )

    def validate_bearer_token(self, token, scopes, request):
        if not super().validate_bearer_token(token, scopes, request):
            return False
        user = request.user
        if user is not None and not user_is_usable(user):
            request.oauth2_error = {"error": "invalid_token", "error_description": "The access token is invalid."}
            return False
        return True
