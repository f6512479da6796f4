"""System checks with stable ids for a misconfigured Dockspace (run by `manage.py check`)."""

import os
from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from dockspace.private_files import loose_modes


@register()
def check_data_dir(app_configs=None, **kwargs):
    data_dir = settings.DATA_DIR
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [
            Error(
                f"The data directory {data_dir} cannot be created: {exc.strerror}.",
                hint="Set DOCKSPACE_DATA_DIR to a directory the Dockspace user can write.",
                id="dockspace.E001",
            )
        ]
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3") and not Path(str(database["NAME"])).parent.is_dir():
        folder = Path(str(database["NAME"])).parent
        return [
            Error(
                f"The SQLite database's directory {folder} does not exist, so the database cannot be created.",
                hint=f"Create it (mkdir -m 0700 -p {folder}) or correct DATABASE_URL.",
                id="dockspace.E005",
            )
        ]
    if not os.access(data_dir, os.W_OK | os.X_OK):
        return [
            Error(
                f"The data directory {data_dir} is not writable by this user.",
                hint="Fix its owner or permissions, or set DOCKSPACE_DATA_DIR elsewhere.",
                id="dockspace.E001",
            )
        ]
    return []


def _private_paths():
    """Dockspace's own files that hold secrets: the data directory, the SQLite database (password
    hashes, TOTP seeds, DKIM and OIDC private keys), the development secret key, the setup code, the outbox."""
    data_dir = settings.DATA_DIR
    paths = [data_dir, data_dir / "dev-secret-key", data_dir / "setup-code", data_dir / "outbox"]
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        name = Path(str(database["NAME"]))
        paths += [name, name.with_name(name.name + "-wal")]
    return paths


@register()
def check_private_file_modes(app_configs=None, **kwargs):
    loose = loose_modes(_private_paths())
    if not loose:
        return []
    listed = ", ".join(f"{path} ({mode:04o})" for path, mode in loose)
    return [
        Warning(
            f"Group or others may read Dockspace's secrets: {listed}.",
            hint="Restrict them to Dockspace's user: chmod 0700 the data directory and 0600 its files "
            f"(e.g. chmod -R go-rwx {settings.DATA_DIR}). New directories and files are created that way.",
            id="dockspace.W003",
        )
    ]


@register(Tags.security, deploy=True)
def check_production_settings(app_configs=None, **kwargs):
    problems = []
    if settings.DEBUG:
        problems.append(
            Warning(
                "DEBUG is on: error pages show internals and a development secret key is used.",
                hint="Unset DEBUG (or set DEBUG=0) in production.",
                id="dockspace.W001",
            )
        )
    if not settings.DOCKSPACE_URL.startswith("https://") and not settings.DEBUG:
        problems.append(
            Error(
                f"DOCKSPACE_URL is {settings.DOCKSPACE_URL}, not https: secure cookies would never "
                "be sent back, so nobody could sign in.",
                hint="Serve Dockspace over HTTPS (a reverse proxy is fine) and set DOCKSPACE_URL to the https URL.",
                id="dockspace.E002",
            )
        )
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and not settings.DEBUG:
        problems.append(
            Warning(
                "The database is SQLite: fine for trying Dockspace, not for several web and Celery processes.",
                hint="Set DATABASE_URL to a PostgreSQL database.",
                id="dockspace.W002",
            )
        )
    return problems
