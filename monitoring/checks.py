"""System checks of monitoring (registered by MonitoringConfig.ready()). Those reading the database run when a
database is named: `manage.py check --database default`, and `manage.py migrate`, which every start runs."""

from django.core.checks import Tags, Warning, register
from django.db import DatabaseError

from monitoring import ssh


@register(Tags.database)
def check_mailhost_key_sources(app_configs=None, databases=None, **kwargs):
    """Mail hosts whose key file or variable breaks the key rules (a row from before them, a restored backup):
    Dockspace refuses to load their keys, so nothing is probed or run on them until the key source is fixed."""
    from monitoring.models import MailHost

    if not databases or "default" not in databases:
        return []
    try:
        rows = list(MailHost.objects.using("default").order_by("name").values_list("name", "key_path", "key_env"))
    except DatabaseError:  # not migrated yet (`manage.py migrate` runs the checks first)
        return []
    problems = []
    for name, key_path, key_env in rows:
        try:
            ssh.checked_key_source(key_path, key_env)
        except ssh.KeySourceRefused as refused:
            option = "--key" if refused.field == "key_path" else "--key-env"
            problems.append(
                Warning(
                    f"Mail host {name}: {refused.message} Its key is not loaded: it is not probed and no action runs "
                    "on it.",
                    hint=f"Do what it says (`chmod 600` a key file others may read), or put the key where the rules "
                    f"allow, then `manage.py mailhost update {name} {option} ...` (or change the host in the admin).",
                    id="monitoring.W001",
                )
            )
    return problems
