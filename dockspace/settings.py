"""The only settings module: everything an operator may change comes from the environment.

See the configuration table in README.md for every variable and its default.
"""

import contextlib
import re
import secrets
import sys
from pathlib import Path
from urllib.parse import urlsplit

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from dockspace.env import (
    env_bool,
    env_ca_bundle,
    env_float,
    env_hostname,
    env_imap_mailbox,
    env_int,
    env_ip_ports,
    env_ips,
    env_list,
    env_networks,
    env_str,
    parse_database_url,
    sqlite_database,
)
from dockspace.ports import is_loopback, local_url, parse_bind
from dockspace.private_files import private_dir, private_file_create, private_file_write

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

DATA_DIR = Path(env_str("DOCKSPACE_DATA_DIR", str(BASE_DIR / "data"))).expanduser().resolve()

try:
    # Unset: the address `make run` serves on DOCKSPACE_BIND, so commands given the same variables agree.
    DOCKSPACE_URL = env_str("DOCKSPACE_URL", None) or local_url(env_str("DOCKSPACE_BIND", "127.0.0.1:8000"))
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
DOCKSPACE_URL = DOCKSPACE_URL.rstrip("/")
_url = urlsplit(DOCKSPACE_URL)
if _url.scheme not in ("http", "https") or not _url.hostname:
    raise ImproperlyConfigured(
        f"DOCKSPACE_URL must be an absolute http(s) URL such as https://id.example.com; got {DOCKSPACE_URL!r}."
    )
DOCKSPACE_HOST = _url.hostname


# --- secret key -------------------------------------------------------------------------------

DEV_SECRET_KEY_FILE = DATA_DIR / "dev-secret-key"
# Commands that only read code and never sign anything (no session, link or token): they run on a
# build or CI machine without the production secret, with a throwaway key that is never stored.
KEYLESS_COMMANDS = {"makemigrations", "collectstatic", "showmigrations", "help", "version"}
# `python -m dockspace.processes` too: it reads the process declarations, and `make run` asks it what to start
# before anything (the data directory included) exists. The processes it starts load these settings themselves.
PROCESSES_SCRIPT = BASE_DIR / "dockspace" / "processes.py"


def _is_keyless_command():
    if len(sys.argv) > 1 and Path(sys.argv[0]).name == "manage.py" and sys.argv[1] in KEYLESS_COMMANDS:
        return True
    return bool(sys.argv) and Path(sys.argv[0]).resolve() == PROCESSES_SCRIPT


# The data directory is created private (0700) on first use, so `migrate` into a new path works.
# Keyless commands (collectstatic at image build time) never create it: it would end up in the image.
if not _is_keyless_command():
    with contextlib.suppress(OSError):  # check dockspace.E001 names the directory and the fix
        private_dir(DATA_DIR)


def _load_secret_key():
    key = env_str("SECRET_KEY", "")
    if key:
        if not DEBUG and (len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure")):
            raise ImproperlyConfigured(
                "SECRET_KEY is too weak for production: use at least 50 random characters, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
            )
        return key
    if _is_keyless_command():
        return secrets.token_urlsafe(50)
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off. Generate one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )
    # Development only: a random key kept in the data directory so sessions survive restarts.
    try:
        return DEV_SECRET_KEY_FILE.read_text().strip()
    except FileNotFoundError:
        private_dir(DATA_DIR)
        key = secrets.token_urlsafe(50)
        private_file_write(DEV_SECRET_KEY_FILE, key)
        return key


SECRET_KEY = _load_secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [DOCKSPACE_HOST] + (["127.0.0.1", "localhost"] if DEBUG else []))
CSRF_TRUSTED_ORIGINS = [f"{_url.scheme}://{_url.netloc}"]

# Addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed.
TRUSTED_PROXIES = env_list("DOCKSPACE_TRUSTED_PROXIES", [])
if TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


# --- applications -------------------------------------------------------------------------------

INSTALLED_APPS = [
    "accounts",  # first: its createsuperuser (audited) overrides Django's
    "dockspace.apps.DockspaceAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_celery_beat",
    "csp",
    "mail",
    "oidc",
    "oauth2_provider",
    "deliverability",
    "monitoring",
]
# Test runs only: an app that extends Dockspace the way a new app would (set by dockspace.testenv).
INSTALLED_APPS += env_list("DOCKSPACE_TEST_APPS")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "dockspace.csp.FormActionForAppsMiddleware",
    "dockspace.debug.HideUrlListMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.middleware.SessionActivityMiddleware",
    "accounts.middleware.FirstRunMiddleware",
    "accounts.middleware.StaffTotpMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dockspace.urls"
