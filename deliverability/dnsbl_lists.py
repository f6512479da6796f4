"""Blocklists (DNSBLs) as operators manage them: add, change, remove, check now. The admin and `manage.py dnsbl_list`
call these; each checks the actor's model permission, refuses bad input with ValidationError({field: [message]}) and
writes the audit log (never the access key)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction

from accounts import authz
from accounts.audit import audit
from deliverability import dnsbl, dnsbl_keys, sending_ips
from deliverability.models import Dnsbl
from deliverability.records.dnsbl import code_problem, test_points
from dockspace.validation import field_error

if TYPE_CHECKING:
    from collections.abc import Iterable

    from django.http import HttpRequest

ADD = "deliverability.add_dnsbl"
CHANGE = "deliverability.change_dnsbl"
DELETE = "deliverability.delete_dnsbl"
VIEW = "deliverability.view_dnsbl"
MANAGE_KEY = "deliverability.manage_dnsbl_key"

EDITABLE = (
    "name",
    "zone",
    "kind",
    "listed_codes",
    "alert_only_codes",
    "action",
    "key_zone",
    "access_key_env",
    "removal_url",
    "is_enabled",
    "test_point",
)
ZONE_RE = dnsbl.NAME_RE
# Every question must fit DNS's 253 characters: an IPv6 address asks with 64 characters of nibbles before the zone,
# and a key (at most 64) goes between them and the key zone.
SUBJECT_ROOM = 64
ZONE_MAX = 253 - SUBJECT_ROOM
KEY_ZONE_MAX = ZONE_MAX - 65
# A domain list's own test point goes where a subject does: it fits the same room, with its dot.
TEST_POINT_MAX = SUBJECT_ROOM - 1


def _who(request: HttpRequest | None, actor_label: str | None, actor: authz.Actor | None) -> dict[str, Any]:
    return {"request": request, "actor_label": actor_label, "actor": authz.audit_actor(actor)}


def normalize_zone(value: object, field: str = "zone") -> str:
    zone = str(value or "").strip().lower().rstrip(".")
    if not ZONE_RE.match(zone):
        raise field_error(field, f"{zone!r} is not a DNS zone (dot-separated labels, e.g. zen.spamhaus.org).")
    return zone


def check_codes(value: object, field: str = "listed_codes") -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise field_error(field, 'give at least one code and its meaning, e.g. {"127.0.0.2": "listed"}.')
    codes = {}
    for code, meaning in value.items():
        code = str(code).strip()
        problem = code_problem(code)
        if problem:
            raise field_error(field, f"{code!r}: {problem}.")
        meaning = " ".join(str(meaning or "").split())
        if not meaning or len(meaning) > 200:
            raise field_error(field, f"{code}: say what the code means (1 to 200 characters).")
        codes[code] = meaning
    return codes


def check_test_point(kind: str, value: object, field: str = "test_point") -> str:
    """A list's own test point as stored: "" for RFC 5782's (what an empty value means, and what RFC 5782's own point
    becomes); for an IP list an IP address, for a domain list a domain name; never the point that must not be
    listed."""
    point = str(value or "").strip().lower().rstrip(".")
    is_ip_list = kind == Dnsbl.IP
    listed, unlisted = test_points(is_ip_list)
    if not point or point == listed:
        return ""
    try:
        ipaddress.ip_address(point.split("%", 1)[0])
        is_address = True
    except ValueError:
        is_address = False
    if is_ip_list and not is_address:
        raise field_error(
            field, f"{point[:100]!r}: an IP list's test point is an IP address it lists, e.g. 127.0.0.2 (or empty)."
        )
    if is_ip_list:
        point = sending_ips.parse_address(point, field)
    elif is_address or not ZONE_RE.match(point) or len(point) > TEST_POINT_MAX:
        raise field_error(
            field,
            f"{point[:100]!r}: a domain list's test point is a domain name it lists, at most {TEST_POINT_MAX} "
            "characters, e.g. dbltest.com (or empty for RFC 5782's test).",
        )
    if point == unlisted:
        raise field_error(field, f"{point} is the test point a list must NOT list (RFC 5782): give one it lists.")
    return point


def check_alert_only(value: object, codes: dict[str, str], field: str = "alert_only_codes") -> list[str]:
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise field_error(field, 'a list of codes, e.g. ["127.0.0.10"].')
    found = [str(code).strip() for code in value]
    unknown = [code for code in found if code not in codes]
    if unknown:
        raise field_error(field, f"{', '.join(unknown)}: not among the list's listing codes.")
    return found


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    """Each given setting checked and normalised; a refusal names the field."""
    out = dict(values)
    if "name" in out:
        out["name"] = " ".join(str(out["name"] or "").split())
        if not out["name"] or len(out["name"]) > 63:
            raise field_error("name", "a name of 1 to 63 characters is required, e.g. Spamhaus ZEN.")
        if not out["name"].isprintable() or not any(c.isalnum() for c in out["name"]):
            raise field_error("name", "a name shows letters or digits, and no invisible or control characters.")
    if "zone" in out:
        out["zone"] = normalize_zone(out["zone"])
    if "key_zone" in out:
        out["key_zone"] = normalize_zone(out["key_zone"], "key_zone") if out["key_zone"] else ""
    if "kind" in out and out["kind"] not in (Dnsbl.IP, Dnsbl.DOMAIN):
        raise field_error("kind", f"{out['kind']!r}: choose ip or domain.")
    if "action" in out and out["action"] not in (Dnsbl.STANDBY, Dnsbl.ALERT, Dnsbl.INFORMATION):
        raise field_error("action", f"{out['action']!r}: choose standby, alert or information.")
    if "listed_codes" in out:
        out["listed_codes"] = check_codes(out["listed_codes"])
    if "access_key_env" in out:
        name = str(out["access_key_env"] or "").strip()
        if name and not dnsbl_keys.ENV_NAME_RULE.match(name):
            raise field_error("access_key_env", f"must be a variable name starting with {dnsbl_keys.ENV_PREFIX}.")
        out["access_key_env"] = name
    if out.get("removal_url"):
        try:
            URLValidator(schemes=["http", "https"])(out["removal_url"])
        except ValidationError:
            raise field_error("removal_url", "an http:// or https:// address of the list's removal page.") from None
    return out


# What a standby list listens to, and whether it acts: whoever changes these decides which answers rest the sending
# IPs, and, by taking standby away, disabling or removing the list, lets the IPs it rested come back through
# quarantine release while they are still listed.
STANDBY_INPUTS = frozenset(
    {"action", "zone", "key_zone", "listed_codes", "alert_only_codes", "test_point", "is_enabled"}
)
# Where an access key goes: the key is part of every question, sent to the key zone's servers. Choosing the key zone,
# or the variable the key is read from, decides who receives a key the person may never see.
KEY_INPUTS = frozenset({"key_zone", "access_key_env"})


def _require_standby_permission(
    actor: authz.Actor, dnsbl: Dnsbl, changed: Iterable[str], *, was_standby: bool = False
) -> None:
    """A listing on a standby list rests the IP at once, and keeps it resting: making a list standby, changing a
    standby list's zone, key zone, codes or test point (which decides whether its answers are trusted), enabling or
    disabling it, taking standby away or removing it (`was_standby`) is a change to the sending IPs too and needs that
    permission as well."""
    if not (dnsbl.action == Dnsbl.STANDBY or was_standby) or not STANDBY_INPUTS & set(changed):
        return
    if not actor.has_perm(sending_ips.CHANGE):
        raise field_error(
            "action",
            "a standby list rests every sending IP it lists and keeps it resting while listed: setting standby, "
            "changing a standby list's zone, key zone, codes or test point, enabling, disabling or removing it, or "
            f"taking standby away, also needs the permission to change sending IPs ({sending_ips.CHANGE!r}). Ask "
            "someone who may change sending IPs.",
        )


def _require_key_permission(
    actor: authz.Actor, dnsbl: Dnsbl, changed: Iterable[str], key: str | None, *, had_key: bool = False
) -> None:
    """Setting or removing an access key (stored, or read from a variable), or changing where the list's key is sent
    (key zone, variable), needs MANAGE_KEY. A key zone of a list that had and has no key sends nothing: changing it
    needs nothing more."""
    changed = set(changed) & KEY_INPUTS
    has_key = had_key or bool(dnsbl.access_key_env or dnsbl.access_key_encrypted or key)
    if (key is not None or (changed and has_key)) and not actor.has_perm(MANAGE_KEY):
        field = "access_key" if key is not None else sorted(changed)[0]
        raise field_error(
            field,
            "an access key goes out in every question to the key zone's servers: setting a key, or changing the zone "
            f"it is sent to or the variable it is read from, needs the permission {MANAGE_KEY!r}.",
        )


def _check_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip().lower()
    if key and not dnsbl_keys.KEY_RULE.fullmatch(key):
        raise field_error("access_key", "an access key is 8 to 64 lower-case letters and digits.")
    return key


def _finish(dnsbl: Dnsbl, key: str | None) -> None:
    if len(dnsbl.zone) > ZONE_MAX:
        raise field_error(
            "zone",
            f"at most {ZONE_MAX} characters: a question (an IPv6 address's {SUBJECT_ROOM} "
            "characters, then the zone) must fit DNS's 253.",
        )
    if len(dnsbl.key_zone) > KEY_ZONE_MAX:
        raise field_error(
            "key_zone",
            f"at most {KEY_ZONE_MAX} characters: a question (an IPv6 address's "
            f"{SUBJECT_ROOM} characters, the key, then this zone) must fit DNS's 253.",
        )
    if dnsbl.kind == Dnsbl.DOMAIN and dnsbl.action == Dnsbl.STANDBY:
        raise field_error("action", "a domain list cannot put an IP on standby: choose alert or information.")
    dnsbl.alert_only_codes = check_alert_only(dnsbl.alert_only_codes, dnsbl.listed_codes)
    dnsbl.test_point = check_test_point(dnsbl.kind, dnsbl.test_point)
    if key is not None:
        dnsbl.access_key_encrypted = dnsbl_keys.encrypt(key) if key else ""
    if (dnsbl.access_key_env or dnsbl.access_key_encrypted) and not dnsbl.key_zone:
        raise field_error("key_zone", "an access key needs the zone asked with it, e.g. zen.dq.spamhaus.net.")
    clash = Dnsbl.objects.exclude(pk=dnsbl.pk)
    if clash.filter(zone=dnsbl.zone).exists():
        raise field_error("zone", f"{dnsbl.zone} is already a list.")
    if clash.filter(name=dnsbl.name).exists():
        raise field_error("name", f"a list named {dnsbl.name!r} exists.")


@transaction.atomic
def dnsbl_add(
    *,
    access_key: str | None = None,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
    **values: Any,
) -> Dnsbl:
    """A new list (health: untested until the next sweep checks its test points)."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, ADD, "zone")
    unknown = [name for name in values if name not in EDITABLE]
    if unknown:
        raise field_error(unknown[0], f"is not a setting of a list; these are: {', '.join(EDITABLE)}.")
    for required in ("name", "zone", "listed_codes"):
        values.setdefault(required, "")
    dnsbl = Dnsbl(**_clean(values))
    _require_standby_permission(actor, dnsbl, STANDBY_INPUTS)
    key = _check_key(access_key)
    _require_key_permission(actor, dnsbl, [name for name in KEY_INPUTS if getattr(dnsbl, name)], key or None)
    _finish(dnsbl, key)
    try:
        with transaction.atomic():
            dnsbl.save()
    except IntegrityError:
        # Another add of the same name or zone committed between _finish's check and this insert.
        raise field_error("zone", f"{dnsbl.zone} ({dnsbl.name}) was added by someone else meanwhile.") from None
    audit(
        "deliverability.dnsbl.add",
        target=dnsbl,
        description=f"Added blocklist {dnsbl.name} ({dnsbl.zone}, {dnsbl.kind}, {dnsbl.action}).",
        **_who(request, actor_label, actor),
    )
    return dnsbl


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) if value else "(none)"


