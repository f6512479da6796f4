import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from dockspace.env import (
    env_bool,
    env_float,
    env_hostname,
    env_int,
    env_ip_ports,
    env_ips,
    env_list,
    env_networks,
    env_str,
    parse_database_url,
)


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


def test_decimal_numbers():
    assert env_float("DOCKSPACE_DNS_TIMEOUT", 3.0, environ={}) == 3.0
    assert env_float("DOCKSPACE_DNS_TIMEOUT", 3.0, minimum=0.1, environ={"DOCKSPACE_DNS_TIMEOUT": " 0.5 "}) == 0.5
    assert env_float("DOCKSPACE_DNS_TIMEOUT", 3.0, environ={"DOCKSPACE_DNS_TIMEOUT": "2"}) == 2.0


@pytest.mark.parametrize(
    "raw, message",
    [
        ("3s", "DOCKSPACE_DNS_TIMEOUT must be a number such as 3 or 0.5; got '3s'."),
        ("nan", "DOCKSPACE_DNS_TIMEOUT must be a number such as 3 or 0.5; got 'nan'."),
        ("inf", "DOCKSPACE_DNS_TIMEOUT must be a number such as 3 or 0.5; got 'inf'."),
        ("0.01", "DOCKSPACE_DNS_TIMEOUT must be at least 0.1; got 0.01."),
    ],
)
def test_a_bad_decimal_number_names_the_variable_and_the_rule(raw, message):
    with pytest.raises(ImproperlyConfigured) as refused:
        env_float("DOCKSPACE_DNS_TIMEOUT", 3.0, minimum=0.1, environ={"DOCKSPACE_DNS_TIMEOUT": raw})
    assert str(refused.value) == message


@pytest.mark.parametrize(
    "raw, servers",
    [
        (None, []),
        ("", []),
        ("10.0.0.2", [("10.0.0.2", 53)]),
        ("127.0.0.1:5353, 10.0.0.2", [("127.0.0.1", 5353), ("10.0.0.2", 53)]),
        ("[2001:db8::53]:5353,[::1],2001:DB8::54", [("2001:db8::53", 5353), ("::1", 53), ("2001:db8::54", 53)]),
    ],
)
def test_address_and_port_lists(raw, servers):
    environ = {} if raw is None else {"DOCKSPACE_DNS_RESOLVER": raw}
    assert env_ip_ports("DOCKSPACE_DNS_RESOLVER", 53, environ=environ) == servers


@pytest.mark.parametrize(
    "raw, detail",
    [
        ("dns.example.com", "'dns.example.com' is not an IP address."),
        ("10.0.0.2:dns", "the port in '10.0.0.2:dns' is not a number from 1 to 65535."),
        ("10.0.0.2:0", "the port in '10.0.0.2:0' is not a number from 1 to 65535."),
        ("10.0.0.2:65536", "the port in '10.0.0.2:65536' is not a number from 1 to 65535."),
        ("10.0.0.2:", "the port in '10.0.0.2:' is not a number from 1 to 65535."),
        ("[2001:db8::53]53", "got '[2001:db8::53]53'."),
        ("[2001:db8::53", "got '[2001:db8::53'."),
        ("10.0.0.2;10.0.0.3", "'10.0.0.2;10.0.0.3' is not an IP address."),
    ],
)
def test_a_bad_address_list_names_the_variable_the_rule_and_the_culprit(raw, detail):
    with pytest.raises(ImproperlyConfigured) as refused:
        env_ip_ports("DOCKSPACE_DNS_RESOLVER", 53, environ={"DOCKSPACE_DNS_RESOLVER": raw})
    message = str(refused.value)
    assert message.startswith(
        "DOCKSPACE_DNS_RESOLVER must be a comma-separated list of IP addresses, each with an optional :PORT "
        "(IPv6 as [ADDRESS]:PORT), such as 10.0.0.2,127.0.0.1:5353,[2001:db8::53]:53; "
    )
    assert message.endswith(detail)


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


