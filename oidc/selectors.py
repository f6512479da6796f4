"""Reads about OIDC that pages share: the apps a person signed into that can still act for them."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Exists, Max, OuterRef
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_refresh_token_model
from oauth2_provider.scopes import get_scopes_backend

from accounts.models import User
from oidc.models import Application, Consent, TokenFamily
from oidc.scopes import KNOWN_SCOPES


@dataclass(frozen=True)
class SignedInApp:
    """One app on the person's profile: what it may read, since when, and how they last proved who they are."""

    application: Application
    name: str
    scopes: tuple[str, ...]
    first_signed_in: datetime | None
    last_used: datetime | None
    second_factor: bool

    @property
    def used_just_now(self) -> bool:
        return self.last_used is not None and timezone.now() - self.last_used < timedelta(minutes=1)

    @property
    def scope_descriptions(self) -> list[str]:
        """What the app may read, in the words the consent page used."""
        described = get_scopes_backend().get_all_scopes()
        return [described.get(scope, scope) for scope in self.scopes]


def _scope_order(scope: str) -> tuple[int, str]:
    return (KNOWN_SCOPES.index(scope), "") if scope in KNOWN_SCOPES else (len(KNOWN_SCOPES), scope)


def _latest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return max(present) if present else None


def _earliest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return min(present) if present else None


def apps_of(user: User) -> list[SignedInApp]:
    """Apps that still hold access for `user`: a remembered consent, a live refresh-token family or an
    unexpired access token. Four queries however many apps and tokens; sorted by app name."""
    AccessToken, RefreshToken = get_access_token_model(), get_refresh_token_model()
    now = timezone.now()
    live_refresh = RefreshToken.objects.filter(token_family=OuterRef("family"), revoked__isnull=True)

    consents = {c.application_id: c for c in Consent.objects.filter(user=user).select_related("application")}
    families = list(
        TokenFamily.objects.filter(user=user)
        .select_related("application")
        .annotate(is_live=Exists(live_refresh))
        .order_by("created_at")
    )
    # Rotation deletes the replaced access token, so these are the current ones plus expired leftovers.
    access_tokens = list(
        AccessToken.objects.filter(user=user)
        .select_related("application")
        .only("application", "scope", "created", "updated", "expires")
        .order_by("created")
    )
    refreshed_at = dict(
        RefreshToken.objects.filter(user=user)
        .values("application_id")
        .annotate(last=Max("created"))
        .values_list("application_id", "last")
    )

    applications = {c.application_id: c.application for c in consents.values()}
    holding = set(consents)
    families_of = defaultdict(list)  # per app, oldest first
    for family in families:
        applications.setdefault(family.application_id, family.application)
        families_of[family.application_id].append(family)
        if family.is_live:
            holding.add(family.application_id)
    latest_token = {}
    for token in access_tokens:
        applications.setdefault(token.application_id, token.application)
        latest_token[token.application_id] = token  # ordered by created: the last one wins
        if token.expires > now:
            holding.add(token.application_id)

    apps = []
    for pk in holding:
        application, consent, token = applications[pk], consents.get(pk), latest_token.get(pk)
        own_families = families_of[pk]
        live_families = [f for f in own_families if f.is_live]
        if consent is not None:
            scopes = consent.scopes.split()
        else:
            scopes = token.scope.split() if token is not None else []
        apps.append(
            SignedInApp(
                application=application,
                name=application.name or application.client_id,
                scopes=tuple(sorted(set(scopes), key=_scope_order)),
                first_signed_in=_earliest(
                    consent.granted_at if consent else None, own_families[0].created_at if own_families else None
                ),
                last_used=_latest(
                    token.created if token else None, token.updated if token else None, refreshed_at.get(pk)
                ),
                # The most recent sign-in that can still refresh decides: an older MFA session
                # does not vouch for a newer password-only one.
                second_factor=bool(live_families) and "mfa" in (live_families[-1].amr or []),
            )
        )
    return sorted(apps, key=lambda a: (a.name.casefold(), a.application.pk))
