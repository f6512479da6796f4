"""The DMS config directory writer: atomic, change-only, one-writer-at-a-time file writes from plain paths and
bytes (or streamed chunks), with previous versions kept in a history directory (see files.py and history.py)."""

import contextlib
import dataclasses
import difflib
import functools
import hashlib
import os
import stat
import tempfile  # noqa: F401 (kept so tests can patch writer.tempfile.mkstemp, which files.py calls)
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import cast

from mail.dms.files import (
    CHUNK_SIZE,
    DEFAULT_FILE_MODE,
    LOCK_NAME,
    RECURSIVELY_WATCHED_DIRS,
    TEMP_PREFIX,
    ContentProducer,
    EmptyContent,
    LockTimeout,
    UnsafePath,
    WriteError,
    WriterError,
    _check_content,
    _checked_target,
    _chunks,
    _current_mode,
    _file_chunks,
    _is_top_level_file,
    _make_dir,
    _read_or_none,
    _remove_stale_temp_files,
    _sha256,
    _sha256_of_file,
    _stage,
    _write_error,
    dms_lock,
)
from mail.dms.history import (
    MANIFEST_NAME,
    CorruptVersion,
    UnknownVersion,
    Version,
    _keep,
    _matching_version,
    _read_manifest,
    _version_prefix,
    list_versions,
)
from mail.dms.journal import JOURNAL_NAME, clear_staging, commit, staging_dir
from mail.dms.journal import roll_forward as _roll_forward

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_FILE_MODE",
    "JOURNAL_NAME",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "RECURSIVELY_WATCHED_DIRS",
    "TEMP_PREFIX",
    "ContentProducer",
    "CorruptVersion",
    "EmptyContent",
    "LockTimeout",
    "UnknownVersion",
    "UnsafePath",
    "Version",
    "WriteError",
    "WriteReport",
    "WriterError",
    "dms_lock",
    "list_versions",
    "read_files",
    "restore_version",
    "roll_forward",
    "write_files",
]


@dataclasses.dataclass
class WriteReport:
    """What a write did (or, for a dry run, would do). checksums: sha256 of each file passed, as on disk after."""

    changed: list[str] = dataclasses.field(default_factory=list)
    removed: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    checksums: dict[str, str] = dataclasses.field(default_factory=dict)
    diffs: dict[str, str] = dataclasses.field(default_factory=dict)
    skipped: list[str] = dataclasses.field(default_factory=list)  # values the renderer left out (set by the sync)


def write_files(
    root: str | os.PathLike[str],
    files: Mapping[str, bytes | ContentProducer],
    *,
    history_dir: str | os.PathLike[str],
    keep: int = 10,
    file_mode: Callable[[str], int] | None = None,
    dry_run: bool = False,
    lock_timeout: float = 30,
    redact: Callable[[str, str], str] | None = None,
    is_secret: Callable[[str], bool] | None = None,
) -> WriteReport:
    """Make the files under root hold exactly these bytes, in the order given, and remove managed files not passed.

    The set is committed as one: every changed file is first staged outside what DMS reads (see journal.py),
    then a journal of the renames is written to the history directory, then the renames are done. A failure
    before the journal leaves every file as it was; a writer killed after it is rolled forward by the next
    write (or roll_forward). Renames follow the order given (so postfix-accounts.cf, sorted before
    postfix-virtual.cf, gains a new mailbox before any alias names it).
    A content is bytes or a ContentProducer: a zero-argument callable returning an iterable of bytes chunks, which
    is streamed to a staged file while hashed, so memory stays flat however large the file (a write calls it once;
    a dry run calls it again only to diff a changed file). A producer that yields nothing raises EmptyContent and
    one that raises stops the write with its own exception; either way no file is replaced.
    Every path and content is checked before anything is written. A file whose bytes already match is not
    touched (DMS hashes files; an untouched file triggers no reload), but its mode is corrected in place.
    Top-level files (*.cf, user-patches.sh) are never removed: DMS ignores a deleted *.cf file and a file left alone
    may be the operator's, so the caller passes a header-only (neutral) one instead.
    In a dry run nothing is written and `diffs` holds a unified diff per changed or removed file; secret files
    (`is_secret(path)`, by default: a mode that is not world-readable) get a diff that names the change without
    showing the contents, and
    `redact(path, line)`, if given, rewrites each line of the other files before diffing (e.g. to hide hashes).
    """
    if keep < 0:
        raise ValueError("keep must be 0 or more")
    mode_of = file_mode or (lambda _path: DEFAULT_FILE_MODE)
    real_root = Path(os.path.realpath(root))
    history = Path(history_dir)
    targets: dict[str, Path] = {}
    for path, content in files.items():
        targets[path] = _checked_target(real_root, path)
        _check_content(path, content)
    if dry_run:
        secret = is_secret or (lambda path: not mode_of(path) & stat.S_IROTH)
        return _plan(real_root, history, files, targets, secret, redact)
    with dms_lock(history / LOCK_NAME, timeout=lock_timeout):
        _prepare(real_root, history)
        staging = staging_dir(real_root, history)
        manifest = _read_manifest(history, repair=True)
        report = WriteReport()
        staged: list[_Change] = []
        try:
            for path, content in files.items():
                change = _stage_if_changed(staging, path, targets[path], content, mode_of(path))
                (report.changed if change.location else report.unchanged).append(path)
                report.checksums[path] = change.sha256
                if change.location:
                    staged.append(change)
            gone = [path for path in sorted(set(manifest) - set(files)) if not _is_top_level_file(path)]
            report.removed = [path for path in gone if _removable(real_root, path)]
            # Previous versions are kept before anything is replaced, so a rollback always has them.
            for change in staged:
                if change.old_sha is not None:
                    _keep(history, change.path, change.target, keep)
            for path in report.removed:
                _keep(history, path, _checked_target(real_root, path), keep)
        except BaseException:
            for change in staged:
                with contextlib.suppress(OSError):
                    os.unlink(cast(Path, change.location))  # staged: each has its location
            raise
        new_manifest = {path: sha for path, sha in manifest.items() if path not in gone} | report.checksums
        if staged or report.removed or new_manifest != manifest:
            commit(history, real_root, staging, [(c.location, c.path) for c in staged], report.removed, new_manifest)
        clear_staging(real_root, history)
    return report


