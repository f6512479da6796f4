"""Every write to mail state: domains, tiers, mailboxes, aliases, groups, DKIM keys and the DMS sync state.

The admin, the pages, the commands and the CSV importer all call these (as `mail.services.<name>`). Each runs in
one transaction, validates everything before writing, raises ValidationError naming the field and the rule, and
writes an audit event. DMS files follow by themselves (signals schedule a sync).

One module per entity (tiers, domains, passwords, mailboxes, aliases, groups, dkim, dms); `capture` holds the rules
they share about where mail for an address goes and whom it reaches, `actor` who made a change. Nothing here
imports this package, so the modules form no loop.
"""

from django.core.exceptions import ValidationError

from mail.services.aliases import alias_create, alias_remove, alias_update
from mail.services.capture import (
    address_owner,
    address_owners,
    people_signing_in_as,
    people_signing_in_as_many,
    upstream_addresses,
)
from mail.services.dkim import dkim_generate, dkim_retire, dkim_rotate
from mail.services.dms import dms_restart_done
from mail.services.domains import domain_create, domain_remove, domain_update, managed_domain, unmanaged_domain_error
from mail.services.groups import group_create, group_remove, group_update
from mail.services.mailboxes import (
    address_taken_error,
    check_new_mailbox_capture,
    check_quota_value,
    check_sign_in_owner,
    mailbox_create,
    mailbox_remove,
    mailbox_set_state,
    mailbox_update,
    owns_mailbox_error,
)
from mail.services.passwords import mail_password_set
from mail.services.tiers import TIER_LISTED_MAILBOXES, default_quota_for, tier_check_quota, tier_save, tier_usage

__all__ = [
    "TIER_LISTED_MAILBOXES",
    "ValidationError",  # callers catch services.ValidationError
    "address_owner",
    "address_owners",
    "address_taken_error",
    "alias_create",
    "alias_remove",
    "alias_update",
    "check_new_mailbox_capture",
    "check_quota_value",
    "check_sign_in_owner",
    "default_quota_for",
    "dkim_generate",
    "dkim_retire",
    "dkim_rotate",
    "dms_restart_done",
    "domain_create",
    "domain_remove",
    "domain_update",
    "group_create",
    "group_remove",
    "group_update",
    "mail_password_set",
    "mailbox_create",
    "mailbox_remove",
    "mailbox_set_state",
    "mailbox_update",
    "managed_domain",
    "owns_mailbox_error",
    "people_signing_in_as",
    "people_signing_in_as_many",
    "tier_check_quota",
    "tier_save",
    "tier_usage",
    "unmanaged_domain_error",
    "upstream_addresses",
]
