from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _create_signing_keys(sender, using, **kwargs):
    from oidc import keys

    keys.ensure_signing_keys()


class OidcConfig(AppConfig):
    name = "oidc"
    verbose_name = "OpenID Connect"

    def ready(self):
        # "First start": migrate runs at every start (make run, the Docker entrypoint).
        post_migrate.connect(_create_signing_keys, sender=self, dispatch_uid="oidc.signing_keys")