WSGI_APPLICATION = "dockspace.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.app_settings",
            ],
        },
    },
]


# --- database, cache, celery --------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": parse_database_url(DATABASE_URL, env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0))}
else:
    DATABASES = {"default": sqlite_database(DATA_DIR / "dockspace.sqlite3")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3") and DATA_DIR.is_dir():
    # SQLite creates a missing database (and its journal/WAL files, which copy its mode) under the
    # umask, usually 0644: create it empty and 0600 first, also for a keyless command that opens it
    # (makemigrations checks the migration history). A database elsewhere is the operator's file.
    with contextlib.suppress(OSError):  # check dockspace.E001 reports an unwritable data directory
        if Path(DATABASES["default"]["NAME"]).parent == DATA_DIR:
            private_file_create(DATABASES["default"]["NAME"])
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }
    # Embedded broker: kombu's filesystem transport needs nothing installed; worker and beat share
    # the queue through a directory under the data directory.
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(DATA_DIR / "celery" / "queue"),
        "data_folder_out": str(DATA_DIR / "celery" / "queue"),
        "processed_folder": str(DATA_DIR / "celery" / "processed"),
        # Broadcast (remote control) tables; kombu's default is ./control in the working directory.
        "control_folder": str(DATA_DIR / "celery" / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = f"file://{DATA_DIR / 'celery' / 'results'}"

CELERY_TIMEZONE = env_str("TIME_ZONE", "UTC")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Beat writes a task's last run to its table as it sends it (Celery's default: every 3 minutes), so /health/ready
# and the admin see beat's last tick at once. A few small writes a minute.
CELERY_BEAT_SYNC_EVERY = 1


# --- health and metrics (monitoring; README "Health and metrics") ------------------------------------

# What Prometheus sends as `Authorization: Bearer ...` to /metrics. Unset: /metrics answers loopback only.
METRICS_TOKEN = (env_str("DOCKSPACE_METRICS_TOKEN", "") or "").strip()
if METRICS_TOKEN and (len(METRICS_TOKEN) < 16 or not re.fullmatch(r"[A-Za-z0-9._~+/-]+=*", METRICS_TOKEN)):
    raise ImproperlyConfigured(
        "DOCKSPACE_METRICS_TOKEN must be at least 16 characters of letters, digits and -._~+/ (a bearer token), "
        "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'."
    )
# /health/ready runs its checks (database, cache, broker, DMS directory) at most once this many seconds per process
# and answers from that round meanwhile: a flood of requests touches them once. 0: every request runs them.
HEALTH_CACHE_SECONDS = env_int("DOCKSPACE_HEALTH_CACHE_SECONDS", 5, minimum=0)
# Each process keeps its Prometheus counters in files (prometheus_client's multiprocess mode) in its own
# subdirectory, given to it as PROMETHEUS_MULTIPROC_DIR when it starts (dockspace.processes); /metrics adds up
# every subdirectory. On the data volume, so the web container reads what the worker container counted.
METRICS_DIR = Path(env_str("DOCKSPACE_METRICS_DIR", str(DATA_DIR / "metrics"))).expanduser().resolve()


# --- people and sign-in -------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.backends.EmailBackend"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:profile"
LOGOUT_REDIRECT_URL = "accounts:login"

# Argon2id cost of people's passwords. Default: one of the five equivalent options of OWASP's Password
# Storage Cheat Sheet (7 MiB, 5 passes, 1 lane), chosen by measurement on a 2-CPU host: 14 ms of one CPU
# per check, against 15 ms for 12 MiB/3, 15 ms for 9 MiB/4, 19 ms for 19 MiB/2 and 50 ms for 46 MiB/1
# (bench/argon2_options.py). Django's own default (100 MiB, 8 lanes) took ~150 ms of both CPUs and made
# 50 sign-ins at once wait 18 s. Hashes made with other values are rewritten with these at the person's
# next sign-in.
ARGON2_MEMORY_KIB = env_int("DOCKSPACE_ARGON2_MEMORY_KIB", 7168, minimum=8)
ARGON2_TIME_COST = env_int("DOCKSPACE_ARGON2_TIME_COST", 5, minimum=1)
ARGON2_PARALLELISM = env_int("DOCKSPACE_ARGON2_PARALLELISM", 1, minimum=1)
if ARGON2_MEMORY_KIB < 8 * ARGON2_PARALLELISM:
    raise ImproperlyConfigured(
        "DOCKSPACE_ARGON2_MEMORY_KIB must be at least 8 KiB per lane (DOCKSPACE_ARGON2_PARALLELISM); "
        f"got {ARGON2_MEMORY_KIB} for {ARGON2_PARALLELISM}."
    )

