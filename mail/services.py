"""Every write to mail state: domains, tiers, mailboxes, aliases, groups and DKIM keys.

The admin, the pages, the commands and the CSV importer all call these. Each runs in one
transaction, validates everything before writing, raises ValidationError naming the field and the
rule, and writes an audit event. DMS files follow by themselves (signals schedule a sync).
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from accounts import authz
from accounts.audit import audit
from accounts.models import normalize_email
from accounts.signals import sign_in_revoked_send
from mail import dkim as dkim_keys
from mail.addresses import normalize_address, normalize_alias_address, normalize_domain, split_address
from mail.dms.collection import answered_addresses, base_address, dead_addresses, sign_ins_without_line
from mail.models import Alias, AliasTarget, DkimKey, Domain, Group, Mailbox
from mail.quota import format_quota

User = get_user_model()


def _who(request, actor_label, actor=None):
    return {"request": request, "actor_label": actor_label, "actor": authz.audit_actor(actor)}


def _field_error(field, message):
    return ValidationError({field: [message]})


# --- lookups used by validation ------------------------------------------------------------------


def managed_domain(name, field="domain", *, lock=False):
    """The Domain row for `name`, or a ValidationError: addresses only exist on managed domains."""
    name = normalize_domain(name, field)
    qs = Domain.objects.select_for_update(of=("self",)) if lock else Domain.objects
    domain = qs.select_related("tier").filter(name=name).first()
    if domain is None:
        raise unmanaged_domain_error(name, field)
    return domain


def unmanaged_domain_error(name, field="domain"):
    return _field_error(field, f"{name} is not a domain Dockspace manages; add it first (manage.py domain add).")


def address_owner(address):
    """What already uses this address: 'a mailbox', 'an alias', 'a list' or None."""
    if Mailbox.objects.filter(address=address).exists():
        return "a mailbox"
    if Alias.objects.filter(address=address).exists():
        return "an alias"
    if Group.objects.filter(list_address=address).exists():
        return "a list"
    return None


_IN_CHUNK = 500  # values per `IN (...)`: SQLite allows 999 parameters per query in older builds


def address_owners(addresses):
    """address_owner for many addresses in a few queries: {address: 'a mailbox' | 'an alias' | 'a list'}
    for those already in use."""
    addresses = list(dict.fromkeys(addresses))
    owners = {}
    for owner, model, field in (
        ("a list", Group, "list_address"),
        ("an alias", Alias, "address"),
        ("a mailbox", Mailbox, "address"),  # last, so it wins as in address_owner
    ):
        for start in range(0, len(addresses), _IN_CHUNK):
            chunk = addresses[start : start + _IN_CHUNK]
            owners.update(
                dict.fromkeys(model.objects.filter(**{f"{field}__in": chunk}).values_list(field, flat=True), owner)
            )
    return owners


# --- tiers ---------------------------------------------------------------------------------------


def tier_save(*, tier, request=None, actor_label=None):
    tier.full_clean()
    created = tier.pk is None
    tier.save()
    audit(
        "mail.tier." + ("add" if created else "change"),
        target=tier,
        description="Saved tier.",
        **_who(request, actor_label),
    )
    return tier


def _tier_check_mailbox(domain, quota, *, exclude=None):
    tier = domain.tier
    if tier is None:
        return
    others = Mailbox.objects.filter(domain=domain)
    if exclude is not None:
        others = others.exclude(pk=exclude.pk)
    count = others.count() if exclude is None and tier.max_mailboxes is not None else None
    used = (others.aggregate(total=Sum("quota"))["total"] or 0) if tier.total_quota is not None else None
    tier_check_quota(domain, quota, count=count, used=used)


def tier_usage(domains):
    """{domain pk: (mailboxes, sum of their quotas)} for many domains in one query (what
    tier_check_quota is given when mailboxes are created in bulk)."""
    rows = (
        Mailbox.objects.filter(domain__in=domains)
        .order_by()
        .values("domain")
        .annotate(n=Count("pk"), total=Sum("quota"))
    )
    usage = {domain.pk: (0, 0) for domain in domains}
    usage.update({row["domain"]: (row["n"], row["total"] or 0) for row in rows})
    return usage


def tier_check_quota(domain, quota, *, count, used):
    """The tier's limits for one more mailbox of `quota` on `domain`, which has `count` mailboxes (None:
    the mailbox is already counted) whose quotas add up to `used`."""
    tier = domain.tier
    if tier is None:
        return
    if count is not None and tier.max_mailboxes is not None and count >= tier.max_mailboxes:
        raise _field_error(
            "address",
            f"tier {tier.name} allows at most {tier.max_mailboxes} mailboxes on {domain.name} (max mailboxes).",
        )
    limit = tier.max_quota_per_mailbox
    if limit is not None and quota == 0:
        raise _field_error(
            "quota",
            f"tier {tier.name} allows at most {format_quota(limit)} per mailbox (max quota per mailbox), "
            "so 0 (no limit) is not allowed.",
        )
    if limit is not None and quota > limit:
        raise _field_error(
            "quota",
            f"tier {tier.name} allows at most {format_quota(limit)} per mailbox (max quota per mailbox); "
            f"{format_quota(quota)} was given.",
        )
    if tier.total_quota is not None:
        if quota == 0:
            raise _field_error(
                "quota",
                f"tier {tier.name} allows {format_quota(tier.total_quota)} in total on {domain.name} (total quota), "
                "so 0 (no limit) is not allowed.",
            )
        if used + quota > tier.total_quota:
            raise _field_error(
                "quota",
                f"tier {tier.name} allows {format_quota(tier.total_quota)} in total on {domain.name} (total quota); "
                f"{format_quota(used) if used else '0'} is already given out.",
            )


TIER_LISTED_MAILBOXES = 20


def _listed(addresses, count):
    """'a, b, c' for the first TIER_LISTED_MAILBOXES addresses, and how many more there are."""
    text = ", ".join(addresses[:TIER_LISTED_MAILBOXES])
    return text + (f" and {count - TIER_LISTED_MAILBOXES} more" if count > TIER_LISTED_MAILBOXES else "")


def _tier_check_existing_mailboxes(domain):
    """The domain's mailboxes as they are must fit its tier: every limit they break, with the mailboxes named."""
    tier = domain.tier
    if tier is None:
        return
    mailboxes = Mailbox.objects.filter(domain=domain).order_by("address")
    problems = []
    count = mailboxes.count()
    if tier.max_mailboxes is not None and count > tier.max_mailboxes:
        problems.append(
            f"tier {tier.name} allows at most {tier.max_mailboxes} mailboxes (max mailboxes); "
            f"{domain.name} has {count}."
        )
    limit = tier.max_quota_per_mailbox
    if limit is not None:
        over = mailboxes.filter(Q(quota=0) | Q(quota__gt=limit))
        n_over = over.count()
        if n_over:
            rows = over.values_list("address", "quota")[:TIER_LISTED_MAILBOXES]
            shown = [f"{a} ({format_quota(q) if q else 'no limit'})" for a, q in rows]
            problems.append(
                f"tier {tier.name} allows at most {format_quota(limit)} per mailbox (max quota per mailbox); "
                f"{n_over} mailbox(es) of {domain.name} have more: {_listed(shown, n_over)}. Lower their quotas first."
            )
    if tier.total_quota is not None:
        unlimited = mailboxes.filter(quota=0)
        n_unlimited = unlimited.count()
        if n_unlimited and limit is None:
            shown = list(unlimited.values_list("address", flat=True)[:TIER_LISTED_MAILBOXES])
            problems.append(
                f"tier {tier.name} caps the total quota (total quota), so every mailbox needs a quota; "
                f"{n_unlimited} mailbox(es) of {domain.name} have none: {_listed(shown, n_unlimited)}."
            )
        used = mailboxes.aggregate(total=Sum("quota"))["total"] or 0
        if used > tier.total_quota:
            biggest = mailboxes.order_by("-quota", "address").values_list("address", "quota")
            shown = [f"{a} ({format_quota(q)})" for a, q in biggest[:TIER_LISTED_MAILBOXES]]
            problems.append(
                f"tier {tier.name} allows {format_quota(tier.total_quota)} in total (total quota); the {count} "
                f"mailbox(es) of {domain.name} have {format_quota(used)}, the largest: {_listed(shown, count)}."
            )
    if problems:
        raise ValidationError({"tier": problems})


