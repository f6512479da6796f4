"""Low-level file primitives for the DMS writer: path checks, streamed temp-file staging and atomic install,
checksums, fsync, and the lock that keeps to one writer at a time."""

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

ContentProducer = Callable[[], Iterable[bytes]]
"""Streamed file content: each call starts a fresh iteration, so a dry run can read it twice to build a diff."""

TEMP_PREFIX = ".dockspace-tmp-"
LOCK_NAME = "writer.lock"
DEFAULT_FILE_MODE = 0o644
# Files are streamed, hashed and copied this many bytes at a time, so memory does not grow with file size.
CHUNK_SIZE = 2**20
# Small chunks (a producer may yield line by line) are gathered into writes of this size; larger ones go straight.
_WRITE_BUFFER_SIZE = 2**16
# DMS reloads Rspamd on any change anywhere under rspamd/, so a temp file must never appear there.
RECURSIVELY_WATCHED_DIRS = ("rspamd",)
_LOCK_POLL_SECONDS = 0.05


class WriterError(Exception):
    """Base of every error the DMS writer raises; its message is fit to show an operator."""


class UnsafePath(WriterError, ValueError):
    """A relative path that is absolute, climbs out with "..", holds a NUL or resolves outside the root."""


class EmptyContent(WriterError, ValueError):
    """Zero bytes: DMS rewrites an empty file itself (it appends a newline), so it is never written."""


class WriteError(WriterError):
    """The operating system refused a read or write; the message names the path and the reason."""


class LockTimeout(WriterError, TimeoutError):
    """Another writer held the lock for longer than the timeout."""


class UnknownVersion(WriterError, LookupError):
    """No stored version (or more than one) matches the requested checksum prefix."""


class CorruptVersion(WriterError):
    """A stored version's bytes no longer match the checksum in its name."""


@contextlib.contextmanager
def dms_lock(lock_path, timeout: float = 30) -> Iterator[None]:
    """Hold an exclusive flock on lock_path: one writer at a time across processes on this host."""
    lock_path = Path(lock_path)
    _make_dir(lock_path.parent, mode=0o700)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise _write_error(lock_path, error) from error
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"another Dockspace process has been writing the DMS files for over {timeout:g}s "
                        f"(lock {lock_path}); try again later"
                    ) from None
                time.sleep(_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# Path and content checks ----------------------------------------------------------------------------------


def _check_relative(path: str) -> None:
    if not isinstance(path, str) or not path:
        raise UnsafePath(f"{path!r}: a file path must be a non-empty string")
    if "\0" in path:
        raise UnsafePath(f"{path!r}: a file path must not contain a NUL character")
    if path.startswith("/") or os.path.isabs(path):
        raise UnsafePath(f"{path!r}: a file path must be relative to the DMS config directory")
    for part in path.split("/"):
        if part == "..":
            raise UnsafePath(f"{path!r}: a file path must not contain '..'")
        if part in ("", "."):
            raise UnsafePath(f"{path!r}: a file path must not contain empty or '.' parts")
        if part.startswith(TEMP_PREFIX):
            raise UnsafePath(f"{path!r}: names starting with {TEMP_PREFIX} are the writer's temp files")


def _checked_target(real_root: Path, path: str) -> Path:
    """The real location of path under real_root, following symlinks; refused when it lands outside."""
    _check_relative(path)
    target = Path(os.path.realpath(real_root / path))
    if target == real_root or not target.is_relative_to(real_root):
        raise UnsafePath(f"{path!r}: resolves to {target}, outside the DMS config directory {real_root}")
    return target


def _check_content(path: str, content) -> None:
    """Bytes are checked whole here; a producer can only be checked as it is streamed, by _chunks."""
    if callable(content):
        return
    if not isinstance(content, bytes | bytearray):
        raise TypeError(
            f"{path}: content must be bytes or a callable returning bytes chunks, not {type(content).__name__}"
        )
    if not content:
        raise _empty_content(path)


def _empty_content(path: str) -> EmptyContent:
    return EmptyContent(f"{path}: refusing to write zero bytes (write a comment header instead)")


def _chunks(path: str, content) -> Iterator[bytes]:
    """The chunks of bytes or of one fresh run of a producer; a producer that yields no byte raises EmptyContent."""
    if not callable(content):
        yield content
        return
    is_empty = True
    for chunk in content():
        if not isinstance(chunk, bytes | bytearray):
            raise TypeError(f"{path}: a content producer must yield bytes, not {type(chunk).__name__}")
        if chunk:
            is_empty = False
            yield chunk
    if is_empty:
        raise _empty_content(path)


def _is_top_level_file(path: str) -> bool:
    """A file directly in the config directory: DMS reads it by name (a *.cf file, user-patches.sh)."""
    return "/" not in path


def _is_recursively_watched(real_root: Path, path: str, target: Path) -> bool:
    first_parts = {path.split("/")[0], target.relative_to(real_root).parts[0]}
    return any(part in RECURSIVELY_WATCHED_DIRS for part in first_parts)


# Staging, installing and reading --------------------------------------------------------------------------


@dataclasses.dataclass
class _Staged:
    name: str
    file: BinaryIO
    sha256: str = ""
    is_installed: bool = False


@contextlib.contextmanager
def _staged(label, chunks: Iterable[bytes], temp_dir: Path) -> Iterator[_Staged]:
    """Stream chunks into a new temp file in temp_dir (the target's filesystem), hashing them on the way.

    The temp file is removed on leaving, unless _install renamed it; errors raised by chunks pass through as they are.
    """
    try:
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=temp_dir)
    except OSError as error:
        raise _write_error(label, error) from error
    staged = _Staged(name, os.fdopen(fd, "wb", buffering=_WRITE_BUFFER_SIZE))
    try:
        staged.sha256 = _write_hashed(label, chunks, staged.file)
        yield staged
    finally:
        with contextlib.suppress(OSError):
            staged.file.close()
        if not staged.is_installed:
            with contextlib.suppress(OSError):
                os.unlink(name)


