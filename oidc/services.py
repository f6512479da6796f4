"""Every write of the OIDC provider: clients, consent, revoking an app's access, signing-key rotation.

Each service validates first, runs in one transaction and writes an audit entry (never a secret).
Errors are ValidationError keyed by the field at fault.
"""

from collections.abc import Collection, Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import get_access_token_model, get_grant_model, get_refresh_token_model

from accounts import authz
from accounts.audit import audit
from accounts.models import User
from mail.models import Group
from oidc import keys
from oidc.models import DEFAULT_SCOPES, Application, Consent, SigningKey, TokenFamily
from oidc.scopes import GUARDED_SCOPES, PERSON_SCOPES

# Said less clearly next to a more precise message about the same field (DOT's URI validator repeats
# what Application.clean() says; Django's "blank" sits next to the scope rule): dropped when not alone.
_REDUNDANT = ("redirect uri uri", "redirect_uris cannot be empty", "this field cannot be blank")


def _who(request: HttpRequest | None, actor_label: str | None, actor: authz.Actor | None = None) -> dict[str, Any]:
    who: dict[str, Any] = {"request": request, "actor_label": actor_label}
    if actor is not None:
        who["actor"] = authz.audit_actor(actor)
    return who


# GUARDED_SCOPES (oidc.scopes) reach people's data without anyone signing in to the client each time: `mail` lets a
# token open the person's mailbox (IMAP and SMTP through Dovecot), `introspection` lets the client's own secret find
# out whose any token is. A client allowed one is set up by a superuser (docs/security.md): creating it, changing
# its redirect URIs, scopes or consent, and issuing it a new secret. Otherwise staff holding only the OIDC
# permissions could register https://evil.test/cb with `mail` and no consent, and read a superuser's mailbox after
# one click.
GUARDED_FIELDS = {
    "redirect_uris": "the redirect URIs",
    "allowed_scopes": "the scopes",
    "skip_authorization": "whether people are asked for consent",
}


def _is_guarded(scope_set: Iterable[str]) -> bool:
    return bool(set(scope_set) & GUARDED_SCOPES)


def may_set_up_guarded_client(actor: authz.Actor | None) -> bool:
    """Only a superuser (or the host, running a command without --as) sets up a client allowed mail/introspection."""
    if authz.is_system(actor):
        return True
    return actor is not None and actor.is_authenticated and actor.is_active and actor.is_superuser


def _guarded_refusal(scope_set: Iterable[str], what: str) -> str:
    scopes = " and ".join(sorted(set(scope_set) & GUARDED_SCOPES))
    return (
        f"only a superuser may {what} a client allowed the {scopes} scope: its tokens open people's mailboxes or "
        "look up whose any token is."
    )


def _require_guarded(actor: authz.Actor | None, *, field: str, scope_set: Iterable[str], what: str) -> None:
    if _is_guarded(scope_set) and not may_set_up_guarded_client(actor):
        raise ValidationError({field: [_guarded_refusal(scope_set, what)]})


def _narrows(field: str, old: Any, new: Any) -> bool:
    """Asking people again, dropping a scope or a redirect URI only takes power away: anyone may."""
    if field == "skip_authorization":
        return not new
    return set(new.split()) <= set(old.split())


def reads_mail_without_consent(app: Application) -> bool:
    """True when people signing in to `app` are not asked before it gets the mail scope (their mailbox)."""
    return app.skip_authorization and "mail" in app.scope_set


def _waiver_audit(
    app: Application, request: HttpRequest | None, actor_label: str | None, actor: authz.Actor | None
) -> None:
    audit(
        "oidc.client.mail_without_consent",
        target=app,
        description=f"{app.name} ({app.client_id}) may now get the mail scope (open people's mailboxes) without "
        "asking them.",
        **_who(request, actor_label, actor),
    )


def _refuse_empty_group_names(names: Collection[str]) -> None:
    # An empty name must not quietly mean "no groups", which admits everyone with an account.
    if any(not str(n).strip() for n in names):
        raise ValidationError(
            {"allowed_groups": ["a group name cannot be empty; to admit everyone, name no group at all."]}
        )


