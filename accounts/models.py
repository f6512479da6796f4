"""People, app settings, audit log, sign-in throttles, browser sessions, backup codes and the outbound mail outbox."""

import hashlib
import secrets
import unicodedata
import uuid
from importlib import import_module

from django.conf import settings
from django.contrib.auth.hashers import identify_hasher, make_password
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.contrib.sessions.base_session import AbstractBaseSession
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django_otp.models import Device

from accounts.mail_hashes import mail_hash
from dockspace.canonical import canonical_email

EMAIL_MAX_LENGTH = 254


def normalize_email(email):
    """The one spelling of a person's address, used to store it and to look it up on every path (registration,
    sign-in, admin, reset, mail limits): Bob@Example.com, bob@example.com. and bob@ｅxample.com are one person,
    bob@example.com (lower case, the domain IDNA-mapped to punycode as mail spells it, no trailing dot)."""
    return canonical_email(email)


def validate_full_name(value):
    """A name is one line of text: control characters (NUL, which PostgreSQL refuses, among them)
    and line breaks would break the admin, the CSV export and the database alike."""
    for ch in value or "":
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            raise ValidationError(
                "a name cannot contain line breaks or control characters (such as NUL).", code="full_name_control"
            )


class UserManager(BaseUserManager):
    use_in_migrations = True

    def get_by_natural_key(self, email):
        return self.get(email=normalize_email(email))

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("email: an email address is required.")
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Signs in with an email address; may later own one mailbox, or none."""

    # Wider than Django's 128 so a hash adopted from DMS ("dms${SHA512-CRYPT}$6$rounds=...") fits.
    password = models.CharField("password", max_length=255)
    uuid = models.UUIDField(
        "UUID", default=uuid.uuid4, unique=True, editable=False, help_text="Stable ID, the OIDC 'sub'."
    )
    email = models.EmailField("email address", max_length=EMAIL_MAX_LENGTH, unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True, help_text="Unticked: the person cannot sign in.")
    is_staff = models.BooleanField(default=False, help_text="May use the admin.")
    date_joined = models.DateTimeField(default=timezone.now)
    email_verified_at = models.DateTimeField(
        null=True, blank=True, help_text="When the person proved they read mail at this address."
    )
    is_pending_registration = models.BooleanField(
        default=False, help_text="Signed up on the registration page and has not yet followed the emailed link."
    )

    mail_password_hash = models.CharField(
        max_length=255,
        blank=True,
        editable=False,
        help_text="The same password as a Dovecot hash ({SCHEME}...), written to DMS when the person has a mailbox.",
    )

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    class Meta:
        ordering = ["email"]
        verbose_name = "person"
        verbose_name_plural = "people"

    def __str__(self):
        return self.email

    @classmethod
    def from_db(cls, db, field_names, values):
        user = super().from_db(db, field_names, values)
        user._remember_email()
        return user

    def refresh_from_db(self, using=None, fields=None, from_queryset=None):
        super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)
        if fields is None or "email" in fields:
            self._remember_email()

    def _remember_email(self):
        """The address and its verification as stored, to tell on save whether the address changed."""
        self._stored_email = self.__dict__.get("email")
        self._stored_email_verified_at = self.__dict__.get("email_verified_at")

    def save(self, *args, **kwargs):
        # A verification proves one address: whatever path changes the address (admin, services,
        # commands) drops it, unless that same change records a new verification.
        stored = getattr(self, "_stored_email", None)
        update_fields = kwargs.get("update_fields")
        # Not every path runs full_clean (services set the name and save): the name is checked here too.
        if update_fields is None or "full_name" in update_fields:
            try:
                validate_full_name(self.full_name)
            except ValidationError as e:
                raise ValidationError({"full_name": e.messages}) from None
        writes_email = update_fields is None or "email" in update_fields
        if writes_email:
            # Whatever path wrote it (a form, a service, the ORM), one address has one spelling in the table.
            self.email = normalize_email(self.email)
        if (
            writes_email
            and stored is not None
            and normalize_email(self.email) != normalize_email(stored)
            and self.email_verified_at == self._stored_email_verified_at
            and self.email_verified_at is not None
        ):
            self.email_verified_at = None
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "email_verified_at"}
        super().save(*args, **kwargs)
        self._remember_email()

    def clean(self):
        super().clean()
        self.email = normalize_email(self.email)
        try:
            validate_full_name(self.full_name)
        except ValidationError as e:
            raise ValidationError({"full_name": e.messages}) from None

    def set_password(self, raw_password):
        """One password for web and mail: every path that sets one also refreshes the DMS hash,
        saved in the same row (so in the same transaction)."""
        super().set_password(raw_password)
        if raw_password is None:
            self.mail_password_hash = ""
        else:
            self.mail_password_hash = mail_hash(raw_password, settings.MAIL_HASH_SCHEME)

    def check_password(self, raw_password):
        # Hashers marked `for_passwords = False` (the fast OIDC client-secret one) are listed in
        # PASSWORD_HASHERS for machine secrets only: a person's password stored with one (written
        # straight into the database) never matches on any path, and Django does not upgrade it.
        try:
            for_passwords = getattr(identify_hasher(self.password), "for_passwords", True)
        except ValueError:
            for_passwords = True  # unusable or unknown: Django's own check refuses it
        if not for_passwords:
            make_password(raw_password)  # the time a real check takes
            return False
        return super().check_password(raw_password)

    def set_unusable_password(self):
        """No password: nobody can sign in, to the web or to mail."""
        super().set_unusable_password()
        self.lock_mail_password()

    def lock_mail_password(self):
        """Mail refuses this person until their next password: DMS still needs a well-formed hash on
        the account line (without one the mailbox would vanish from DMS), so it gets the hash of a
        random secret nobody knows."""
        import secrets

        self.mail_password_hash = mail_hash(secrets.token_urlsafe(32), settings.MAIL_HASH_SCHEME)

    def get_full_name(self):
        return self.full_name or self.email

    def get_short_name(self):
        return self.full_name.split(" ")[0] if self.full_name else self.email


class AppSettings(models.Model):
    """The one row of settings an administrator edits in the admin."""

    CACHE_KEY = "accounts:app-settings"

    site_name = models.CharField(max_length=100, default="Dockspace")
    self_registration_enabled = models.BooleanField(
        default=False, help_text="Anyone may create an account from the sign-in page."
    )
    totp_required_for_staff = models.BooleanField(
        "TOTP required for staff",
        default=False,
        help_text="Staff without a TOTP device are sent to enrol one before anything else.",
    )
    session_idle_timeout_minutes = models.PositiveIntegerField(
        default=120,
        validators=[MinValueValidator(5), MaxValueValidator(60 * 24 * 30)],
        help_text="A browser idle this long is signed out (5 minutes to 30 days).",
    )
    lockout_account_failures = models.PositiveIntegerField(
        default=5, validators=[MinValueValidator(1)], help_text="Failed sign-ins on one account before it is locked."
    )
    lockout_ip_failures = models.PositiveIntegerField(
        "lockout IP failures",
        default=20,
        validators=[MinValueValidator(1)],
        help_text="Failed sign-ins from one IP address before it is locked.",
    )
    lockout_minutes = models.PositiveIntegerField(
        default=15, validators=[MinValueValidator(1), MaxValueValidator(60 * 24)], help_text="How long a lockout lasts."
    )
    audit_retention_days = models.PositiveIntegerField(
        default=365, validators=[MinValueValidator(1)], help_text="Audit events older than this are purged daily."
    )

    class Meta:
        verbose_name = "app settings"
        verbose_name_plural = "app settings"

    def __str__(self):
        return "App settings"

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)
        cache.delete(self.CACHE_KEY)

    @classmethod
    def load(cls):
        row = cache.get(cls.CACHE_KEY)
        if row is None:
            row, _ = cls.objects.get_or_create(pk=1)
            cache.set(row.CACHE_KEY, row, 30)
        return row


def totp_issuer(device=None):
    """The name authenticator apps show next to the code (settings.OTP_TOTP_ISSUER): the site name."""
    return AppSettings.load().site_name


class AuditEvent(models.Model):
    """One security-relevant action: who, from where, when, on what. Never a secret."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=254, blank=True, help_text="Who acted, kept after the person is deleted.")
    ip = models.GenericIPAddressField("IP address", null=True, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField("target ID", max_length=64, blank=True)
    target_label = models.CharField(max_length=254, blank=True)
    description = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.target_label}"


