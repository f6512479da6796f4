from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _clients_gated_by(group):
    """Membership of a client's allowed group is an access grant (accounts.authz asks before it changes)."""
    return [str(app) for app in group.oidc_clients.all()]


def _create_signing_keys(sender, using, **kwargs):
    from oidc import keys

    keys.ensure_signing_keys()


class OidcConfig(AppConfig):
    name = "oidc"
    verbose_name = "OpenID Connect"

    def ready(self):
        # "First start": migrate runs at every start (make run, the Docker entrypoint).
        post_migrate.connect(_create_signing_keys, sender=self, dispatch_uid="oidc.signing_keys")
        from accounts.authz import register_group_gate

        register_group_gate(_clients_gated_by, permission="oidc.change_application", dispatch_uid="oidc.allowed_groups")
