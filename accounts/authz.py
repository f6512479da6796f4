"""Who may act on whom: the one rule the services, the admin and the commands share (docs/security.md).

Acting on a person's sign-in (password, email, staff flags, permissions, second factor, sessions,
adopting them into a mailbox, capturing their mail) needs the permission to change people, and only
a superuser acts on a superuser. Everyone may act on their own sign-in. Commands and tasks act as the
system: whoever runs them on the host already holds the database and the data directory.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, Union, cast

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError

if TYPE_CHECKING:
    from django.http import HttpRequest

    from accounts.models import User

PEOPLE_PERMISSION = "accounts.change_user"


class SystemActor:
    """The host acting through a management command, a task or an import: every rule lets it through."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = True
    is_superuser = True
    pk = None
    email = ""

    def __init__(self, label: str = "system") -> None:
        self.label = label

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return True

    def has_perms(self, perms: Iterable[str], obj: object = None) -> bool:
        return True

    def __str__(self) -> str:
        return self.label

    def __repr__(self) -> str:
        return f"<SystemActor {self.label}>"


SYSTEM = SystemActor()


class GatedGroup(Protocol):
    """What a gate reads of a group (mail's Group; accounts does not import mail)."""

    pk: Any
    name: str


# Who calls a service: a person, an anonymous visitor (a sign-in page) or the system.
Actor = Union["User", AnonymousUser, SystemActor]


def is_system(actor: object) -> bool:
    return isinstance(actor, SystemActor)


def acting(*, request: HttpRequest | None = None, actor: Actor | None = None) -> Actor:
    """Who performs a service call: `actor` when given, else the signed-in person of `request`
    (anonymous if nobody signed in), else the system (a command, a task, an import)."""
    if actor is not None:
        return actor
    if request is not None:
        return getattr(request, "user", None) or AnonymousUser()
    return SYSTEM


def audit_actor(actor: Actor | None) -> User | None:
    """What to hand the audit log as `actor`: a person, or None for the system and anonymous callers."""
    return cast("User | None", actor if getattr(actor, "pk", None) else None)  # only a person has a pk


def _is_self(actor: Actor, person: User) -> bool:
    return getattr(actor, "pk", None) is not None and actor.pk == person.pk


def may_manage_person(actor: Actor | None, person: User | None) -> bool:
    """May `actor` act on the sign-in of `person`? (None: no existing person, nothing to protect.)"""
    if person is None or is_system(actor):
        return True
    if actor is None or not actor.is_authenticated or not actor.is_active:
        return False
    if _is_self(actor, person):
        return True
    if person.is_superuser and not actor.is_superuser:
        return False
    return actor.has_perm(PEOPLE_PERMISSION)


def refusal(person: User) -> str:
    """Why `actor` may not act on `person`, in words (for an error next to a field)."""
    if person.is_superuser:
        return f"you may not act on the sign-in of {person.email}: only a superuser acts on a superuser."
    return f"you may not act on the sign-in of {person.email}: that needs the permission to change people."


def require_may_manage_person(actor: Actor | None, person: User | None, field: str) -> None:
    """Raise ValidationError({field: ...}) unless `actor` may act on the sign-in of `person`."""
    if person is not None and not may_manage_person(actor, person):
        raise ValidationError({field: [refusal(person)]})


def require_perm(actor: Actor | None, perm: str, field: str = "__all__") -> None:
    """Raise ValidationError({field: ...}) unless `actor` holds the model permission `perm`."""
    if not (actor is not None and actor.has_perm(perm)):
        raise ValidationError({field: [f"you do not have the permission {perm!r}."]})


# --- groups that grant access ----------------------------------------------------------------------
# A group may gate something a higher layer owns (an OIDC client's allowed groups): membership of it
# is then an access grant. The owner registers a gate in its AppConfig.ready(); mail asks here.

_group_gates: list[tuple[Callable[[GatedGroup], Iterable[str]], str, str]] = []


def register_group_gate(describe: Callable[[GatedGroup], Iterable[str]], *, permission: str, dispatch_uid: str) -> None:
    """describe(group) -> names of what membership of `group` opens (empty when nothing);
    `permission` lets its holder change such a group's members (as does the permission to change people)."""
    global _group_gates
    _group_gates = [g for g in _group_gates if g[2] != dispatch_uid] + [(describe, permission, dispatch_uid)]


def group_gates(group: GatedGroup | None) -> list[tuple[str, str]]:
    """[(what it opens, permission), ...] for every registered gate that this group holds."""
    if group is None or group.pk is None:
        return []
    return [(name, permission) for describe, permission, _ in _group_gates for name in describe(group)]


def may_change_group_access(actor: Actor | None, group: GatedGroup | None) -> bool:
    gates = group_gates(group)
    if not gates or is_system(actor):
        return True
    if actor is None or not actor.is_authenticated:
        return False
    return actor.has_perm(PEOPLE_PERMISSION) or any(actor.has_perm(permission) for _, permission in gates)


def require_may_change_group_access(actor: Actor | None, group: GatedGroup, field: str = "members") -> None:
    if not may_change_group_access(actor, group):
        names = ", ".join(sorted({name for name, _ in group_gates(group)}))
        raise ValidationError(
            {
                field: [
                    f"{group.name} decides who may sign in to {names}: changing it needs the permission to change "
                    "people or OIDC clients."
                ]
            }
        )


# --- commands -------------------------------------------------------------------------------------


def add_actor_argument(parser: argparse.ArgumentParser, *, default: Any = None) -> None:
    """--as EMAIL. A subcommand's copy of an option its command has too takes default=argparse.SUPPRESS, so that
    `command --as EMAIL sub` keeps the value given before the subcommand."""
    parser.add_argument(
        "--as",
        dest="as_email",
        metavar="EMAIL",
        default=default,
        help="Act with the permissions of this staff member (default: Dockspace itself, which may do anything).",
    )


def command_actor(options: Mapping[str, Any]) -> User | SystemActor:
    """The actor a command runs as: the staff member named by --as, else the system."""
    from django.core.management.base import CommandError

    from accounts.models import User, normalize_email

    email = options.get("as_email")
    if email is None:
        return SYSTEM
    if not email.strip():
        # Never the host's full powers because a script's variable came out empty.
        raise CommandError("--as: an email address is required; leave --as out to act as the host.")
    user = User.objects.filter(email=normalize_email(email)).first()
    if user is None or not user.is_active or not user.is_staff:
        raise CommandError(f"--as: {email!r} is not an active staff member.")
    return user


def command_actor_label(label: str, actor: User | SystemActor) -> str:
    return label if is_system(actor) else f"{label} --as {actor.email}"
