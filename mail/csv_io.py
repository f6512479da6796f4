"""Mailboxes to and from CSV files. The import checks every row, reports every bad line, and creates
all the mailboxes or none, through the same service as every other way of creating one.
"""

import csv
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction

from accounts import authz
from accounts.audit import audit
from dockspace.csv_cells import SafeCsvWriter
from mail import services
from mail.addresses import normalize_address
from mail.commandline import validation_message
from mail.hashers import django_password_from_mail_hash
from mail.models import Mailbox
from mail.passwords import mail_hash
from mail.progress import silent
from mail.quota import format_quota, parse_quota

User = get_user_model()

EXPORT_COLUMNS = ("address", "name", "quota", "state")
IMPORT_COLUMNS = (*EXPORT_COLUMNS, "password", "password_hash")
STATES = (Mailbox.ACTIVE, Mailbox.SUSPENDED, Mailbox.DISABLED)
NAME_MAX_LENGTH = User._meta.get_field("full_name").max_length

# From this many passwords on, hashing starts beside the database check instead of after it: a file
# that fails the check then costs at most the hashes already under way.
POOL_MIN_PASSWORDS = 8
MAX_HASHING_THREADS = 8

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
    """'field: rule' strings of a ValidationError, with model field names turned into column names."""
    lines = []
    for message in validation_message(error).splitlines():
        field, sep, rest = message.partition(": ")
        if sep and field in _FIELD_TO_COLUMN:
            message = f"{_FIELD_TO_COLUMN[field]}: {rest}"
        lines.append(message)
    return lines


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
        checked = _check_row(line, dict(zip(columns, cells, strict=True)))
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


# --- hashing -------------------------------------------------------------------------------------


def _hash_pair(password, scheme):
    """Only the mail hash is computed: the web password is that hash behind the `dms$` marker, which
    mail.hashers checks at the person's first sign-in and Django then rewrites as Argon2. An import of
    thousands of rows costs the mail hashes alone (milliseconds each), not an Argon2 hash per row too."""
    hashed = mail_hash(password, scheme)
    return django_password_from_mail_hash(hashed), hashed


def _hash_while_checking(rows, who, progress=silent):
    """Checks every row against the database and hashes every plain password once (for the web and
    for mail); returns 'line N: ...' problems, and fills row.hashes when there are none.

    Many passwords are hashed in background threads while the check runs, and what is still queued
    is cancelled when the check fails. Threads, not processes: bcrypt and Argon2 (argon2-cffi) release
    the GIL while they work, and threads share the already-configured Django settings; SHA512-CRYPT
    (passlib's pure Python) keeps the GIL but costs only milliseconds a row."""
    todo = [row for row in rows if row.password is not None]
    scheme = settings.MAIL_HASH_SCHEME
    if len(todo) < POOL_MIN_PASSWORDS:
        errors = _check_against_database(rows, who, progress)
        if errors:
            return errors
        with progress("hashing passwords", len(todo)) as bar:
            results = [_counted(bar, _try_hash(row.password, scheme)) for row in todo]
    else:
        pool = ThreadPoolExecutor(max_workers=_hashing_threads())
        try:
            futures = [pool.submit(_try_hash, row.password, scheme) for row in todo]
            errors = _check_against_database(rows, who, progress)
            if errors:
                return errors
            with progress("hashing passwords", len(todo)) as bar:
                results = [_counted(bar, future.result()) for future in futures]
        finally:
            pool.shutdown(cancel_futures=True)
    errors = []
    for row, result in zip(todo, results, strict=True):
        if isinstance(result, ValidationError):
            errors += [f"line {row.line}: {m}" for m in _messages(result)]
        else:
            row.hashes = result
    return errors


def _counted(bar, result):
    bar.update()
    return result


def _hashing_threads():
    """One hash at a time per CPU. Capped, since a mail ARGON2ID hash holds 64 MiB while it runs."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_HASHING_THREADS))


def _try_hash(password, scheme):
    try:
        return _hash_pair(password, scheme)
    except ValidationError as e:
        return e


# --- writing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Who:
    """Who imports, and whether a row may replace an existing person's sign-in password."""

    actor: object
    actor_label: str
    replace_passwords: bool = False