def test_the_dns_settings_are_read_at_startup(tmp_path):
    env = {
        "DEBUG": "1",
        "DOCKSPACE_DATA_DIR": str(tmp_path),
        "DOCKSPACE_DNS_RESOLVER": "127.0.0.1:5353,[::1]",
        "DOCKSPACE_DNS_TIMEOUT": "1.5",
        "DOCKSPACE_DNS_CONCURRENCY": "8",
    }
    shown = "from django.conf import settings as s; print(s.DNS_NAMESERVERS, s.DNS_TIMEOUT, s.DNS_CONCURRENCY)"
    result = _start(env, "shell", "--no-imports", "-c", shown)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[('127.0.0.1', 5353), ('::1', 53)] 1.5 8"
    defaults = _start({"DEBUG": "1", "DOCKSPACE_DATA_DIR": str(tmp_path)}, "shell", "--no-imports", "-c", shown)
    assert defaults.stdout.strip() == "[] 3.0 50"  # no resolver named: the system's resolv.conf


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DOCKSPACE_DNS_RESOLVER": "resolver.internal"}, "DOCKSPACE_DNS_RESOLVER must be a comma-separated list"),
        ({"DOCKSPACE_DNS_TIMEOUT": "0"}, "DOCKSPACE_DNS_TIMEOUT must be at least 0.1; got 0."),
        ({"DOCKSPACE_DNS_CONCURRENCY": "0"}, "DOCKSPACE_DNS_CONCURRENCY must be at least 1; got 0."),
    ],
)
def test_unusable_dns_settings_stop_startup_with_a_clear_message(tmp_path, env, message):
    result = _start({"DEBUG": "1", "DOCKSPACE_DATA_DIR": str(tmp_path), **env})
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_sending_ips_are_read_once_each_in_order():
    environ = {"DOCKSPACE_SENDING_IPS": " 192.0.2.25, 2001:db8::25,192.0.2.25 "}
    assert [str(ip) for ip in env_ips("DOCKSPACE_SENDING_IPS", environ=environ)] == ["192.0.2.25", "2001:db8::25"]
    assert env_ips("DOCKSPACE_SENDING_IPS", environ={}) == []


def test_a_sending_ip_that_is_not_an_address_names_the_variable_and_the_culprit():
    with pytest.raises(ImproperlyConfigured, match=r"DOCKSPACE_SENDING_IPS must be comma-separated IP addresses"):
        env_ips("DOCKSPACE_SENDING_IPS", environ={"DOCKSPACE_SENDING_IPS": "192.0.2.25,mail.example.com"})


def test_a_sending_ip_with_a_zone_is_refused_naming_the_variable():
    # A zone (fe80::1%eth0) would reach the blocklist sweep's DNS names.
    with pytest.raises(ImproperlyConfigured, match=r"DOCKSPACE_SENDING_IPS: give '2001:db8::25%x' without its %zone"):
        env_ips("DOCKSPACE_SENDING_IPS", environ={"DOCKSPACE_SENDING_IPS": "192.0.2.25,2001:db8::25%x"})


@pytest.mark.parametrize("raw, value", [("Mail.Example.com.", "mail.example.com"), ("", ""), (None, "")])
def test_the_mail_hostname_is_kept_in_lower_case(raw, value):
    environ = {} if raw is None else {"DOCKSPACE_MAIL_HOSTNAME": raw}
    assert env_hostname("DOCKSPACE_MAIL_HOSTNAME", environ=environ) == value


@pytest.mark.parametrize("raw", ["mail", "mail..example.com", "-mail.example.com", "mail.example.123", "a b.com"])
def test_a_mail_hostname_that_is_not_a_host_name_is_refused(raw):
    with pytest.raises(ImproperlyConfigured, match="DOCKSPACE_MAIL_HOSTNAME must be a fully qualified host name"):
        env_hostname("DOCKSPACE_MAIL_HOSTNAME", environ={"DOCKSPACE_MAIL_HOSTNAME": raw})