def _tier_check_alias(domain):
    tier = domain.tier
    if tier is not None and tier.max_aliases is not None and domain.aliases.count() >= tier.max_aliases:
        raise _field_error(
            "address", f"tier {tier.name} allows at most {tier.max_aliases} aliases on {domain.name} (max aliases)."
        )


def default_quota_for(domain):
    if domain.default_quota is not None:
        return domain.default_quota
    if domain.tier is not None and domain.tier.default_quota is not None:
        return domain.tier.default_quota
    return 0


# --- domains -------------------------------------------------------------------------------------


def _check_domain_settings(domain):
    domain.dkim_selector = dkim_keys.validate_selector(domain.dkim_selector, "dkim_selector")
    if domain.dkim_algorithm == Domain.DKIM_RSA and domain.dkim_bits not in (1024, 2048, 3072, 4096):
        raise _field_error("dkim_bits", "an RSA DKIM key has 1024, 2048, 3072 or 4096 bits.")
    tier, quota = domain.tier, domain.default_quota
    limit = tier.max_quota_per_mailbox if tier is not None else None
    if quota is not None and limit is not None and (quota == 0 or quota > limit):
        raise _field_error(
            "default_quota",
            f"tier {tier.name} allows at most {format_quota(tier.max_quota_per_mailbox)} per mailbox "
            "(max quota per mailbox), so the default quota must be within it.",
        )


@transaction.atomic
def domain_create(*, name, tier=None, default_quota=None, is_active=True, request=None, actor_label=None):
    name = normalize_domain(name, "name")
    if Domain.objects.filter(name=name).exists():
        raise _field_error("name", f"{name} is already a managed domain.")
    domain = Domain(name=name, tier=tier, default_quota=default_quota, is_active=is_active)
    domain.full_clean()
    _check_domain_settings(domain)
    domain.save()
    audit("mail.domain.add", target=domain, description=f"Added domain {name}.", **_who(request, actor_label))
    return domain


