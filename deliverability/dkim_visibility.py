"""mail's seam for `dkim retire` (mail.services.dkim.dkim_retire_objections): retiring a rotated-out key is held
back while the active key's record is not yet visible in DNS, since mail in transit would then verify with no
key at all. Asked live, one name, through a fresh DnsRun. When DNS cannot be asked the retire is held back too:
Dockspace cannot tell, and a key retired too early breaks verification of mail in transit; an operator who checked
DNS by other means retires with `--force` (the admin's "retire anyway" action)."""

from deliverability.dns.resolver import DnsRun
from deliverability.records.dkim import dkim_check
from mail.models import DkimKey


def dkim_retire_objections(key: DkimKey, run: DnsRun | None = None) -> list[str]:
    active = key.domain.dkim_keys.filter(state=DkimKey.ACTIVE).exclude(pk=key.pk).first()
    if active is None:
        return []
    run = run or DnsRun()
    domain = key.domain.name
    name = f"{active.selector}._domainkey.{domain}"
    answer = run.lookup(name, "TXT")
    if answer.is_failure:
        return [
            f"warning: DNS could not be asked whether the new selector {active.selector} is visible ({name}: "
            f"{answer.error or answer.status}). Retry when DNS answers, or, if you checked {name} yourself, retire "
            'with --force (in the admin: the action "Retire anyway").'
        ]
    check = dkim_check(
        domain, active.selector, run.lookup, algorithm=active.algorithm, public_key_b64=active.public_key_b64
    )
    if check.matches:
        return []
    publish = check.finding.record_to_publish
    record = f"publish {publish}" if publish else "publish the active key's record"
    return [
        f"warning: the new selector {active.selector} is not yet visible in DNS ({check.finding.reason}). Keep "
        f"{key.selector} until it is: {record}, check with `manage.py dns_check {domain}`, then retire."
    ]
