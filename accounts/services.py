"""Everything that changes people, their second factors, sessions and lockouts. Views, admin and
commands call these; each writes the audit log itself, and refuses with ValidationError({field: [message]})."""

import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Greatest
from django.http import HttpRequest
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import authz
from accounts.audit import audit
from accounts.models import (
    BACKUP_CODE_ALPHABET,
    BACKUP_CODE_LENGTH,
    BACKUP_CODES_PER_SET,
    AppSettings,
    BackupCode,
    BackupCodeDevice,
    LoginThrottle,
    User,
    UserSession,
    normalize_email,
)
from accounts.signals import sign_in_revoked_send
from dockspace.client_ip import client_ip, client_ip_key
from dockspace.validation import field_error

# --- people ---------------------------------------------------------------------------------------


def user_create(
    *,
    email: str,
    password: str,
    full_name: str = "",
    is_staff: bool = False,
    is_superuser: bool = False,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
) -> User:
    email = normalize_email(email)
    try:
        with transaction.atomic():
            user = User(email=email, full_name=full_name, is_staff=is_staff, is_superuser=is_superuser)
            user.set_password(password)
            user.save()
    except IntegrityError:
        raise field_error("email", "A person with this email address already exists.") from None
    audit(
        "user.create",
        request=request,
        actor=actor,
        target=user,
        description="Created administrator." if is_superuser else "Created person.",
    )
    return user


def first_admin_create(*, email: str, password: str, full_name: str = "", request: HttpRequest | None = None) -> User:
    """Create the first administrator; refuses once any account exists (two racing first runs get one winner)."""
    with transaction.atomic():
        AppSettings.objects.select_for_update().get_or_create(pk=1)
        if User.objects.exists():
            raise field_error(NON_FIELD_ERRORS, "An administrator already exists; sign in instead.")
        return user_create(
            email=email,
            password=password,
            full_name=full_name,
            is_staff=True,
            is_superuser=True,
            request=request,
            actor=None,
        )


def password_changed(
    *,
    user: User,
    request: HttpRequest | None = None,
    how: str = "Changed own password.",
    actor_label: str | None = None,
) -> None:
    audit(
        "password.change",
        request=request,
        actor_label=actor_label,
        actor=None if actor_label else (request.user if request and request.user.is_authenticated else user),
        target=user,
        description=how,
    )
    throttle_clear_account(user.email)
    actor = None if actor_label else (request.user if request and request.user.is_authenticated else user)
    sign_in_revoked_send(user=user, reason="password changed", request=request, actor=actor, actor_label=actor_label)