PASSWORD_HASHERS = [
    "accounts.hashers.DockspaceArgon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    # Mail hashes standing in for a web password (people adopted from DMS or imported from a CSV file,
    # whose password only the mail hash proves); replaced by Argon2 at the first sign-in.
    "mail.hashers.DmsCryptPasswordHasher",
    # OIDC client secrets are 128 random characters: a fast salted SHA-256 loses nothing against
    # them and keeps the token endpoint fast. Listed LAST so it never hashes a person's password.
    "oidc.hashers.ClientSecretSHA256Hasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "accounts.validators.PasswordLimitsValidator"},
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "accounts.mail_hashes.MailPasswordValidator"},
]
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3600, minimum=60)

# --- mail / Docker Mailserver -------------------------------------------------------------------

DMS_DIR = Path(env_str("DOCKSPACE_DMS_DIR", str(DATA_DIR / "dms"))).expanduser().resolve()
DMS_HISTORY_DIR = Path(env_str("DOCKSPACE_DMS_HISTORY_DIR", str(DATA_DIR / "dms-history"))).expanduser().resolve()
DMS_HISTORY_KEEP = env_int("DOCKSPACE_DMS_HISTORY_KEEP", 10, minimum=1)
DMS_SYNC_DELAY = env_int("DOCKSPACE_DMS_SYNC_DELAY", 2, minimum=0)
MAIL_HASH_SCHEME = env_str("DOCKSPACE_MAIL_HASH_SCHEME", "SHA512-CRYPT").upper()
if MAIL_HASH_SCHEME not in ("SHA512-CRYPT", "BLF-CRYPT", "ARGON2ID"):
    raise ImproperlyConfigured(
        f"DOCKSPACE_MAIL_HASH_SCHEME must be SHA512-CRYPT, BLF-CRYPT or ARGON2ID; got {MAIL_HASH_SCHEME!r}."
    )
DKIM_LAYOUT = env_str("DOCKSPACE_DKIM_LAYOUT", "opendkim").lower()
if DKIM_LAYOUT not in ("opendkim", "rspamd"):
    raise ImproperlyConfigured(f"DOCKSPACE_DKIM_LAYOUT must be opendkim or rspamd; got {DKIM_LAYOUT!r}.")

# --- mail hosts (SSH) ----------------------------------------------------------------------------

# Seconds to connect, read the SSH banner and authenticate; and the longest a command on a host may run.
MAILHOST_SSH_TIMEOUT = env_int("DOCKSPACE_SSH_TIMEOUT", 10, minimum=1)
MAILHOST_COMMAND_TIMEOUT = env_int("DOCKSPACE_SSH_COMMAND_TIMEOUT", 120, minimum=1)
# The only directory mail hosts' private key files may be in (monitoring.hosts refuses a file elsewhere, symlinks
# followed): whoever may add a host then cannot make Dockspace read another of its files as a key.
MAILHOST_SSH_KEY_DIR = Path(env_str("DOCKSPACE_SSH_KEY_DIR", str(DATA_DIR / "ssh-keys"))).expanduser().resolve()

# --- mail traffic: how long its raw rows are kept (monitoring.traffic_rollups; hourly and daily rollups: 90 days) ---
TRAFFIC_DAYS = env_int("DOCKSPACE_TRAFFIC_DAYS", 30, minimum=1)

# --- bounces and complaints: the feedback mailbox read over IMAP (monitoring.feedback_mailbox) ---------------------
# imaps://USER@HOST[:PORT]/FOLDER; unset: nothing is read (`manage.py feedback ingest` still takes a pipe).
FEEDBACK_MAILBOX = env_imap_mailbox("DOCKSPACE_FEEDBACK_MAILBOX")
FEEDBACK_PASSWORD = env_str("DOCKSPACE_FEEDBACK_PASSWORD", "")
if FEEDBACK_MAILBOX is not None and not FEEDBACK_PASSWORD:
    raise ImproperlyConfigured(
        "DOCKSPACE_FEEDBACK_MAILBOX is set but DOCKSPACE_FEEDBACK_PASSWORD (or DOCKSPACE_FEEDBACK_PASSWORD_FILE) is "
        "not: give the mailbox's password."
    )
