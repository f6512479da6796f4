"""Mailboxes to and from CSV files. The import checks every row, reports every bad line, and creates
all the mailboxes or none. Rows are checked with mailbox_create's own rules (shared from mail.services)
for all of them at once; a row for an existing person goes through mailbox_create, and new people are
written in bulk, with the same rows, audit entries and one coalesced DMS sync as one by one.
"""

import csv
import io
import multiprocessing
import os
import secrets
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.utils import timezone

from accounts import authz
from accounts.audit import audit, audit_event
from accounts.mail_hashes import mail_hash
from accounts.models import AuditEvent
from dockspace.csv_cells import SafeCsvWriter, csv_cell_value
from dockspace.validation import error_lines
from mail import services, signals
from mail.addresses import normalize_address, split_address
from mail.hashers import django_password_from_mail_hash
from mail.models import Domain, Mailbox
from mail.progress import silent
from mail.quota import format_quota, parse_quota

User = get_user_model()

EXPORT_COLUMNS = ("address", "name", "quota", "state")
IMPORT_COLUMNS = (*EXPORT_COLUMNS, "password", "password_hash")
STATES = (Mailbox.ACTIVE, Mailbox.SUSPENDED, Mailbox.DISABLED)
NAME_MAX_LENGTH = User._meta.get_field("full_name").max_length

# From this many passwords on, they are hashed in a pool (threads or processes, see _hash_all).
POOL_MIN_PASSWORDS = 8
MAX_HASHING_THREADS = 8
# Worker processes cost a fork and a pipe each: worth it from this many GIL-bound hashes on.
PROCESS_POOL_MIN_PASSWORDS = 64
GIL_BOUND_SCHEMES = ("SHA512-CRYPT",)
HASH_CHUNK = 100  # passwords per task sent to a worker
BULK_BATCH = 1000

_EMPTY = "line 1: file: is empty; the first line must name the columns (e.g. address,name,quota,password)."

# Model fields the service may name, as the CSV columns they came from.
_FIELD_TO_COLUMN = {"email": "address", "full_name": "name", "local_part": "address", "person": "address"}


class CsvImportError(Exception):
    """Nothing was imported. `errors` holds one 'line N: field: rule' string per problem."""

    def __init__(self, errors, path=None):
        self.errors = list(errors)
        self.path = path
        super().__init__(str(self))

    def __str__(self):
        where = f" from {self.path}" if self.path else ""
        head = f"Nothing was imported{where}: {len(self.errors)} problem(s). Fix them and run the import again."
        return "\n".join([head, *self.errors])


@dataclass(frozen=True)
class ImportResult:
    created: int
    addresses: tuple = ()


@dataclass
class _Row:
    line: int
    address: str
    name: str
    quota: int | None
    state: str
    password: str | None
    password_hash: str | None
    # (Django's encoded password, Dovecot hash), filled in before the writing pass; for a plain password the
    # first is the second behind the dms$ marker (see _hash_pair).
    hashes: tuple[str, str] | None = None


# --- reading the file ----------------------------------------------------------------------------


def _decode(data):
    if data.startswith(b"\xef\xbb\xbf"):
        # Spreadsheets write a byte-order mark in front of "UTF-8 CSV".
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CsvImportError(
            [f"line {line}: file: is not UTF-8 text (byte 0x{data[e.start]:02x}); save it as 'CSV UTF-8'."]
        ) from None


