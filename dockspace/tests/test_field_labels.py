"""Field labels, which the admin shows on forms, columns and filters, spell acronyms in capitals
("TOTP required for staff", not "Totp required for staff"). Pure: reads the models, no database."""

import re

import pytest
from django.apps import apps
from django.db.models.fields import AutoFieldMixin

APPS = ["accounts", "mail", "oidc", "deliverability", "monitoring"]
ACRONYMS = re.compile(
    r"\b(totp|otp|dkim|spf|dmarc|oidc|dns|dnsbl|ip|smtp|imap|url|uri|uris|id|uuid|mfa|dms|pkce|amr|acr|mx|ptr|tls)\b"
)


def labels():
    for label in APPS:
        for model in apps.get_app_config(label).get_models():
            for field in model._meta.get_fields():
                # Primary keys are never shown (DOT declares its own as 'id'); reverse relations have no label.
                if getattr(field, "auto_created", False) or not hasattr(field, "verbose_name"):
                    continue
                if isinstance(field, AutoFieldMixin):
                    continue
                yield f"{model._meta.label}.{field.name}", str(field.verbose_name)


@pytest.mark.parametrize("field, verbose_name", list(labels()))
def test_acronyms_in_a_field_label_are_in_capitals(field, verbose_name):
    assert not ACRONYMS.search(verbose_name), f"{field}: {verbose_name!r}"


def test_the_labels_fixed_here_read_as_operators_expect():
    names = dict(labels())
    assert names["accounts.AppSettings.totp_required_for_staff"] == "TOTP required for staff"
    assert names["mail.Domain.dkim_selector"] == "DKIM selector"
    assert names["oidc.Application.requires_totp"] == "requires TOTP"