def _groups(names: Collection[str]) -> list[Group]:
    # Group names are unique regardless of case (mail.services.group_create), so each finds at most one.
    _refuse_empty_group_names(names)
    found, missing = {}, []
    for name in dict.fromkeys(n.strip() for n in names if n.strip()):
        group = Group.objects.filter(name__iexact=name).first()
        if group is None:
            missing.append(name)
        else:
            found[group.pk] = group
    if missing:
        raise ValidationError({"allowed_groups": [f"No such group: {', '.join(missing)}."]})
    return list(found.values())


def _policy_problems(app: Application, group_rows: list[Group]) -> dict[str, list[str]]:
    """Rules the model cannot see: they involve the groups, or only matter to how Dockspace signs people in."""
    problems = {}
    if not app.name.strip():
        problems["name"] = ["A client needs a name."]
    if app.client_type == Application.CLIENT_PUBLIC and not app.requires_pkce:
        problems["requires_pkce"] = ["A public client has no secret, so it always uses PKCE."]
    if app.authorization_grant_type == Application.GRANT_CLIENT_CREDENTIALS:
        person_scopes = sorted(app.scope_set & PERSON_SCOPES)
        if not app.scope_set:
            problems["allowed_scopes"] = [
                "A client-credentials client needs a scope; the one that applies is introspection."
            ]
        elif person_scopes:
            problems["allowed_scopes"] = [
                f"A client-credentials client acts for no person, so {' '.join(person_scopes)} cannot apply; "
                "use introspection."
            ]
        if group_rows:
            problems["allowed_groups"] = [
                "A client-credentials client signs nobody in, so a group gate would not apply."
            ]
        if app.requires_totp:
            problems["requires_totp"] = ["A client-credentials client signs nobody in, so TOTP would not apply."]
    elif not app.scope_set:
        problems["allowed_scopes"] = [f"Choose the scopes this client may ask for, e.g. {DEFAULT_SCOPES}."]
    return problems


def _validate(app: Application, group_names: Collection[str]) -> list[Group]:
    """Every problem with a client at once, keyed by field; returns the groups named."""
    errors = {}
    try:
        group_rows = _groups(group_names)
    except ValidationError as e:
        errors.update(e.message_dict)
        group_rows = []
    try:
        app.full_clean(exclude=["client_secret", "user"])
    except ValidationError as e:
        for field, messages in e.message_dict.items():
            errors.setdefault(field, []).extend(messages)
    for field, messages in _policy_problems(app, group_rows).items():
        errors.setdefault(field, []).extend(messages)
    if app.name and Application.objects.filter(name__iexact=app.name.strip()).exclude(pk=app.pk).exists():
        # People see the name on the consent page and their profile: two apps must not look alike.
        errors.setdefault("name", []).append(f"A client named {app.name.strip()!r} already exists.")
    for field, messages in errors.items():
        clear = [m for m in messages if not m.lower().startswith(_REDUNDANT)]
        errors[field] = clear or messages
    if errors:
        raise ValidationError(errors)
    return group_rows


def _describe(app: Application) -> str:
    parts = [f"type={app.client_type}", f"grant={app.authorization_grant_type}"]
    if app.requires_totp:
        parts.append("requires TOTP")
    if app.skip_authorization:
        parts.append("consent skipped" + (" (mail too)" if app.mail_consent_waived else ""))
    if not app.requires_pkce:
        parts.append("PKCE optional")
    if not app.is_active:
        parts.append("inactive")
    groups = sorted(app.allowed_groups.values_list("name", flat=True)) if app.pk else []
    parts.append(f"groups={','.join(groups) or 'everyone'}")
    parts.append(f"scopes={app.allowed_scopes}")
    return "; ".join(parts)


def _uri_list(values: Iterable[str], field: str) -> str:
    """Each value is one URI: a space or line break inside one would be stored as two URIs."""
    values = list(values)
    for value in values:
        if not value or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValidationError(
                {field: [f"{value!r} is not one URI: give each URI on its own, without spaces or line breaks."]}
            )
    return " ".join(values)