@transaction.atomic
def domain_update(*, domain, request=None, actor_label=None, **changes):
    domain = Domain.objects.select_for_update(of=("self",)).get(pk=domain.pk)
    for field, value in changes.items():
        setattr(domain, field, value)
    domain.full_clean()
    _check_domain_settings(domain)
    _tier_check_existing_mailboxes(domain)
    domain.save()
    text = ", ".join(f"{k}={'-' if v is None else v}" for k, v in changes.items())
    audit("mail.domain.change", target=domain, description=f"Changed {text}."[:500], **_who(request, actor_label))
    return domain


@transaction.atomic
def domain_remove(*, domain, request=None, actor_label=None):
    """Only an empty domain can go: mailboxes, aliases and lists must be removed first."""
    in_use = []
    for label, qs in (("mailboxes", domain.mailboxes), ("aliases", domain.aliases), ("lists", domain.lists)):
        if qs.exists():
            in_use.append(f"{qs.count()} {label}")
    if in_use:
        raise _field_error("name", f"{domain.name} still has {', '.join(in_use)}; remove them first.")
    name = domain.name
    audit("mail.domain.remove", target=domain, description=f"Removed domain {name}.", **_who(request, actor_label))
    domain.delete()


# --- passwords -----------------------------------------------------------------------------------


def _apply_password(person, password, field="password"):
    try:
        validate_password(password, person)
    except ValidationError as e:
        raise ValidationError({field: e.messages}) from None
    person.set_password(password)


