"""OpenID Connect provider data: clients (DOT's swapped Application), codes (swapped Grant) carrying
what the person proved, refresh-token families, remembered consent and the signing keys."""

import functools
import ipaddress
import re
import unicodedata
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from oauth2_provider.models import AbstractApplication, AbstractGrant, ApplicationManager

from oidc.scopes import ALLOWED_SCOPES_HELP, KNOWN_SCOPES

DEFAULT_SCOPES = "openid profile email groups"


def is_loopback_uri(uri):
    """http is allowed only for a native app listening on a loopback IP literal (RFC 8252 7.3)."""
    try:
        host = urlsplit(uri).hostname or ""
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()+,;=%]+")


def uri_problems(uris):
    problems = []
    for uri in uris.split():
        parts = urlsplit(uri)
        if parts.scheme == "https" and parts.netloc or parts.scheme == "http" and is_loopback_uri(uri):
            pass
        else:
            problems.append(f"{uri!r} must be an https:// URL (http:// only on 127.0.0.1 or [::1]).")
        if parts.fragment:
            problems.append(f"{uri!r} must not contain a #fragment.")
        if parts.username or parts.password:
            problems.append(f"{uri!r} must not contain a user name or password.")
        if "*" in uri:
            problems.append(f"{uri!r} must not contain wildcards; list each URI exactly.")
        elif not URI_CHARACTERS.fullmatch(uri):
            # Apps send the ASCII form (punycode host, %-escaped path); an exact match needs the same here.
            problems.append(
                f"{uri!r} may only contain URI characters; write a host as xn--… (punycode) "
                "and escape other characters as %XX."
            )
    return problems


def name_problem(name):
    """A client's name is shown on one line (consent page, profile, lists, audit): printable text only."""
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        return "must be one line of printable text (no line breaks or control characters)."
    return None


