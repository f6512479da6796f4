"""DNS checks of 100 domains against the loopback NSD: wall time and DNS queries sent (each name once).

Run by hand from the project root (needs /usr/sbin/nsd, Debian's nsd):

    .venv/bin/python bench/dns_checks.py [--domains 100]

It starts NSD on a free loopback port serving a zone per domain (MX to the shared mail host, SPF including a
shared record, its Ed25519 DKIM key, DMARC) plus the mail host's zone, its reverse zone and an empty DBL zone;
sets up a throwaway SQLite database with the domains and their keys; then runs the checks of every domain
through one DnsRun (as the daily task does) and again with a DnsRun per domain, and prints wall time, queries
sent and distinct questions for both. Prints figures and asserts nothing; removes its temporary directory (also
on Ctrl-C).
"""

import argparse
import ipaddress
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIL_HOSTNAME = "mail.bench-host.test"
SENDING_IP = "192.0.2.25"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=100)
    args = parser.parse_args()
    temp = Path(tempfile.mkdtemp(prefix="dockspace-bench-dns-"))
    try:
        return run(args, temp)
    except KeyboardInterrupt:
        return 130
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def run(args, temp):
    sys.path.insert(0, str(ROOT))
    os.environ.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "DOCKSPACE_URL": "https://dockspace.test",
            "DOCKSPACE_DATA_DIR": str(temp / "data"),
            "DOCKSPACE_MAIL_HOSTNAME": MAIL_HOSTNAME,
            "DOCKSPACE_SENDING_IPS": SENDING_IP,
            "DJANGO_SETTINGS_MODULE": "dockspace.settings",
        }
    )
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from accounts.authz import SystemActor
    from deliverability.dns.resolver import DnsRun
    from deliverability.dns_checks import dns_check_domains
    from deliverability.tests.dns_server import DnsServer, require_nsd
    from deliverability.tests.mail_dns import right_records
    from mail import services
    from mail.models import DkimKey

    require_nsd()
    call_command("migrate", verbosity=0)
    names = [f"d{n:03}.bench.test" for n in range(args.domains)]
    domains = []
    started = time.perf_counter()
    for name in names:
        domain = services.domain_create(name=name, actor_label="bench")
        services.dkim_generate(domain=domain, algorithm="ed25519", actor_label="bench")
        domains.append(domain)
    print(f"setup: {len(domains)} domains with Ed25519 keys in {time.perf_counter() - started:.1f} s")

    server = DnsServer(temp / "nsd")
    server.zone("bench-host.test", [f"mail A {SENDING_IP}", f'_spf TXT "v=spf1 ip4:{SENDING_IP} -all"'])
    server.zone("2.0.192.in-addr.arpa", [f"25 PTR {MAIL_HOSTNAME}."])
    server.zone("dbl.spamhaus.org", [])
    for name in names:
        keys = DkimKey.objects.filter(domain__name=name)
        records = right_records(name, spf="v=spf1 include:_spf.bench-host.test -all", keys=keys)
        server.zone(name, [record.replace("mail.example.net", MAIL_HOSTNAME) for record in records])
    server.start()
    settings.DNS_NAMESERVERS = server.nameservers
    settings.MAIL_HOSTNAME = MAIL_HOSTNAME
    settings.SENDING_IPS = [ipaddress.ip_address(SENDING_IP)]
    try:
        for label, shared in (("one DnsRun for all domains", True), ("a DnsRun per domain", False)):
            runs = [DnsRun()] if shared else []
            started = time.perf_counter()
            if shared:
                results = dns_check_domains(domains, actor=SystemActor("bench"), run=runs[0])
            else:
                results = []
                for domain in domains:
                    runs.append(DnsRun())
                    results += dns_check_domains([domain], actor=SystemActor("bench"), run=runs[-1])
            wall = time.perf_counter() - started
            sent = sum(r.queries_sent for r in runs)
            distinct = len({question for r in runs for question in r.answers})
            levels = {level: [r.level for r in results].count(level) for level in ("ok", "warning", "failed")}
            print(
                f"{label}: {len(results)} domains in {wall:.2f} s ({wall / len(results) * 1000:.1f} ms each), "
                f"{sent} queries sent, {distinct} distinct questions; levels {levels}"
            )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