@transaction.atomic
def mail_password_set(*, person, password, request=None, actor=None, actor_label=None):
    """Set the one password of a person (web and mail). Every app token ends; browser sessions stay (callers decide)."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_may_manage_person(actor, person, "password")
    _apply_password(person, password)
    person.save()
    sign_in_revoked_send(user=person, reason="password set", **_who(request, actor_label, actor))
    audit(
        "password.set",
        target=person,
        description="Password set for web and mail.",
        **_who(request, actor_label, actor),
    )


def _normalized_or_none(email):
    try:
        return normalize_address(email)
    except ValidationError:
        return None


def people_signing_in_as(address, *, subaddresses=False):
    """People whose sign-in address is `address` once normalised like a mailbox address (so
    'root@example.com.' and 'root@ｅxample.com' are found under 'root@example.com'). With
    subaddresses, also those signing in as local+tag@domain: DMS delivers their mail at `address`
    unless local+tag@domain has a line of its own. Exact matches first."""
    local, _ = split_address(address)
    candidates = User.objects.filter(email__istartswith=local + "@")
    if subaddresses and "+" not in local:
        candidates = User.objects.filter(Q(email__istartswith=local + "@") | Q(email__istartswith=local + "+"))
    exact, tagged = [], []
    for person in candidates.order_by("email"):
        normalized = _normalized_or_none(person.email)
        if normalized == address:
            exact.append(person)
        elif subaddresses and normalized and base_address(normalized) == address and not _answered(normalized):
            tagged.append(person)
    return exact + tagged


def _answered(address):
    """Whether DMS answers for `address` itself (an account line, a live postfix-virtual.cf line, or a refusal at
    SMTP time), so Postfix does not deliver it at the part before '+'. A switched-off alias writes no line."""
    _local, domain_name = split_address(address)
    return address in answered_addresses(domain_name, dead_addresses())


def people_signing_in_as_many(addresses):
    """people_signing_in_as for many addresses with one pass over the sign-in addresses: {address: [people]}
    for those that are someone's sign-in. Only addresses whose part before '@' matches (in lower case, as
    the normalisation does) are normalised, so the pass stays cheap on a large table."""
    wanted = set(addresses)
    locals_ = {split_address(address)[0] for address in wanted}
    ids = {}
    for pk, email in User.objects.values_list("pk", "email").iterator(chunk_size=5000):
        if email.lower().partition("@")[0] in locals_:
            address = _normalized_or_none(email)
            if address in wanted:
                ids.setdefault(address, []).append(pk)
    people = User.objects.in_bulk([pk for pks in ids.values() for pk in pks])
    return {address: [people[pk] for pk in pks] for address, pks in ids.items()}


def _people_caught_by_catch_all(domain_name):
    """People whose sign-in address on this domain DMS does not deliver (no account line or
    postfix-virtual.cf line for it, nor for its part before '+'): a catch-all gets their mail."""
    return User.objects.filter(pk__in=[pk for pk, _address in sign_ins_without_line(domain_name)]).order_by("email")


def upstream_addresses(address):
    """`address` and every address whose mail flows into it through aliases (switched-off ones too:
    switching one back on must not reveal a target re-pointed meanwhile) and lists, nearest first.
    A target local+tag@d flows into local@d, where DMS delivers it. One query per address reached:
    few, unlike the whole forwarding graph."""
    found, seen, todo = [address], {address}, [address]
    while todo:
        current = todo.pop(0)
        local, domain = split_address(current)
        tagged = Q(address__startswith=local + "+", address__endswith="@" + domain) if local else Q(pk__in=[])
        sources = set(
            AliasTarget.objects.filter(Q(address=current) | tagged)
            .exclude(alias__address=current)
            .values_list("alias__address", flat=True)
        )
        sources |= set(
            Group.objects.filter(members__mailbox__address=current, list_address__isnull=False).values_list(
                "list_address", flat=True
            )
        )
        for source in sorted(sources - seen):
            seen.add(source)
            found.append(source)
            todo.append(source)
    return found


def _people_whose_mail_reaches(address):
    """(address their mail is for, person) for everyone whose mail ends up where `address` sends it:
    people signing in as it or as anything flowing into it, and the owners of mailboxes among those
    (a mailbox flows on only through its own 'keep a copy' alias). A catch-all: the people it catches."""
    local, domain_name = split_address(address)
    if not local:
        return [(person.email, person) for person in _people_caught_by_catch_all(domain_name)]
    found = []
    for upstream in upstream_addresses(address):
        found.extend((upstream, person) for person in people_signing_in_as(upstream, subaddresses=True))
        mailbox = Mailbox.objects.select_related("person").filter(address=upstream).first()
        if mailbox is not None:
            found.append((upstream, mailbox.person))
    return found


def _check_capture(actor, address, field="address", *, catcher=None, removal=False, owner=None):
    """Refuse a change to where mail for `address` goes (an alias, catch-all, list address, list
    members, kept copy, or removal) if mail meant for a person the actor may not manage (reset links
    included) flows through it: sent to their sign-in address or mailbox, directly or through other
    aliases and lists. removal: `address` goes away; `owner`, the owner of the mailbox removed, whom the
    caller has checked already. Everyone else whose mail reaches `address` counts, those signing in as
    `address` itself (or as a `+` form of it that DMS delivers there) included."""
    if authz.is_system(actor):
        return
    for via, person in _people_whose_mail_reaches(address):
        if owner is not None and via == address and person.pk == owner.pk:
            continue
        if not authz.may_manage_person(actor, person):
            through = "" if via in (address, person.email) else f" (through {via})"
            if removal:
                text = f"removing {address} changes where mail meant for {person.email}{through} goes"
            else:
                text = f"{catcher or address} would receive mail meant for {person.email}{through}"
            raise _field_error(field, f"{text}; {authz.refusal(person)}")


def _check_removal(actor, address, field="address", *, what="this alias", owner=None):
    """`address` goes away: mail for it and for what flowed into it loses that target (refused for a person
    the actor may not manage), and on a domain with a catch-all its own mail would fall to the catch-all.
    owner: the owner of a mailbox removed, checked by the caller."""
    local, domain_name = split_address(address)
    if local and Alias.objects.filter(address="@" + domain_name, is_active=True).exists():
        _check_capture(actor, address, field, catcher=f"without {what}, the catch-all @{domain_name}")
    _check_capture(actor, address, field, removal=True, owner=owner)


# --- mailboxes -----------------------------------------------------------------------------------


def address_taken_error(address, owner):
    return _field_error("address", f"{address} is already {owner}.")


def owns_mailbox_error(person, mailbox_address):
    return _field_error("address", f"{person.email} already owns the mailbox {mailbox_address}.")


def check_new_mailbox_capture(actor, address):
    """A new mailbox at `address` takes the mail of people signing in as local+tag@domain (DMS's recipient
    delimiter): refused unless the actor may manage them (what mailbox_create checks, for bulk paths)."""
    _check_capture(actor, address)


def check_sign_in_owner(address, person, signing_in):
    """A new mailbox at `address` for `person` (None: a new person) is refused when the address is the
    sign-in of anyone else in `signing_in` (people_signing_in_as(address))."""
    others = [p for p in signing_in if person is None or p.pk != person.pk]
    if not others:
        return
    if person is None:
        raise _field_error(
            "address",
            f"{address} is the sign-in address of the existing person {others[0].email}; to give them "
            "this mailbox, name them as its person.",
        )
    raise _field_error(
        "address", f"{address} is the sign-in address of another person, {others[0].email}, not {person.email}."
    )


def check_quota_value(quota):
    if quota is None:
        return None
    if not isinstance(quota, int) or quota < 0:
        raise _field_error("quota", "quota must be a whole number of bytes, 0 for no limit.")
    return quota


@transaction.atomic
def mailbox_create(
    *,
    address,
    full_name="",
    quota=None,
    password=None,
    password_hashes=None,
    person=None,
    request=None,
    actor=None,
    actor_label=None,
):
    """Create local@domain for a person: the existing `person` when the caller names one (adopting
    them, which is acting on their sign-in), else a new person whose sign-in is the address. An
    address that already is someone's sign-in is refused unless that someone is named.

    password_hashes: (web, mail) hashes computed beforehand (a CSV import hashes in parallel; an
    adopted DMS account brings its own), used instead of `password`. web None keeps an existing
    person's own Dockspace password and only sets the mail hash."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.add_mailbox", "address")
    if password is not None and password_hashes is not None:
        raise _field_error("password", "give a password or ready-made hashes, not both.")
    address = normalize_address(address, "address")
    local, domain_name = split_address(address)
    domain = managed_domain(domain_name, "address", lock=True)
    owner = address_owner(address)
    if owner:
        raise address_taken_error(address, owner)
    quota = default_quota_for(domain) if quota is None else check_quota_value(quota)
    _tier_check_mailbox(domain, quota)
    # The same normalisation as the address itself: 'root@example.com.' is root@example.com's sign-in.
    check_sign_in_owner(address, person, people_signing_in_as(address))
    if person is not None:
        authz.require_may_manage_person(actor, person, "person")
        person = User.objects.select_for_update().get(pk=person.pk)
        if Mailbox.objects.filter(person=person).exists():
            raise owns_mailbox_error(person, person.mailbox.address)
    # Mail for local+tag@domain sign-ins is delivered here too (DMS's recipient delimiter).
    _check_capture(actor, address)
    created_person = person is None
    pending_cleared = False
    if created_person:
        person = User(email=address, full_name=full_name, email_verified_at=timezone.now())
    else:
        if full_name:
            person.full_name = full_name
        if person.is_pending_registration:
            # A self-chosen password from an unconfirmed sign-up proved nothing: it goes, and the
            # person gets a password from this call or a reset link.
            person.is_pending_registration = False
            person.set_unusable_password()
            pending_cleared = True
    if password is not None:
        _apply_password(person, password)
    elif password_hashes is not None:
        web, mail = password_hashes
        if web is not None or created_person:
            person.password = web if web is not None else make_password(None)
        person.mail_password_hash = mail
    elif created_person or not person.mail_password_hash:
        if created_person or not person.has_usable_password():
            # Nobody can sign in until a password is set (reset link or command).
            person.set_unusable_password()
        else:
            # An existing person whose web password predates mail: keep their password; the mail hash
            # follows at their next sign-in to Dockspace (accounts.backends). Until then mail refuses them.
            person.lock_mail_password()
    person.full_clean(exclude=["password"])
    person.save()
    password_replaced = not created_person and (password is not None or bool(password_hashes and password_hashes[0]))
    if password_replaced or pending_cleared:
        # An adopted person's sign-in changed: the apps' tokens from before end with it.
        sign_in_revoked_send(user=person, reason="password set", **_who(request, actor_label, actor))
    mailbox = Mailbox(person=person, domain=domain, local_part=local, quota=quota)
    mailbox.save()
    if password_replaced:
        audit(
            "password.set",
            target=person,
            description=f"Password replaced for web and mail while adopting them for the mailbox {mailbox.address}; "
            "their old password no longer signs in.",
            **_who(request, actor_label, actor),
        )
    if created_person:
        whose = ", new person."
    else:
        whose = f", adopting the existing person {person.email}."
        if pending_cleared:
            whose += " Their pending registration was cancelled (self-chosen password removed)."
    audit(
        "mail.mailbox.add",
        target=mailbox,
        description=f"Created mailbox, quota {format_quota(quota)}{whose}",
        **_who(request, actor_label, actor),
    )
    return mailbox