def read_files(root: str | os.PathLike[str], paths: Iterable[str]) -> dict[str, bytes | None]:
    """The bytes on disk of each path under root, None for a missing file (for drift scanning)."""
    real_root = Path(os.path.realpath(root))
    return {path: _read_or_none(path, _checked_target(real_root, path)) for path in paths}


def roll_forward(history_dir: str | os.PathLike[str], *, lock_timeout: float = 30) -> bool:
    """Finish a write that was killed half-way, under the writer's lock; True when there was one to finish.
    Every write does this first; a process that syncs calls it when it starts."""
    history = Path(history_dir)
    if not (history / JOURNAL_NAME).exists():
        return False
    with dms_lock(history / LOCK_NAME, timeout=lock_timeout):
        return _roll_forward(history)


def restore_version(
    root: str | os.PathLike[str],
    history_dir: str | os.PathLike[str],
    path: str,
    sha256_prefix: str,
    *,
    keep: int = 10,
    file_mode: Callable[[str], int] | None = None,
    lock_timeout: float = 30,
) -> WriteReport:
    """Put back the stored version of path whose checksum starts with sha256_prefix, keeping the current one first.

    The file keeps its current mode unless file_mode is given. A copy whose bytes do not match the checksum
    in its name is refused. The next write_files will of course write what the database says again.
    """
    prefix = _version_prefix(path, sha256_prefix)
    real_root = Path(os.path.realpath(root))
    target = _checked_target(real_root, path)
    history = Path(history_dir)
    with dms_lock(history / LOCK_NAME, timeout=lock_timeout):
        _prepare(real_root, history)
        version = _matching_version(history, path, prefix)
        if file_mode is not None:
            mode = file_mode(path)
        else:
            mode = _current_mode(target) or DEFAULT_FILE_MODE
        staging = staging_dir(real_root, history)
        manifest = _read_manifest(history, repair=True)
        content = functools.partial(_file_chunks, version.location, version.location)
        change = _stage_if_changed(staging, path, target, content, mode)
        try:
            if change.location and change.old_sha is not None:
                _keep(history, path, target, keep)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(cast(Path, change.location))  # _keep, all that raises here, runs for a staged change only
            raise
        new_manifest = manifest | {path: change.sha256}
        if change.location or new_manifest != manifest:
            renames = [(change.location, path)] if change.location else []
            commit(history, real_root, staging, renames, [], new_manifest)
        clear_staging(real_root, history)
    report = WriteReport(checksums={path: change.sha256})
    (report.changed if change.location else report.unchanged).append(path)
    return report


# Writing --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Change:
    path: str
    target: Path
    sha256: str
    old_sha: str | None
    location: Path | None = None  # the staged new bytes; None when the file already holds them


def _prepare(real_root: Path, history: Path) -> None:
    """Under the lock, before anything else: finish a killed write, then clear what a killed writer left."""
    _roll_forward(history)
    clear_staging(real_root, history)
    _remove_stale_temp_files(real_root, history)
    _make_dir(real_root)