@transaction.atomic
def client_create(
    *,
    name: str | None,
    redirect_uris: Iterable[str] = (),
    post_logout_redirect_uris: Iterable[str] = (),
    public: bool = False,
    requires_totp: bool = False,
    groups: Collection[str] = (),
    skip_consent: bool = False,
    scopes: Iterable[str] | None = None,
    client_credentials: bool = False,
    requires_pkce: bool = True,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> tuple[Application, str | None]:
    """Create a client. Returns (application, plaintext secret or None); the secret is never stored in clear.
    A client allowed the mail or introspection scope needs a superuser (or the host)."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "oidc.add_application")
    secret = None if public else generate_client_secret()
    app = Application(
        name=(name or "").strip(),
        client_type=Application.CLIENT_PUBLIC if public else Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=(
            Application.GRANT_CLIENT_CREDENTIALS if client_credentials else Application.GRANT_AUTHORIZATION_CODE
        ),
        redirect_uris=_uri_list(redirect_uris, "redirect_uris"),
        post_logout_redirect_uris=_uri_list(post_logout_redirect_uris, "post_logout_redirect_uris"),
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=skip_consent,
        requires_totp=requires_totp,
        requires_pkce=requires_pkce,
        allowed_scopes=" ".join(scopes) if scopes is not None else ("" if client_credentials else DEFAULT_SCOPES),
        client_secret=secret or "",
        hash_client_secret=True,
    )
    group_rows = _validate(app, groups)
    _require_guarded(actor, field="allowed_scopes", scope_set=app.scope_set, what="add")
    app.mail_consent_waived = reads_mail_without_consent(app)
    app.save()
    app.allowed_groups.set(group_rows)
    audit(
        "oidc.client.add",
        target=app,
        description=f"Added OIDC client {app.name} ({app.client_id}): {_describe(app)}.",
        **_who(request, actor_label, actor),
    )
    if app.mail_consent_waived:
        _waiver_audit(app, request, actor_label, actor)
    return app, secret


# What client_update may change: its keyword -> the Application field.
_UPDATABLE = {
    "name": "name",
    "redirect_uris": "redirect_uris",
    "post_logout_redirect_uris": "post_logout_redirect_uris",
    "scopes": "allowed_scopes",
    "requires_totp": "requires_totp",
    "requires_pkce": "requires_pkce",
    "skip_consent": "skip_authorization",
    "is_active": "is_active",
}


@transaction.atomic
def client_update(
    *,
    application: Application,
    name: str | None = None,
    redirect_uris: Iterable[str] | None = None,
    post_logout_redirect_uris: Iterable[str] | None = None,
    scopes: Iterable[str] | None = None,
    groups: Collection[str] | None = None,
    requires_totp: bool | None = None,
    requires_pkce: bool | None = None,
    skip_consent: bool | None = None,
    is_active: bool | None = None,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> Application:
    """Change a client's settings; None leaves a setting as it is. Lists (URIs, scopes, groups) replace the
    current ones; `groups=[]` opens the client to everyone. The secret, type and grant never change here.

    Changing the redirect URIs, scopes or consent of a client allowed mail or introspection (before or after the
    change) needs a superuser. A superuser saving a client that gets mail without consent approves that: only then
    does the authorization page let it skip the consent for mail (oidc.views)."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "oidc.change_application")
    app = Application.objects.select_for_update().get(pk=application.pk)
    before = {field: getattr(app, field) for field in GUARDED_FIELDS}
    scopes_before = app.scope_set
    values: dict[str, Any] = {  # keyword -> new value (str or bool), None: unchanged
        "name": None if name is None else name.strip(),
        "redirect_uris": None if redirect_uris is None else _uri_list(redirect_uris, "redirect_uris"),
        "post_logout_redirect_uris": (
            None
            if post_logout_redirect_uris is None
            else _uri_list(post_logout_redirect_uris, "post_logout_redirect_uris")
        ),
        "scopes": None if scopes is None else " ".join(scopes),
        "requires_totp": requires_totp,
        "requires_pkce": requires_pkce,
        "skip_consent": skip_consent,
        "is_active": is_active,
    }
    changed = []
    for keyword, value in values.items():
        field = _UPDATABLE[keyword]
        if keyword == "scopes" and value is not None and set(value.split()) == app.scope_set:
            continue  # the same scopes in another order
        if value is not None and value != getattr(app, field):
            setattr(app, field, value)
            changed.append(field)
    current_groups = sorted(app.allowed_groups.values_list("name", flat=True))
    if groups is not None:
        _refuse_empty_group_names(groups)
    group_names = current_groups if groups is None else [n.strip() for n in groups]
    group_rows = _validate(app, group_names)
    for field in [f for f in GUARDED_FIELDS if f in changed and not _narrows(f, before[f], getattr(app, f))]:
        _require_guarded(
            actor, field=field, scope_set=scopes_before | app.scope_set, what=f"change {GUARDED_FIELDS[field]} of"
        )
    waived = reads_mail_without_consent(app) and (app.mail_consent_waived or may_set_up_guarded_client(actor))
    newly_waived = waived and not app.mail_consent_waived
    if waived != app.mail_consent_waived:
        app.mail_consent_waived = waived
        changed.append("mail_consent_waived")
    groups_changed = sorted(g.name for g in group_rows) != current_groups
    if not changed and not groups_changed:
        return app
    if changed:
        app.save(update_fields=[*changed, "updated"])
    if groups_changed:
        app.allowed_groups.set(group_rows)
    what = ", ".join(changed + (["allowed_groups"] if groups_changed else []))
    audit(
        "oidc.client.change",
        target=app,
        description=f"Changed {what} of OIDC client {app.name} ({app.client_id}): {_describe(app)}.",
        **_who(request, actor_label, actor),
    )
    if newly_waived:
        _waiver_audit(app, request, actor_label, actor)
    return app


@transaction.atomic
def client_rotate_secret(
    *,
    application: Application,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> str:
    """Issue a new secret (returned once, stored hashed); the old one stops working at once. Tokens already
    issued stay valid until they expire. Whoever sees the new secret acts as the client: for a client allowed
    mail or introspection, a superuser only."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "oidc.change_application")
    app = Application.objects.select_for_update().get(pk=application.pk)
    if app.client_type == Application.CLIENT_PUBLIC:
        raise ValidationError({"client_type": ["A public client has no secret; it proves itself with PKCE."]})
    _require_guarded(actor, field="client_secret", scope_set=app.scope_set, what="issue a new secret for")
    secret = generate_client_secret()
    app.client_secret = secret
    app.hash_client_secret = True
    app.save(update_fields=["client_secret", "hash_client_secret", "updated"])
    # The caller's copy now holds the new hash, so saving it later cannot bring the old secret back.
    application.client_secret, application.hash_client_secret = app.client_secret, True
    audit(
        "oidc.client.rotate_secret",
        target=app,
        description=f"Issued a new secret for {app.name} ({app.client_id}); the old one stops working.",
        **_who(request, actor_label, actor),
    )
    return secret


def revoke_application_tokens(application: Application, user: User | None = None) -> int:
    """Revoke refresh-token families and delete access tokens of one app (for one person, or everyone)."""
    RefreshToken = get_refresh_token_model()
    AccessToken = get_access_token_model()
    refresh = RefreshToken.objects.filter(application=application, revoked__isnull=True)
    access = AccessToken.objects.filter(application=application)
    families = TokenFamily.objects.filter(application=application)
    if user is not None:
        refresh, access, families = refresh.filter(user=user), access.filter(user=user), families.filter(user=user)
    count = access.count()  # before revoke_family, which deletes the access tokens of each family
    for family in set(refresh.exclude(token_family=None).values_list("token_family", flat=True)):
        RefreshToken.revoke_family(family)
    access.delete()
    families.delete()
    return count


@transaction.atomic
def person_tokens_revoke(
    *,
    user: User | None,
    reason: str,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> int:
    """Every app's tokens of one person end at once: access tokens are deleted, refresh tokens revoked (their
    families forgotten, so a later refresh is invalid_grant and not mistaken for reuse), and codes not yet
    exchanged deleted. Consent stays: signing in again does not ask again. Returns how many live tokens ended.

    Connected to accounts' `sign_in_revoked` (password set or reset, sign out everywhere, second factor reset,
    mailbox suspended or disabled). Audited only when something was revoked."""
    if user is None or user.pk is None:
        return 0
    now = timezone.now()
    access = get_access_token_model().objects.filter(user=user)
    refresh = get_refresh_token_model().objects.filter(user=user, revoked__isnull=True)
    live_access, live_refresh = access.filter(expires__gt=now).count(), refresh.count()
    refresh.update(revoked=now, updated=now)
    access.delete()
    TokenFamily.objects.filter(user=user).delete()
    codes = get_grant_model().objects.filter(user=user, used_at__isnull=True).delete()[0]
    if live_access or live_refresh or codes:
        audit(
            "oidc.tokens_revoke",
            request=request,
            actor=actor,
            actor_label=actor_label,
            target=user,
            description=f"Revoked every app token of {user.email} ({reason}): {live_access} access token(s), "
            f"{live_refresh} refresh token(s)" + (f", {codes} unused code(s)." if codes else "."),
        )
    return live_access + live_refresh


@transaction.atomic
def client_remove(
    *,
    application: Application,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> None:
    """Delete a client with its codes and consents; its refresh tokens are revoked and access tokens deleted."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "oidc.delete_application")
    label = f"{application.name} ({application.client_id})"
    revoked = revoke_application_tokens(application)
    application.delete()
    audit(
        "oidc.client.remove",
        description=f"Removed OIDC client {label} and revoked its tokens ({revoked} access token(s)).",
        **_who(request, actor_label, actor),
    )