@transaction.atomic
def dnsbl_update(
    *,
    dnsbl: Dnsbl,
    access_key: str | None = None,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
    **changes: Any,
) -> Dnsbl:
    """Change a list's settings; `access_key` "" removes the stored key, None keeps it. A changed zone, kind, key or
    test point is tested again at the next sweep."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, CHANGE, "zone")
    unknown = [name for name in changes if name not in EDITABLE]
    if unknown:
        raise field_error(unknown[0], f"is not a setting of a list; these are: {', '.join(EDITABLE)}.")
    dnsbl = Dnsbl.objects.select_for_update().get(pk=dnsbl.pk)
    cleaned = _clean(changes)
    if "test_point" in cleaned:  # as stored, so that giving the same point again changes nothing
        cleaned["test_point"] = check_test_point(cleaned.get("kind", dnsbl.kind), cleaned["test_point"])
    changed = {k: v for k, v in cleaned.items() if getattr(dnsbl, k) != v}
    before = {name: getattr(dnsbl, name) for name in changed}
    was_standby, had_key = dnsbl.action == Dnsbl.STANDBY, bool(dnsbl.access_key_env or dnsbl.access_key_encrypted)
    for name, value in changed.items():
        setattr(dnsbl, name, value)
    _require_standby_permission(actor, dnsbl, changed, was_standby=was_standby)
    key = _check_key(access_key)
    _require_key_permission(actor, dnsbl, changed, key, had_key=had_key)
    _finish(dnsbl, key)
    if {"zone", "key_zone", "access_key_env", "kind", "test_point"} & changed.keys() or key is not None:
        dnsbl.health, dnsbl.health_reason = Dnsbl.UNTESTED, ""
    dnsbl.save()
    # Where questions go, and whether the list acts, are named with their old and new values (never a key).
    shown = [
        f"{name} {_shown(before[name])} -> {_shown(changed[name])}"
        if name in ("zone", "key_zone", "access_key_env", "action", "is_enabled", "test_point")
        else name
        for name in changed
        if name not in ("listed_codes", "alert_only_codes")
    ]
    shown += [name for name in ("listed_codes", "alert_only_codes") if name in changed]
    if key is not None:
        shown.append("access key " + ("set" if key else "removed"))
    if shown:
        audit(
            "deliverability.dnsbl.change",
            target=dnsbl,
            description=f"Changed blocklist {dnsbl.name}: {', '.join(shown)}."[:500],
            **_who(request, actor_label, actor),
        )
    return dnsbl


@transaction.atomic
def dnsbl_remove(
    *,
    dnsbl: Dnsbl,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> None:
    """Remove a list and its history (disable it instead to keep the history)."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, DELETE, "zone")
    _require_standby_permission(actor, dnsbl, ["action"], was_standby=dnsbl.action == Dnsbl.STANDBY)
    audit(
        "deliverability.dnsbl.remove",
        target=dnsbl,
        description=f"Removed blocklist {dnsbl.name} ({dnsbl.zone}) and its history.",
        **_who(request, actor_label, actor),
    )
    dnsbl.delete()