def _records(text):
    """(line number where the record starts, cells) for each non-blank record."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise CsvImportError(
                [f"line {start}: file: not readable as CSV ({e}); check the double quotes from this line on."]
            ) from None
        if any(cell.strip() for cell in cells):
            yield start, cells


def _header(line, cells):
    names = [cell.strip().lower() for cell in cells]
    known = ", ".join(IMPORT_COLUMNS)
    if any("@" in name for name in names) and "address" not in names:
        raise CsvImportError(
            [
                f"line {line}: header: the first line must name the columns (e.g. address,name,quota,password); "
                "it looks like a mailbox row."
            ]
        )
    errors = []
    for name in dict.fromkeys(names):
        if name not in IMPORT_COLUMNS:
            hint = " The file seems to use ';' between columns: save it with commas." if ";" in name else ""
            errors.append(f"line {line}: header: unknown column {name!r}; the columns are {known}.{hint}")
        elif names.count(name) > 1:
            errors.append(f"line {line}: header: the column {name!r} appears {names.count(name)} times.")
    if "address" not in names:
        errors.append(f"line {line}: header: the column 'address' is required; the columns are {known}.")
    if errors:
        raise CsvImportError(errors)
    return names


def _messages(error):
    """'column: rule' lines of a ValidationError, model field names given as the CSV column names."""
    return error_lines(error, _FIELD_TO_COLUMN)


def _check_row(line, values):
    """A _Row from one record, or the list of 'field: rule' problems found without the database."""
    problems = []
    address = values.get("address", "").strip()
    name = values.get("name", "").strip()
    quota_text = values.get("quota", "").strip()
    state = values.get("state", "").strip().lower() or Mailbox.ACTIVE
    password = values.get("password", "")
    password_hash = values.get("password_hash", "").strip()
    hashes = None
    try:
        address = normalize_address(address, "address")
    except ValidationError as e:
        problems += _messages(e)
    if len(name) > NAME_MAX_LENGTH:
        problems.append(f"name: at most {NAME_MAX_LENGTH} characters ({len(name)} given).")
    quota = None
    if quota_text:
        try:
            quota = parse_quota(quota_text, "quota")
        except ValidationError as e:
            problems += _messages(e)
    if state not in STATES:
        problems.append(f"state: {state!r} is not one of {', '.join(STATES)}.")
    if password and password_hash:
        problems.append("password: give either password or password_hash, not both.")
    elif password:
        try:
            validate_password(password, User(email=address, full_name=name))
        except ValidationError as e:
            problems += [f"password: {m}" for m in e.messages]
    elif password_hash:
        try:
            hashes = (django_password_from_mail_hash(password_hash), password_hash)
        except ValidationError as e:
            problems += _messages(e)
    if problems:
        return problems
    return _Row(line, address, name, quota, state, password or None, password_hash or None, hashes)


def _values(columns, cells):
    """{column: text} of one record. The columns an export writes lose the apostrophe it put before a
    formula-like cell (dockspace.csv_cells), so '-info@example.com or '=Ann import as -info@... and =Ann.
    A password is never exported: it is read exactly as written."""
    return {
        column: csv_cell_value(cell) if column in EXPORT_COLUMNS else cell
        for column, cell in zip(columns, cells, strict=True)
    }


def _read_rows(path):
    """Every row of the file, or CsvImportError listing every problem found without the database."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CsvImportError([f"file: cannot read {path}: {e.strerror or e}."]) from None
    if not data.strip():
        raise CsvImportError([_EMPTY])
    records = _records(_decode(data))
    first = next(records, None)
    if first is None:
        raise CsvImportError([_EMPTY])
    columns = _header(*first)
    rows, errors, seen = [], [], {}
    for line, cells in records:
        if len(cells) != len(columns):
            errors.append(f"line {line}: row: has {len(cells)} fields but the header names {len(columns)} columns.")
            continue
        checked = _check_row(line, _values(columns, cells))
        if isinstance(checked, list):
            errors += [f"line {line}: {problem}" for problem in checked]
            continue
        if checked.address in seen:
            errors.append(
                f"line {line}: address: {checked.address} is also on line {seen[checked.address]} "
                "(addresses are compared in lower case)."
            )
            continue
        seen[checked.address] = line
        rows.append(checked)
    if not rows and not errors:
        errors.append(f"line {first[0] + 1}: file: has no mailbox rows after the header.")
    return rows, errors


# --- checking against the database ---------------------------------------------------------------


@dataclass(frozen=True)
class _Who:
    """Who imports, and whether a row may replace an existing person's sign-in password."""

    actor: object
    actor_label: str
    replace_passwords: bool = False


@dataclass
class _Plan:
    """What the rows will do, from one check of all of them against the database."""

    domains: dict  # name -> Domain
    quotas: dict  # line -> the quota the mailbox gets (the row's, else the domain's default)
    adopting: dict  # line -> the existing person whose sign-in the row's address is
    new_people: dict  # line -> the unsaved person a row without one creates (already full_clean'ed)


def _chunks(values, size=500):
    values = list(values)
    return (values[start : start + size] for start in range(0, len(values), size))