# What becomes of a message once stored: deleted, kept (marked seen), or moved to a folder ("move:Processed").
FEEDBACK_AFTER_READ = (env_str("DOCKSPACE_FEEDBACK_AFTER_READ", "delete") or "delete").strip()
if FEEDBACK_AFTER_READ not in ("delete", "keep") and not (
    FEEDBACK_AFTER_READ.startswith("move:") and FEEDBACK_AFTER_READ[5:].strip()
):
    raise ImproperlyConfigured(
        f"DOCKSPACE_FEEDBACK_AFTER_READ must be delete, keep or move:FOLDER (e.g. move:Processed); got "
        f"{FEEDBACK_AFTER_READ!r}."
    )
# Seconds to connect, start TLS, sign in, and the longest one IMAP answer may take.
FEEDBACK_TIMEOUT = env_int("DOCKSPACE_FEEDBACK_TIMEOUT", 30, minimum=1)

SESSION_ENGINE = "accounts.sessions"
SESSION_COOKIE_AGE = 14 * 24 * 3600
SESSION_COOKIE_NAME = "dockspace_session"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
CSRF_FAILURE_VIEW = "dockspace.errors.csrf_failure"


def _totp_issuer(device=None):
    """The name authenticator apps show next to the code: accounts' site name. django-otp takes a callable, not a
    dotted path, so this one looks the function up by its path, as this module names every app's code."""
    from django.utils.module_loading import import_string

    return import_string("accounts.models.totp_issuer")(device)


OTP_TOTP_ISSUER = _totp_issuer


# --- mail ----------------------------------------------------------------------------------------

# Every message Dockspace sends is first stored in the outbox table (accounts.outbox), in the caller's
# transaction, then delivered by the Celery worker with retries: to EMAIL_HOST, else to the backup server.
EMAIL_BACKEND = "accounts.outbox.OutboxBackend"
EMAIL_HOST = env_str("EMAIL_HOST", "")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", f"Dockspace <no-reply@{DOCKSPACE_HOST}>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_TIMEOUT = 20
# No mail server configured (`make run`): the outbox delivers each message as a file (0600) under <data dir>/outbox.
EMAIL_FILE_PATH = str(DATA_DIR / "outbox")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
# STARTTLS unless TLS from the start is asked for (EMAIL_USE_SSL=1, usually port 465).
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", not EMAIL_USE_SSL)
# The backup server, tried when the primary fails (same meaning as the EMAIL_ settings above).
EMAIL_BACKUP_HOST = env_str("EMAIL_BACKUP_HOST", "")
EMAIL_BACKUP_PORT = env_int("EMAIL_BACKUP_PORT", 587, minimum=1)
EMAIL_BACKUP_HOST_USER = env_str("EMAIL_BACKUP_HOST_USER", "")
EMAIL_BACKUP_HOST_PASSWORD = env_str("EMAIL_BACKUP_HOST_PASSWORD", "")
EMAIL_BACKUP_USE_SSL = env_bool("EMAIL_BACKUP_USE_SSL", False)
EMAIL_BACKUP_USE_TLS = env_bool("EMAIL_BACKUP_USE_TLS", not EMAIL_BACKUP_USE_SSL)
for _prefix, _tls, _ssl in (
    ("EMAIL", EMAIL_USE_TLS, EMAIL_USE_SSL),
    ("EMAIL_BACKUP", EMAIL_BACKUP_USE_TLS, EMAIL_BACKUP_USE_SSL),
):
    if _tls and _ssl:
        raise ImproperlyConfigured(
            f"{_prefix}_USE_TLS and {_prefix}_USE_SSL are both on: use STARTTLS ({_prefix}_USE_TLS, usually port 587) "
            f"or TLS from the start ({_prefix}_USE_SSL, usually port 465), not both."
        )
if EMAIL_BACKUP_HOST and not EMAIL_HOST:
    raise ImproperlyConfigured("EMAIL_BACKUP_HOST is set but EMAIL_HOST is not: the backup server backs up a primary.")