@transaction.atomic
def mailbox_update(*, mailbox, quota=None, full_name=None, password=None, request=None, actor=None, actor_label=None):
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.change_mailbox")
    mailbox = (
        Mailbox.objects.select_for_update(of=("self",)).select_related("domain__tier", "person").get(pk=mailbox.pk)
    )
    if password is not None:
        authz.require_may_manage_person(actor, mailbox.person, "password")
    changed = []
    if quota is not None:
        check_quota_value(quota)
        _tier_check_mailbox(mailbox.domain, quota, exclude=mailbox)
        mailbox.quota = quota
        changed.append(f"quota {format_quota(quota)}")
        mailbox.save()
    person = mailbox.person
    if full_name is not None:
        person.full_name = full_name
        # Saving checks the characters, not the length (which PostgreSQL would refuse without naming the field).
        person.clean_fields(exclude=[f.name for f in User._meta.fields if f.name != "full_name"])
        changed.append("name")
    if password is not None:
        _apply_password(person, password)
        changed.append("password")
    if full_name is not None or password is not None:
        person.save()
    if password is not None:
        sign_in_revoked_send(user=person, reason="password set", **_who(request, actor_label, actor))
    if changed:
        audit(
            "mail.mailbox.change",
            target=mailbox,
            description="Changed " + ", ".join(changed) + ".",
            **_who(request, actor_label, actor),
        )
    return mailbox


_STATE_VERBS = {Mailbox.ACTIVE: "resume", Mailbox.SUSPENDED: "suspend", Mailbox.DISABLED: "disable"}