def registration_pending_end(
    *, user: User, request: HttpRequest | None = None, actor: authz.Actor | None = None, actor_label: str | None = None
) -> None:
    """An operator vouches for a person still pending registration (activates them, gives them a
    mailbox): the password they chose on the sign-up page proved nothing, so it goes; a reset link
    gives them one."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_may_manage_person(actor, user, "is_active")
    user.is_pending_registration = False
    user.set_unusable_password()
    user.save(update_fields=["is_pending_registration", "password", "mail_password_hash"])
    audit(
        "registration.pending_cleared",
        request=request,
        actor=authz.audit_actor(actor),
        actor_label=actor_label,
        target=user,
        description="Pending registration ended by an operator; self-chosen password removed (send a reset link).",
    )


def person_deactivate_check(*, user: User, field: str = "is_active") -> None:
    """Refuse to switch off the last active superuser: nobody would be left to hand out powers (only a superuser
    does) or to switch anyone back on. The admin's form asks before it saves (also before it takes away the
    superuser status, under `field`); person_deactivate asks again."""
    if not User.objects.filter(pk=user.pk, is_superuser=True, is_active=True).exists():
        return
    if not User.objects.filter(is_superuser=True, is_active=True).exclude(pk=user.pk).exists():
        raise ValidationError({field: [f"{user.email} is the last active superuser; make another superuser first."]})


def person_deactivate(
    *, user: User, request: HttpRequest | None = None, actor: authz.Actor | None = None, actor_label: str | None = None
) -> int:
    """Switch a person off (the admin's "Active" box, the bulk action, any other path): they can no longer sign
    in, their browser sessions end, and every app's tokens end with them (accounts.signals.sign_in_revoked), so
    ticking "Active" again later brings back none of them: the person signs in afresh. Returns how many sessions
    and app tokens ended. The last active superuser is refused (person_deactivate_check)."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_may_manage_person(actor, user, "is_active")
    with transaction.atomic():
        # Two superusers switching each other off at once: the second waits, then sees the first's change.
        list(User.objects.select_for_update().filter(is_superuser=True, is_active=True).values_list("pk"))
        person_deactivate_check(user=user)
        if User.objects.filter(pk=user.pk, is_active=True).exists() or user.is_active:
            user.is_active = False
            user.save(update_fields=["is_active"])
        sessions = UserSession.objects.filter(user=user).delete()[0]
        tokens = sign_in_revoked_send(
            user=user, reason="deactivated", request=request, actor=authz.audit_actor(actor), actor_label=actor_label
        )
        audit(
            "user.deactivate",
            request=request,
            actor=authz.audit_actor(actor),
            actor_label=actor_label,
            target=user,
            description=f"Deactivated; ended {sessions} browser session(s) and {tokens} app token(s).",
        )
    return sessions + tokens


def person_activate(
    *, user: User, request: HttpRequest | None = None, actor: authz.Actor | None = None, actor_label: str | None = None
) -> bool:
    """Switch a person back on (what ticking "Active" does): they sign in afresh, since person_deactivate
    ended their sessions and app tokens for good. A person still pending self-registration is vouched for
    (registration_pending_end: the password chosen at sign-up goes). Returns False when already active."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_may_manage_person(actor, user, "is_active")
    with transaction.atomic():
        person = User.objects.select_for_update().get(pk=user.pk)
        if person.is_active:
            return False
        person.is_active = True
        person.save(update_fields=["is_active"])
        if person.is_pending_registration:
            registration_pending_end(user=person, request=request, actor=actor, actor_label=actor_label)
        audit(
            "user.activate",
            request=request,
            actor=authz.audit_actor(actor),
            actor_label=actor_label,
            target=person,
            description="Activated; they sign in afresh.",
        )
    user.refresh_from_db()
    return True


# --- sign-in lockouts ---------------------------------------------------------------------------------


def _minutes_left(locked_until: datetime, now: datetime) -> int:
    return max(1, math.ceil((locked_until - now).total_seconds() / 60))


@dataclass
class SignInAttempt:
    """One password or code check, counted against the account and the IP before it is made."""

    email: str
    ip: str | None
    locked_minutes: int | None = None
    row_ids: list[int] = field(default_factory=list)
    locked_row_ids: list[int] = field(default_factory=list)  # rows this attempt pushed over the limit


def _throttle_limits(email: str, ip: str | None, conf: AppSettings) -> list[tuple[str, str, int]]:
    limits = [(LoginThrottle.SCOPE_ACCOUNT, normalize_email(email)[:254], conf.lockout_account_failures)]
    if ip:
        limits.append((LoginThrottle.SCOPE_IP, client_ip_key(ip), conf.lockout_ip_failures))
    return limits


def signin_attempt_start(*, email: str, ip: str | None, now: datetime | None = None) -> SignInAttempt:
    """Reserve one attempt before checking a password or code.

    The attempt counts as a failure until `signin_attempt_release` gives it back, so guesses sent in
    parallel cannot slip past the limit between "is it locked?" and "count the failure".
    """
    now = now or timezone.now()
    conf = AppSettings.load()
    window = timedelta(minutes=conf.lockout_minutes)
    attempt = SignInAttempt(email=normalize_email(email), ip=ip)
    limits = _throttle_limits(email, ip, conf)
    with transaction.atomic():
        # Both rows are inserted or, when they exist, "updated" to themselves: either way this transaction then
        # holds their locks, so a row deleted in between (a sign-in's success, housekeeping) cannot go missing,
        # and whoever wins a race to create one, the other waits and finds it. One locking query reads them.
        LoginThrottle.objects.bulk_create(
            [LoginThrottle(scope=scope, key=key, window_started_at=now) for scope, key, _ in limits],
            update_conflicts=True,
            unique_fields=["scope", "key"],
            update_fields=["scope"],
        )
        wanted = Q()
        for scope, key, _ in limits:
            wanted |= Q(scope=scope, key=key)
        found = {(row.scope, row.key): row for row in LoginThrottle.objects.select_for_update().filter(wanted)}
        rows = []
        for scope, key, limit in limits:
            row = found[(scope, key)]
            if not row.is_locked(now) and (row.locked_until or row.window_started_at < now - window):
                row.failures, row.window_started_at, row.locked_until = 0, now, None
            rows.append((row, limit))
        locked = [
            _minutes_left(row.locked_until, now)
            for row, _ in rows
            if row.is_locked(now) and row.locked_until is not None
        ]
        if locked:
            attempt.locked_minutes = max(locked)
            return attempt
        for row, limit in rows:
            row.failures += 1
            if row.failures >= limit:
                row.locked_until = now + window
                attempt.locked_row_ids.append(row.pk)
            row.save(update_fields=["failures", "window_started_at", "locked_until"])
            attempt.row_ids.append(row.pk)
    return attempt


def signin_attempt_release(attempt: SignInAttempt, *, signed_in: bool = False) -> None:
    """The check passed: give the reserved attempt back (and undo a lock it alone caused). signed_in: the
    person is now signed in, so the account's failures are cleared as well (throttle_clear_account).

    Each row changes in one UPDATE, which the database applies atomically to the row as it is then."""
    rows = LoginThrottle.objects.filter(pk__in=attempt.row_ids)
    with transaction.atomic(savepoint=False):  # inside a caller's transaction, part of it
        if signed_in:
            throttle_clear_account(attempt.email)
            rows = rows.exclude(scope=LoginThrottle.SCOPE_ACCOUNT)
        if attempt.locked_row_ids:
            rows.filter(pk__in=attempt.locked_row_ids).update(locked_until=None)
        rows.update(failures=Greatest(F("failures") - 1, 0))


def signin_attempt_failed(attempt: SignInAttempt, *, request: HttpRequest | None = None) -> int | None:
    """The check failed: the reserved attempt stays counted. Returns minutes locked, or None."""
    conf = AppSettings.load()
    for row in LoginThrottle.objects.filter(pk__in=attempt.locked_row_ids):
        audit(
            "signin.lockout",
            request=request,
            actor=None,
            description=f"Locked {row.get_scope_display()} {row.key[:120]} for {conf.lockout_minutes} minutes "
            f"after {row.failures} failed attempts.",
        )
    return conf.lockout_minutes if attempt.locked_row_ids else None


def password_confirm(*, user: User, password: str, request: HttpRequest) -> None:
    """Check a signed-in person's password again (before a sensitive change), under the same lockout."""
    attempt = signin_attempt_start(email=user.email, ip=client_ip(request))
    if attempt.locked_minutes:
        raise field_error("password", locked_message(attempt.locked_minutes))
    if not user.check_password(password):
        audit("reauth.failure", request=request, target=user, description="Wrong password when confirming a change.")
        minutes = signin_attempt_failed(attempt, request=request)
        raise field_error("password", locked_message(minutes) if minutes else "That is not your current password.")
    signin_attempt_release(attempt)


def locked_message(minutes: int) -> str:
    return f"Too many failed attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}."


def throttle_clear_account(email: str) -> None:
    LoginThrottle.objects.filter(scope=LoginThrottle.SCOPE_ACCOUNT, key=normalize_email(email)).delete()


def lockouts_clear(
    *,
    throttles: Iterable[LoginThrottle],
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> int:
    """A cleared lockout lets guessing go on: an account's is the person's sign-in, an address's covers everyone."""
    actor = authz.acting(request=request, actor=actor)
    rows = list(throttles)
    for row in rows:
        if row.scope == LoginThrottle.SCOPE_ACCOUNT:
            authz.require_may_manage_person(actor, User.objects.filter(email=row.key).first(), "email")
        else:
            authz.require_perm(actor, authz.PEOPLE_PERMISSION, "ip")
    actor = authz.audit_actor(actor)
    count = 0
    for row in rows:
        audit(
            "signin.lockout_cleared",
            request=request,
            actor=actor,
            actor_label=actor_label,
            description=f"Cleared lockout of {row.get_scope_display()} {row.key[:120]}.",
        )
        row.delete()
        count += 1
    return count


# --- second factor ----------------------------------------------------------------------------------


def totp_device_start(*, user: User, name: str | None) -> TOTPDevice:
    """An unconfirmed TOTP device: it counts only once a code from it has been entered."""
    name = (name or "").strip() or "Authenticator"
    if TOTPDevice.objects.filter(user=user, name=name, confirmed=True).exists():
        raise field_error("name", f"You already have a device named {name!r}; choose another name.")
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name=name[:64], confirmed=False)


def totp_device_confirm(*, device: TOTPDevice, code: str | None, request: HttpRequest) -> TOTPDevice:
    code = (code or "").strip().replace(" ", "")
    if not code.isdigit() or len(code) != device.digits:
        raise field_error("code", f"Enter the {device.digits}-digit code your app shows.")
    allowed, _ = device.verify_is_allowed()
    if not allowed:
        raise field_error("code", "A code was refused a moment ago: wait a few seconds, then enter the current code.")
    if not device.verify_token(code):
        raise field_error("code", "That code is wrong or already used; wait for the next one and try again.")
    device.confirmed = True
    device.save()
    audit("totp.add", request=request, target=device.user, description=f"Added TOTP device {device.name!r}.")
    return device


def device_remove(*, device: Device, request: HttpRequest) -> None:
    user = device.user
    name = device.name
    device.delete()
    audit("totp.remove", request=request, target=user, description=f"Removed second-factor device {name!r}.")


def backup_codes_generate(*, user: User, request: HttpRequest) -> list[str]:
    """Replace the person's backup codes with a fresh set; the plain codes are returned once."""
    codes = [
        "".join(secrets.choice(BACKUP_CODE_ALPHABET) for _ in range(BACKUP_CODE_LENGTH))
        for _ in range(BACKUP_CODES_PER_SET)
    ]
    with transaction.atomic():
        device, _ = BackupCodeDevice.objects.get_or_create(user=user, defaults={"name": "Backup codes"})
        device.confirmed = True
        device.save()
        device.codes.all().delete()
        rows = []
        for code in codes:
            row = BackupCode(device=device, salt=secrets.token_hex(8))
            row.code_hash = row.digest(code)
            rows.append(row)
        BackupCode.objects.bulk_create(rows)
    audit("backup_codes.generate", request=request, target=user, description="Generated a new set of backup codes.")
    return ["-".join(c[i : i + 4] for i in range(0, BACKUP_CODE_LENGTH, 4)) for c in codes]


def second_factor_reset(
    *, user: User, request: HttpRequest | None = None, actor: authz.Actor | None = None, actor_label: str | None = None
) -> None:
    """Remove every second-factor device of a person (an administrator helping someone who lost theirs).

    Their sessions end too: whoever holds the lost phone may also hold a signed-in browser.
    """
    actor = authz.acting(request=request, actor=actor)
    authz.require_may_manage_person(actor, user, "user")
    actor = authz.audit_actor(actor)
    with transaction.atomic():
        removed = TOTPDevice.objects.filter(user=user).delete()[0]
        BackupCodeDevice.objects.filter(user=user).delete()
        UserSession.objects.filter(user=user).delete()
        sign_in_revoked_send(
            user=user, reason="second factor reset", request=request, actor=actor, actor_label=actor_label
        )
    audit(
        "totp.reset",
        request=request,
        actor=actor,
        actor_label=actor_label,
        target=user,
        description=f"Reset second factor ({removed} TOTP device(s) and backup codes removed, sessions ended).",
    )


# --- sessions -------------------------------------------------------------------------------------------


def session_revoke(*, user: User, session_hash: str, request: HttpRequest) -> None:
    deleted = UserSession.objects.filter(user=user, session_key=session_hash).delete()[0]
    if not deleted:
        raise field_error(NON_FIELD_ERRORS, "That session has already ended.")
    audit("session.revoke", request=request, target=user, description="Revoked one browser session.")


@transaction.atomic
def sessions_end(
    *,
    sessions: QuerySet[UserSession],
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> int:
    """End these browser sessions (an administrator's choice of rows): ending a person's session acts on their
    sign-in, so it needs the right to manage them, and only a superuser ends a superuser's. All or nothing."""
    actor = authz.acting(request=request, actor=actor)
    rows = list(sessions.select_related("user"))
    people = {row.user.pk: row.user for row in rows if row.user is not None}
    for person in people.values():
        authz.require_may_manage_person(actor, person, "user")
    if any(row.user is None for row in rows) and not (authz.is_system(actor) or getattr(actor, "is_superuser", False)):
        # A session without a person may be anyone's sign-in half done (a superuser's waiting for the code).
        raise ValidationError({"user": ["only a superuser ends a session that has nobody signed in yet."]})
    actor = authz.audit_actor(actor)
    UserSession.objects.filter(pk__in=[row.pk for row in rows]).delete()
    for person in people.values():
        count = sum(1 for row in rows if row.user is not None and row.user.pk == person.pk)
        audit(
            "session.revoke",
            request=request,
            actor=actor,
            actor_label=actor_label,
            target=person,
            description=f"An administrator ended {count} browser session(s).",
        )
    return len(rows)


def sessions_revoke_all(
    *,
    user: User,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
    keep_hash: str | None = None,
) -> int:
    actor = authz.acting(request=request, actor=actor)
    authz.require_may_manage_person(actor, user, "user")
    actor = authz.audit_actor(actor)
    rows = UserSession.objects.filter(user=user)
    if keep_hash:
        rows = rows.exclude(session_key=keep_hash)
    count = rows.delete()[0]
    sign_in_revoked_send(
        user=user, reason="signed out everywhere", request=request, actor=actor, actor_label=actor_label
    )
    audit(
        "session.revoke_all",
        request=request,
        actor=actor,
        actor_label=actor_label,
        target=user,
        description=f"Revoked {count} browser session(s)" + (" except the current one." if keep_hash else "."),
    )
    return count