@transaction.atomic
def consent_grant(
    *, user: User, application: Application, scopes: Collection[str], request: HttpRequest | None = None
) -> Consent:
    consent, created = Consent.objects.get_or_create(
        user=user, application=application, defaults={"scopes": " ".join(sorted(set(scopes)))}
    )
    if not created:
        merged = consent.scope_set | set(scopes)
        if merged != consent.scope_set:
            consent.scopes = " ".join(sorted(merged))
            consent.save(update_fields=["scopes"])
    audit(
        "oidc.consent",
        request=request,
        actor=user,
        target=application,
        description=f"Allowed {application.name or application.client_id} scopes: {' '.join(sorted(set(scopes)))}.",
    )
    return consent


@transaction.atomic
def app_access_revoke(
    *, user: User, application: Application, request: HttpRequest | None = None, actor_label: str | None = None
) -> None:
    """A person withdraws an app's access: remembered consent and every token the app holds for them."""
    had_consent, _ = Consent.objects.filter(user=user, application=application).delete()
    had_tokens = TokenFamily.objects.filter(user=user, application=application).exists()
    revoked = revoke_application_tokens(application, user=user)
    if not (had_consent or had_tokens or revoked):
        return  # nothing to withdraw: no audit entry claiming otherwise
    audit(
        "oidc.access_revoke",
        actor=user if actor_label is None and request is None else None,
        target=application,
        description=f"Revoked {application.name or application.client_id}'s access for {user.email}.",
        **_who(request, actor_label),
    )


@transaction.atomic
def app_sessions_end(*, user: User, application: Application, request: HttpRequest | None = None) -> None:
    """RP-initiated logout: the app's tokens for this person end; remembered consent stays."""
    revoke_application_tokens(application, user=user)
    audit(
        "oidc.logout",
        request=request,
        actor=user,
        target=application,
        description=f"Signed out of {application.name or application.client_id}; its tokens are revoked.",
    )


def signing_key_rotate(
    *, request: HttpRequest | None = None, actor_label: str | None = None
) -> tuple[SigningKey, SigningKey]:
    old, new = keys.rotate()
    audit(
        "oidc.key.rotate",
        description=(
            f"Rotated the OIDC signing key: {new.kid} signs now; {old.kid} stays published until "
            f"{old.publish_until:%Y-%m-%d %H:%M} UTC."
        ),
        **_who(request, actor_label),
    )
    return old, new
