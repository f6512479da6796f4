"""Mailboxes: creating one (for a new person or adopting an existing one), changing, suspending and removing it,
and the checks a bulk import shares with mailbox_create."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, overload

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import authz
from accounts.audit import audit
from accounts.signals import sign_in_revoked_send
from dockspace.validation import field_error
from mail.addresses import normalize_address, split_address
from mail.models import Alias, Mailbox
from mail.quota import format_quota
from mail.services.actor import _who
from mail.services.aliases import _drop_as_target
from mail.services.capture import _check_capture, _check_removal, address_owner, people_signing_in_as
from mail.services.domains import managed_domain
from mail.services.passwords import _apply_password
from mail.services.tiers import _tier_check_mailbox, default_quota_for

if TYPE_CHECKING:
    from django.http import HttpRequest

    from accounts.models import User
else:
    User = get_user_model()


def address_taken_error(address: str, owner: str) -> ValidationError:
    return field_error("address", f"{address} is already {owner}.")


def owns_mailbox_error(person: User, mailbox_address: str) -> ValidationError:
    return field_error("address", f"{person.email} already owns the mailbox {mailbox_address}.")


def check_new_mailbox_capture(actor: authz.Actor, address: str) -> None:
    """A new mailbox at `address` takes the mail of people signing in as local+tag@domain (DMS's recipient
    delimiter): refused unless the actor may manage them (what mailbox_create checks, for bulk paths)."""
    _check_capture(actor, address)


def check_sign_in_owner(address: str, person: User | None, signing_in: Iterable[User]) -> None:
    """A new mailbox at `address` for `person` (None: a new person) is refused when the address is the
    sign-in of anyone else in `signing_in` (people_signing_in_as(address))."""
    others = [p for p in signing_in if person is None or p.pk != person.pk]
    if not others:
        return
    if person is None:
        raise field_error(
            "address",
            f"{address} is the sign-in address of the existing person {others[0].email}; to give them "
            "this mailbox, name them as its person.",
        )
    raise field_error(
        "address", f"{address} is the sign-in address of another person, {others[0].email}, not {person.email}."
    )


@overload
def check_quota_value(quota: None) -> None: ...
@overload
def check_quota_value(quota: int) -> int: ...
def check_quota_value(quota: int | None) -> int | None:
    if quota is None:
        return None
    if not isinstance(quota, int) or quota < 0:
        raise field_error("quota", "quota must be a whole number of bytes, 0 for no limit.")
    return quota


@transaction.atomic
def mailbox_create(
    *,
    address: str,
    full_name: str = "",
    quota: int | None = None,
    password: str | None = None,
    password_hashes: tuple[str | None, str] | None = None,
    person: User | None = None,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> Mailbox:
    """Create local@domain for a person: the existing `person` when the caller names one (adopting
    them, which is acting on their sign-in), else a new person whose sign-in is the address. An
    address that already is someone's sign-in is refused unless that someone is named.

    password_hashes: (web, mail) hashes computed beforehand (a CSV import hashes in parallel; an
    adopted DMS account brings its own), used instead of `password`. web None keeps an existing
    person's own Dockspace password and only sets the mail hash."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.add_mailbox", "address")
    if password is not None and password_hashes is not None:
        raise field_error("password", "give a password or ready-made hashes, not both.")
    address = normalize_address(address, "address")
    local, domain_name = split_address(address)
    domain = managed_domain(domain_name, "address", lock=True)
    owner = address_owner(address)
    if owner:
        raise address_taken_error(address, owner)
    quota = default_quota_for(domain) if quota is None else check_quota_value(quota)
    _tier_check_mailbox(domain, quota)
    # The same normalisation as the address itself: 'root@example.com.' is root@example.com's sign-in.
    check_sign_in_owner(address, person, people_signing_in_as(address))
    if person is not None:
        authz.require_may_manage_person(actor, person, "person")
        person = User.objects.select_for_update().get(pk=person.pk)
        if Mailbox.objects.filter(person=person).exists():
            raise owns_mailbox_error(person, person.mailbox.address)
    # Mail for local+tag@domain sign-ins is delivered here too (DMS's recipient delimiter).
    _check_capture(actor, address)
    created_person = person is None
    pending_cleared = False
    if person is None:
        person = User(email=address, full_name=full_name, email_verified_at=timezone.now())
    else:
        if full_name:
            person.full_name = full_name
        if person.is_pending_registration:
            # A self-chosen password from an unconfirmed sign-up proved nothing: it goes, and the
            # person gets a password from this call or a reset link.
            person.is_pending_registration = False
            person.set_unusable_password()
            pending_cleared = True
    if password is not None:
        _apply_password(person, password)
    elif password_hashes is not None:
        web, mail = password_hashes
        if web is not None or created_person:
            person.password = web if web is not None else make_password(None)
        person.mail_password_hash = mail
    elif created_person or not person.mail_password_hash:
        if created_person or not person.has_usable_password():
            # Nobody can sign in until a password is set (reset link or command).
            person.set_unusable_password()
        else:
            # An existing person whose web password predates mail: keep their password; the mail hash
            # follows at their next sign-in to Dockspace (accounts.backends). Until then mail refuses them.
            person.lock_mail_password()
    person.full_clean(exclude=["password"])
    person.save()
    password_replaced = not created_person and (password is not None or bool(password_hashes and password_hashes[0]))
    if password_replaced or pending_cleared:
        # An adopted person's sign-in changed: the apps' tokens from before end with it.
        sign_in_revoked_send(user=person, reason="password set", **_who(request, actor_label, actor))
    mailbox = Mailbox(person=person, domain=domain, local_part=local, quota=quota)
    mailbox.save()
    if password_replaced:
        audit(
            "password.set",
            target=person,
            description=f"Password replaced for web and mail while adopting them for the mailbox {mailbox.address}; "
            "their old password no longer signs in.",
            **_who(request, actor_label, actor),
        )
    if created_person:
        whose = ", new person."
    else:
        whose = f", adopting the existing person {person.email}."
        if pending_cleared:
            whose += " Their pending registration was cancelled (self-chosen password removed)."
    audit(
        "mail.mailbox.add",
        target=mailbox,
        description=f"Created mailbox, quota {format_quota(quota)}{whose}",
        **_who(request, actor_label, actor),
    )
    return mailbox


