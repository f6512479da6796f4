"""Every periodic task, in one place. `manage.py install_periodic_tasks` installs these by name."""

PERIODIC_TASKS = [
    {
        "name": "Purge audit log past retention",
        "task": "accounts.purge_audit_log",
        "crontab": {"minute": "17", "hour": "3"},
    },
    {
        "name": "Purge expired sessions and lockout counters",
        "task": "accounts.purge_expired_sessions",
        "interval_minutes": 60,
    },
    {
        "name": "Clear expired OIDC tokens, codes and finished sign-ins",
        "task": "oidc.clear_expired_tokens",
        "crontab": {"minute": "41"},
    },
    {
        "name": "Repair drift in the DMS files",
        "task": "mail.repair_dms_drift",
        "interval_minutes": 5,
    },
]