# A failed delivery is tried again after 60 s, then 120 s, 240 s...; after this many attempts it is marked failed.
DOCKSPACE_OUTBOX_MAX_ATTEMPTS = env_int("DOCKSPACE_OUTBOX_MAX_ATTEMPTS", 5, minimum=1)
# A message not delivered this long after it was written is given up (status expired) and its body wiped.
DOCKSPACE_OUTBOX_EXPIRY_SECONDS = env_int("DOCKSPACE_OUTBOX_EXPIRY_SECONDS", 48 * 3600, minimum=60)


# --- DNS (deliverability.dns.resolver, the one module that sends DNS queries) ------------------------

# The recursive resolvers asked, as [(address, port)]; empty: the nameservers of the system's /etc/resolv.conf.
# Spamhaus answers public resolvers with an error code, so DNSBL checks want a local resolver here.
DNS_NAMESERVERS = env_ip_ports("DOCKSPACE_DNS_RESOLVER", 53)
# The longest one lookup may take, across retries and servers (each server is given at most 2 s of it).
DNS_TIMEOUT = env_float("DOCKSPACE_DNS_TIMEOUT", 3.0, minimum=0.1)
# How many lookups the asynchronous checks (the DNSBL sweep) have in flight at once.
DNS_CONCURRENCY = env_int("DOCKSPACE_DNS_CONCURRENCY", 50, minimum=1)

# --- sending IPs (deliverability.ip_duties) --------------------------------------------------------

# A RETIRING IP drains (takes no new mail, its queue empties) this many days before it moves to RESTING.
IP_DRAIN_DAYS = env_int("DOCKSPACE_IP_DRAIN_DAYS", 2, minimum=0)
# A RESTING IP whose listings have been clear this many days moves to WARMING (quarantine release).
IP_QUARANTINE_DAYS = env_int("DOCKSPACE_IP_QUARANTINE_DAYS", 7, minimum=1)

# --- Sending (deliverability: DNS checks; the sending IPs of a domain, deliverability.sending) -------

# The DMS host's name: what the domains' MX should point at, and the HELO name the sending IPs' PTR should match.
MAIL_HOSTNAME = env_hostname("DOCKSPACE_MAIL_HOSTNAME", "")
# The IPs the mail host sends from (a domain without an IP pool sends from these).
SENDING_IPS = env_ips("DOCKSPACE_SENDING_IPS")


# --- Sending policy (deliverability.policy_server: Postfix's policy delegation) ---------------------------

# Where `manage.py policy_server` listens (HOST:PORT) and, in postfix-main.cf, where DMS's Postfix asks it: the policy
# check is written into Postfix's restriction lists only when DOCKSPACE_POLICY_SERVICE is set (HOST:PORT as the
# mail host reaches the policy server, e.g. dockspace-policy:10040).
POLICY_LISTEN = env_str("DOCKSPACE_POLICY_LISTEN", "127.0.0.1:10040")
POLICY_SERVICE = (env_str("DOCKSPACE_POLICY_SERVICE", "") or "").strip()
try:
    parse_bind(POLICY_LISTEN, setting="DOCKSPACE_POLICY_LISTEN")
    if POLICY_SERVICE:
        _policy_host = parse_bind(POLICY_SERVICE, setting="DOCKSPACE_POLICY_SERVICE")[0]
        # Written into main.cf and user-patches.sh: a host name or an IP address, nothing else.
        if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:.]{2,45}", _policy_host):
            raise ValueError(
                "DOCKSPACE_POLICY_SERVICE must be HOST:PORT, HOST a host name or an IP address; "
                f"got {POLICY_SERVICE!r}."
            )
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
# Hosts that relay our people's mail without SASL (apps, other MTAs): their envelope sender's limits apply.
POLICY_RELAY_HOSTS = env_networks("DOCKSPACE_POLICY_RELAY_HOSTS")
# The command that releases mail the policy service held for warmup room, the queue id appended: `postsuper -H`
# beside Postfix, `docker exec mailserver postsuper -H` on the Docker host (empty: held mail waits for an operator).
POLICY_RELEASE_COMMAND = env_str("DOCKSPACE_POLICY_RELEASE_COMMAND", "")
# Who may connect to the policy server: loopback and the private networks (the mail host on a Docker network or a
# LAN) by default. Anyone who can talk to it can spend people's daily limits, so keep it off other networks.
POLICY_ALLOWED_CLIENTS = env_networks(
    "DOCKSPACE_POLICY_ALLOWED_CLIENTS",
    ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"),
)
# Connections the policy server keeps at once (each smtpd process holds one); more are closed at once.
POLICY_MAX_CONNECTIONS = env_int("DOCKSPACE_POLICY_MAX_CONNECTIONS", 1000, minimum=1)
# How often the policy server looks for a configuration change (tiers, people, pools, caps), in seconds.
POLICY_RELOAD_SECONDS = env_int("DOCKSPACE_POLICY_RELOAD_SECONDS", 2, minimum=1)

