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
    _fsync_dir,
    _install,
    _is_recursively_watched,
    _is_top_level_cf,
    _make_dir,
    _read_or_none,
    _remove_empty_parents,
    _remove_stale_temp_files,
    _sha256,
    _sha256_of_file,
    _staged,
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
    _write_manifest,
    list_versions,
)

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_FILE_MODE",
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


def write_files(
    root,
    files: Mapping[str, bytes | ContentProducer],
    *,
    history_dir,
    keep: int = 10,
    file_mode: Callable[[str], int] | None = None,
    dry_run: bool = False,
    lock_timeout: float = 30,
    redact: Callable[[str, str], str] | None = None,
) -> WriteReport:
    """Make the files under root hold exactly these bytes, in the order given, and remove managed files not passed.

    A content is bytes or a ContentProducer: a zero-argument callable returning an iterable of bytes chunks, which
    is streamed to a temp file while hashed, so memory stays flat however large the file (a write calls it once;
    a dry run calls it again only to diff a changed file). A producer that yields nothing raises EmptyContent and
    one that raises stops the write with its own exception; either way that file keeps its old bytes.
    Every path and content is checked before anything is written. A file whose bytes already match is not
    touched (DMS hashes files; an untouched file triggers no reload), but its mode is corrected in place.
    Top-level *.cf files are never removed: DMS ignores a deleted file, so the caller passes a header-only one.
    In a dry run nothing is written and `diffs` holds a unified diff per changed or removed file; files whose
    mode is not world-readable (secrets) get a diff that names the change without showing the contents, and
    `redact(path, line)`, if given, rewrites each line of the other files before diffing (e.g. to hide hashes).
    """
    if keep < 0:
        raise ValueError("keep must be 0 or more")
    mode_of = file_mode or (lambda _path: DEFAULT_FILE_MODE)
    real_root = Path(os.path.realpath(root))
    history = Path(history_dir)
    targets = {}
    for path, content in files.items():
        targets[path] = _checked_target(real_root, path)
        _check_content(path, content)
    if dry_run:
        return _plan(real_root, history, files, targets, mode_of, redact)
    with dms_lock(history / LOCK_NAME, timeout=lock_timeout):
        _remove_stale_temp_files(real_root, history)
        _make_dir(real_root)
        manifest = _read_manifest(history, repair=True)
        report = WriteReport()
        try:
            for path, content in files.items():
                is_changed, digest = _put(real_root, history, path, targets[path], content, mode_of(path), keep)
                (report.changed if is_changed else report.unchanged).append(path)
                report.checksums[path] = manifest[path] = digest
            for path in sorted(set(manifest) - set(files)):
                if _is_top_level_cf(path):
                    continue
                if _remove(real_root, history, path, keep):
                    report.removed.append(path)
                del manifest[path]
        except BaseException:
            # Files already replaced stay managed; the original error is the one worth reporting.
            with contextlib.suppress(WriterError):
                _write_manifest(history, manifest)
            raise
        _write_manifest(history, manifest)
    return report


def read_files(root, paths) -> dict[str, bytes | None]:
    """The bytes on disk of each path under root, None for a missing file (for drift scanning)."""
    real_root = Path(os.path.realpath(root))
    return {path: _read_or_none(path, _checked_target(real_root, path)) for path in paths}


def restore_version(
    root,
    history_dir,
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
        version = _matching_version(history, path, prefix)
        if file_mode is not None:
            mode = file_mode(path)
        else:
            mode = _current_mode(target) or DEFAULT_FILE_MODE
        _remove_stale_temp_files(real_root, history)
        _make_dir(real_root)
        manifest = _read_manifest(history, repair=True)
        content = functools.partial(_file_chunks, version.location, version.location)
        is_changed, digest = _put(real_root, history, path, target, content, mode, keep)
        manifest[path] = digest
        _write_manifest(history, manifest)
    report = WriteReport(checksums={path: digest})
    (report.changed if is_changed else report.unchanged).append(path)
    return report


# Writing --------------------------------------------------------------------------------------------------


def _put(real_root: Path, history: Path, path: str, target: Path, content, mode: int, keep: int) -> tuple[bool, str]:
    """Make target hold content unless it already does; (whether the bytes changed, sha256 of the bytes now)."""
    old_sha = _sha256_of_file(path, target)
    if isinstance(content, bytes | bytearray) and old_sha == _sha256(content):
        # Bytes in memory can be compared before staging anything, so an unchanged file costs no write at all.
        _fix_mode(path, target, mode)
        return False, old_sha
    _make_dir(target.parent, label=path)
    temp_dir = real_root if _is_recursively_watched(real_root, path, target) else target.parent
    with _staged(path, _chunks(path, content), temp_dir) as staged:
        if staged.sha256 == old_sha:
            _fix_mode(path, target, mode)
            return False, staged.sha256
        # The history copy is taken only once the new bytes are safely on disk, so a failed write leaves no trace.
        keep_old = (lambda: _keep(history, path, target, keep)) if old_sha is not None else None
        _install(staged, target, mode, label=path, before_replace=keep_old)
    return True, staged.sha256


def _fix_mode(path: str, target: Path, mode: int) -> None:
    if _current_mode(target) != mode:
        try:
            os.chmod(target, mode)
        except OSError as error:
            raise _write_error(path, error) from error


def _remove(real_root: Path, history: Path, path: str, keep: int) -> bool:
    """Remove a formerly managed file, keeping its last version; False when it was already gone or unsafe."""
    try:
        target = _checked_target(real_root, path)
    except UnsafePath:
        return False  # a symlink now points it outside the root: forget it, never delete outside
    if not os.path.lexists(target):
        return False
    _keep(history, path, target, keep)
    try:
        target.unlink()
        _fsync_dir(target.parent)
    except FileNotFoundError:
        return False
    except OSError as error:
        raise _write_error(path, error) from error
    _remove_empty_parents(real_root, target.parent)
    return True


# Dry run --------------------------------------------------------------------------------------------------


def _plan(real_root: Path, history: Path, files, targets, mode_of, redact=None) -> WriteReport:
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
        if not mode_of(path) & stat.S_IROTH:
            report.diffs[path] = _secret_diff(path, old_sha, new_sha)
        else:
            new = b"".join(_chunks(path, content))
            report.diffs[path] = _diff(path, _read_or_none(path, targets[path]), new, redact=redact)
    for path in sorted(set(_read_manifest(history)) - set(files)):
        if _is_top_level_cf(path):
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


def _diff(path: str, old: bytes | None, new: bytes | None, *, redact=None) -> str:
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
