"""One shape for every refusal: `ValidationError({field: [message]})`, raised by services and by the pure checks
they call. Forms, the admin, commands and APIs render it with these helpers; nobody parses message text.

A message is the rule alone ("'x' is not an email address"); the field is the key, so each place can name it
as its reader knows it: a form puts the message on that field, a command prints `--option: message`, the CSV
import `column: message`. `NON_FIELD_ERRORS` (or a list-shaped error, as Django's password validators raise)
is about no field in particular."""

from collections.abc import Mapping

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError


def field_error(field: str, message: str) -> ValidationError:
    """The refusal of one input: ValidationError({field: [message]})."""
    return ValidationError({field: [message]})


def error_pairs(error: ValidationError) -> list[tuple[str | None, str]]:
    """(field, message) for each message of a ValidationError, field None where it names none."""
    if hasattr(error, "error_dict"):
        return [
            (None if field == NON_FIELD_ERRORS else field, message)
            for field, messages in error.message_dict.items()
            for message in messages
        ]
    return [(None, message) for message in error.messages]


def error_lines(error: ValidationError, labels: Mapping[str, str] | None = None) -> list[str]:
    """'field: message', one per message, as commands print them. `labels` renames a field to what the reader
    typed ({"full_name": "--name"}); a message that names no field is printed as it is."""
    labels = labels or {}
    return [
        message if field is None else f"{labels.get(field, field)}: {message}" for field, message in error_pairs(error)
    ]


def error_text(error: ValidationError, labels: Mapping[str, str] | None = None) -> str:
    """error_lines as one text, a line each: a command's error output."""
    return "\n".join(error_lines(error, labels))


def error_summary(error: ValidationError) -> str:
    """The messages in one line, for a notice that already says what was refused ("Not deleted: ...")."""
    return " ".join(error.messages)


def add_to_form(form: forms.BaseForm, error: ValidationError, fields: Mapping[str, str] | None = None) -> None:
    """Each message on the form field it names (`fields` maps a service's field to the form's own name for it,
    {"password": "password1"}); a field the form does not have, or shows disabled, gets it above the form."""
    fields = fields or {}
    for field, message in error_pairs(error):
        target = fields.get(field, field) if field is not None else None
        if target is not None and (target not in form.fields or form.fields[target].disabled):
            target = None
        form.add_error(target, message)
