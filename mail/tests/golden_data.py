"""A varied, deterministic mail state for the golden comparison of the DMS files (test_dms_golden.py).

Everything goes through mail.services as a real installation would, except what must not be random for
the bytes to be comparable: the mail password hashes and the DKIM keys are fixed values written straight
into their rows. It covers what the DMS files are made of: IDN and inactive domains, active, suspended,
disabled and switched-off mailboxes with quotas, addresses whose dots match another line, aliases with
external targets, chains, keep-a-copy forwards and catch-alls (live and refused), lists with, without and
with only disabled members, sign-in addresses caught by a catch-all, DKIM keys of both algorithms (one
active, one published, one on an inactive domain) and values that cannot be written (left out and reported).
"""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.contrib.auth import get_user_model

from mail import services
from mail.dkim import public_key_b64_from_pem
from mail.models import AliasTarget, DkimKey, Domain, Mailbox

ACTOR = "golden"
GiB = 1024**3

# A fixed Ed25519 key (its seed is public, it signs nothing) and a stand-in RSA key: the renderer copies an
# RSA PEM as it is, and the public part is only published.
_ED_SEED = bytes(range(100, 132))
_ED = ed25519.Ed25519PrivateKey.from_private_bytes(_ED_SEED)
ED_PEM = _ED.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
ED_PUBLIC = public_key_b64_from_pem(ED_PEM)[2]
RSA_PEM = "\n".join(
    [
        "-----BEGIN PRIVATE KEY-----",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDgolden",
        "-----END PRIVATE KEY-----",
        "",
    ]
)
# Long enough to be split into several TXT strings.
RSA_PUBLIC = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "Q" * 300 + "IDAQAB"


def _mailbox(address, *, quota=None, state=Mailbox.ACTIVE, person=None):
    mailbox = services.mailbox_create(address=address, quota=quota, person=person, actor_label=ACTOR)
    if state != Mailbox.ACTIVE:
        services.mailbox_set_state(mailbox=mailbox, state=state, actor_label=ACTOR)
    return mailbox


def _dkim(domain, selector, algorithm, *, state=DkimKey.ACTIVE):
    pem, public, bits = (ED_PEM, ED_PUBLIC, 0) if algorithm == "ed25519" else (RSA_PEM, RSA_PUBLIC, 2048)
    key = DkimKey(domain=domain, selector=selector, algorithm=algorithm, bits=bits, state=state)
    key.private_key_pem, key.public_key_b64 = pem, public
    key.save()