def _check_against_database(rows, who, *, lock=False, bar=None):
    """Checks every row the way mailbox_create would, with a few set-based queries for all of them (domains,
    addresses in use, sign-in addresses, the people's mailboxes, tier usage) instead of a query series per
    row: rows are checked in file order and each counts towards the tier limits of the rows below it.
    Returns (_Plan, 'line N: ...' problems). lock: lock the domains' rows (in the writing transaction), as
    mailbox_create does, so no mailbox can slip in between this check and the writes."""
    errors = []

    def refuse(row, error):
        errors.extend(f"line {row.line}: {m}" for m in _messages(error))

    plan = _Plan({}, {}, {}, {})
    try:
        authz.require_perm(who.actor, "mail.add_mailbox", "address")
    except ValidationError as e:
        for row in rows:
            refuse(row, e)
        return plan, errors
    domain_qs = Domain.objects.select_related("tier")
    if lock:
        domain_qs = domain_qs.select_for_update(of=("self",))
    for names in _chunks({split_address(row.address)[1] for row in rows}):
        plan.domains.update((domain.name, domain) for domain in domain_qs.filter(name__in=names))
    addresses = [row.address for row in rows]
    owners = services.address_owners(addresses)
    signing_in = services.people_signing_in_as_many(addresses)
    people_ids = {person.pk for people in signing_in.values() for person in people}
    owned = {}
    for ids in _chunks(people_ids):
        owned.update(Mailbox.objects.filter(person_id__in=ids).values_list("person_id", "address"))
    usage = services.tier_usage([domain for domain in plan.domains.values() if domain.tier_id is not None])
    now = timezone.now()
    for row in rows:
        if bar is not None:
            bar.update()
        people = signing_in.get(row.address, [])
        person = people[0] if people else None
        try:
            if person is not None and _gives_password(row) and not who.replace_passwords:
                raise ValidationError(
                    {
                        "password": [
                            f"{row.address} is an existing person's sign-in address: the row would replace their "
                            "password; leave password empty to keep it, or give --replace-passwords."
                        ]
                    }
                )
            domain_name = split_address(row.address)[1]
            domain = plan.domains.get(domain_name)
            if domain is None:
                raise services.unmanaged_domain_error(domain_name, "address")
            if row.address in owners:
                raise services.address_taken_error(row.address, owners[row.address])
            quota = services.default_quota_for(domain) if row.quota is None else services.check_quota_value(row.quota)
            count, used = usage.get(domain.pk, (0, 0))
            services.tier_check_quota(domain, quota, count=count, used=used)
            services.check_sign_in_owner(row.address, person, people)
            if person is None:
                services.check_new_mailbox_capture(who.actor, row.address)  # local+tag sign-ins land here too
            if person is not None:
                authz.require_may_manage_person(who.actor, person, "person")
                if person.pk in owned:
                    raise services.owns_mailbox_error(person, owned[person.pk])
            new = User(email=row.address, full_name=row.name, email_verified_at=now)
            if not lock:
                # What mailbox_create checks before saving a person (the address is known to be free). It depends
                # on the row alone, so the second check, under the locks, need not repeat it.
                new.full_clean(exclude=["password"], validate_unique=False, validate_constraints=False)
        except ValidationError as e:
            refuse(row, e)
            continue
        # Like the rows mailbox_create has already created, this one counts for the limits of the rows below.
        usage[domain.pk] = (count + 1, used + quota)
        plan.quotas[row.line] = quota
        if person is not None:
            plan.adopting[row.line] = person
        else:
            plan.new_people[row.line] = new
    return plan, errors


def _gives_password(row):
    return row.password is not None or row.password_hash is not None


# --- hashing -------------------------------------------------------------------------------------


def _hash_pair(password, scheme):
    """Only the mail hash is computed: the web password is that hash behind the `dms$` marker, which
    mail.hashers checks at the person's first sign-in and Django then rewrites as Argon2. An import of
    thousands of rows costs the mail hashes alone (milliseconds each), not an Argon2 hash per row too."""
    hashed = mail_hash(password, scheme)
    return django_password_from_mail_hash(hashed), hashed


def _locked_pair(scheme):
    """A new person without a password: nobody signs in (web or mail) until one is set, but DMS still needs
    a well-formed mail hash (of a random secret), as User.set_unusable_password gives."""
    return make_password(None), mail_hash(secrets.token_urlsafe(32), scheme)


def _try_hash(password, scheme):
    """(web, mail) hashes, or the 'field: rule' problems of a password that cannot be hashed (a list)."""
    try:
        return _locked_pair(scheme) if password is None else _hash_pair(password, scheme)
    except ValidationError as e:
        return _messages(e)


