"""How full the mailboxes are, as an app above mail measured it: mail stores quotas, not their use.

The seam: an app whose AppConfig has `mailbox_usage(addresses)` answers {address: (used_bytes, limit_bytes or None,
measured_at)} for the addresses it measured (monitoring reads Dovecot's `doveadm quota get -A` on each mail host).
mail's pages (the mailbox and domain admin pages, the profile through mail_overview) read it only through
`mailbox_usage` below; with no app answering, they show "not measured yet"."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.apps import apps

from mail.quota import humanize_quota


@dataclass(frozen=True)
class QuotaUse:
    """One mailbox's measured use. `limit_bytes` None: no limit."""

    used_bytes: int
    limit_bytes: int | None
    measured_at: datetime

    @property
    def percent(self) -> float | None:
        if not self.limit_bytes:
            return None
        return round(100 * self.used_bytes / self.limit_bytes, 1)

    @property
    def fraction(self) -> float:
        """The bar's value: 0..1 (a mailbox over its limit shows a full bar)."""
        return 0.0 if not self.limit_bytes else min(1.0, self.used_bytes / self.limit_bytes)

    @property
    def text(self) -> str:
        used = humanize_size(self.used_bytes)
        if not self.limit_bytes:
            return f"{used} (no limit)"
        return f"{used} of {humanize_size(self.limit_bytes)} ({self.percent:g} %)"


def humanize_size(n_bytes: int) -> str:
    """Bytes used, for reading: 0 -> '0 bytes' (humanize_quota's 'no limit' is about limits)."""
    return "0 bytes" if n_bytes == 0 else humanize_quota(n_bytes)


def mailbox_usage(addresses: Iterable[str]) -> dict[str, QuotaUse]:
    """{address: QuotaUse} for the addresses some app measured (the newest measure when several apps answer);
    the others are absent."""
    wanted = list(dict.fromkeys(addresses))
    found: dict[str, QuotaUse] = {}
    if not wanted:
        return found
    for config in apps.get_app_configs():
        answer = getattr(config, "mailbox_usage", None)
        if answer is None:
            continue
        for address, (used, limit, measured_at) in answer(wanted).items():
            use = QuotaUse(used_bytes=used, limit_bytes=limit, measured_at=measured_at)
            if address not in found or found[address].measured_at < measured_at:
                found[address] = use
    return found


@dataclass(frozen=True)
class DomainUsage:
    """A domain's mailboxes as measured: their total, and the fullest ones (by bytes used)."""

    measured: int
    mailboxes: int
    used_bytes: int
    largest: list[tuple[str, QuotaUse]]


def domain_usage(domain, *, largest: int = 10) -> DomainUsage:
    addresses = list(domain.mailboxes.values_list("address", flat=True))
    usage = mailbox_usage(addresses)
    ranked = sorted(usage.items(), key=lambda item: (-item[1].used_bytes, item[0]))
    return DomainUsage(
        measured=len(usage),
        mailboxes=len(addresses),
        used_bytes=sum(use.used_bytes for use in usage.values()),
        largest=ranked[:largest],
    )
