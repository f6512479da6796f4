"""Every OIDC scope, declared once (`SCOPES`): what people are told it allows, whom it describes, and the claims it
releases with how each is computed. The scopes backend, discovery, the validator, the claims parameter, the admin
and the `oidc_client` command all read this table; adding a scope or a claim is one entry here."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from oauth2_provider.scopes import BaseScopes


@dataclass(frozen=True)
class Claim:
    """One claim. `value(person)` computes it (None leaves it out); without `value` the protocol sets it in the ID
    token (oauthlib, DOT and DockspaceValidator.get_id_token_dictionary), and it is only advertised here."""

    name: str
    value: Callable[[Any], Any] | None = None
    # The claims request parameter may ask for it, which asks for its scope (views.scopes_with_requested_claims).
    by_claims_parameter: bool = False


@dataclass(frozen=True)
class Scope:
    name: str
    description: str  # what the consent page, the profile's apps and the admin say the scope allows
    claims: tuple[Claim, ...] = ()
    # A client-credentials token has no person behind it, so it never gets a scope that describes one.
    describes_person: bool = True
    # Reaches people's data without anyone signing in to the client each time, so only a superuser sets up a client
    # allowed it (oidc.services, docs/security.md).
    is_guarded: bool = False


def _mailbox(person):
    return getattr(person, "mailbox", None)


def _email_verified(person):
    mailbox = _mailbox(person)
    return person.email_verified_at is not None or (mailbox is not None and mailbox.address == person.email)


def _mailbox_address(person):
    mailbox = _mailbox(person)
    return mailbox.address if mailbox is not None and mailbox.is_usable else None


def _group_names(person):
    return sorted(person.member_groups.values_list("name", flat=True))


SCOPES = (
    Scope(
        "openid",
        "Sign you in",
        claims=(
            Claim("sub", lambda person: str(person.uuid)),  # stable, never reused, unchanged when the address changes
            *(
                Claim(name)
                for name in ("iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash")
            ),
        ),
    ),
    Scope(
        "profile",
        "Your name",
        claims=(
            Claim("name", lambda person: person.full_name or person.email, by_claims_parameter=True),
            Claim("preferred_username", lambda person: person.email, by_claims_parameter=True),
        ),
    ),
    Scope(
        "email",
        "Your email address",
        claims=(
            Claim("email", lambda person: person.email, by_claims_parameter=True),
            Claim("email_verified", _email_verified, by_claims_parameter=True),
        ),
    ),
    Scope("groups", "The groups you belong to", claims=(Claim("groups", _group_names, by_claims_parameter=True),)),
    # Not through the claims parameter: the mail scope lets a token open the mailbox, so it is only ever granted
    # when asked for as a scope.
    Scope("mail", "Read and send your mail", claims=(Claim("mailbox", _mailbox_address),), is_guarded=True),
    # Lets a client's own secret find out whose any token is; a client-credentials client's scope.
    Scope("introspection", "Check other apps' tokens", describes_person=False, is_guarded=True),
)

# --- read from the table --------------------------------------------------------------------------------------------

KNOWN_SCOPES = tuple(scope.name for scope in SCOPES)
SCOPE_DESCRIPTIONS = {scope.name: scope.description for scope in SCOPES}
PERSON_SCOPES = frozenset(scope.name for scope in SCOPES if scope.describes_person)
GUARDED_SCOPES = frozenset(scope.name for scope in SCOPES if scope.is_guarded)
# Discovery's claims_supported, in table order.
CLAIMS_SUPPORTED = tuple(claim.name for scope in SCOPES for claim in scope.claims)
# The scope that releases each claim (DOT's OAuth2Validator.oidc_claim_scope).
CLAIM_SCOPE = {claim.name: scope.name for scope in SCOPES for claim in scope.claims}
# The claims the claims parameter may ask for, with the scope each asks for.
REQUESTABLE_CLAIMS = {claim.name: scope.name for scope in SCOPES for claim in scope.claims if claim.by_claims_parameter}
ALLOWED_SCOPES_HELP = f"Space-separated scopes this client may ask for: {' '.join(KNOWN_SCOPES)}."


def person_claims(person, granted_scopes):
    """The claims about `person` that `granted_scopes` release, in table order; only those are computed."""
    claims = {}
    for scope in SCOPES:
        if scope.name not in granted_scopes:
            continue
        for claim in scope.claims:
            value = claim.value(person) if claim.value is not None else None
            if value is not None:
                claims[claim.name] = value
    return claims


class ClientScopes(BaseScopes):
    """DOT's scopes backend: every scope of the table, and what each client may ask for (its allowed_scopes)."""

    def get_all_scopes(self):
        return dict(SCOPE_DESCRIPTIONS)

    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        if application is None:
            return list(KNOWN_SCOPES)
        allowed = [s for s in KNOWN_SCOPES if s in application.scope_set]
        if application.authorization_grant_type == application.GRANT_CLIENT_CREDENTIALS:
            return [s for s in allowed if s not in PERSON_SCOPES]
        # A client holding "introspection" may call the introspection endpoint with its own
        # credentials; the people signing into it never get tokens that introspect others'.
        return [s for s in allowed if s in PERSON_SCOPES]

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        if application is not None and application.authorization_grant_type == application.GRANT_CLIENT_CREDENTIALS:
            return self.get_available_scopes(application, request)
        return ["openid"]
