"""The plain-value picture of what mail's DMS files say, and the values their rows are made of.

Nothing here touches the ORM, settings, the clock or the filesystem: `mail.dms.collection` reads these
values from the database, `mail.dms.render` turns them into lines, `mail.dms.mail_files.render_files`
turns a whole Snapshot into file bytes (as the sync does), and `mail.dms.parse` reads those files back
into a Snapshot.
"""

from dataclasses import dataclass

DKIM_LAYOUT_OPENDKIM = "opendkim"
DKIM_LAYOUT_RSPAMD = "rspamd"


def dms_line_order(address: str) -> tuple[int, int, str]:
    """Sort key for account and quota lines. DMS finds a user's line with an unanchored,
    case-insensitive grep whose '.' matches any character, and takes the first hit: "ob@x.io" also
    matches "bob@x.io", and "a.b@x.io" matches "a-b@x.io". Shorter first, then (same length) more
    dots first, puts every address's own line before any other line its pattern matches."""
    return (len(address), -address.count("."), address)


@dataclass(frozen=True, order=True)
class Account:
    """One line of postfix-accounts.cf (and of dovecot-quotas.cf when quota_bytes is not None).

    password_hash carries its scheme prefix, e.g. "{SHA512-CRYPT}$6$...".
    is_suspended: the line stays (mail is delivered) but Dovecot refuses every login.
    quota_bytes: None = no quota line; 0 = explicitly unlimited ("addr:0").
    """

    address: str
    password_hash: str
    is_suspended: bool = False
    quota_bytes: int | None = None


@dataclass(frozen=True, order=True)
class Alias:
    """One line of postfix-virtual.cf: address ("user@domain" or "@domain") -> targets, in order."""

    address: str
    targets: tuple[str, ...]


@dataclass(frozen=True, order=True)
class DkimKey:
    """The signing key of one domain. algorithm is "rsa" or "ed25519"; bits is 0 for ed25519."""

    domain: str
    selector: str
    algorithm: str
    bits: int
    private_key_pem: str
    public_key_b64: str


@dataclass(frozen=True)
class Snapshot:
    """Everything the DMS files say. Tuples are kept sorted by the builder, so equal states compare equal."""

    accounts: tuple[Account, ...] = ()
    aliases: tuple[Alias, ...] = ()
    send_blocked: tuple[str, ...] = ()
    receive_blocked: tuple[str, ...] = ()
    dkim_keys: tuple[DkimKey, ...] = ()
    dkim_layout: str = DKIM_LAYOUT_OPENDKIM

    def normalized(self) -> "Snapshot":
        """The same state with every collection in canonical order."""
        return Snapshot(
            accounts=tuple(sorted(self.accounts, key=lambda a: dms_line_order(a.address))),
            aliases=tuple(sorted(self.aliases, key=lambda a: dms_line_order(a.address))),
            send_blocked=tuple(sorted(set(self.send_blocked))),
            receive_blocked=tuple(sorted(set(self.receive_blocked))),
            dkim_keys=tuple(sorted(self.dkim_keys, key=lambda k: k.domain)),
            dkim_layout=self.dkim_layout,
        )