@transaction.atomic
def mailbox_set_state(*, mailbox, state, request=None, actor=None, actor_label=None):
    """Suspend (no sign-in, mail still delivered), disable (no sign-in, no delivery, data kept) or resume."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.change_mailbox", "state")
    if state not in _STATE_VERBS:
        raise _field_error("state", f"state must be one of {', '.join(_STATE_VERBS)}.")
    mailbox = Mailbox.objects.select_for_update(of=("self",)).select_related("person").get(pk=mailbox.pk)
    authz.require_may_manage_person(actor, mailbox.person, "state")
    if mailbox.state == state:
        return mailbox, False
    previous = mailbox.state
    mailbox.state = state
    mailbox.save(update_fields=["state", "updated_at"])
    if state != Mailbox.ACTIVE:
        from accounts.services import sessions_revoke_all

        sessions_revoke_all(user=mailbox.person, request=request, actor=actor, actor_label=actor_label)
    audit(
        f"mail.mailbox.{_STATE_VERBS[state]}",
        target=mailbox,
        description=f"State {previous} -> {state}.",
        **_who(request, actor_label, actor),
    )
    return mailbox, True


@transaction.atomic
def mailbox_remove(*, mailbox, keep_person=True, request=None, actor=None, actor_label=None):
    """Remove the mailbox from DMS (stored mail stays on the DMS volume). The person stays unless
    keep_person is False; aliases and lists that pointed at it lose that target."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.delete_mailbox", "address")
    authz.require_may_manage_person(actor, mailbox.person, "address")
    address = mailbox.address
    _check_removal(actor, address, what="this mailbox", owner=mailbox.person)
    Alias.objects.filter(address=address, keep_copy=True).delete()
    _drop_as_target(address)
    person = mailbox.person
    audit(
        "mail.mailbox.remove",
        target=mailbox,
        description="Removed mailbox; stored mail is kept by DMS.",
        **_who(request, actor_label, actor),
    )
    mailbox.delete()
    if not keep_person:
        audit(
            "person.remove",
            target=person,
            description="Removed the person with their mailbox.",
            **_who(request, actor_label, actor),
        )
        person.delete()


# --- aliases -------------------------------------------------------------------------------------


def _clean_targets(targets, *, alias_address):
    if isinstance(targets, str):
        targets = [targets]
    cleaned = []
    for raw in targets or []:
        if isinstance(raw, str) and raw.startswith("@"):
            raise _field_error(
                "targets", f"{raw!r} is not an address: a target must be a full address like name@example.com."
            )
        try:
            target = normalize_address(raw, "targets")
        except ValidationError as e:
            # One of several targets broke a rule: name it, unless the rule's wording already quotes it.
            rule = e.messages[0].removeprefix("targets: ")
            raise _field_error("targets", rule if f"'{raw}'" in rule else f"{raw!r}: {rule}") from None
        if target not in cleaned:
            cleaned.append(target)
    if not cleaned:
        raise _field_error("targets", "an alias needs at least one target address.")
    for target in cleaned:
        if target == alias_address:
            raise _field_error("targets", f"{target} cannot forward to itself; tick 'keep a copy' instead.")
        domain_name = split_address(target)[1]
        if Domain.objects.filter(name=domain_name).exists() and not address_owner(target):
            raise _field_error(
                "targets", f"{target} is on a managed domain but is not a mailbox, alias or list; create it first."
            )
    return cleaned


def _forward_graph():
    graph = {}
    for alias_address, target in AliasTarget.objects.filter(alias__is_active=True).values_list(
        "alias__address", "address"
    ):
        graph.setdefault(alias_address, []).append(target)
    for group in Group.objects.exclude(list_address=None).prefetch_related("members__mailbox"):
        graph[group.list_address] = [m.mailbox.address for m in group.members.all() if hasattr(m, "mailbox")]
    return graph


def _check_no_loop(address, targets):
    graph = _forward_graph()
    graph[address] = list(targets)
    stack, seen = [(t, [address, t]) for t in targets], set()
    while stack:
        node, path = stack.pop()
        if node == address:
            raise _field_error("targets", "this would make a forwarding loop: " + " -> ".join(path) + ".")
        if node in seen:
            continue
        seen.add(node)
        stack.extend((n, path + [n]) for n in graph.get(node, []) if n != node)


