"""Adopting an existing DMS config directory: its accounts, quotas, aliases and access blocks become
Dockspace domains, people, mailboxes (suspended or disabled where blocked) and aliases (through the same
services as every other write), and every line that cannot be adopted, so would be lost when Dockspace
takes the files over, is reported with its file and line number; so is every other file of the catalog
(mail.dms.catalog) that holds lines Dockspace did not write. The files Dockspace never writes are named and
left alone (mail.dms.directory reads the directory).
"""

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction

from accounts.audit import audit
from dockspace.validation import error_text
from mail import services
from mail.addresses import normalize_address, normalize_alias_address, split_address
from mail.dms.directory import FILES, files_left_alone, files_not_adopted, read_dms_directory
from mail.dms.parse import Problem, parse_access, parse_accounts, parse_quotas, parse_virtual
from mail.dms.render import ACCOUNTS_PATH, QUOTAS_PATH, RECEIVE_ACCESS_PATH, SEND_ACCESS_PATH, VIRTUAL_PATH
from mail.dms.sync import streamed_files
from mail.hashers import django_password_from_mail_hash
from mail.models import Alias, Domain, Mailbox
from mail.progress import silent
from mail.quota import format_quota

User = get_user_model()

ACTOR = "manage.py import_dms_files"


@dataclass
class AdoptionReport:
    directory: str
    dry_run: bool
    created_domains: list = field(default_factory=list)
    created_mailboxes: list = field(default_factory=list)
    created_aliases: list = field(default_factory=list)
    already_present: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    not_adopted: list = field(default_factory=list)
    left_alone: list = field(default_factory=list)

    @property
    def is_complete(self):
        """Every line was adopted (or was already there)."""
        return not self.not_adopted

    def as_dict(self):
        return {
            "directory": self.directory,
            "dry_run": self.dry_run,
            "created": {
                "domains": self.created_domains,
                "mailboxes": self.created_mailboxes,
                "aliases": self.created_aliases,
            },
            "already_present": self.already_present,
            "skipped": self.skipped,
            "notes": self.notes,
            "left_alone": self.left_alone,
            "not_adopted": [
                {"file": p.path, "line": p.line_number, "text": p.line, "reason": p.reason} for p in self.not_adopted
            ],
        }

    def lines(self):
        """The report as an operator reads it."""
        out = [f"{'Dry run (nothing saved) of adopting' if self.dry_run else 'Adopted'} {self.directory}:"]
        for label, items in (
            ("domain(s) created", self.created_domains),
            ("mailbox(es) created", self.created_mailboxes),
            ("alias(es) created", self.created_aliases),
            ("already present", self.already_present),
            ("skipped", self.skipped),
            ("note(s)", self.notes),
        ):
            out.append(f"  {len(items)} {label}" + (":" if items else "."))
            out += [f"    {item}" for item in items]
        if self.left_alone:
            out.append(
                f"  {len(self.left_alone)} file(s) left alone (Dockspace never writes them; DMS keeps using them):"
            )
            out += [f"    {name}" for name in self.left_alone]
        if self.not_adopted:
            out.append(
                f"  {len(self.not_adopted)} line(s) NOT adopted: they would be lost when Dockspace takes the files "
                "over. Fix them and run the import again, or accept losing them (export_dms_files --force):"
            )
            out += [f"    {problem}" for problem in self.not_adopted]
        else:
            names = ", ".join(FILES)
            verb = "would be" if self.dry_run else "was"
            out.append(f"  Every line {verb} adopted from {names}.")
        return out


# --- reading -------------------------------------------------------------------------------------


