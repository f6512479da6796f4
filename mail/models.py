"""Mail domains, mailboxes, aliases, groups, quotas, tiers and DKIM (issue 3)."""
