"""Committing a set of DMS files as one: every new file is staged outside the DMS directory's reading path,
a journal listing the renames is written to the history directory, then the renames are done. A writer killed
half-way leaves the journal behind, and the next writer (or any process that syncs, when it starts) rolls it
forward before doing anything else, so DMS never keeps reading a mix of old and new files."""

import contextlib
import json
import os
import time
from pathlib import Path

from mail.dms.files import (
    TEMP_PREFIX,
    UnsafePath,
    WriteError,
    _atomic_write,
    _checked_target,
    _fsync_dir,
    _make_dir,
    _remove_empty_parents,
    _write_error,
)
from mail.dms.history import _write_manifest

JOURNAL_NAME = "journal.json"
# Staging lives in the history directory when it shares the DMS directory's filesystem (rename is atomic only
# within one filesystem). Otherwise in a hidden directory of the DMS directory: DMS reads its files by name and
# never looks there, and the writer refuses to manage any path starting with TEMP_PREFIX.
HISTORY_STAGING_NAME = "staging"
ROOT_STAGING_NAME = f"{TEMP_PREFIX}staging"


def staging_dir(real_root: Path, history: Path) -> Path:
    """The directory new files are staged in: on the DMS directory's filesystem, outside what DMS reads."""
    _make_dir(history, mode=0o700)
    _make_dir(real_root)
    try:
        same_filesystem = os.stat(history).st_dev == os.stat(real_root).st_dev
    except OSError as error:
        raise _write_error(history, error) from error
    directory = history / HISTORY_STAGING_NAME if same_filesystem else real_root / ROOT_STAGING_NAME
    _make_dir(directory, mode=0o700)
    return directory


def clear_staging(real_root: Path, history: Path) -> None:
    """Remove files staged by a writer killed before it wrote its journal (the caller holds the lock)."""
    for directory in (history / HISTORY_STAGING_NAME, real_root / ROOT_STAGING_NAME):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            with contextlib.suppress(OSError):
                os.unlink(directory / name)
    with contextlib.suppress(OSError):
        (real_root / ROOT_STAGING_NAME).rmdir()  # never leave even an empty directory where DMS reads


def commit(history: Path, real_root: Path, staging: Path, renames, removes, manifest: dict[str, str]) -> None:
    """Journal, then apply: renames is [(staged file, path under the root)] in the order to apply them,
    removes is [path], manifest what the history's manifest says once done."""
    journal = {
        "format": 1,
        "root": str(real_root),
        "staging": str(staging),
        "renames": [[Path(staged).name, path] for staged, path in renames],
        "removes": list(removes),
        "manifest": dict(sorted(manifest.items())),
    }
    content = json.dumps(journal, indent=2).encode() + b"\n"
    # Written by rename and fsynced (file and directory): from here on the set is as good as written.
    _atomic_write(history / JOURNAL_NAME, content, 0o600, history, label=f"history {JOURNAL_NAME}")
    try:
        _apply(history, journal)
    except BaseException as error:
        if isinstance(error, Exception):
            # The operating system refused a rename (not a kill): what was renamed stays, the rest is dropped,
            # and the error is reported; the retried sync renders everything again. A kill (or KeyboardInterrupt)
            # keeps the journal for the roll-forward.
            _set_aside(history / JOURNAL_NAME)
            clear_staging(real_root, history)
        raise


def roll_forward(history_dir) -> bool:
    """Finish the set of renames a killed writer journaled; True when there was one. The caller holds the
    writer's lock. A journal that cannot be applied is set aside (renamed journal.json.failed-<time>) and
    WriteError raised: the next write renders everything from the database again, so nothing is stuck."""
    history = Path(history_dir)
    location = history / JOURNAL_NAME
    try:
        journal = json.loads(location.read_bytes())
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as error:
        _set_aside(location)
        message = f"history {JOURNAL_NAME}: unreadable ({error}); set aside, the next sync writes every file"
        raise WriteError(message) from error
    try:
        _apply(history, journal)
    except (WriteError, UnsafePath, KeyError, TypeError, ValueError) as error:
        _set_aside(location)
        raise WriteError(f"rolling forward an interrupted DMS write failed: {error}") from error
    return True


def _set_aside(location: Path) -> None:
    with contextlib.suppress(OSError):
        os.replace(location, location.with_name(f"{JOURNAL_NAME}.failed-{int(time.time())}"))


def _apply(history: Path, journal: dict) -> None:
    """Idempotent: a staged file already renamed is simply gone, a removed file already absent."""
    real_root = Path(journal["root"])
    staging = Path(journal["staging"])
    touched = set()
    for name, path in journal["renames"]:
        if "/" in name or not name.startswith(TEMP_PREFIX):
            raise UnsafePath(f"{name!r}: not a staged file name")
        target = _checked_target(real_root, path)
        source = staging / name
        if not os.path.lexists(source):
            continue  # renamed before the kill
        _make_dir(target.parent, label=path)
        try:
            os.replace(source, target)
        except OSError as error:
            raise _write_error(path, error) from error
        touched.add(target.parent)
    emptied = []
    for path in journal["removes"]:
        try:
            target = _checked_target(real_root, path)
        except UnsafePath:
            continue  # a symlink now points it outside the root: never delete outside
        try:
            target.unlink()
        except FileNotFoundError:
            continue
        except OSError as error:
            raise _write_error(path, error) from error
        touched.add(target.parent)
        emptied.append(target.parent)
    try:
        for directory in touched:
            _fsync_dir(directory)
        if touched:
            _fsync_dir(staging)
    except OSError as error:
        raise _write_error(real_root, error) from error
    for directory in emptied:
        _remove_empty_parents(real_root, directory)
    _write_manifest(history, journal["manifest"])
    try:
        (history / JOURNAL_NAME).unlink()
        _fsync_dir(history)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise _write_error(f"history {JOURNAL_NAME}", error) from error
