"""What every management command shares: a refusal as a clean non-zero exit, a password from stdin, output."""

import json
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import DatabaseError

from dockspace.validation import error_text


class ServiceCall:
    """`with ServiceCall(): services.x(...)` turns a refusal (ValidationError) into a non-zero exit printing
    `field: message` a line each, and a database error into one line, never a traceback. `options` names the
    command-line option for a service field where they differ ({"full_name": "--name"}), so the message names
    what the operator typed."""

    def __init__(self, options=None):
        self.options = options

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return False
        if issubclass(exc_type, ValidationError):
            raise CommandError(error_text(exc, self.options)) from None
        if issubclass(exc_type, DatabaseError):
            raise CommandError(f"the database refused the change: {exc}") from None
        return False


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


def not_found(field, what, value):
    return CommandError(f"{field}: no {what} {value!r}.")


def describe_actions(subparsers):
    """Each action's one-line help (shown in the command's --help) becomes the description its own --help starts
    with (`manage.py mailhost check --help`), so the action's page says what it does."""
    for choice in subparsers._choices_actions:
        parser = subparsers.choices[choice.dest]
        if not parser.description:
            parser.description = choice.help
