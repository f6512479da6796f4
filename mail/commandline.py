"""What the mail management commands share: errors as CommandError, passwords from stdin, output."""

import json
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import DatabaseError

from accounts.authz import add_actor_argument, command_actor, command_actor_label
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


def validation_message(error, options=None):
    """'field: rule' lines from a ValidationError, whatever its shape. `options` names the command-line
    option for a service field where they differ ({"full_name": "--name"}), so the message names what
    the operator typed."""
    options = options or {}
    if hasattr(error, "message_dict"):
        lines = []
        for field, messages in error.message_dict.items():
            label = options.get(field, field)
            for message in messages:
                if field == "__all__":
                    lines.append(message)
                elif message.startswith(f"{field}:"):
                    lines.append(label + message[len(field) :])
                else:
                    lines.append(f"{label}: {message}")
        return "\n".join(lines)
    lines = []
    for message in error.messages:
        field, sep, rule = message.partition(":")
        lines.append(f"{options[field]}{sep}{rule}" if sep and field in options else message)
    return "\n".join(lines)


class ServiceCall:
    """`with ServiceCall(): services.x(...)` turns validation and database errors into a clean
    non-zero exit with the message, never a traceback. `options` as for validation_message."""

    def __init__(self, options=None):
        self.options = options

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return False
        if issubclass(exc_type, ValidationError):
            raise CommandError(validation_message(exc, self.options)) from None
        if issubclass(exc_type, DatabaseError):
            raise CommandError(f"the database refused the change: {exc}") from None
        return False


def quota_argument(value, field="--quota"):
    if value is None:
        return None
    try:
        return parse_quota(value, field)
    except ValidationError as e:
        raise CommandError(validation_message(e)) from None


def domain_argument(value, field="--domain"):
    """A domain as the database stores it (lower case, punycode), so `--domain Bücher.de` finds xn--bcher-kva.de."""
    if value is None:
        return None
    try:
        return normalize_domain(value, field)
    except ValidationError as e:
        raise CommandError(validation_message(e)) from None


def read_password(stdin=None):
    """One line from standard input (for `--password-stdin`), without its line ending."""
    stream = stdin or sys.stdin
    line = stream.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise CommandError(
            "password: --password-stdin read nothing; pipe the password in, e.g. `printf %s 'pw' | ...`."
        )
    return password


def print_json(command, data):
    command.stdout.write(json.dumps(data, indent=2, default=str))


def print_record(command, data, as_json):
    """`show`: one record as JSON, or as aligned `key value` lines (lists comma-joined)."""
    if as_json:
        return print_json(command, data)
    width = max(len(key) for key in data) + 2
    for key, value in data.items():
        command.stdout.write(f"{key:{width}} {', '.join(value) if isinstance(value, list) else value}")


def warn_plus(command, address):
    """Warn (on stderr, without refusing) about a '+' in an address just created: DMS's recipient delimiter."""
    warning = plus_warning(address) if address else None
    if warning:
        command.stderr.write(f"Warning: {warning}")


def not_found(field, what, value):
    return CommandError(f"{field}: no {what} {value!r}.")