class LoginThrottle(models.Model):
    """Failed sign-ins counted for one account (normalised email) or one client IP."""

    SCOPE_ACCOUNT = "account"
    SCOPE_IP = "ip"
    SCOPES = [(SCOPE_ACCOUNT, "account"), (SCOPE_IP, "IP address")]

    scope = models.CharField(max_length=10, choices=SCOPES)
    key = models.CharField(max_length=EMAIL_MAX_LENGTH)
    failures = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField(default=timezone.now)
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="login_throttle_scope_key")]
        verbose_name = "sign-in lockout"

    def __str__(self):
        return f"{self.get_scope_display()} {self.key}"

    def is_locked(self, now=None):
        return self.locked_until is not None and self.locked_until > (now or timezone.now())


def hash_session_key(session_key):
    return hashlib.sha256(session_key.encode()).hexdigest()


class UserSession(AbstractBaseSession):
    """A browser session. The primary key is the SHA-256 of the cookie value, never the value itself."""

    session_key = models.CharField("session ID hash", max_length=64, primary_key=True)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="sessions")
    ip = models.GenericIPAddressField("IP address", null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    # Not stored: what accounts.selectors.sessions_of marks on the rows it lists.
    is_current: bool
    seen_recently: bool

    class Meta:
        verbose_name = "browser session"

    @classmethod
    def get_session_store_class(cls):
        # The configured engine (accounts.sessions), looked up as Django's SessionMiddleware does: the store
        # imports this model, not the other way round.
        return import_module(settings.SESSION_ENGINE).SessionStore


BACKUP_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud and typed by hand
BACKUP_CODE_LENGTH = 16  # 31 symbols: about 79 bits, beyond brute force even from a database copy
BACKUP_CODES_PER_SET = 10


def normalize_backup_code(code):
    return "".join(ch for ch in (code or "").lower() if ch.isalnum())


class BackupCodeDevice(Device):
    """Single-use backup codes as a django-otp device. Codes are stored only as salted SHA-256."""

    def verify_token(self, token):
        code = normalize_backup_code(token)
        if len(code) != BACKUP_CODE_LENGTH:
            return False
        for row in self.codes.filter(used_at__isnull=True):
            if secrets.compare_digest(row.code_hash, row.digest(code)):
                updated = BackupCode.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=timezone.now())
                return updated == 1
        return False

    def remaining(self):
        return self.codes.filter(used_at__isnull=True).count()


