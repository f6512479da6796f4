"""Database sessions whose rows are keyed by a hash of the cookie, and carry who/where/when.

A stolen database dump therefore holds no usable session cookie, and revoking a session is deleting
its row: the browser is anonymous on its next request.
"""

from datetime import UTC, datetime

from django.contrib.auth import SESSION_KEY, logout
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError
from django.contrib.sessions.backends.db import SessionStore as DbSessionStore
from django.core.exceptions import SuspiciousOperation
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.http import url_has_allowed_host_and_scheme

# Request metadata the middleware stores in the session data so that the row can carry it.
META_IP = "_dockspace_ip"
META_USER_AGENT = "_dockspace_ua"
META_LAST_SEEN = "_dockspace_last_seen"
META_CREATED = "_dockspace_created"
AUTH_AT = "_dockspace_auth_at"  # when the person last typed their password in this session


# Where to go after enrolling a first TOTP device (set when an app that requires one sent the person).
AFTER_TOTP = "_dockspace_after_totp"


def safe_next_url(request, default):
    """The `next` parameter when it points into this site, else the named default page."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(candidate, {request.get_host()}, request.is_secure()):
        return candidate
    return reverse(default)


def forget_revoked_session(request):
    """After sessions were revoked: if this browser's own session was among them, sign it out cleanly
    (saving a deleted session would fail). Returns True when it was."""
    key = request.session.session_key
    if key and not request.session.exists(key):
        logout(request)
        return True
    return False


def _from_timestamp(value):
    return datetime.fromtimestamp(value, tz=UTC) if value else timezone.now()


LAST_SEEN_RESOLUTION = 60  # seconds: write "last seen" at most once a minute per session


def record_request_meta(session, *, ip, user_agent, now):
    """Note where and when a session was used; changes the session (and so its row) only when needed."""
    if META_CREATED not in session:
        session[META_CREATED] = now
    last_seen = session.get(META_LAST_SEEN)
    if not last_seen or now - last_seen >= LAST_SEEN_RESOLUTION:
        session[META_LAST_SEEN] = now
    if session.get(META_IP) != ip:
        session[META_IP] = ip
    user_agent = (user_agent or "")[:300]
    if session.get(META_USER_AGENT) != user_agent:
        session[META_USER_AGENT] = user_agent


class SessionStore(DbSessionStore):
    @classmethod
    def get_model_class(cls):
        from accounts.models import UserSession

        return UserSession

    @staticmethod
    def _hash(session_key):
        from accounts.models import hash_session_key

        return hash_session_key(session_key)

    def _get_session_from_db(self):
        try:
            return self.model.objects.get(session_key=self._hash(self.session_key), expire_date__gt=timezone.now())
        except (self.model.DoesNotExist, SuspiciousOperation):
            self._session_key = None

    def exists(self, session_key):
        return self.model.objects.filter(session_key=self._hash(session_key)).exists()

    def create_model_instance(self, data):
        row = super().create_model_instance(data)
        row.session_key = self._hash(row.session_key)
        user_id = data.get(SESSION_KEY)
        row.user_id = int(user_id) if user_id and str(user_id).isdigit() else None
        row.ip = data.get(META_IP) or None
        row.user_agent = (data.get(META_USER_AGENT) or "")[:300]
        # Every save rewrites the whole row, so the timestamps live in the session data.
        row.last_seen_at = _from_timestamp(data.get(META_LAST_SEEN))
        row.created_at = _from_timestamp(data.get(META_CREATED))
        return row

    def cycle_key(self):
        """A new key for the same data (every sign-in asks for one). Django's database store writes an empty
        row under the new key at once (after a query for a clash) and the data again at the end of the request;
        here the row is written once, by the save at the end of the request. A clash of 32 random characters is
        left to the primary key: the INSERT then fails and save() draws another key."""
        data = self._session
        key = self.session_key
        self._session_key = get_random_string(32, VALID_KEY_CHARS)
        self._session_cache = data
        self._not_stored_yet = True
        self.modified = True
        if key:
            self.delete(key)

    def save(self, must_create=False):
        if getattr(self, "_not_stored_yet", False) and self.session_key is not None:
            try:
                super().save(must_create=True)
            except CreateError:
                self._session_key = None
                self.create()  # draws keys until one is free, keeping the data
            self._not_stored_yet = False
            return
        super().save(must_create=must_create)

    def delete(self, session_key=None):
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        self.model.objects.filter(session_key=self._hash(session_key)).delete()
