"""The DMS files mail writes, declared for the catalog (MailConfig.dms_files), and mail's pure Snapshot
rendered through the catalog's one renderer, exactly as the sync renders the database."""

from mail.dms import catalog, collection, parse, render
from mail.dms.render import ACCOUNTS_PATH, QUOTAS_PATH, RECEIVE_ACCESS_PATH, SEND_ACCESS_PATH, VIRTUAL_PATH

# A sign-in address also changes what DMS sees; mail.signals follows the person model itself, so that a
# sign-in (last_login) does not schedule a sync.
_ACCOUNTS = ("mail.Domain", "mail.Mailbox")
_FORWARDS = (*_ACCOUNTS, "mail.Alias", "mail.AliasTarget", "mail.Group", "mail.Group_members")
DKIM_FILES = "the DKIM files"


def _table(path, collect, lines, read, sync_on, **more):
    return catalog.DmsFile(path=path, collect=collect, render=lines, parse=read, sync_on=sync_on, **more)


MAIL_FILES = (
    # Password hashes: readable by DMS (root) only, and shown in a diff cut to their scheme.
    _table(
        ACCOUNTS_PATH,
        collection.account_rows,
        render.account_lines,
        parse.parse_accounts,
        _ACCOUNTS,
        mode=0o600,
        redact=render.redact_account_line,
    ),
    _table(VIRTUAL_PATH, collection.virtual_rows, render.virtual_lines, parse.parse_virtual, _FORWARDS),
    _table(QUOTAS_PATH, collection.account_rows, render.quota_lines, parse.parse_quotas, _ACCOUNTS),
    _table(SEND_ACCESS_PATH, collection.send_blocked_rows, render.access_lines, parse.parse_access, _ACCOUNTS),
    _table(RECEIVE_ACCESS_PATH, collection.receive_blocked_rows, render.access_lines, parse.parse_access, _FORWARDS),
    catalog.DmsFileSet(
        name=DKIM_FILES,
        directories=(render.OPENDKIM_DIR, "rspamd"),
        collect=collection.dkim_rows,
        render=render.dkim_files,
        parse=parse.parse_dkim,
        sync_on=("mail.Domain", "mail.DkimKey"),
        guarded_paths=(render.RSPAMD_SIGNING_CONF_PATH,),
        secret=render.is_dkim_secret,
        restart=render.dkim_restart,
    ),
)


def snapshot_rows(snapshot):
    """Mail's Snapshot as the rows of each of its files (what collection reads from the database)."""
    s = snapshot.normalized()
    return {
        ACCOUNTS_PATH: s.accounts,
        QUOTAS_PATH: s.accounts,
        VIRTUAL_PATH: render.VirtualRows(s.aliases, s.accounts, render.catch_all_domains(s.aliases)),
        SEND_ACCESS_PATH: s.send_blocked,
        RECEIVE_ACCESS_PATH: s.receive_blocked,
        DKIM_FILES: render.DkimRows(s.dkim_keys, s.dkim_layout),
    }


def render_files(snapshot, *, on_skip=None):
    """{path relative to the DMS config dir: bytes}. LF only, never empty, same snapshot -> same bytes.
    A value that would break a file is raised as ValueError, or with on_skip(message) reported there and
    left out while everything else is rendered."""
    return catalog.render_snapshot(snapshot_rows(snapshot), MAIL_FILES, on_skip)
