"""Who may sign into which app, and what an authorization request needs next. Pure: plain values in,
a decision out; the authorization view gathers the facts and acts on the decision."""

from dataclasses import dataclass, field

ACR_PWD = "urn:dockspace:acr:pwd"
ACR_MFA = "urn:dockspace:acr:mfa"
AMR_PWD = ("pwd",)
AMR_MFA = ("pwd", "otp", "mfa")

# Decisions
ISSUE = "issue"
LOGIN = "login"
SECOND_FACTOR = "second_factor"
ENROL = "enrol"
CONSENT = "consent"
NO_ACCESS = "no_access"
ERROR = "error"


def account_usable(*, is_active, is_pending_registration, mailbox_usable):
    """A person may use apps while their account is active and their mailbox, if they have one, is usable
    (mailbox_usable: None without a mailbox, else Mailbox.is_usable)."""
    return is_active and not is_pending_registration and mailbox_usable in (None, True)


def client_admits(allowed_group_ids, user_group_ids):
    return not allowed_group_ids or bool(set(allowed_group_ids) & set(user_group_ids))


def auth_context(*, auth_at, verified):
    """What the person proved in this session, as ID token claims."""
    return {
        "auth_time": int(auth_at),
        "amr": list(AMR_MFA if verified else AMR_PWD),
        "acr": ACR_MFA if verified else ACR_PWD,
    }


@dataclass(frozen=True)
class AuthorizationFacts:
    account_usable: bool
    client_admits: bool
    requires_totp: bool
    skip_consent: bool
    now: float
    auth_at: float | None  # when this session signed in (None: unknown)
    verified: bool  # second factor proved in this session
    has_device: bool
    prompt: frozenset = frozenset()
    max_age: str | None = None  # raw request value
    acr_values: tuple = ()
    essential_acr: tuple = ()  # values of an essential "acr" claim request
    hint_sub: str | None = None  # sub of a verified id_token_hint; "" when the hint could not be verified
    user_sub: str = ""
    fresh_login_at: float | None = None  # a valid fresh-login marker for this request (sign-in started then)
    requested_scopes: frozenset = frozenset()
    consented_scopes: frozenset = frozenset()


@dataclass(frozen=True)
class Decision:
    action: str
    error: str = ""
    description: str = ""
    extra: dict = field(default_factory=dict)


def _error(code, description):
    return Decision(ERROR, error=code, description=description)


def parse_max_age(raw):
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ValueError("max_age must be a non-negative whole number of seconds.")
    return int(raw)


def decide_authorization(f: AuthorizationFacts) -> Decision:
    silent = "none" in f.prompt
    if silent and len(f.prompt) > 1:
        return _error("invalid_request", "prompt=none cannot be combined with other prompt values.")
    if not f.account_usable:
        if silent:
            return _error("access_denied", "This account cannot sign in to apps right now.")
        return Decision(NO_ACCESS, description="Your account cannot sign in to apps right now.")
    try:
        max_age = parse_max_age(f.max_age)
    except ValueError as exc:
        return _error("invalid_request", str(exc))
    if f.hint_sub == "":
        return _error("invalid_request", "id_token_hint is not an ID token issued by this provider.")

    fresh = f.fresh_login_at is not None and f.auth_at is not None and f.auth_at >= f.fresh_login_at
    if f.hint_sub is not None and f.hint_sub != f.user_sub:
        if silent or fresh:
            return _error("login_required", "The person signed in is not the one named by id_token_hint.")
        return Decision(LOGIN)

    if not f.client_admits:
        if silent:
            return _error("access_denied", "This person is not allowed to use this app.")
        return Decision(NO_ACCESS, description="You are not in a group that may use this app.")

    # A session without a recorded sign-in time cannot vouch for auth_time: sign in again.
    needs_login = "login" in f.prompt or f.auth_at is None or (max_age is not None and f.now - f.auth_at > max_age)
    if needs_login and not fresh:
        if silent:
            return _error("login_required", "A fresh sign-in is needed.")
        return Decision(LOGIN)

    wants_mfa = f.requires_totp or ACR_MFA in f.essential_acr or (ACR_MFA in f.acr_values and f.has_device)
    if wants_mfa and not f.verified:
        if silent:
            return _error("interaction_required", "A second factor is needed to sign in to this app.")
        return Decision(SECOND_FACTOR if f.has_device else ENROL)

    needs_consent = "consent" in f.prompt or (not f.skip_consent and not f.requested_scopes <= f.consented_scopes)
    if needs_consent:
        if silent:
            return _error("consent_required", "The person has not allowed this app yet.")
        return Decision(CONSENT)
    return Decision(ISSUE)