@transaction.atomic
def alias_create(
    *, address, targets, keep_copy=False, description="", is_active=True, request=None, actor=None, actor_label=None
):
    """An alias 'user@domain' or a catch-all '@domain' forwarding to targets (local or external)."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.add_alias", "address")
    address = normalize_alias_address(address, "address")
    local, domain_name = split_address(address)
    domain = managed_domain(domain_name, "address", lock=True)
    owner = address_owner(address)
    if keep_copy:
        if owner != "a mailbox":
            raise _field_error("keep_copy", f"keep a copy needs a mailbox at {address}; there is none.")
        if Alias.objects.filter(address=address).exists():
            raise _field_error("address", f"{address} already forwards; change that alias instead.")
    elif owner:
        hint = " (to forward and keep a copy, tick 'keep a copy')" if owner == "a mailbox" else ""
        raise _field_error("address", f"{address} is already {owner}{hint}.")
    cleaned = _clean_targets(targets, alias_address=address)
    _check_capture(actor, address, "keep_copy" if keep_copy else "address")
    _tier_check_alias(domain)
    _check_no_loop(address, cleaned)
    alias = Alias(domain=domain, local_part=local, keep_copy=keep_copy, description=description, is_active=is_active)
    alias.save()
    AliasTarget.objects.bulk_create(AliasTarget(alias=alias, address=t, position=i) for i, t in enumerate(cleaned))
    kind = "catch-all" if not local else "alias"
    audit(
        "mail.alias.add",
        target=alias,
        description=f"Created {kind} to {len(cleaned)} target(s)" + (", keeping a copy." if keep_copy else "."),
        **_who(request, actor_label, actor),
    )
    return alias


@transaction.atomic
def alias_update(*, alias, targets=None, is_active=None, description=None, request=None, actor=None, actor_label=None):
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.change_alias", "targets")
    alias = Alias.objects.select_for_update(of=("self",)).get(pk=alias.pk)
    cleaned = None if targets is None else _clean_targets(targets, alias_address=alias.address)
    if (cleaned is not None and cleaned != alias.target_list) or (
        is_active is not None and is_active != alias.is_active
    ):
        _check_capture(actor, alias.address, "targets")
    if targets is not None:
        _check_no_loop(alias.address, cleaned)
        alias.targets.all().delete()
        AliasTarget.objects.bulk_create(AliasTarget(alias=alias, address=t, position=i) for i, t in enumerate(cleaned))
    if is_active is not None:
        if is_active and not alias.is_active and targets is None:
            # Switching an alias back on can close a loop as surely as new targets can.
            _check_no_loop(alias.address, alias.target_list)
        alias.is_active = is_active
    if description is not None:
        alias.description = description
    alias.save()
    audit("mail.alias.change", target=alias, description="Changed alias.", **_who(request, actor_label, actor))
    return alias


def _drop_as_target(address):
    """Remove an address that is going away from every alias forwarding to it; refuse if an alias
    would be left forwarding to nothing."""
    stranded = sorted(
        Alias.objects.filter(pk__in=AliasTarget.objects.filter(address=address).values("alias_id"))
        .exclude(address=address)
        .annotate(n=Count("targets"))
        .filter(n=1)
        .values_list("address", flat=True)
    )
    if stranded:
        raise _field_error(
            "address",
            f"removing {address} would leave {', '.join(stranded)} with no target; "
            "give it another target or remove it first.",
        )
    AliasTarget.objects.filter(address=address).exclude(alias__address=address).delete()


@transaction.atomic
def alias_remove(*, alias, request=None, actor=None, actor_label=None):
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.delete_alias", "address")
    _check_removal(actor, alias.address)
    _drop_as_target(alias.address)
    audit("mail.alias.remove", target=alias, description="Removed alias.", **_who(request, actor_label, actor))
    alias.delete()


# --- groups --------------------------------------------------------------------------------------


def _group_list_address(address, group=None, *, actor):
    if not address:
        return None, ""
    address = normalize_address(address, "address")
    local, domain_name = split_address(address)
    domain = managed_domain(domain_name, "address")
    owner = address_owner(address)
    if owner and not (group is not None and group.list_address == address):
        raise _field_error("address", f"{address} is already {owner}.")
    if group is None or group.list_address != address:
        _check_capture(actor, address)
    return domain, local


def _audit_access_change(group, before, *, request, actor, actor_label):
    """Members of a group that gates sign-in somewhere were changed: that is an access grant."""
    gates = authz.group_gates(group)
    after = set(group.members.values_list("email", flat=True))
    if not gates or after == before:
        return
    added, removed = sorted(after - before), sorted(before - after)
    names = ", ".join(sorted({name for name, _ in gates}))
    text = f"Access to {names} through group {group.name}:"
    if added:
        text += " added " + ", ".join(added) + "."
    if removed:
        text += " removed " + ", ".join(removed) + "."
    audit("access.change", target=group, description=text, **_who(request, actor_label, actor))


def _people(addresses, field="members"):
    people = []
    for raw in addresses or []:
        if isinstance(raw, User):
            person = raw
        else:
            # A sign-in address is stored as typed (lower case); a mailbox address is normalised.
            person = User.objects.filter(email=normalize_email(raw)).first()
            if person is None:
                email = normalize_address(raw, field)
                person = User.objects.filter(mailbox__address=email).first()
            if person is None:
                raise _field_error(field, f"{raw} is not a person in Dockspace.")
        if person not in people:
            people.append(person)
    return people


def _member_mailboxes(group):
    return set(Mailbox.objects.filter(person__member_groups=group).values_list("address", flat=True))


@transaction.atomic
def group_create(*, name, address=None, members=(), description="", request=None, actor=None, actor_label=None):
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.add_group", "name")
    name = (name or "").strip()
    group = Group(name=name, description=description)
    group.full_clean(exclude=["list_domain", "list_local_part", "list_address"])
    if Group.objects.filter(name__iexact=name).exists():
        raise _field_error("name", f"a group named {name!r} already exists.")
    group.list_domain, group.list_local_part = _group_list_address(address, actor=actor)
    people = _people(members)
    group.save()
    group.members.set(people)
    audit(
        "mail.group.add",
        target=group,
        description=f"Created group with {len(people)} member(s).",
        **_who(request, actor_label, actor),
    )
    return group


@transaction.atomic
def group_update(
    *,
    group,
    name=None,
    address=...,
    description=None,
    add=(),
    remove=(),
    members=None,
    request=None,
    actor=None,
    actor_label=None,
):
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.change_group", "name")
    group = Group.objects.select_for_update(of=("self",)).get(pk=group.pk)
    before = set(group.members.values_list("email", flat=True))
    mailboxes_before = _member_mailboxes(group)
    if name is not None and name != group.name:
        # Apps see groups by name: renaming a gate is changing who gets in.
        authz.require_may_change_group_access(actor, group, "name")
        if Group.objects.filter(name__iexact=name).exclude(pk=group.pk).exists():
            raise _field_error("name", f"a group named {name!r} already exists.")
        group.name = name
    if address is not ...:
        previous = group.list_address
        group.list_domain, group.list_local_part = _group_list_address(address, group, actor=actor)
        new = f"{group.list_local_part}@{group.list_domain.name}" if group.list_domain else None
        if previous and previous != new:
            _check_removal(actor, previous, what="this list address")
            _drop_as_target(previous)
    if description is not None:
        group.description = description
    group.full_clean(exclude=["list_domain", "list_local_part", "list_address"])
    group.save()
    if members is not None:
        group.members.set(_people(members))
    if add:
        group.members.add(*_people(add))
    if remove:
        group.members.remove(*_people(remove))
    if set(group.members.values_list("email", flat=True)) != before:
        authz.require_may_change_group_access(actor, group, "members")
    if group.list_address and _member_mailboxes(group) != mailboxes_before:
        # Whoever's mail flows into the list now reaches other mailboxes.
        _check_capture(actor, group.list_address, "members")
    if group.list_address:
        _check_no_loop(group.list_address, [m.mailbox.address for m in group.members.all() if hasattr(m, "mailbox")])
    audit("mail.group.change", target=group, description="Changed group.", **_who(request, actor_label, actor))
    _audit_access_change(group, before, request=request, actor=actor, actor_label=actor_label)
    return group


@transaction.atomic
def group_remove(*, group, request=None, actor=None, actor_label=None):
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.delete_group", "name")
    # Removing a gate would leave its app open to everyone (an empty allowed list means everyone).
    authz.require_may_change_group_access(actor, group, "name")
    if group.list_address:
        _check_removal(actor, group.list_address, "name", what="this list")
        _drop_as_target(group.list_address)
    audit("mail.group.remove", target=group, description="Removed group.", **_who(request, actor_label, actor))
    group.delete()


# --- DKIM ----------------------------------------------------------------------------------------


@transaction.atomic
def dkim_generate(*, domain, selector=None, algorithm=None, bits=None, request=None, actor_label=None):
    """Create the domain's signing key. Refuses when one is active: rotate instead."""
    domain = Domain.objects.select_for_update(of=("self",)).get(pk=domain.pk)
    if domain.dkim_keys.filter(state=DkimKey.ACTIVE).exists():
        raise _field_error("domain", f"{domain.name} already has an active DKIM key; rotate it instead.")
    selector = domain.dkim_selector if selector is None else selector
    return _dkim_new_key(domain, selector, algorithm, bits, request, actor_label)