def dnsbl_by_name(value: str, field: str = "list") -> Dnsbl:
    """The list named `value` or whose zone is `value`, or a refusal naming the field."""
    text = str(value or "").strip()
    found = Dnsbl.objects.filter(name__iexact=text).first() or Dnsbl.objects.filter(zone=text.lower()).first()
    if found is None:
        raise field_error(field, f"no blocklist named {text!r} (see manage.py dnsbl_list list).")
    return found


def dnsbl_visible_to(actor: authz.Actor, value: str, field: str = "list") -> Dnsbl:
    """dnsbl_by_name for those who may view lists (as who may change or remove them may, in the admin too): asked
    first, so a refusal tells nothing about which exist."""
    if not any(actor.has_perm(perm) for perm in (CHANGE, DELETE)):
        authz.require_perm(actor, VIEW, field)
    return dnsbl_by_name(value, field)


def dnsbl_check_now(
    *,
    lists: Iterable[Dnsbl] | None = None,
    subject: str | None = None,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
) -> dnsbl.SweepReport:
    """Run the sweep now: the chosen lists (default: every enabled one) about one subject (an IP address or a domain)
    or about every sending IP and active domain. Needs deliverability.run_dnsbl_check; a disabled list is not asked."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, dnsbl.RUN_PERMISSION, "__all__" if subject is None else "subject")
    subjects = None
    if subject is not None:
        subjects = [dnsbl.subject_for(str(subject), "subject")]
    if lists is not None:
        lists = list(lists)
        if not any(d.is_enabled for d in lists):
            raise field_error("__all__", "the chosen lists are all disabled: enable one first.")
    label = _label(actor)
    return dnsbl.dnsbl_sweep(subjects, lists=lists, actor=actor, actor_label=f"{dnsbl.SWEEP_LABEL} by {label}")


def _label(actor: authz.Actor) -> str:
    return str(actor) if authz.is_system(actor) else getattr(actor, "email", "") or str(actor)