def _create(row, *, with_passwords, who):
    # A row for someone who already signs in adopts that person (the service refuses it to whoever
    # may not manage them); their password stays theirs unless the operator says otherwise.
    existing = next(iter(services.people_signing_in_as(row.address)), None)
    gives_password = row.password is not None or row.password_hash is not None
    if existing is not None and gives_password and not who.replace_passwords:
        raise ValidationError(
            {
                "password": [
                    f"{row.address} is an existing person's sign-in address: the row would replace their password; "
                    "leave password empty to keep it, or give --replace-passwords."
                ]
            }
        )
    if not with_passwords:
        # The checking pass is rolled back: stand-in hashes spare the service hashing a random secret.
        hashes = (None if existing is not None else make_password(None), "{SHA512-CRYPT}!")
    else:
        hashes = row.hashes or None
    mailbox = services.mailbox_create(
        address=row.address,
        full_name=row.name,
        quota=row.quota,
        password_hashes=hashes,
        person=existing,
        actor=who.actor,
        actor_label=who.actor_label,
    )
    if row.state != Mailbox.ACTIVE:
        services.mailbox_set_state(mailbox=mailbox, state=row.state, actor=who.actor, actor_label=who.actor_label)


def _create_all(rows, *, with_passwords, who, bar=None):
    """Creates every row, each in its own savepoint; returns the 'line N: ...' problems. The caller
    holds the transaction and rolls it back when there is any."""
    errors = []
    for row in rows:
        if bar is not None:
            bar.update()
        try:
            with transaction.atomic():
                _create(row, with_passwords=with_passwords, who=who)
        except ValidationError as e:
            errors += [f"line {row.line}: {m}" for m in _messages(e)]
        except DatabaseError as e:
            errors.append(f"line {row.line}: address: the database refused {row.address}: {e}.")
    return errors


class _RollBack(Exception):
    pass


def _check_against_database(rows, who, progress=silent):
    """Runs every row through the service without passwords and undoes it all: finds unmanaged
    domains, taken addresses and tier limits before minutes are spent hashing."""
    try:
        with transaction.atomic(), progress("checking rows", len(rows)) as bar:
            errors = _create_all(rows, with_passwords=False, who=who, bar=bar)
            raise _RollBack
    except _RollBack:
        pass
    return errors


def mailboxes_import_csv(path, *, actor_label, actor=None, replace_passwords=False, progress=silent):
    """Create a mailbox (and person) per row of a CSV file with a header naming some of the columns
    address (required), name, quota (e.g. 2G; empty = the domain's default), state, password or
    password_hash (a Dovecot '{SCHEME}...' hash). All or nothing: raises CsvImportError listing every
    bad line, and then nothing is written. A row whose address is an existing person's sign-in adopts
    that person (if `actor` may manage them) and may replace their password only with replace_passwords.
    progress: a mail.progress factory (a bar per phase)."""
    who = _Who(authz.acting(actor=actor), actor_label, replace_passwords)
    rows, errors = _read_rows(path)
    if errors:
        # Still check the good rows, so that one run reports every bad line.
        errors += _check_against_database(rows, who)
        raise CsvImportError(sorted(errors, key=_line_number), path)
    if any(row.password is not None for row in rows):
        # Hashing takes minutes for thousands of rows: first make sure the rows will go in, so the
        # import fails fast, and keep the writing transaction short.
        errors = _hash_while_checking(rows, who, progress)
        if errors:
            raise CsvImportError(errors, path)
    with transaction.atomic(), progress("writing mailboxes", len(rows)) as bar:
        errors = _create_all(rows, with_passwords=True, who=who, bar=bar)
        if errors:
            # Raising out of the atomic block rolls back every row already created.
            raise CsvImportError(errors, path)
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


def mailboxes_export_csv(path):
    """Write every mailbox as address,name,quota,state (never a password or hash); returns the count.
    The file is what mailboxes_import_csv reads."""
    rows = (
        Mailbox.objects.order_by("address")
        .values_list("address", "person__full_name", "quota", "state")
        .iterator(chunk_size=2000)
    )
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = SafeCsvWriter(f, lineterminator="\n")  # a self-service name may start with "="
        writer.writerow(EXPORT_COLUMNS)
        for address, name, quota, state in rows:
            writer.writerow([address, name, format_quota(quota), state])
            count += 1
    return count