def _hash_chunk(passwords, scheme):
    return [_try_hash(password, scheme) for password in passwords]


def _hash_rows(rows, plan, progress=silent):
    """Hashes every plain password once (and makes the locked hashes of new people without one); fills
    row.hashes, or returns the 'line N: ...' problems."""
    todo = [row for row in rows if row.password is not None or (row.line in plan.new_people and not row.hashes)]
    scheme = settings.MAIL_HASH_SCHEME
    passwords = [row.password for row in todo]
    with progress("hashing passwords", len(todo)) as bar:
        results = []
        for chunk_results in _hash_all(passwords, scheme):
            results += chunk_results
            bar.update(len(chunk_results))
    errors = []
    for row, result in zip(todo, results, strict=True):
        if isinstance(result, list):
            errors += [f"line {row.line}: {m}" for m in result]
        else:
            row.hashes = result
    return errors


def _hash_all(passwords, scheme):
    """Lists of _try_hash results, chunk by chunk in the order of `passwords`.

    passlib's SHA512-CRYPT is pure Python: it holds the GIL, so threads add no CPU and many passwords are
    hashed in worker processes (forked, so they share the configured settings; they touch no database).
    bcrypt and Argon2 (C libraries) release the GIL: threads, which cost nothing to start."""
    if len(passwords) < POOL_MIN_PASSWORDS:
        yield _hash_chunk(passwords, scheme)
        return
    workers = _hashing_threads()
    size = max(1, min(HASH_CHUNK, -(-len(passwords) // workers)))
    chunks = list(_chunks(passwords, size))
    if scheme in GIL_BOUND_SCHEMES and len(passwords) >= PROCESS_POOL_MIN_PASSWORDS and _can_fork():
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    else:
        pool = ThreadPoolExecutor(max_workers=workers)
    with pool:
        yield from pool.map(_hash_chunk, chunks, [scheme] * len(chunks))


def _can_fork():
    # A daemonic process (a multiprocessing pool's worker) may not have children: it hashes in threads.
    return "fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon


def _hashing_threads():
    """One hash at a time per CPU. Capped, since a mail ARGON2ID hash holds 64 MiB while it runs."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_HASHING_THREADS))


# --- writing -------------------------------------------------------------------------------------


def _adopt(row, person, who):
    """A row for someone who already signs in: through mailbox_create, which refuses whoever may not manage
    them and cancels a pending registration. Their password stays theirs unless the row gives one."""
    hashes = row.hashes if _gives_password(row) else None
    mailbox = services.mailbox_create(
        address=row.address,
        full_name=row.name,
        quota=row.quota,
        password_hashes=hashes,
        person=person,
        actor=who.actor,
        actor_label=who.actor_label,
    )
    if row.state != Mailbox.ACTIVE:
        services.mailbox_set_state(mailbox=mailbox, state=row.state, actor=who.actor, actor_label=who.actor_label)


def _write(rows, plan, who, bar):
    """Writes every row (the caller holds the transaction); returns the 'line N: ...' problems."""
    errors = []
    for row in rows:
        person = plan.adopting.get(row.line)
        if person is None:
            continue
        bar.update()
        try:
            with transaction.atomic():
                _adopt(row, person, who)
        except ValidationError as e:
            errors += [f"line {row.line}: {m}" for m in _messages(e)]
        except DatabaseError as e:
            errors.append(f"line {row.line}: address: the database refused {row.address}: {e}.")
    if errors:
        return errors
    new_rows = [row for row in rows if row.line in plan.new_people]
    try:
        with transaction.atomic():
            _create_new_people(new_rows, plan, who, bar)
    except DatabaseError as e:
        # Only a write racing this import gets here (the check ran under the domains' locks).
        return [f"file: the database refused the new mailboxes ({e}); nothing was imported, run the import again."]
    return errors


def _create_new_people(rows, plan, who, bar):
    """The rows for new people, in bulk: what mailbox_create writes for each (person, mailbox, audit entry),
    without its per-row queries; their checks were made for all rows at once by _check_against_database.
    Rows with another state than active then go through mailbox_set_state, as any other path would."""
    people = []
    for row in rows:
        person = plan.new_people[row.line]
        person.password, person.mail_password_hash = row.hashes
        people.append(person)
    User.objects.bulk_create(people, batch_size=BULK_BATCH)
    mailboxes = [
        Mailbox(
            person=person,
            domain=plan.domains[split_address(row.address)[1]],
            local_part=split_address(row.address)[0],
            address=row.address,
            quota=plan.quotas[row.line],
        )
        for row, person in zip(rows, people, strict=True)
    ]
    Mailbox.objects.bulk_create(mailboxes, batch_size=BULK_BATCH)
    actor = authz.audit_actor(who.actor)
    AuditEvent.objects.bulk_create(
        (
            audit_event(
                "mail.mailbox.add",
                target=mailbox,
                description=f"Created mailbox, quota {format_quota(mailbox.quota)}, new person.",
                actor=actor,
                actor_label=who.actor_label,
            )
            for mailbox in mailboxes
        ),
        batch_size=BULK_BATCH,
    )
    bar.update(len(rows))
    for row, mailbox in zip(rows, mailboxes, strict=True):
        if row.state != Mailbox.ACTIVE:
            services.mailbox_set_state(mailbox=mailbox, state=row.state, actor=who.actor, actor_label=who.actor_label)
    # bulk_create sends no post_save: ask for the one coalesced DMS sync the signals would have asked for.
    signals.request_sync()


def mailboxes_import_csv(path, *, actor_label, actor=None, replace_passwords=False, progress=silent):
    """Create a mailbox (and person) per row of a CSV file with a header naming some of the columns
    address (required), name, quota (e.g. 2G; empty = the domain's default), state, password or
    password_hash (a Dovecot '{SCHEME}...' hash). All or nothing: raises CsvImportError listing every
    bad line, and then nothing is written. A row whose address is an existing person's sign-in adopts
    that person (if `actor` may manage them) and may replace their password only with replace_passwords.
    progress: a mail.progress factory (a bar per phase)."""
    who = _Who(authz.acting(actor=actor), actor_label, replace_passwords)
    rows, errors = _read_rows(path)
    # Every row is checked before any hashing, so a bad file fails in seconds and reports every bad line.
    with progress("checking rows", len(rows)) as bar:
        plan, problems = _check_against_database(rows, who, bar=bar)
    errors += problems
    if errors:
        raise CsvImportError(sorted(errors, key=_line_number), path)
    errors = _hash_rows(rows, plan, progress)
    if errors:
        raise CsvImportError(errors, path)
    with transaction.atomic(), progress("writing mailboxes", len(rows)) as bar:
        # Again under the domains' locks: whatever changed while the passwords were hashed is caught here.
        plan, errors = _check_against_database(rows, who, lock=True)
        if not errors:
            missing = [row for row in rows if row.line in plan.new_people and not row.hashes]
            # A row that adopted someone when first checked and creates a person now needs its hashes.
            errors = _hash_rows(missing, plan) if missing else []
            errors = errors or _write(rows, plan, who, bar)
        if errors:
            # Raising out of the atomic block rolls back every row already created.
            raise CsvImportError(sorted(errors, key=_line_number), path)
        audit(
            "mail.mailbox.import",
            actor=authz.audit_actor(who.actor),
            actor_label=actor_label,
            description=f"Imported {len(rows)} mailbox(es) from {os.path.basename(path)}.",
        )
    return ImportResult(created=len(rows), addresses=tuple(row.address for row in rows))


def _line_number(error):
    head = error.split(":", 1)[0]
    return int(head[5:]) if head.startswith("line ") and head[5:].isdigit() else 0


# --- export --------------------------------------------------------------------------------------


def mailboxes_export_csv(path, *, overwrite=False):
    """Write every mailbox as address,name,quota,state (never a password or hash); returns the count.
    The file is what mailboxes_import_csv reads: imported into a database with the same domains, it gives
    the same mailboxes (a cell protected against spreadsheet formulas is read back as it was). An existing
    file is replaced only with `overwrite` (FileExistsError otherwise, before anything is written)."""
    rows = (
        Mailbox.objects.order_by("address")
        .values_list("address", "person__full_name", "quota", "state")
        .iterator(chunk_size=2000)
    )
    count = 0
    with open(path, "w" if overwrite else "x", encoding="utf-8", newline="") as f:
        writer = SafeCsvWriter(f, lineterminator="\n")  # a self-service name may start with "="
        writer.writerow(EXPORT_COLUMNS)
        for address, name, quota, state in rows:
            writer.writerow([address, name, format_quota(quota), state])
            count += 1
    return count
