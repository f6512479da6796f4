"""Sending IPs: adding, changing and removing one, and moving it through its lifecycle (deliverability.ip_lifecycle).
The admin, `manage.py sending_ip` and the periodic duties call these; each checks the actor's permission, refuses
with ValidationError({field: [message]}), records every state move with its reason and writes the audit log."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import authz
from accounts.audit import audit
from deliverability import ip_lifecycle
from deliverability.models import WEIGHT_MAX, WEIGHT_MIN, DnsblResult, IpPool, IpStateChange, SendingIp
from dockspace.validation import field_error

if TYPE_CHECKING:
    from django.http import HttpRequest

ADD = "deliverability.add_sendingip"
CHANGE = "deliverability.change_sendingip"
DELETE = "deliverability.delete_sendingip"
VIEW = "deliverability.view_sendingip"

EDITABLE = ("helo_name", "pool", "weight", "notes")
HELO_RE = re.compile(r"^(?=.{4,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?\Z")


def who(request: HttpRequest | None, actor_label: str | None, actor: authz.Actor | None) -> dict[str, Any]:
    """What the audit log is handed about who acted."""
    return {"request": request, "actor_label": actor_label, "actor": authz.audit_actor(actor)}


def actor_name(actor: authz.Actor, actor_label: str | None) -> str:
    """Who moved an IP, as its state history shows it: the command or task, else the person."""
    if actor_label:
        return actor_label[:254]
    return str(actor)[:254] if getattr(actor, "pk", None) else "system"


# --- input ----------------------------------------------------------------------------------------------


def parse_address(value: object, field: str = "address") -> str:
    """Any spelling of an IPv4 or IPv6 address as stored: IPv6 compressed in lower case, an IPv4-mapped IPv6 address as
    IPv4. A scoped IPv6 address (fe80::1%eth0) is refused: its zone names an interface of this host, and it may hold
    spaces, ':' or line breaks that would reach DNS names, Postfix files and the audit log."""
    text = str(value or "").strip()
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise field_error(
            field, f"{text[:100]!r} is not an IPv4 or IPv6 address (e.g. 192.0.2.10 or 2001:db8::10)."
        ) from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        bare = ipaddress.IPv6Address(int(ip))
        raise field_error(
            field,
            f"give the IPv6 address without a %zone (an interface name, as in fe80::1%eth0): {bare} names the same "
            "address everywhere.",
        )
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


# Addresses no other host can send mail from or answer: (the test, what the refusal calls it).
UNUSABLE = (
    (lambda ip: ip.is_unspecified, "an unspecified address (0.0.0.0 or ::)"),
    (lambda ip: ip.is_loopback, "a loopback address (127.0.0.0/8 or ::1): it never leaves this host"),
    (lambda ip: ip.is_link_local, "a link-local address (169.254.0.0/16 or fe80::/10): it is not routed"),
    (lambda ip: ip.is_multicast, "a multicast address (224.0.0.0/4 or ff00::/8)"),
    (lambda ip: ip == ipaddress.IPv4Address("255.255.255.255"), "the broadcast address"),
)


def normalize_address(value: object, field: str = "address") -> str:
    """A new sending IP's address (parse_address) that can send mail: other hosts must be able to reach it."""
    ip = ipaddress.ip_address(parse_address(value, field))
    for unusable, what in UNUSABLE:
        if unusable(ip):
            raise field_error(
                field, f"{ip} cannot send mail: it is {what}. A sending IP is an address other hosts reach."
            )
    return str(ip)


def normalize_helo_name(value: object, field: str = "helo_name") -> str:
    name = str(value or "").strip().lower().rstrip(".")
    if not name:
        raise field_error(field, "the HELO name is required: the host name the IP's PTR record names.")
    if not HELO_RE.match(name):
        raise field_error(
            field,
            f"{name!r} is not a fully qualified host name (letters, digits and '-' in dot-separated labels, e.g. "
            "out1.example.com).",
        )
    return name


