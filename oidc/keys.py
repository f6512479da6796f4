"""Signing keys: created on first start, kept in the database, rotated by one command without a restart.

States: 'next' (published, not yet signing, so relying parties caching JWKS already know it when it
becomes active), 'active' (signs), 'retiring' (published until every token it signed has expired),
'retired'. This is the only module that touches private key material.
"""

from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from jwcrypto import jwk
from oauth2_provider.utils import jwk_from_pem

from oidc.models import SigningKey

KEY_BITS = 2048
# Tokens signed just before a rotation stay verifiable for their whole life, plus clock skew.
RETIRE_MARGIN = timedelta(minutes=5)


def _new_key(state, now):
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    kid = jwk.JWK.from_pem(pem.encode()).thumbprint()
    return SigningKey.objects.create(
        kid=kid, private_pem=pem, state=state, created_at=now, activated_at=now if state == SigningKey.ACTIVE else None
    )


def ensure_signing_keys(now=None):
    """Create the active and next keys when missing. Safe to call concurrently (unique constraints)."""
    now = now or timezone.now()
    for state in (SigningKey.ACTIVE, SigningKey.NEXT):
        if SigningKey.objects.filter(state=state).exists():
            continue
        try:
            with transaction.atomic():
                _new_key(state, now)
        except IntegrityError:
            pass  # another process created it first


def active_jwk():
    key = SigningKey.objects.filter(state=SigningKey.ACTIVE).only("private_pem").first()
    if key is None:
        ensure_signing_keys()
        key = SigningKey.objects.get(state=SigningKey.ACTIVE)
    # jwk_from_pem is cached on the (immutable) PEM; never mutate the object it returns.
    return jwk_from_pem(key.private_pem)


def published_keys(now=None):
    now = now or timezone.now()
    return list(
        SigningKey.objects.filter(state__in=[SigningKey.ACTIVE, SigningKey.NEXT])
        | SigningKey.objects.filter(state=SigningKey.RETIRING, publish_until__gt=now)
    )


def public_jwk_dict(key):
    public = jwk_from_pem(key.private_pem).export_public(as_dict=True)
    return {"kty": public["kty"], "n": public["n"], "e": public["e"], "alg": "RS256", "use": "sig", "kid": key.kid}


def jwk_set(now=None):
    """The published public keys as a JWKSet (for verifying id_token_hint and logout hints)."""
    keys = jwk.JWKSet()
    for key in published_keys(now):
        keys.add(jwk.JWK(**public_jwk_dict(key)))
    return keys


def rotate(now=None):
    """Make 'next' active, keep the old active key published until its tokens expire, make a new 'next'."""
    now = now or timezone.now()
    ensure_signing_keys(now)
    lifetime = max(settings.OIDC_ID_TOKEN_SECONDS, settings.OIDC_ACCESS_TOKEN_SECONDS)
    with transaction.atomic():
        SigningKey.objects.filter(state=SigningKey.RETIRING, publish_until__lte=now).update(state=SigningKey.RETIRED)
        old = SigningKey.objects.select_for_update().get(state=SigningKey.ACTIVE)
        new = SigningKey.objects.select_for_update().get(state=SigningKey.NEXT)
        old.state = SigningKey.RETIRING
        old.publish_until = now + timedelta(seconds=lifetime) + RETIRE_MARGIN
        old.save(update_fields=["state", "publish_until"])
        new.state = SigningKey.ACTIVE
        new.activated_at = now
        new.save(update_fields=["state", "activated_at"])
        _new_key(SigningKey.NEXT, now)
    return old, new