def _write_hashed(label, chunks: Iterable[bytes], file: BinaryIO) -> str:
    # A function of its own so that no frame holds on to the last chunk once it is written.
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
        _os_call(label, file.write, chunk)
    _os_call(label, file.flush)
    return digest.hexdigest()


def _install(staged: _Staged, target: Path, mode: int, *, label, before_replace=None) -> None:
    """fsync the staged file with its final mode, rename it over target, fsync the directories."""
    try:
        os.fchmod(staged.file.fileno(), mode)
        os.fsync(staged.file.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(staged.name, target)
        staged.is_installed = True
        _fsync_dir(target.parent)
        if Path(staged.name).parent != target.parent:
            _fsync_dir(Path(staged.name).parent)
    except OSError as error:
        raise _write_error(label, error) from error


def _stage(label, chunks: Iterable[bytes], staging: Path, mode: int) -> tuple[Path, str]:
    """Stream chunks into a new file in the staging directory, with its final mode, fsynced and closed:
    (its location, sha256 of its bytes). The file is removed again if anything fails; errors raised by
    chunks pass through as they are."""
    with _staged(label, chunks, staging) as staged:
        try:
            os.fchmod(staged.file.fileno(), mode)
            os.fsync(staged.file.fileno())
            staged.file.close()
        except OSError as error:
            raise _write_error(label, error) from error
        staged.is_installed = True  # kept: the caller renames it into place, or removes it
    return Path(staged.name), staged.sha256


def _atomic_write(target: Path, content: bytes, mode: int, temp_dir: Path, *, label) -> None:
    with _staged(label, [content], temp_dir) as staged:
        _install(staged, target, mode, label=label)


def _make_dir(directory: Path, *, mode: int = 0o777, label=None) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=mode)
    except OSError as error:
        raise _write_error(label or directory, error) from error


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_empty_parents(real_root: Path, directory: Path) -> None:
    while directory != real_root and directory.is_relative_to(real_root):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def _remove_stale_temp_files(real_root: Path, history: Path) -> None:
    """Temp files left by a writer that was killed; safe to delete because the caller holds the lock."""
    for top in (real_root, history):
        for dirpath, _dirnames, filenames in os.walk(top):
            for name in filenames:
                if name.startswith(TEMP_PREFIX):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(dirpath, name))


def _file_chunks(label, location: Path) -> Iterator[bytes]:
    with _os_call(label, open, location, "rb") as file:
        yield from _read_chunks(label, file)


def _read_chunks(label, file: BinaryIO) -> Iterator[bytes]:
    while chunk := _os_call(label, file.read, CHUNK_SIZE):
        yield chunk


def _digest_of_file(label, location: Path) -> tuple[str, int] | None:
    """(sha256, size) of a file read CHUNK_SIZE at a time; None when it does not exist."""
    try:
        file = open(location, "rb")  # noqa: SIM115 (closed by the with below; the open alone may fail)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise _write_error(label, error) from error
    digest, size = hashlib.sha256(), 0
    with file:
        for chunk in _read_chunks(label, file):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _sha256_of_file(label, location: Path) -> str | None:
    found = _digest_of_file(label, location)
    return found[0] if found else None


def _read_or_none(label: str, target: Path) -> bytes | None:
    try:
        return target.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise _write_error(label, error) from error


def _current_mode(target: Path) -> int | None:
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return None


def _write_error(label, error: OSError) -> WriteError:
    return WriteError(f"{label}: {error.strerror or error}")


def _os_call(label, call, *args):
    try:
        return call(*args)
    except OSError as error:
        raise _write_error(label, error) from error


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
