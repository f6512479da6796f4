"""manage.py dns_check [DOMAIN ...] [--json]: check the domains' DNS now, store the results and print them."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.authz import add_actor_argument, command_actor, command_actor_label
from deliverability.dns.resolver import DnsRun
from deliverability.dns_checks import dns_check_domains
from deliverability.models import FAILED, DnsCheckRun
from deliverability.selectors import latest_results, require_may_see_domains
from dockspace.commandline import ServiceCall, not_found, print_json
from dockspace.validation import error_text
from mail.addresses import normalize_domain
from mail.models import Domain

ACTOR = "manage.py dns_check"


def result_data(result):
    record = None
    if result.record_name:
        record = {
            "name": result.record_name,
            "type": result.record_type,
            "value": result.record_value,
            "zone_line": result.record_text,
        }
    return {
        "check": result.kind,
        "subject": result.subject,
        "level": result.level,
        "reason": result.reason,
        "problems": result.problem_list,
        "record_to_publish": record,
    }


def find_domains(names):
    if not names:
        return list(Domain.objects.filter(is_active=True))
    found = []
    for raw in names:
        try:
            name = normalize_domain(raw, "DOMAIN")
        except ValidationError as exc:
            raise CommandError(error_text(exc)) from None
        domain = Domain.objects.filter(name=name).first()
        if domain is None:
            raise not_found("DOMAIN", "managed domain", raw)
        if domain not in found:
            found.append(domain)
    return found


class Command(BaseCommand):
    help = (
        "Check the DNS of managed domains now (default: every active domain) and store the results the admin "
        "shows: MX (points at DOCKSPACE_MAIL_HOSTNAME or a sending IP), SPF (one record, at most 10 lookups and "
        "2 void lookups, authorises DOCKSPACE_SENDING_IPS), DKIM (each published selector holds Dockspace's key), "
        "DMARC, PTR of each sending IP (resolves back, names the HELO host), MTA-STS and TLS-RPT (optional) and "
        "the Spamhaus domain blocklist. Prints every check, with the exact record to publish when one must "
        "change, and every problem a check found when there is more than one. Exits 1 when any check failed "
        "(warnings do not). --json prints the same as JSON. Acts as the host; `--as EMAIL` needs that staff "
        "member's permissions to run DNS checks and to view domains."
    )

    def add_arguments(self, parser):
        parser.add_argument("domains", nargs="*", metavar="DOMAIN", help="Managed domains to check (default: all).")
        parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
        add_actor_argument(parser)

    def handle(self, *args, domains, **o):
        actor = command_actor(o)
        with ServiceCall({"domain": "--as"}):
            require_may_see_domains(actor)  # before the names are looked up, so a refusal tells nothing
        chosen = find_domains(domains)
        run = DnsRun()
        with ServiceCall({"domain": "DOMAIN"}):
            runs = dns_check_domains(
                chosen, actor=actor, actor_label=command_actor_label(ACTOR, actor), run=run, trigger=DnsCheckRun.MANUAL
            )
        reports = [(check_run, latest_results(check_run.domain)) for check_run in runs]
        if o["json"]:
            print_json(
                self,
                [
                    {
                        "domain": check_run.domain.name,
                        "level": check_run.level,
                        "checked_at": check_run.checked_at.isoformat(),
                        "checks": [result_data(result) for result in results],
                    }
                    for check_run, results in reports
                ],
            )
        else:
            self._print(reports)
        failed = [check_run.domain.name for check_run in runs if check_run.level == FAILED]
        if failed:
            raise CommandError(f"DNS checks failed for {', '.join(failed)}.")

    def _print(self, reports):
        if not reports:
            self.stdout.write("No active domains to check.")
        for check_run, results in reports:
            self.stdout.write(f"{check_run.domain.name}: {check_run.level}")
            for result in results:
                self.stdout.write(f"  {result.level:8} {result.check_label:14} {result.reason}")
                if result.more_problems:
                    for problem in result.problem_list:
                        self.stdout.write(f"           - {problem['level']}: {problem['reason']}")
                if result.record_text:
                    self.stdout.write(f"           publish: {result.record_text}")
