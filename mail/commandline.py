"""What the mail management commands share beyond dockspace.commandline: --as, quotas and domains as
arguments, the '+' warning."""

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from accounts.authz import add_actor_argument, command_actor, command_actor_label
from dockspace.validation import error_text
from mail.addresses import normalize_domain, plus_warning
from mail.quota import parse_quota

__all__ = ["add_actor_argument", "command_actor", "command_actor_label", "actor_arguments"]


def actor_arguments(subparsers):
    """`--as EMAIL` on every action of a command: run it with that staff member's permissions."""
    for parser in subparsers.choices.values():
        add_actor_argument(parser)


def acting_as(options, label):
    """(actor, audit label) for a command: the system, or the staff member named by --as."""
    actor = command_actor(options)
    return actor, command_actor_label(label, actor)


def quota_argument(value, field="--quota"):
    if value is None:
        return None
    try:
        return parse_quota(value, field)
    except ValidationError as e:
        raise CommandError(error_text(e)) from None


def domain_argument(value, field="--domain"):
    """A domain as the database stores it (lower case, punycode), so `--domain Bücher.de` finds xn--bcher-kva.de."""
    if value is None:
        return None
    try:
        return normalize_domain(value, field)
    except ValidationError as e:
        raise CommandError(error_text(e)) from None


def warn_plus(command, address):
    """Warn (on stderr, without refusing) about a '+' in an address just created: DMS's recipient delimiter."""
    warning = plus_warning(address) if address else None
    if warning:
        command.stderr.write(f"Warning: {warning}")