class BackupCode(models.Model):
    """One single-use backup code, stored as a salted hash."""

    device = models.ForeignKey(BackupCodeDevice, on_delete=models.CASCADE, related_name="codes")
    salt = models.CharField(max_length=32)
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"backup code {self.pk} ({'used' if self.used_at else 'unused'})"

    def digest(self, code):
        return hashlib.sha256(f"{self.salt}:{code}".encode()).hexdigest()


class OutboundMessage(models.Model):
    """One message Dockspace sends (reset and registration links, alerts), stored in the sender's transaction and
    delivered by the worker with retries (accounts.outbox, accounts.outbox_delivery). The body is the serialised
    MIME message; it is wiped once the message is sent or given up, so a reset link does not linger here."""

    QUEUED, SENDING, SENT, FAILED, EXPIRED = "queued", "sending", "sent", "failed", "expired"
    STATUSES = [(QUEUED, "queued"), (SENDING, "sending"), (SENT, "sent"), (FAILED, "failed"), (EXPIRED, "expired")]
    VIA_PRIMARY, VIA_BACKUP, VIA_FILE = "primary", "backup", "file"
    VIAS = [(VIA_PRIMARY, "primary SMTP server"), (VIA_BACKUP, "backup SMTP server"), (VIA_FILE, "file (no SMTP)")]

    recipients = models.JSONField("to", default=list, help_text="Every envelope recipient (To, Cc and Bcc).")
    from_email = models.CharField("from", max_length=500)
    subject = models.CharField(max_length=255, blank=True)
    kind = models.CharField(max_length=40, blank=True, help_text="What the message is for: password reset, alert...")
    mime = models.BinaryField("message", blank=True, default=b"", editable=False)
    status = models.CharField(max_length=10, choices=STATUSES, default=QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now, help_text="When the worker tries (again).")
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    sent_via = models.CharField(max_length=10, choices=VIAS, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="outbound_message_due")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["queued", "sending", "sent", "failed", "expired"]),
                name="outbound_message_status",
            )
        ]
        permissions = [("retry_outboundmessage", "Can retry outbound mail now")]
        verbose_name = "outbound message"
        verbose_name_plural = "outbound mail"

    def __str__(self):
        return f"{self.subject[:80]} to {', '.join(self.recipients)[:120]}"

    @property
    def has_body(self):
        return bool(self.mime)
