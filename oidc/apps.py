from django.apps import AppConfig
from django.db.models.signals import post_migrate

from dockspace.schedule import Crontab, PeriodicTask


def _clients_gated_by(group):
    """Membership of a client's allowed group is an access grant (accounts.authz asks before it changes)."""
    return [str(app) for app in group.oidc_clients.all()]


def _create_signing_keys(sender, using, **kwargs):
    from oidc import keys

    keys.ensure_signing_keys()


def _end_app_tokens(sender, user, reason, request=None, actor=None, actor_label=None, **kwargs):
    from oidc import services

    return services.person_tokens_revoke(
        user=user, reason=reason, request=request, actor=actor, actor_label=actor_label
    )


class OidcConfig(AppConfig):
    name = "oidc"
    verbose_name = "OpenID Connect"

    def ready(self):
        from oidc import checks  # noqa: F401 - registers the system checks

        # "First start": migrate runs at every start (make run, the Docker entrypoint).
        post_migrate.connect(_create_signing_keys, sender=self, dispatch_uid="oidc.signing_keys")
        from accounts.authz import register_group_gate

        register_group_gate(_clients_gated_by, permission="oidc.change_application", dispatch_uid="oidc.allowed_groups")

        # A reset sign-in (password, sessions, second factor, suspended mailbox) ends every app's tokens too.
        from accounts.signals import sign_in_revoked

        sign_in_revoked.connect(_end_app_tokens, dispatch_uid="oidc.end_app_tokens")

        # The sign-in pages' form-action lists the clients' redirect origins from the cache: a saved or deleted
        # client (admin, command, service) forgets them, so the next page reads them again.
        from django.db.models.signals import post_delete, post_save

        from oidc.csp import forget_redirect_origins
        from oidc.models import Application

        post_save.connect(forget_redirect_origins, sender=Application, dispatch_uid="oidc.csp.saved")
        post_delete.connect(forget_redirect_origins, sender=Application, dispatch_uid="oidc.csp.deleted")
        post_migrate.connect(forget_redirect_origins, sender=self, dispatch_uid="oidc.csp.migrated")

    def periodic_tasks(self):
        return [
            PeriodicTask(
                name="Clear expired OIDC tokens, codes and finished sign-ins",
                task="oidc.clear_expired_tokens",
                crontab=Crontab(minute="41"),
                expires_seconds=30 * 60,
                description="Deletes expired access and refresh tokens, authorization codes and sign-ins that ended.",
            ),
        ]

    def profile_context(self, person):
        """The apps the person signed into, to revoke from their profile page (accounts.selectors.profile_context)."""
        from oidc.selectors import apps_of

        return {"apps": apps_of(person)}
