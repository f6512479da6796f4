import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from dockspace.env import env_bool, env_int, env_list, env_networks, env_str, parse_database_url


def test_a_secret_can_come_from_a_file(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("s3cret-value\n")
    assert env_str("SECRET_KEY", environ={"SECRET_KEY_FILE": str(secret)}) == "s3cret-value"


def test_both_a_value_and_a_file_is_an_error(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY and SECRET_KEY_FILE are both set"):
        env_str("SECRET_KEY", environ={"SECRET_KEY": "x", "SECRET_KEY_FILE": str(tmp_path / "k")})


def test_an_unreadable_file_names_the_variable(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY_FILE: cannot read"):
        env_str("SECRET_KEY", environ={"SECRET_KEY_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize("raw, value", [("1", True), ("yes", True), ("ON", True), ("0", False), ("off", False)])
def test_booleans(raw, value):
    assert env_bool("DEBUG", environ={"DEBUG": raw}) is value


def test_a_bad_boolean_or_number_names_the_variable():
    with pytest.raises(ImproperlyConfigured, match="DEBUG must be one of"):
        env_bool("DEBUG", environ={"DEBUG": "maybe"})
    with pytest.raises(ImproperlyConfigured, match="EMAIL_PORT must be a whole number"):
        env_int("EMAIL_PORT", 587, environ={"EMAIL_PORT": "25a"})
    with pytest.raises(ImproperlyConfigured, match="EMAIL_PORT must be at least 1"):
        env_int("EMAIL_PORT", 587, minimum=1, environ={"EMAIL_PORT": "0"})


def test_lists_drop_blanks():
    assert env_list("ALLOWED_HOSTS", environ={"ALLOWED_HOSTS": " a.example, ,b.example "}) == ["a.example", "b.example"]


def test_networks_are_read_in_cidr_notation():
    raw = "127.0.0.0/8, fd00:20::/64,10.1.2.3"
    read = env_networks("NETS", environ={"NETS": raw})
    assert [str(network) for network in read] == ["127.0.0.0/8", "fd00:20::/64", "10.1.2.3/32"]
    assert env_networks("NETS", environ={}) == []


@pytest.mark.parametrize("raw", ["10.0.0.0/33", "localhost", "10.0.0.1/8", "127.0.0.0/8;10.0.0.0/8"])
def test_a_bad_network_names_the_variable_and_the_rule(raw):
    with pytest.raises(ImproperlyConfigured, match="NETS must be comma-separated networks in CIDR notation"):
        env_networks("NETS", environ={"NETS": raw})


def test_postgres_urls_are_parsed_with_connection_reuse():
    db = parse_database_url("postgres://dock:p%40ss@db.internal:6543/dockspace?sslmode=require")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "dock",
        "p@ss",
        "db.internal",
        "6543",
        "dockspace",
    )
    assert db["OPTIONS"] == {"sslmode": "require"}
    assert db["CONN_MAX_AGE"] == 60 and db["CONN_HEALTH_CHECKS"] is True


def test_sqlite_urls_take_relative_and_absolute_paths():
    assert parse_database_url("sqlite:////var/lib/dockspace/db.sqlite3")["NAME"] == "/var/lib/dockspace/db.sqlite3"
    assert parse_database_url("sqlite:///db.sqlite3")["NAME"] == "db.sqlite3"


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://x/y", "unsupported scheme 'mysql'"),
        ("postgres://host/", "needs a database name"),
        ("postgres://host:port/db", "port must be a number"),
    ],
)
def test_bad_database_urls_are_explained(url, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_database_url(url)


def _start(env, *command):
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "dockspace.settings"}
    return subprocess.run(
        [sys.executable, "manage.py", *(command or ["check"])],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_startup_without_a_secret_key_in_production_fails_with_a_clear_message(tmp_path):
    result = _start({"DEBUG": "0", "DOCKSPACE_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off" in result.stderr
    assert "Traceback" not in result.stderr


def test_startup_with_a_weak_secret_key_in_production_fails(tmp_path):
    result = _start({"DEBUG": "0", "SECRET_KEY": "changeme", "DOCKSPACE_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0 and "SECRET_KEY is too weak" in result.stderr


def test_development_mode_makes_and_keeps_its_own_key(tmp_path):
    assert _start({"DEBUG": "1", "DOCKSPACE_DATA_DIR": str(tmp_path)}).returncode == 0
    key = (tmp_path / "dev-secret-key").read_text()
    assert len(key) >= 50
    assert _start({"DEBUG": "1", "DOCKSPACE_DATA_DIR": str(tmp_path)}).returncode == 0
    assert (tmp_path / "dev-secret-key").read_text() == key


def test_commands_that_sign_nothing_run_without_the_production_secret(tmp_path):
    result = _start({"DEBUG": "0", "DOCKSPACE_DATA_DIR": str(tmp_path)}, "makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "dev-secret-key").exists()
    refused = _start({"DEBUG": "0", "DOCKSPACE_DATA_DIR": str(tmp_path)}, "migrate")
    assert refused.returncode != 0 and "must be set when DEBUG is off" in refused.stderr


def test_a_command_run_before_the_database_is_migrated_says_so_without_a_traceback(tmp_path):
    result = _start({"DEBUG": "1", "DOCKSPACE_DATA_DIR": str(tmp_path)}, "oidc_client", "list")
    assert result.returncode == 1
    assert "Run `make run` once" in result.stderr and "Traceback" not in result.stderr


def test_the_backup_smtp_server_reads_its_password_from_a_file(tmp_path):
    secret = tmp_path / "backup-password"
    secret.write_text("s3cret\n")
    env = {
        "DEBUG": "1",
        "DOCKSPACE_DATA_DIR": str(tmp_path / "data"),
        "EMAIL_HOST": "smtp.example.com",
        "EMAIL_BACKUP_HOST": "backup.example.com",
        "EMAIL_BACKUP_HOST_PASSWORD_FILE": str(secret),
        "EMAIL_BACKUP_USE_SSL": "1",
    }
    shown = "from django.conf import settings as s; print(s.EMAIL_BACKUP_HOST_PASSWORD, s.EMAIL_BACKUP_USE_TLS)"
    result = _start(env, "shell", "--no-imports", "-c", shown)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["s3cret", "False"]  # TLS from the start alone: no STARTTLS on top


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"EMAIL_HOST": "smtp.example.com", "EMAIL_USE_SSL": "1", "EMAIL_USE_TLS": "1"},
            "EMAIL_USE_TLS and EMAIL_USE_SSL",
        ),
        (
            {
                "EMAIL_HOST": "smtp.example.com",
                "EMAIL_BACKUP_HOST": "b.example.com",
                "EMAIL_BACKUP_USE_SSL": "yes",
                "EMAIL_BACKUP_USE_TLS": "on",
            },
            "EMAIL_BACKUP_USE_TLS and EMAIL_BACKUP_USE_SSL are both on",
        ),
        ({"EMAIL_BACKUP_HOST": "b.example.com"}, "EMAIL_BACKUP_HOST is set but EMAIL_HOST is not"),
        ({"DOCKSPACE_OUTBOX_MAX_ATTEMPTS": "0"}, "DOCKSPACE_OUTBOX_MAX_ATTEMPTS must be at least 1"),
        (
            {"DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS": "10.0.0.0/8,192.168.1.0/33"},
            "DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS must be comma-separated networks in CIDR notation",
        ),
    ],
)
def test_unusable_outbound_mail_settings_stop_startup_with_a_clear_message(tmp_path, env, message):
    result = _start({"DEBUG": "1", "DOCKSPACE_DATA_DIR": str(tmp_path), **env})
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
