"""Small builders for mail tests, made through mail.services so rows look exactly like real ones,
plus what the command tests share: a per-test DMS directory, DMS file reading and a database fingerprint."""

import io

from django.core.management import call_command

from accounts.models import AuditEvent, User
from mail import services
from mail.models import Alias, AliasTarget, DkimKey, Domain, Group, Mailbox, Tier

# Long, uncommon and unlike any test address, so Django's password validators accept it.
PASSWORD = "river stone lantern 42"


def make_tier(**kw):
    """A tier named "standard" with no limits unless given (max_mailboxes=2, total_quota=..., ...)."""
    kw.setdefault("name", "standard")
    return services.tier_save(tier=Tier(**kw), actor_label="test")


def make_domain(name="example.com", **kw):
    """A managed domain (tier=, default_quota=, is_active= as services.domain_create takes them)."""
    return services.domain_create(name=name, actor_label="test", **kw)


def make_mailbox(address, password=None, **kw):
    """A mailbox and its person; its domain is made first when Dockspace does not manage it yet.
    Without a password nobody can sign in (and no Argon2 hash is computed, which keeps tests fast)."""
    domain = address.rpartition("@")[2].lower()
    if not Domain.objects.filter(name=domain).exists():
        make_domain(domain)
    return services.mailbox_create(address=address, password=password, actor_label="test", **kw)


def run(*args, stdin=None):
    """call_command with captured output: returns what the command printed on stdout."""
    out = io.StringIO()
    extra = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    call_command(*args, stdout=out, stderr=io.StringIO(), **extra)
    return out.getvalue()


def use_temp_dms_dir(settings, tmp_path):
    """Point DMS_DIR (and its history) at this test's own directory; returns the DMS directory."""
    settings.DMS_DIR = tmp_path / "dms"
    settings.DMS_HISTORY_DIR = tmp_path / "dms-history"
    return settings.DMS_DIR


def dms_file(settings, name):
    """The text of one DMS file as the last sync left it."""
    return (settings.DMS_DIR / name).read_text()


def dms_lines(settings, name):
    """The non-comment lines of one DMS file."""
    return [line for line in dms_file(settings, name).splitlines() if line and not line.startswith("#")]


def database_fingerprint():
    """Everything a mail command can change, as plain values: equal before and after means nothing changed."""
    return {
        "tiers": list(Tier.objects.values_list()),
        "domains": list(Domain.objects.values_list()),
        "mailboxes": list(Mailbox.objects.values_list()),
        "aliases": list(Alias.objects.values_list()),
        "targets": list(AliasTarget.objects.values_list()),
        "groups": list(Group.objects.values_list()),
        "members": list(Group.members.through.objects.values_list()),
        "dkim": list(DkimKey.objects.values_list("id", "domain_id", "selector", "state")),
        "people": list(User.objects.values_list("id", "email", "full_name", "password", "mail_password_hash")),
        "audit": list(AuditEvent.objects.values_list("id", "action", "target_label")),
    }


def refused(*args, stdin=None):
    """Run a command that must fail; returns its message after checking that nothing changed."""
    import pytest
    from django.core.management import CommandError

    before = database_fingerprint()
    with pytest.raises(CommandError) as e:
        run(*args, stdin=stdin)
    assert database_fingerprint() == before
    return str(e.value)