@transaction.atomic
def mailbox_update(
    *,
    mailbox: Mailbox,
    quota: int | None = None,
    full_name: str | None = None,
    password: str | None = None,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> Mailbox:
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.change_mailbox")
    mailbox = (
        Mailbox.objects.select_for_update(of=("self",)).select_related("domain__tier", "person").get(pk=mailbox.pk)
    )
    if password is not None:
        authz.require_may_manage_person(actor, mailbox.person, "password")
    changed = []
    if quota is not None:
        check_quota_value(quota)
        _tier_check_mailbox(mailbox.domain, quota, exclude=mailbox)
        mailbox.quota = quota
        changed.append(f"quota {format_quota(quota)}")
        mailbox.save()
    person = mailbox.person
    if full_name is not None:
        person.full_name = full_name
        # Saving checks the characters, not the length (which PostgreSQL would refuse without naming the field).
        person.clean_fields(exclude=[f.name for f in User._meta.fields if f.name != "full_name"])
        changed.append("name")
    if password is not None:
        _apply_password(person, password)
        changed.append("password")
    if full_name is not None or password is not None:
        person.save()
    if password is not None:
        sign_in_revoked_send(user=person, reason="password set", **_who(request, actor_label, actor))
    if changed:
        audit(
            "mail.mailbox.change",
            target=mailbox,
            description="Changed " + ", ".join(changed) + ".",
            **_who(request, actor_label, actor),
        )
    return mailbox


_STATE_VERBS = {Mailbox.ACTIVE: "resume", Mailbox.SUSPENDED: "suspend", Mailbox.DISABLED: "disable"}


@transaction.atomic
def mailbox_set_state(
    *,
    mailbox: Mailbox,
    state: str,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> tuple[Mailbox, bool]:
    """Suspend (no sign-in, mail still delivered), disable (no sign-in, no delivery, data kept) or resume."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.change_mailbox", "state")
    if state not in _STATE_VERBS:
        raise field_error("state", f"state must be one of {', '.join(_STATE_VERBS)}.")
    mailbox = Mailbox.objects.select_for_update(of=("self",)).select_related("person").get(pk=mailbox.pk)
    authz.require_may_manage_person(actor, mailbox.person, "state")
    if mailbox.state == state:
        return mailbox, False
    previous = mailbox.state
    mailbox.state = state
    mailbox.save(update_fields=["state", "updated_at"])
    if state != Mailbox.ACTIVE:
        from accounts.services import sessions_revoke_all

        sessions_revoke_all(user=mailbox.person, request=request, actor=actor, actor_label=actor_label)
    audit(
        f"mail.mailbox.{_STATE_VERBS[state]}",
        target=mailbox,
        description=f"State {previous} -> {state}.",
        **_who(request, actor_label, actor),
    )
    return mailbox, True


@transaction.atomic
def mailbox_remove(
    *,
    mailbox: Mailbox,
    keep_person: bool = True,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> None:
    """Remove the mailbox from DMS (stored mail stays on the DMS volume). The person stays unless
    keep_person is False; aliases and lists that pointed at it lose that target."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.delete_mailbox", "address")
    authz.require_may_manage_person(actor, mailbox.person, "address")
    address = mailbox.address
    _check_removal(actor, address, what="this mailbox", owner=mailbox.person)
    Alias.objects.filter(address=address, keep_copy=True).delete()
    _drop_as_target(address)
    person = mailbox.person
    audit(
        "mail.mailbox.remove",
        target=mailbox,
        description="Removed mailbox; stored mail is kept by DMS.",
        **_who(request, actor_label, actor),
    )
    mailbox.delete()
    if not keep_person:
        audit(
            "person.remove",
            target=person,
            description="Removed the person with their mailbox.",
            **_who(request, actor_label, actor),
        )
        person.delete()
