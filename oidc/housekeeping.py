"""Housekeeping for the OIDC provider: removing tokens, codes and sign-in records that expired."""

from django.db.models import Exists, OuterRef
from django.utils import timezone
from oauth2_provider.models import clear_expired, get_grant_model, get_refresh_token_model

from oidc.models import TokenFamily


def expired_tokens_clear():
    """DOT's sweep, then what it does not know about: families with no refresh token left and used codes
    past their replay window. Returns (families deleted, codes deleted)."""
    clear_expired()
    any_refresh = get_refresh_token_model().objects.filter(token_family=OuterRef("family"))
    # A family row is written in the same transaction as its first refresh token, so none is caught mid-birth.
    families, _ = TokenFamily.objects.filter(~Exists(any_refresh)).delete()
    # clear_expired() already drops expired codes; this catches the ones that expired while it ran.
    codes, _ = get_grant_model().objects.filter(expires__lt=timezone.now()).delete()
    return families, codes
