"""Celery tasks for the OIDC provider."""

from celery import shared_task

from oidc.housekeeping import expired_tokens_clear


@shared_task(
    name="oidc.clear_expired_tokens", is_periodic=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=3
)
def clear_expired_tokens():
    families, codes = expired_tokens_clear()
    return f"cleared expired tokens; deleted {families} finished sign-ins and {codes} expired codes"