def _dkim_new_key(domain, selector, algorithm, bits, request, actor_label):
    dkim_keys.validate_selector(selector)
    if domain.dkim_keys.filter(selector=selector).exists():
        raise _field_error("selector", f"{domain.name} already used the selector {selector!r}; pick another.")
    algorithm = algorithm or domain.dkim_algorithm
    bits = bits or domain.dkim_bits
    if algorithm not in dict(Domain.DKIM_ALGORITHMS):
        raise _field_error("algorithm", "algorithm must be rsa or ed25519.")
    try:
        private_pem, public_b64 = dkim_keys.generate_dkim_key(algorithm, bits)
    except ValueError as e:
        raise _field_error("bits", str(e)) from None
    key = DkimKey.objects.create(
        domain=domain,
        selector=selector,
        algorithm=algorithm,
        bits=bits if algorithm == Domain.DKIM_RSA else 0,
        private_key_pem=private_pem,
        public_key_b64=public_b64,
    )
    audit(
        "mail.dkim.generate",
        target=domain,
        description=f"New DKIM key {algorithm}{'-' + str(bits) if algorithm == 'rsa' else ''} selector {selector}.",
        **_who(request, actor_label),
    )
    return key


@transaction.atomic
def dkim_rotate(*, domain, selector=None, algorithm=None, bits=None, request=None, actor_label=None):
    """A new key with a new selector signs from now on; the old one stays published until retired."""
    domain = Domain.objects.select_for_update(of=("self",)).get(pk=domain.pk)
    DkimKey.objects.filter(domain=domain, state=DkimKey.ACTIVE).update(state=DkimKey.PUBLISHED)
    used = set(domain.dkim_keys.values_list("selector", flat=True))
    if selector is None:
        selector = dkim_keys.next_selector(used, timezone.localdate())
    return _dkim_new_key(domain, selector, algorithm, bits, request, actor_label)


@transaction.atomic
def dkim_retire(*, key, request=None, actor_label=None):
    if key.state == DkimKey.ACTIVE:
        raise _field_error("state", "the active key cannot be retired; rotate first.")
    key.state = DkimKey.RETIRED
    key.retired_at = timezone.now()
    key.save(update_fields=["state", "retired_at"])
    audit(
        "mail.dkim.retire",
        target=key.domain,
        description=f"Retired DKIM selector {key.selector}.",
        **_who(request, actor_label),
    )
    return key