def _stage_if_changed(staging: Path, path: str, target: Path, content: bytes | ContentProducer, mode: int) -> _Change:
    """Stage the new bytes of path unless target already holds them (then only its mode is corrected)."""
    if target.is_dir():
        raise WriteError(f"{path}: Is a directory")
    old_sha = _sha256_of_file(path, target)
    if isinstance(content, bytes | bytearray) and old_sha == _sha256(content):
        # Bytes in memory can be compared before staging anything, so an unchanged file costs no write at all.
        _fix_mode(path, target, mode)
        return _Change(path, target, old_sha, old_sha)
    # Created now, so a parent that cannot be a directory fails the whole set before anything is replaced.
    _make_dir(target.parent, label=path)
    location, sha = _stage(path, _chunks(path, content), staging, mode)
    if sha == old_sha:
        with contextlib.suppress(OSError):
            os.unlink(location)
        _fix_mode(path, target, mode)
        return _Change(path, target, sha, old_sha)
    return _Change(path, target, sha, old_sha, location)


def _removable(real_root: Path, path: str) -> bool:
    """A formerly managed file that still exists under the root (a symlink leading outside is forgotten)."""
    try:
        target = _checked_target(real_root, path)
    except UnsafePath:
        return False
    return os.path.lexists(target) and not target.is_dir()


def _fix_mode(path: str, target: Path, mode: int) -> None:
    if _current_mode(target) != mode:
        try:
            os.chmod(target, mode)
        except OSError as error:
            raise _write_error(path, error) from error


# Dry run --------------------------------------------------------------------------------------------------


def _plan(
    real_root: Path,
    history: Path,
    files: Mapping[str, bytes | ContentProducer],
    targets: Mapping[str, Path],
    is_secret: Callable[[str], bool],
    redact: Callable[[str, str], str] | None = None,
) -> WriteReport:
    """Only a changed file is read whole (for difflib), and a secret one not even then: drift is rare."""
    report = WriteReport()
    for path, content in files.items():
        old_sha = _sha256_of_file(path, targets[path])
        new_sha = _sha256(content) if not callable(content) else _sha256_of_chunks(_chunks(path, content))
        report.checksums[path] = new_sha
        if old_sha == new_sha:
            report.unchanged.append(path)
            continue
        report.changed.append(path)
        if is_secret(path):
            report.diffs[path] = _secret_diff(path, old_sha, new_sha)
        else:
            new = b"".join(_chunks(path, content))
            report.diffs[path] = _diff(path, _read_or_none(path, targets[path]), new, redact=redact)
    for path in sorted(set(_read_manifest(history)) - set(files)):
        if _is_top_level_file(path):
            continue
        try:
            target = _checked_target(real_root, path)
        except UnsafePath:
            continue
        old_sha = _sha256_of_file(path, target)
        if old_sha is None:
            continue
        report.removed.append(path)
        if not (_current_mode(target) or DEFAULT_FILE_MODE) & stat.S_IROTH:
            report.diffs[path] = _secret_diff(path, old_sha, None)
        else:
            report.diffs[path] = _diff(path, _read_or_none(path, target), None, redact=redact)
    return report


def _sha256_of_chunks(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _secret_diff(path: str, old_sha: str | None, new_sha: str | None) -> str:
    """Names the change of a file that is not world-readable without showing a byte of it."""
    from_name = f"a/{path}" if old_sha is not None else "/dev/null"
    to_name = f"b/{path}" if new_sha is not None else "/dev/null"
    old_sum, new_sum = (old_sha or "none")[:12], (new_sha or "none")[:12]
    return f"--- {from_name}\n+++ {to_name}\n@@ secret file, contents not shown: sha256 {old_sum} -> {new_sum} @@\n"


def _diff(path: str, old: bytes | None, new: bytes | None, *, redact: Callable[[str, str], str] | None = None) -> str:
    """A unified diff, old on disk versus new; /dev/null stands for a missing side."""
    from_name = f"a/{path}" if old is not None else "/dev/null"
    to_name = f"b/{path}" if new is not None else "/dev/null"
    old_lines, new_lines = _diff_lines(old), _diff_lines(new)
    if redact is not None:
        old_lines = [redact(path, line) for line in old_lines]
        new_lines = [redact(path, line) for line in new_lines]
    return "".join(difflib.unified_diff(old_lines, new_lines, fromfile=from_name, tofile=to_name))


def _diff_lines(content: bytes | None) -> list[str]:
    if content is None:
        return []
    # Split on LF only: str.splitlines would also break on form feeds and Unicode separators.
    *complete, last = content.decode("utf-8", errors="replace").split("\n")
    lines = [line + "\n" for line in complete]
    if last:
        lines.append(last + "\n\\ No newline at end of file\n")
    return lines