# --- outbound HTTP (dockspace.outbound_http: alert webhooks, Telegram, MTA-STS policy files) ----------

# Outbound requests never reach a loopback, private, link-local, multicast, reserved or otherwise non-public address
# (dockspace.outbound_http checks every address a host resolves to when it connects) unless it lies in one of these
# networks, e.g. "10.20.0.0/16,fd00:20::/64" for a receiver on the internal network.
OUTBOUND_ALLOWED_NETWORKS = env_networks("DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS")
# A PEM file of CA certificates https requests trust besides the system's store (an internal CA); empty: the system's
# store only. Not named ..._FILE: that suffix means "the value is in this file" for every variable.
OUTBOUND_CA_BUNDLE = env_ca_bundle("DOCKSPACE_OUTBOUND_CA_BUNDLE")


# --- alerts (monitoring) ---------------------------------------------------------------------------

# Where Telegram channels send (a self-hosted Bot API server, or a stand-in in tests).
ALERT_TELEGRAM_API_BASE = env_str("DOCKSPACE_TELEGRAM_API_BASE", "https://api.telegram.org").rstrip("/")
if urlsplit(ALERT_TELEGRAM_API_BASE).scheme not in ("http", "https") or not urlsplit(ALERT_TELEGRAM_API_BASE).hostname:
    raise ImproperlyConfigured(
        f"DOCKSPACE_TELEGRAM_API_BASE must be an http(s) URL such as https://api.telegram.org; got "
        f"{ALERT_TELEGRAM_API_BASE!r}."
    )
# Seconds between the watchdog's rounds (manage.py watchdog: worker and beat silent, sent without Celery).
DOCKSPACE_WATCHDOG_INTERVAL = env_int("DOCKSPACE_WATCHDOG_INTERVAL", 60, minimum=1)

# The mail log the follower reads into mail traffic (`manage.py maillog follow`, the maillog process): DMS's
# /var/log/mail/mail.log, mounted read-only. Unset: no follower (`make run` says so).
DOCKSPACE_MAIL_LOG = (env_str("DOCKSPACE_MAIL_LOG", "") or "").strip()
if DOCKSPACE_MAIL_LOG and not DOCKSPACE_MAIL_LOG.startswith("/"):
    raise ImproperlyConfigured(
        f"DOCKSPACE_MAIL_LOG must be an absolute path such as /var/log/mail/mail.log; got {DOCKSPACE_MAIL_LOG!r}."
    )
# Seconds the follower waits after a read that found no new line.
DOCKSPACE_MAIL_LOG_POLL = env_float("DOCKSPACE_MAIL_LOG_POLL", 1.0, minimum=0.05)


# --- static files, i18n ---------------------------------------------------------------------------

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# Hashed, compressed file names once `collectstatic` has run (the Docker image); otherwise (make run,
# tests) the files are served straight from static/ by WhiteNoise.
STATIC_MANIFEST = (STATIC_ROOT / "staticfiles.json").exists() or "collectstatic" in sys.argv
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST
# Files browsers ask for at the site's root whatever a page links (/favicon.ico), served there by WhiteNoise.
WHITENOISE_ROOT = BASE_DIR / "static" / "root"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True


# --- production hardening ---------------------------------------------------------------------------

if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Probes and Prometheus talk plain http to the container (the path is matched without its leading slash).
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^health$", r"^health/ready$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading is a commitment an operator opts into (SECURE_HSTS_PRELOAD=1), not a default.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp): scripts, styles, images and fonts only from this site, no inline
# script or style, no plugins, never framed. Forms post to this site only; the pages whose form ends in
# a redirect to an app (sign-in, code, consent, logout) also allow the origins of the registered
# redirect URIs (dockspace.csp), since browsers apply form-action to the redirect as well.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}
CSP_FORM_ACTION_ORIGINS = "oidc.csp.redirect_origins"

