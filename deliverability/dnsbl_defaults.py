"""The blocklists Dockspace ships (installed by migration 0003_dnsbl; the reference is docs' deliverability facts):
their zones, listing codes, actions and removal pages, and the domain lists' own test points (set by migration
0009_dnsbl_shipped_test_points, which names its sources). No SORBS: it shut down on 5 June 2024."""

from deliverability.records.dbl import DBL_LISTED

SPAMHAUS_ZEN_CODES = {
    "127.0.0.2": "SBL: Spamhaus Block List (spam source)",
    "127.0.0.3": "CSS: snowshoe spam",
    "127.0.0.4": "XBL: exploited host (botnet, open proxy)",
    "127.0.0.9": "DROP: hijacked network",
    "127.0.0.10": "PBL (ISP): the address should not send mail directly",
    "127.0.0.11": "PBL (Spamhaus): the address should not send mail directly",
}
SPAMHAUS_DBL_CODES = DBL_LISTED  # the codes the DNS checks read too (deliverability.records.dbl)

DEFAULT_LISTS = [
    {
        "name": "Spamhaus ZEN",
        "zone": "zen.spamhaus.org",
        "kind": "ip",
        "listed_codes": SPAMHAUS_ZEN_CODES,
        "alert_only_codes": ["127.0.0.10", "127.0.0.11"],
        "action": "standby",
        "key_zone": "zen.dq.spamhaus.net",
        "removal_url": "https://check.spamhaus.org/",
    },
    {
        "name": "Barracuda",
        "zone": "b.barracudacentral.org",
        "kind": "ip",
        "listed_codes": {"127.0.0.2": "listed on the Barracuda Reputation Block List"},
        "action": "standby",
        "removal_url": "https://www.barracudacentral.org/rbl/removal-request",
    },
    {
        "name": "SpamCop",
        "zone": "bl.spamcop.net",
        "kind": "ip",
        "listed_codes": {"127.0.0.2": "reported as a spam source by SpamCop users"},
        "action": "standby",
        "removal_url": "https://www.spamcop.net/bl.shtml",
    },
    {
        "name": "Mailspike",
        "zone": "bl.mailspike.net",
        "kind": "ip",
        "listed_codes": {
            "127.0.0.2": "listed (Mailspike blacklist)",
            "127.0.0.10": "worst reputation",
            "127.0.0.11": "very bad reputation",
            "127.0.0.12": "bad reputation",
        },
        "action": "standby",
        "removal_url": "https://mailspike.org/iplookup.html",
    },
    {
        "name": "PSBL",
        "zone": "psbl.surriel.com",
        "kind": "ip",
        "listed_codes": {"127.0.0.2": "listed on the Passive Spam Block List (self-removal)"},
        "action": "alert",
        "removal_url": "https://psbl.org/",
    },
    {
        "name": "UCEPROTECT level 1",
        "zone": "dnsbl-1.uceprotect.net",
        "kind": "ip",
        "listed_codes": {"127.0.0.2": "the IP itself sent to UCEPROTECT's spam traps"},
        "action": "alert",
        "removal_url": "https://www.uceprotect.net/en/rblcheck.php",
    },
    {
        "name": "UCEPROTECT level 2",
        "zone": "dnsbl-2.uceprotect.net",
        "kind": "ip",
        "listed_codes": {"127.0.0.2": "the IP's network (/24) is listed"},
        "action": "information",
        "removal_url": "https://www.uceprotect.net/en/rblcheck.php",
    },
    {
        "name": "UCEPROTECT level 3",
        "zone": "dnsbl-3.uceprotect.net",
        "kind": "ip",
        "listed_codes": {"127.0.0.2": "the IP's whole ASN is listed"},
        "action": "information",
        "removal_url": "https://www.uceprotect.net/en/rblcheck.php",
    },
    {
        "name": "Spamhaus DBL",
        "zone": "dbl.spamhaus.org",
        "kind": "domain",
        "test_point": "dbltest.com",
        "listed_codes": SPAMHAUS_DBL_CODES,
        "action": "alert",
        "key_zone": "dbl.dq.spamhaus.net",
        "removal_url": "https://check.spamhaus.org/",
    },
    {
        "name": "SURBL multi",
        "zone": "multi.surbl.org",
        "kind": "domain",
        "test_point": "test.surbl.org",
        "listed_codes": {"bit:8": "PH (phishing)", "bit:16": "MW (malware)", "bit:64": "ABUSE", "bit:128": "CR"},
        "action": "alert",
        "removal_url": "https://www.surbl.org/surbl-analysis",
    },
    {
        "name": "URIBL multi",
        "zone": "multi.uribl.com",
        "kind": "domain",
        "test_point": "test.uribl.com",
        "listed_codes": {"bit:2": "black", "bit:4": "grey", "bit:8": "red"},
        "action": "alert",
        "removal_url": "https://admin.uribl.com/",
    },
]