def check_weight(value: object, field: str = "weight") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except ValueError:
            raise field_error(field, f"{value!r} is not a whole number from {WEIGHT_MIN} to {WEIGHT_MAX}.") from None
    if not WEIGHT_MIN <= value <= WEIGHT_MAX:
        raise field_error(field, f"the weight must be from {WEIGHT_MIN} to {WEIGHT_MAX}; got {value}.")
    return value


def check_reason(value: object, field: str = "reason") -> str:
    reason = " ".join(str(value or "").split())
    if not reason:
        raise field_error(field, "a reason is required: say why the IP changes state (it is kept in its history).")
    if len(reason) > ip_lifecycle.REASON_MAX_LENGTH:
        raise field_error(field, f"the reason is at most {ip_lifecycle.REASON_MAX_LENGTH} characters.")
    return reason


# --- IPs ---------------------------------------------------------------------------------------------------


def _record_state(ip: SendingIp, from_state: str, reason: str, actor_label: str) -> IpStateChange:
    return IpStateChange.objects.create(
        ip=ip, from_state=from_state, to_state=ip.state, reason=reason, actor_label=actor_label, at=ip.state_since
    )


@transaction.atomic
def ip_add(
    *,
    address: str,
    helo_name: str,
    pool: IpPool | None = None,
    weight: int = 1,
    state: str = ip_lifecycle.WARMING,
    notes: str = "",
    reason: str = "",
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> SendingIp:
    """A new IP starts WARMING (it has no reputation yet) unless `state` is ACTIVE: an IP that already sends today."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, ADD, "address")
    address = normalize_address(address)
    if state not in ip_lifecycle.STATES:
        raise field_error("state", f"{state!r} is not a state; a new IP starts WARMING or ACTIVE.")
    if state not in ip_lifecycle.INITIAL_STATES:
        raise field_error(
            "state",
            f"a new IP starts WARMING, or ACTIVE when it already sends today; {state!r} is reached later by "
            "changing its state.",
        )
    if SendingIp.objects.filter(address=address).exists():
        raise field_error("address", f"{address} is already a sending IP.")
    ip = SendingIp(
        address=address,
        helo_name=normalize_helo_name(helo_name),
        pool=pool,
        weight=check_weight(weight),
        state=state,
        state_since=timezone.now(),
        notes=notes or "",
    )
    ip.full_clean()
    try:
        with transaction.atomic():
            ip.save()
    except IntegrityError:
        # Another add of the same address committed between the check above and this insert.
        raise field_error("address", f"{address} is already a sending IP.") from None
    reason = " ".join((reason or "").split()) or ("added; already sends" if state == ip.ACTIVE else "added")
    _record_state(ip, "", reason[: ip_lifecycle.REASON_MAX_LENGTH], actor_name(actor, actor_label))
    in_pool = f" in pool {pool.name}" if pool else " (no pool)"
    audit(
        "deliverability.sending_ip.add",
        target=ip,
        description=f"Added sending IP {ip.address} ({ip.helo_name}){in_pool}, weight {ip.weight}, {state}: {reason}"[
            :500
        ],
        **who(request, actor_label, actor),
    )
    return ip


@transaction.atomic
def ip_update(
    *,
    ip: SendingIp,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
    **changes: Any,
) -> SendingIp:
    """Change the HELO name, pool, weight or notes. The state changes only through ip_set_state."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, CHANGE, "address")
    for name in changes:
        if name not in EDITABLE:
            message = (
                "changes only through a state change with a reason."
                if name in ("state", "state_since")
                else "cannot change: remove the IP and add it again."
                if name == "address"
                else f"is not a setting of a sending IP; these are: {', '.join(EDITABLE)}."
            )
            raise field_error(name, message)
    ip = SendingIp.objects.select_for_update().get(pk=ip.pk)
    if "helo_name" in changes:
        changes["helo_name"] = normalize_helo_name(changes["helo_name"])
    if "weight" in changes:
        changes["weight"] = check_weight(changes["weight"])
    if "notes" in changes:
        changes["notes"] = changes["notes"] or ""
    changed = {k: v for k, v in changes.items() if getattr(ip, k) != v}
    for name, value in changed.items():
        setattr(ip, name, value)
    ip.full_clean()
    ip.save()
    if changed:
        shown = ", ".join("notes" if k == "notes" else f"{k}={'-' if v is None else v}" for k, v in changed.items())
        audit(
            "deliverability.sending_ip.change",
            target=ip,
            description=f"Changed {shown}."[:500],
            **who(request, actor_label, actor),
        )
    return ip


@transaction.atomic
def ip_set_state(
    *,
    ip: SendingIp,
    state: str,
    reason: str,
    only_from: Iterable[str] | None = None,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> SendingIp | None:
    """Move the IP along its lifecycle (deliverability.ip_lifecycle.MOVES); any other move is refused naming the
    allowed ones. Recorded in the IP's state history and the audit log with the reason.

    `only_from`: move only an IP that is in one of these states when its row is locked, else return None and change
    nothing (the sweep and the duties decide on what they read earlier; an operator may have moved or removed the IP
    since)."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, CHANGE, "state")
    state = str(state or "").strip().upper()
    reason = check_reason(reason)
    locked = SendingIp.objects.select_for_update().filter(pk=ip.pk).first()
    if only_from is not None and (locked is None or locked.state not in tuple(only_from)):
        return None
    if locked is None:
        raise field_error("address", f"{ip.address} is no longer a sending IP.")
    ip = locked
    refusal = ip_lifecycle.move_refusal(ip.state, state)
    if refusal:
        raise field_error("state", f"{ip.address}: {refusal}")
    from_state = ip.state
    ip.state, ip.state_since = state, timezone.now()
    ip.save(update_fields=["state", "state_since"])
    _record_state(ip, from_state, reason, actor_name(actor, actor_label))
    audit(
        "deliverability.sending_ip.state",
        target=ip,
        description=f"{ip.address}: {from_state} -> {state}: {reason}"[:500],
        **who(request, actor_label, actor),
    )
    return ip


@transaction.atomic
def ip_remove(
    *,
    ip: SendingIp,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> None:
    """Only an IP that takes no new mail can go: an ACTIVE one is retired first (it drains), a WARMING one rested."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, DELETE, "address")
    ip = SendingIp.objects.select_for_update().get(pk=ip.pk)
    if ip.state == ip.ACTIVE:
        raise field_error(
            "address",
            f"{ip.address} is ACTIVE and sends mail: retire it first (state RETIRING), so that it drains, then remove "
            "it.",
        )
    if ip.state == ip.WARMING:
        raise field_error(
            "address", f"{ip.address} is WARMING and sends mail: move it to RESTING first, then remove it."
        )
    audit(
        "deliverability.sending_ip.remove",
        target=ip,
        description=f"Removed sending IP {ip.address} ({ip.helo_name}), which was {ip.state}.",
        **who(request, actor_label, actor),
    )
    # Its blocklist standings become history: nobody watches the address any more (unless it is still the host's
    # default IP), so a listing must not keep an alert firing.
    if ip.address not in {str(address) for address in settings.SENDING_IPS}:
        DnsblResult.objects.filter(subject=ip.address, is_latest=True).update(is_latest=False)
    ip.delete()


def ip_by_address(value: str, field: str = "address") -> SendingIp:
    """The sending IP at `value` (any spelling of the address), or a refusal naming the field."""
    address = parse_address(value, field)
    ip = SendingIp.objects.select_related("pool").filter(address=address).first()
    if ip is None:
        raise field_error(field, f"{address} is not a sending IP; add it first (manage.py sending_ip add).")
    return ip