# DEBUG's error pages: DATABASE_URL, REDIS_URL, the broker and passwords in URLs are masked (dockspace.debug).
DEFAULT_EXCEPTION_REPORTER_FILTER = "dockspace.debug.SafeReporterFilter"
# `make run`'s address. DEBUG on a non-loopback address is refused by `make run` unless
# DOCKSPACE_ALLOW_DEBUG_ON_NETWORK=1; even then a 404 never lists the site's URLs.
try:
    _bind_host = parse_bind(env_str("DOCKSPACE_BIND", "127.0.0.1:8000"))[0]
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
DEBUG_ON_NETWORK = DEBUG and not is_loopback(_bind_host)

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # Reset and registration paths carry a token: "Bad Request: /register/confirm/..." is logged masked.
    "filters": {"mask_secret_paths": {"()": "dockspace.access_log.MaskSecretPathsFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["mask_secret_paths"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own default config gives "django" a console handler under DEBUG (and mail_admins): records
        # would be printed twice, once bare and once by the root's handler. The root's handler is the only one.
        "django": {"handlers": [], "propagate": True},
        "django.db.backends": {"level": "INFO"},
        # The embedded file broker has no host name; kombu warns about it on every connection.
        "kombu.connection": {"level": "ERROR"},
        # At DEBUG these log authorization URLs with codes in them; never below INFO.
        "oauthlib": {"level": "WARNING"},
        "oauth2_provider": {"level": "INFO"},
        # monitoring.ssh reports each SSH failure in one sentence; paramiko would log every connection and a
        # traceback for each failed handshake.
        "paramiko": {"level": "CRITICAL"},
    },
}


# --- OpenID Connect provider (django-oauth-toolkit; see docs/oidc-design.md) --------------------------

OAUTH2_PROVIDER_APPLICATION_MODEL = "oidc.Application"
OAUTH2_PROVIDER_GRANT_MODEL = "oidc.Grant"
OIDC_ACCESS_TOKEN_SECONDS = env_int("DOCKSPACE_OIDC_ACCESS_TOKEN_SECONDS", 3600, minimum=60)
OIDC_ID_TOKEN_SECONDS = env_int("DOCKSPACE_OIDC_ID_TOKEN_SECONDS", 3600, minimum=60)
OIDC_REFRESH_IDLE_DAYS = env_int("DOCKSPACE_OIDC_REFRESH_IDLE_DAYS", 30, minimum=1)
OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_ISS_ENDPOINT": DOCKSPACE_URL,
    "OAUTH2_VALIDATOR_CLASS": "oidc.validator.DockspaceValidator",
    "SCOPES_BACKEND_CLASS": "oidc.scopes.ClientScopes",
    "APPLICATION_ADMIN_CLASS": "oidc.admin.ClientAdmin",
    # No SCOPES or DEFAULT_SCOPES here: DOT reads them only through its default backend. The scopes, their
    # descriptions and claims are the table in oidc/scopes.py, served by the backend above.
    "CLIENT_SECRET_HASHER": "dockspace_client_sha256",
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "ACCESS_TOKEN_EXPIRE_SECONDS": OIDC_ACCESS_TOKEN_SECONDS,
    "ID_TOKEN_EXPIRE_SECONDS": OIDC_ID_TOKEN_SECONDS,
    # DOT enforces this at refresh as "access token expiry + N": an idle limit that slides with rotation.
    "REFRESH_TOKEN_EXPIRE_SECONDS": OIDC_REFRESH_IDLE_DAYS * 86400,
    # Must stay 0 with hashed token storage (the grace path returns the stored plaintext).
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "PKCE_REQUIRED": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
    "ALLOW_URI_WILDCARDS": False,
    "OIDC_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OIDC_JWKS_MAX_AGE_SECONDS": 3600,
    "OIDC_RP_INITIATED_LOGOUT_ENABLED": True,
    "OIDC_RP_INITIATED_LOGOUT_ALWAYS_PROMPT": False,
    "OIDC_RP_INITIATED_LOGOUT_STRICT_REDIRECT_URIS": True,
    "OIDC_RP_INITIATED_LOGOUT_ACCEPT_EXPIRED_TOKENS": True,
    "OIDC_RP_INITIATED_LOGOUT_DELETE_TOKENS": False,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
}