def _first_lines(text, key_of, *, continued=False):
    """{normalised key: number of its first line}: the parsers return entries without line numbers.
    continued: a line starting with whitespace continues the one before (Postfix tables)."""
    numbers = {}
    for number, raw in enumerate(text.replace("\r", "").split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or (continued and raw[:1].isspace()):
            continue
        try:
            numbers.setdefault(key_of(line), number)
        except ValidationError:
            continue
    return numbers


def _account_key(line):
    return normalize_address(line.split("|", 1)[0].strip())


def _quota_key(line):
    return normalize_address(line.split(":", 1)[0].strip())


def _virtual_key(line):
    return normalize_alias_address(line.split()[0])


def _access_key(line):
    return normalize_address(line.split()[0])


def _redacted(address, hashed):
    scheme_end = hashed.find("}")
    return f"{address}|{hashed[: scheme_end + 1] if scheme_end > 0 else ''}…"


# --- the plan: what the files ask for, checked without the database ------------------------------


@dataclass
class _Account:
    line: int
    address: str
    password_hash: str
    web_password: str
    quota: int | None
    state: str


@dataclass
class _Forward:
    line: int
    address: str
    targets: list
    keep_copy: bool


@dataclass
class _Block:
    """An access-table line for an address without an account line: adopted only if Dockspace already
    has that address in the state that writes the line."""

    path: str
    line: int
    address: str


def _access_text(address):
    return f"{address}\tREJECT"


# What each access table blocks, and the Dockspace state that writes the same line (see
# mail.dms.collection.dms_send_blocked / dms_receive_blocked): the stricter table first.
_ACCESS_STATES = ((RECEIVE_ACCESS_PATH, Mailbox.DISABLED), (SEND_ACCESS_PATH, Mailbox.SUSPENDED))
_STRICTNESS = {Mailbox.ACTIVE: 0, Mailbox.SUSPENDED: 1, Mailbox.DISABLED: 2}
_ADOPTED_AS = {
    Mailbox.SUSPENDED: (
        "blocked from sending in {path}: adopted as suspended, the Dockspace state that blocks sending; it also "
        "refuses sign-in to mail and Dockspace (mail is still delivered). Resume it to let it sign in and send."
    ),
    Mailbox.DISABLED: (
        "refused mail in {path}: adopted as disabled, the Dockspace state that refuses mail; it also refuses "
        "sign-in (stored mail is kept). Resume it to let it receive mail and sign in."
    ),
}


def _apply_access(texts, problems, planned, account_lines, notes):
    """Access-table blocks on accounts become their mailbox's state (a block is never silently dropped);
    blocks on other addresses are returned, to be checked against the database."""
    by_address = {account.address: account for account in planned}
    others = []
    for path, state in _ACCESS_STATES:
        blocked, found = parse_access(texts[path], path)
        problems += found
        lines = _first_lines(texts[path], _access_key, continued=True)
        for address in blocked:
            account = by_address.get(address)
            if account is None:
                if address in account_lines:
                    reason = f"the account line of {address} was not adopted"
                    problems.append(Problem(path, lines.get(address), _access_text(address), reason))
                else:
                    others.append(_Block(path, lines.get(address), address))
                continue
            if _STRICTNESS[account.state] >= _STRICTNESS[state]:
                continue  # the state it already has writes this line too
            account.state = state
            notes.append(f"{address}: " + _ADOPTED_AS[state].format(path=path))
    return others


def _block_problem(block):
    """None when Dockspace already writes this access line, else why it would be lost."""
    mailbox = Mailbox.objects.filter(address=block.address).first()
    if block.path == SEND_ACCESS_PATH:
        if mailbox is not None and not mailbox.is_usable:
            return None
        return (
            f"Dockspace blocks sending only for suspended mailboxes, and {block.address} has no account in "
            f"{ACCOUNTS_PATH}: this block would be lost"
        )
    if mailbox is not None and mailbox.state == Mailbox.DISABLED:
        return None
    return (
        f"Dockspace refuses mail only for disabled mailboxes (and aliases whose every target is gone), and "
        f"{block.address} has no account in {ACCOUNTS_PATH}: this block would be lost; to keep it, create the "
        "mailbox and disable it"
    )


def _check_blocks(blocks, report, problems):
    for block in blocks:
        reason = _block_problem(block)
        if reason is None:
            report.already_present.append(f"{block.path}: {block.address} REJECT")
        else:
            problems.append(Problem(block.path, block.line, _access_text(block.address), reason))


def _plan(texts, problems):
    accounts, found = parse_accounts(texts[ACCOUNTS_PATH], ACCOUNTS_PATH)
    problems += found
    quotas, found = parse_quotas(texts[QUOTAS_PATH], QUOTAS_PATH)
    problems += found
    aliases, found = parse_virtual(texts[VIRTUAL_PATH], VIRTUAL_PATH)
    problems += found
    account_lines = _first_lines(texts[ACCOUNTS_PATH], _account_key)
    quota_lines = _first_lines(texts[QUOTAS_PATH], _quota_key)
    alias_lines = _first_lines(texts[VIRTUAL_PATH], _virtual_key, continued=True)
    notes = []

    planned = []
    for account in accounts:
        line = account_lines.get(account.address)
        try:
            web_password = django_password_from_mail_hash(account.password_hash)
        except ValidationError as e:
            text = _redacted(account.address, account.password_hash)
            problems.append(Problem(ACCOUNTS_PATH, line, text, error_text(e)))
            continue
        quota = quotas.get(account.address)
        state = Mailbox.SUSPENDED if account.is_suspended else Mailbox.ACTIVE
        planned.append(_Account(line, account.address, account.password_hash, web_password, quota, state))
    adoptable = {a.address for a in planned}
    for address in quotas:
        if address not in adoptable:
            reason = (
                f"{address} has no line in {ACCOUNTS_PATH}"
                if address not in account_lines
                else f"the account line of {address} was not adopted"
            )
            problems.append(
                Problem(QUOTAS_PATH, quota_lines.get(address), f"{address}:{format_quota(quotas[address])}", reason)
            )

    forwards = []
    for alias in aliases:
        line = alias_lines.get(alias.address)
        targets = list(alias.targets)
        text = f"{alias.address} {','.join(targets)}"
        keep_copy = alias.address in targets
        if keep_copy:
            targets.remove(alias.address)
        if not targets:
            # `a@d a@d`: the renderer writes these itself for catch-all domains.
            forwards.append(_Forward(line, alias.address, [], True))
            continue
        if alias.address.startswith("@") and keep_copy:
            problems.append(Problem(VIRTUAL_PATH, line, text, "a catch-all cannot keep a copy"))
            continue
        forwards.append(_Forward(line, alias.address, targets, keep_copy))
    blocks = _apply_access(texts, problems, planned, account_lines, notes)
    return planned, forwards, blocks, notes


# --- adopting ------------------------------------------------------------------------------------


def _messages(error):
    return error_text(error).replace("\n", "; ")


def _ensure_domains(names, report, problems, actor_label):
    for name in sorted(names):
        if Domain.objects.filter(name=name).exists():
            continue
        try:
            services.domain_create(name=name, actor_label=actor_label)
        except ValidationError as e:
            problems.append(Problem("(domains)", None, name, f"domain {name} cannot be added: {_messages(e)}"))
            continue
        report.created_domains.append(name)


def _keeps_own_password(person):
    """An existing person who already signs in to Dockspace keeps that password: overwriting it
    with the DMS one would let whoever knows the mail password take over the sign-in. A pending
    registration's self-chosen password is not theirs yet: the DMS account is."""
    if person is None or person.is_pending_registration:
        return False
    # An empty password counts as "usable" to Django, yet nobody can sign in with it.
    return bool(person.password) and person.has_usable_password()


def _existing_mailbox_differences(mailbox, account):
    state = account.state
    differences = []
    if mailbox.person.mail_password_hash != account.password_hash:
        differences.append("a different password")
    if account.quota is not None and mailbox.quota != account.quota:
        differences.append(f"quota {format_quota(mailbox.quota)}")
    if mailbox.state != state:
        differences.append(f"state {mailbox.state}")
    return differences


def _adopt_account(account, report, problems, actor_label):
    def problem(reason):
        text = _redacted(account.address, account.password_hash)
        problems.append(Problem(ACCOUNTS_PATH, account.line, text, reason))

    mailbox = Mailbox.objects.select_related("person").filter(address=account.address).first()
    if mailbox is not None:
        differences = _existing_mailbox_differences(mailbox, account)
        if differences:
            problem(f"{account.address} is already a mailbox with {' and '.join(differences)}; it was not overwritten")
        else:
            report.already_present.append(f"mailbox {account.address}")
        return
    try:
        with transaction.atomic():
            # The account's owner is whoever signs in with its address: adopted explicitly.
            person = next(iter(services.people_signing_in_as(account.address)), None)
            keeps_password = _keeps_own_password(person)
            mailbox = services.mailbox_create(
                address=account.address,
                quota=account.quota,
                password_hashes=(None if keeps_password else account.web_password, account.password_hash),
                person=person,
                actor_label=actor_label,
            )
            if account.state != Mailbox.ACTIVE:
                services.mailbox_set_state(mailbox=mailbox, state=account.state, actor_label=actor_label)
    except ValidationError as e:
        problem(_messages(e))
        return
    except DatabaseError as e:
        problem(f"the database refused it: {e}")
        return
    suffix = "" if account.state == Mailbox.ACTIVE else f" ({account.state})"
    report.created_mailboxes.append(account.address + suffix)
    if keeps_password:
        report.notes.append(
            f"{account.address} already had a Dockspace password: it is kept for Dockspace; mail keeps the "
            "DMS password until the person next changes theirs."
        )


def _alias_text(forward):
    targets = forward.targets + ([forward.address] if forward.keep_copy else [])
    return f"{forward.address} {','.join(targets)}"


def _adopt_forward(forward, report, problems, actor_label):
    kind = "catch-all" if forward.address.startswith("@") else "alias"
    where = f"{kind} {forward.address}" + (" (keeps a copy)" if forward.keep_copy else "")
    existing = Alias.objects.filter(address=forward.address).first()
    if existing is not None:
        if existing.keep_copy == forward.keep_copy and set(existing.target_list) == set(forward.targets):
            report.already_present.append(where)
        else:
            reason = (
                f"{forward.address} is already an alias forwarding to {', '.join(existing.target_list)}"
                + (" and keeping a copy" if existing.keep_copy else "")
                + "; it was not overwritten"
            )
            problems.append(Problem(VIRTUAL_PATH, forward.line, _alias_text(forward), reason))
        return
    try:
        services.alias_create(
            address=forward.address, targets=forward.targets, keep_copy=forward.keep_copy, actor_label=actor_label
        )
    except (ValidationError, DatabaseError) as e:
        reason = _messages(e) if isinstance(e, ValidationError) else f"the database refused it: {e}"
        problems.append(Problem(VIRTUAL_PATH, forward.line, _alias_text(forward), reason))
        return
    report.created_aliases.append(where)


def _loop_from(start, graph):
    """A forwarding path start -> ... -> start among the not-yet-created aliases, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for target in graph.get(node, ()):
            if target == start:
                return path + [start]
            if target not in seen:
                seen.add(target)
                stack.append((target, path + [target]))
    return None


def _adopt_forwards(forwards, report, problems, actor_label, bar):
    """Aliases whose targets are other aliases of the file are created after those targets."""
    identity = [f for f in forwards if not f.targets]
    bar.update(len(identity))
    for forward in identity:
        if Mailbox.objects.filter(address=forward.address).exists():
            report.skipped.append(f"{VIRTUAL_PATH}:{forward.line}: {forward.address} {forward.address} (regenerated)")
        else:
            reason = f"{forward.address} forwards only to itself and is not a mailbox"
            problems.append(Problem(VIRTUAL_PATH, forward.line, f"{forward.address} {forward.address}", reason))
    waiting = {f.address: f for f in forwards if f.targets}
    while waiting:
        ready = [f for f in waiting.values() if not any(t in waiting for t in f.targets)]
        if not ready:
            break
        for forward in ready:
            del waiting[forward.address]
            _adopt_forward(forward, report, problems, actor_label)
            bar.update()
    graph = {address: [t for t in f.targets if t in waiting] for address, f in waiting.items()}
    for forward in waiting.values():
        loop = _loop_from(forward.address, graph)
        if loop:
            reason = "this would make a forwarding loop: " + " -> ".join(loop)
        else:
            blocked = ", ".join(t for t in forward.targets if t in waiting)
            reason = f"its target {blocked} could not be adopted (a forwarding loop)"
        problems.append(Problem(VIRTUAL_PATH, forward.line, _alias_text(forward), reason))


def _whole_line(text, number, *, continued):
    """Physical line `number` of `text` (without CR), or None when it is not a whole entry: a Postfix
    table line (continued) that the next non-blank, non-comment line continues, or a repeat of a line
    above it (Dockspace writes each line once; the repeat stays reported)."""
    lines = (text or "").replace("\r", "").split("\n")
    if number is None or not 0 < number <= len(lines) or lines.index(lines[number - 1]) != number - 1:
        return None
    if continued:
        for following in lines[number:]:
            stripped = following.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if following[:1].isspace():
                return None
            break
    return lines[number - 1]


def _lines_of(chunks):
    pending = ""
    for chunk in chunks:
        *lines, pending = (pending + chunk.decode()).split("\n")
        yield from lines
    if pending:
        yield pending


def _set_aside_own_lines(problems, texts, report):
    """Problems whose line Dockspace writes itself from the database as it now is (after the adoption, in
    the same transaction) are not lost: a list's line, an alias line without its dead targets, the account
    line of a person switched off, and the REJECT lines for an empty list, an alias whose every target is
    gone or a sign-in on a catch-all domain. Those go to `skipped` as regenerated; the rest are returned."""
    wanted = {}
    for problem in problems:
        if problem.path in FILES:
            continued = problem.path not in (ACCOUNTS_PATH, QUOTAS_PATH)
            line = _whole_line(texts[problem.path], problem.line_number, continued=continued)
            if line:
                wanted.setdefault(problem.path, set()).add(line)
    if not wanted:
        return problems
    files = streamed_files(on_skip=lambda message: None)
    # Streamed, as the sync writes them: only the lines asked about are kept.
    written = {path: {line for line in _lines_of(files[path]()) if line in lines} for path, lines in wanted.items()}
    left = []
    for problem in problems:
        continued = problem.path not in (ACCOUNTS_PATH, QUOTAS_PATH)
        line = _whole_line(texts.get(problem.path), problem.line_number, continued=continued)
        if line and line in written.get(problem.path, ()):
            report.skipped.append(f"{problem.path}:{problem.line_number}: {problem.line} (regenerated)")
        else:
            left.append(problem)
    return left


def _file_order(problem):
    return (FILES.index(problem.path) if problem.path in FILES else len(FILES), problem.line_number or 0)


class _DryRun(Exception):
    pass


def adopt_dms_directory(directory, *, dry_run=False, actor_label=ACTOR, progress=silent):
    """Create what `directory`'s postfix-accounts.cf, dovecot-quotas.cf and postfix-virtual.cf hold and
    Dockspace lacks; returns an AdoptionReport. Idempotent: what is already there is reported, never
    overwritten. dry_run does it all and rolls back. Raises DmsDirectoryError for an unreadable directory.
    progress: a mail.progress factory (a bar for the mailboxes, one for the aliases)."""
    texts, problems = read_dms_directory(directory)
    accounts, forwards, blocks, notes = _plan(texts, problems)
    report = AdoptionReport(directory=str(directory), dry_run=dry_run, notes=notes)
    report.left_alone = files_left_alone(directory)
    problems += files_not_adopted(directory)
    try:
        with transaction.atomic():
            domains = {split_address(a.address)[1] for a in accounts} | {split_address(f.address)[1] for f in forwards}
            _ensure_domains(domains, report, problems, actor_label)
            with progress("mailboxes", len(accounts)) as bar:
                for account in accounts:
                    _adopt_account(account, report, problems, actor_label)
                    bar.update()
            with progress("aliases", len(forwards)) as bar:
                _adopt_forwards(forwards, report, problems, actor_label, bar)
            _check_blocks(blocks, report, problems)
            report.not_adopted = sorted(_set_aside_own_lines(problems, texts, report), key=_file_order)
            audit(
                "mail.dms.import",
                actor_label=actor_label,
                description=(
                    f"Adopted {directory}: {len(report.created_domains)} domain(s), "
                    f"{len(report.created_mailboxes)} mailbox(es), {len(report.created_aliases)} alias(es) created, "
                    f"{len(report.already_present)} already present, {len(report.not_adopted)} line(s) not adopted."
                ),
            )
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return report