def build():
    """Create the state; returns nothing (the DMS files are what is compared)."""
    User = get_user_model()
    example = services.domain_create(name="example.com", actor_label=ACTOR)
    other = services.domain_create(name="other.org", default_quota=5 * GiB, actor_label=ACTOR)
    books = services.domain_create(name="bücher.de", actor_label=ACTOR)
    lists = services.domain_create(name="lists.example.net", actor_label=ACTOR)
    off = services.domain_create(name="off.net", actor_label=ACTOR)
    services.domain_create(name="gone.example", actor_label=ACTOR)
    services.domain_create(name="empty.io", actor_label=ACTOR)

    # Line order: "ob@" before "bob@", "a.b@" before "a-b@" (DMS greps with '.' matching any character).
    for address, quota in [
        ("bob@example.com", 10 * GiB),
        ("ob@example.com", 0),
        ("a.b@example.com", 512 * 1024**2),
        ("a-b@example.com", 1536 * 1024**2),
        ("x@example.com", 7),
        ("long.name.with.dots@example.com", 100 * 1024),
        ("zed@other.org", None),
        ("anna@bücher.de", 2 * GiB),
        ("ghost@off.net", GiB),
        ("nohash@example.com", GiB),
    ]:
        _mailbox(address, quota=quota)
    _mailbox("sus@example.com", quota=GiB, state=Mailbox.SUSPENDED)
    _mailbox("dis@example.com", quota=GiB, state=Mailbox.DISABLED)
    _mailbox("dis2@other.org", state=Mailbox.DISABLED)
    _mailbox("away@other.org", quota=3 * GiB)
    _mailbox("keeper@example.com", quota=GiB)
    _mailbox("gone@gone.example")

    services.alias_create(
        address="info@example.com", targets=["zed@other.org", "x@gmail.com", "ob@example.com"], actor_label=ACTOR
    )
    services.alias_create(address="sales@other.org", targets=["info@example.com"], actor_label=ACTOR)
    services.alias_create(
        address="keeper@example.com", targets=["keeper@elsewhere.org"], keep_copy=True, actor_label=ACTOR
    )
    services.alias_create(address="@example.com", targets=["bob@example.com"], actor_label=ACTOR)
    services.alias_create(
        address="old@example.com", targets=["dis@example.com"], actor_label=ACTOR
    )  # its only target is disabled
    services.alias_create(address="half@other.org", targets=["dis2@other.org", "zed@other.org"], actor_label=ACTOR)
    services.alias_create(
        address="chain@other.org", targets=["old@example.com"], actor_label=ACTOR
    )  # dead through old@
    inactive = services.alias_create(address="paused@other.org", targets=["zed@other.org"], actor_label=ACTOR)
    services.alias_update(alias=inactive, is_active=False, actor_label=ACTOR)
    services.alias_create(address="hello@off.net", targets=["ghost@off.net"], actor_label=ACTOR)
    services.alias_create(address="post@bücher.de", targets=["anna@bücher.de", "Extern@Example.ORG"], actor_label=ACTOR)
    services.alias_create(address="@gone.example", targets=["gone@gone.example"], actor_label=ACTOR)
    # Stored by hand: a target that would break its line (the alias is left out and reported).
    weird = services.alias_create(address="weird@other.org", targets=["zed@other.org"], actor_label=ACTOR)
    AliasTarget.objects.create(alias=weird, address="bad target@x.org", position=1)
    _mailbox("colon@other.org")

    services.group_create(
        name="team",
        address="team@lists.example.net",
        members=["zed@other.org", "bob@example.com", "dis@example.com", "anna@bücher.de"],
        actor_label=ACTOR,
    )
    services.group_create(name="nobody", address="nobody@lists.example.net", actor_label=ACTOR)
    services.group_create(
        name="only-disabled", address="only-disabled@lists.example.net", members=["dis2@other.org"], actor_label=ACTOR
    )
    services.group_create(name="no-list", members=["bob@example.com"], actor_label=ACTOR)

    # A sign-in address on a catch-all domain without a line of its own: refused at SMTP, not caught.
    User.objects.create(email="carol@example.com", full_name="Carol")
    # Switched off in Dockspace: refused by mail too (suspended line, blocked from sending).
    away = Mailbox.objects.get(address="away@other.org")
    User.objects.filter(pk=away.person_id).update(is_active=False)

    _dkim(example, "mail", "rsa")
    _dkim(example, "old2023", "rsa", state=DkimKey.PUBLISHED)
    _dkim(other, "s1", "ed25519")
    _dkim(Domain.objects.get(name="xn--bcher-kva.de"), "mail", "ed25519")
    _dkim(off, "mail", "rsa")
    # Stored by hand with a line break: cannot be written, so it is left out and reported.
    _dkim(lists, "bad\nselector", "rsa")

    # The last two changes of the state: the inactive domain and the gone catch-all's only mailbox.
    services.domain_update(domain=off, is_active=False, actor_label=ACTOR)
    services.mailbox_set_state(
        mailbox=Mailbox.objects.get(address="gone@gone.example"), state=Mailbox.DISABLED, actor_label=ACTOR
    )
    assert books.name == "xn--bcher-kva.de"

    # Fixed mail hashes (the real ones are salted); one person without a hash gets no account line.
    for index, mailbox in enumerate(Mailbox.objects.order_by("address")):
        mail_hash = {"nohash@example.com": "", "colon@other.org": "{PLAIN}a:b"}.get(
            mailbox.address, f"{{SHA512-CRYPT}}$6$golden{index:02d}$hash"
        )
        User.objects.filter(pk=mailbox.person_id).update(mail_password_hash=mail_hash)
