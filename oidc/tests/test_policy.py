"""The authorization decision table: what a request needs next, for every prompt, hint and policy."""

import dataclasses

import pytest

from oidc import policy
from oidc.policy import AuthorizationFacts

NOW = 1_800_000_000.0
BASE = AuthorizationFacts(
    account_usable=True,
    client_admits=True,
    requires_totp=False,
    skip_consent=True,
    now=NOW,
    auth_at=NOW - 600,
    verified=False,
    has_device=False,
    user_sub="uuid-1",
)


def decide(**changes):
    return policy.decide_authorization(dataclasses.replace(BASE, **changes))


@pytest.mark.parametrize(
    ("changes", "action", "error"),
    [
        ({}, policy.ISSUE, ""),
        ({"account_usable": False}, policy.NO_ACCESS, ""),
        ({"account_usable": False, "prompt": frozenset({"none"})}, policy.ERROR, "access_denied"),
        ({"client_admits": False}, policy.NO_ACCESS, ""),
        ({"client_admits": False, "prompt": frozenset({"none"})}, policy.ERROR, "access_denied"),
        ({"prompt": frozenset({"login"})}, policy.LOGIN, ""),
        ({"prompt": frozenset({"login"}), "fresh_login_at": NOW - 700}, policy.ISSUE, ""),
        ({"prompt": frozenset({"login"}), "fresh_login_at": NOW - 500}, policy.LOGIN, ""),
        ({"prompt": frozenset({"none", "login"})}, policy.ERROR, "invalid_request"),
        ({"max_age": "0"}, policy.LOGIN, ""),
        ({"max_age": "0", "prompt": frozenset({"none"})}, policy.ERROR, "login_required"),
        ({"max_age": "0", "fresh_login_at": NOW - 601}, policy.ISSUE, ""),
        ({"max_age": "3600"}, policy.ISSUE, ""),
        ({"max_age": "599"}, policy.LOGIN, ""),
        ({"max_age": "-1"}, policy.ERROR, "invalid_request"),
        ({"max_age": "soon"}, policy.ERROR, "invalid_request"),
        ({"requires_totp": True, "has_device": True}, policy.SECOND_FACTOR, ""),
        ({"requires_totp": True}, policy.ENROL, ""),
        ({"requires_totp": True, "prompt": frozenset({"none"})}, policy.ERROR, "interaction_required"),
        ({"requires_totp": True, "verified": True}, policy.ISSUE, ""),
        ({"acr_values": (policy.ACR_MFA,), "has_device": True}, policy.SECOND_FACTOR, ""),
        ({"acr_values": (policy.ACR_MFA,)}, policy.ISSUE, ""),  # voluntary: acr in the token says what happened
        ({"essential_acr": (policy.ACR_MFA,)}, policy.ENROL, ""),
        ({"skip_consent": False, "requested_scopes": frozenset({"openid", "email"})}, policy.CONSENT, ""),
        (
            {
                "skip_consent": False,
                "requested_scopes": frozenset({"openid", "email"}),
                "consented_scopes": frozenset({"openid", "email", "profile"}),
            },
            policy.ISSUE,
            "",
        ),
        (
            {"skip_consent": False, "requested_scopes": frozenset({"openid"}), "prompt": frozenset({"none"})},
            policy.ERROR,
            "consent_required",
        ),
        ({"prompt": frozenset({"consent"})}, policy.CONSENT, ""),
        ({"hint_sub": "uuid-1"}, policy.ISSUE, ""),
        ({"hint_sub": "uuid-2"}, policy.LOGIN, ""),
        ({"hint_sub": "uuid-2", "prompt": frozenset({"none"})}, policy.ERROR, "login_required"),
        ({"hint_sub": "uuid-2", "fresh_login_at": NOW - 700}, policy.ERROR, "login_required"),
        ({"hint_sub": ""}, policy.ERROR, "invalid_request"),
        ({"prompt": frozenset({"none"})}, policy.ISSUE, ""),
        ({"auth_at": None}, policy.LOGIN, ""),
        ({"auth_at": None, "prompt": frozenset({"none"})}, policy.ERROR, "login_required"),
    ],
)
def test_the_decision_for_each_situation(changes, action, error):
    decision = decide(**changes)
    assert (decision.action, decision.error) == (action, error)


def test_the_group_gate_admits_everyone_when_the_client_names_no_group():
    assert policy.client_admits([], [])
    assert policy.client_admits([1, 2], [2])
    assert not policy.client_admits([1], [2, 3])


def test_suspended_or_disabled_mailboxes_and_pending_registrations_cannot_use_apps():
    assert policy.account_usable(is_active=True, is_pending_registration=False, mailbox_usable=None)
    assert policy.account_usable(is_active=True, is_pending_registration=False, mailbox_usable=True)
    assert not policy.account_usable(is_active=True, is_pending_registration=False, mailbox_usable=False)
    assert not policy.account_usable(is_active=True, is_pending_registration=True, mailbox_usable=None)
    assert not policy.account_usable(is_active=False, is_pending_registration=False, mailbox_usable=None)


def test_the_auth_context_names_what_was_proved():
    assert policy.auth_context(auth_at=12.7, verified=False) == {
        "auth_time": 12,
        "amr": ["pwd"],
        "acr": policy.ACR_PWD,
    }
    assert policy.auth_context(auth_at=12.0, verified=True)["amr"] == ["pwd", "otp", "mfa"]