class Application(AbstractApplication):
    """A relying party (an app people sign into) or an automation client (client credentials)."""

    allowed_groups = models.ManyToManyField(
        "mail.Group",
        blank=True,
        related_name="oidc_clients",
        help_text="Only members of these groups may sign in. Empty: everyone with an account.",
    )
    requires_totp = models.BooleanField(
        "requires TOTP", default=False, help_text="People must have proved a second factor in this session to sign in."
    )
    requires_pkce = models.BooleanField(
        "requires PKCE", default=True, help_text="Require PKCE (S256). Public clients always need it."
    )
    allowed_scopes = models.CharField(
        max_length=255,
        default=DEFAULT_SCOPES,
        help_text=ALLOWED_SCOPES_HELP,
    )
    is_active = models.BooleanField(default=True, help_text="An inactive client can neither sign in nor use tokens.")
    mail_consent_waived = models.BooleanField(
        default=False,
        editable=False,
        help_text="A superuser set this client up to get the mail scope without asking people (e.g. webmail). "
        "Without it, people are asked before the mail scope even when consent is otherwise skipped.",
    )

    # Of the grants DOT knows, the only ones Dockspace accepts (clean() refuses the rest).
    SUPPORTED_GRANT_TYPES = (AbstractApplication.GRANT_AUTHORIZATION_CODE, AbstractApplication.GRANT_CLIENT_CREDENTIALS)

    objects = ApplicationManager()

    class Meta(AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"
        verbose_name = "OIDC client"
        verbose_name_plural = "OIDC clients"

    def natural_key(self):
        return (self.client_id,)

    def __str__(self):
        return self.name or self.client_id

    @property
    def scope_set(self):
        return set(self.allowed_scopes.split())

    def is_usable(self, request):
        return self.is_active

    def get_allowed_schemes(self):
        uris = f"{self.redirect_uris} {self.post_logout_redirect_uris}".split()
        return ["https", "http"] if any(is_loopback_uri(u) for u in uris) else ["https"]

    @functools.cached_property
    def jwk_key(self):
        # Cached per instance: DOT reads it twice per ID token (kid, then signature).
        from oidc import keys

        return keys.active_jwk()

    def clean(self):
        errors = {}
        algorithm = self.algorithm
        # DOT's clean() insists on OIDC_RSA_PRIVATE_KEY for RS256; our keys live in the database.
        self.algorithm = self.NO_ALGORITHM
        try:
            super().clean()
        except ValidationError as exc:
            errors.update(exc.message_dict)
        finally:
            self.algorithm = algorithm
        problem = name_problem(self.name or "")
        if problem:
            errors.setdefault("name", []).append(f"The name {problem}")
        if self.algorithm != self.RS256_ALGORITHM:
            errors.setdefault("algorithm", []).append("ID tokens are signed with RS256 only.")
        for field in ("redirect_uris", "post_logout_redirect_uris"):
            problems = uri_problems(getattr(self, field))
            if problems:
                errors.setdefault(field, []).extend(problems)
        unknown = self.scope_set - set(KNOWN_SCOPES)
        if unknown:
            errors.setdefault("allowed_scopes", []).append(
                f"Unknown scope(s): {', '.join(sorted(unknown))}. Known: {' '.join(KNOWN_SCOPES)}."
            )
        if self.authorization_grant_type not in self.SUPPORTED_GRANT_TYPES:
            errors.setdefault("authorization_grant_type", []).append(
                "Only the authorization code and client credentials grants are supported."
            )
        if self.authorization_grant_type == self.GRANT_CLIENT_CREDENTIALS and (
            self.client_type != self.CLIENT_CONFIDENTIAL
        ):
            errors.setdefault("client_type", []).append("A client-credentials client must be confidential.")
        if self.authorization_grant_type == self.GRANT_AUTHORIZATION_CODE and not self.redirect_uris.strip():
            errors.setdefault("redirect_uris", []).append("An app that signs people in needs a redirect URI.")
        if errors:
            raise ValidationError(errors)


class Grant(AbstractGrant):
    """An authorization code, with what the person proved when it was issued (for the ID token)."""

    auth_time = models.DateTimeField(null=True, blank=True)
    amr = models.JSONField("AMR", default=list, blank=True)
    acr = models.CharField("ACR", max_length=64, blank=True)
    session_key_hash = models.CharField(max_length=64, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)
    replayed_at = models.DateTimeField(null=True, blank=True)
    token_family = models.UUIDField(null=True, blank=True)
    access_token_checksum = models.CharField(max_length=64, blank=True)

    class Meta(AbstractGrant.Meta):
        swappable = "OAUTH2_PROVIDER_GRANT_MODEL"


class TokenFamily(models.Model):
    """One sign-in of one person into one app: the refresh-token chain and its authentication context."""

    family = models.UUIDField(unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_token_families")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="token_families")
    auth_time = models.DateTimeField()
    amr = models.JSONField("AMR", default=list)
    acr = models.CharField("ACR", max_length=64)
    session_key_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "token families"

    def __str__(self):
        return f"{self.user} in {self.application}"


class Consent(models.Model):
    """A person allowed an app these scopes; asked once, revocable from the profile."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_consents")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="consents")
    scopes = models.CharField(max_length=255)
    granted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "application"], name="oidc_consent_once")]

    def __str__(self):
        return f"{self.user} allowed {self.application}: {self.scopes}"

    @property
    def scope_set(self):
        return set(self.scopes.split())


class SigningKey(models.Model):
    """An RS256 key. 'next' is published before it signs, 'retiring' stays published until its tokens expire."""

    NEXT, ACTIVE, RETIRING, RETIRED = "next", "active", "retiring", "retired"
    STATES = [(NEXT, "next"), (ACTIVE, "active"), (RETIRING, "retiring"), (RETIRED, "retired")]

    kid = models.CharField("key ID (kid)", max_length=64, unique=True)
    private_pem = models.TextField()
    state = models.CharField(max_length=10, choices=STATES)
    created_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)
    publish_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["state"], condition=Q(state="active"), name="oidc_one_active_key"),
            models.UniqueConstraint(fields=["state"], condition=Q(state="next"), name="oidc_one_next_key"),
        ]

    def __str__(self):
        return f"{self.kid} ({self.state})"
