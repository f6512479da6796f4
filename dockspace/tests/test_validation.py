"""One refusal shape, rendered the same everywhere: ValidationError({field: [message]}) -> form fields, command lines,
admin notices. No message is parsed for its field."""

import pytest
from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from dockspace.validation import add_to_form, error_lines, error_summary, error_text, field_error

REFUSAL = ValidationError(
    {
        "address": ["'x' is not an email address."],
        "full_name": ["at most 150 characters.", "no line breaks."],
        NON_FIELD_ERRORS: ["nothing was changed."],
    }
)


@pytest.mark.parametrize(
    "error, labels, lines",
    [
        (field_error("quota", "a quota is required."), None, ["quota: a quota is required."]),
        (field_error("quota", "a quota is required."), {"quota": "--quota"}, ["--quota: a quota is required."]),
        (
            REFUSAL,
            {"full_name": "--name"},
            [
                "address: 'x' is not an email address.",
                "--name: at most 150 characters.",
                "--name: no line breaks.",
                "nothing was changed.",
            ],
        ),
        # Django's password validators raise a list: about no field in particular, printed as it is.
        (
            ValidationError(["This password is too short.", "It is too common."]),
            None,
            ["This password is too short.", "It is too common."],
        ),
        # A message is never split at its colon: the field is the key, not the text.
        (field_error("targets", "a: b is not an address."), None, ["targets: a: b is not an address."]),
        (ValidationError("note: nothing to do."), None, ["note: nothing to do."]),
    ],
)
def test_error_lines_name_the_field_or_the_option_once_per_message(error, labels, lines):
    assert error_lines(error, labels) == lines
    assert error_text(error, labels) == "\n".join(lines)


def test_an_admin_notice_joins_the_messages_without_field_names():
    assert error_summary(REFUSAL) == "'x' is not an email address. at most 150 characters. no line breaks. " + (
        "nothing was changed."
    )


class PersonForm(forms.Form):
    local_part = forms.CharField(required=False)
    full_name = forms.CharField(required=False)
    keep_copy = forms.BooleanField(required=False, disabled=True)


def test_a_form_shows_each_message_on_the_field_it_names_and_the_rest_above_it():
    form = PersonForm(data={})
    assert form.is_valid()
    refusal = ValidationError(
        {
            "address": ["'x' is not an email address."],  # the form calls it local_part
            "full_name": ["no line breaks."],
            "keep_copy": ["needs a mailbox."],  # shown disabled: the message goes above the form
            "person": ["you may not act on them."],  # not on this form
        }
    )

    add_to_form(form, refusal, {"address": "local_part"})

    assert form.errors == {
        "local_part": ["'x' is not an email address."],
        "full_name": ["no line breaks."],
        NON_FIELD_ERRORS: ["needs a mailbox.", "you may not act on them."],
    }
