"""Previous versions of DMS files kept in the history directory (listing, storing, choosing one to restore),
and the manifest of the files the writer manages."""

import contextlib
import dataclasses
import datetime
import json
import os
import re
import time
from pathlib import Path

from mail.dms.files import (
    CorruptVersion,
    UnknownVersion,
    _atomic_write,
    _check_relative,
    _digest_of_file,
    _file_chunks,
    _install,
    _read_or_none,
    _staged,
    _write_error,
)

MANIFEST_NAME = "manifest.json"

_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
_VERSION_NAME = re.compile(r"(?P<stamp>\d{8}T\d{12}Z)-(?P<sha>[0-9a-f]{12})")


@dataclasses.dataclass(frozen=True)
class Version:
    """One previous version of a file kept in the history directory."""

    path: str
    stored_at: datetime.datetime
    sha256: str
    size: int
    location: Path


def list_versions(history_dir, path: str) -> list[Version]:
    """The stored previous versions of path, newest first. sha256 is computed from the stored bytes."""
    _check_relative(path)
    directory = Path(history_dir) / _history_key(path)
    versions = []
    for name in _version_names(directory):
        location = directory / name
        found = _digest_of_file(location, location)
        if found is None:
            continue  # pruned by a writer since the listing
        stored_at = datetime.datetime.strptime(_VERSION_NAME.fullmatch(name)["stamp"], _TIMESTAMP_FORMAT)
        versions.append(
            Version(
                path=path,
                stored_at=stored_at.replace(tzinfo=datetime.UTC),
                sha256=found[0],
                size=found[1],
                location=location,
            )
        )
    return versions


def _version_prefix(path: str, sha256_prefix: str) -> str:
    """The normalised checksum prefix that chooses a version; refused unless it is 4 to 64 hex digits."""
    prefix = sha256_prefix.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{4,64}", prefix):
        raise UnknownVersion(f"{path}: a version is chosen by 4 to 64 hex digits of its sha256, not {sha256_prefix!r}")
    return prefix


def _matching_version(history: Path, path: str, prefix: str) -> Version:
    """The one stored version of path whose sha256 starts with prefix, refused when ambiguous or corrupt."""
    matches = [v for v in list_versions(history, path) if v.sha256.startswith(prefix)]
    if not matches:
        raise UnknownVersion(f"{path}: no stored version has a sha256 starting with {prefix}")
    if len({v.sha256 for v in matches}) > 1:
        raise UnknownVersion(f"{path}: more than one stored version starts with {prefix}; give more digits")
    version = matches[0]
    if not version.sha256.startswith(_VERSION_NAME.fullmatch(version.location.name)["sha"]):
        raise CorruptVersion(f"{path}: the stored copy {version.location} does not match its checksum; not restored")
    return version


def _history_key(path: str) -> str:
    return path.replace("/", "__")


def _version_names(directory: Path) -> list[str]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    except OSError as error:
        raise _write_error(directory, error) from error
    return sorted((name for name in names if _VERSION_NAME.fullmatch(name)), reverse=True)


def _keep(history: Path, path: str, source: Path, keep: int) -> None:
    """Copy source, streamed, as the newest version of path, then prune to the newest `keep`."""
    if keep == 0:
        return
    directory = history / _history_key(path)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    names = _version_names(directory)
    stamp = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    if names:
        # Names sort by time; a clock that stands still or steps back must not reorder them.
        newest = datetime.datetime.strptime(_VERSION_NAME.fullmatch(names[0])["stamp"], _TIMESTAMP_FORMAT)
        stamp = max(stamp, newest + datetime.timedelta(microseconds=1))
    label = f"history of {path}"
    # The name carries the checksum of the bytes actually copied, which is only known once they are.
    with _staged(label, _file_chunks(path, source), directory) as staged:
        name = f"{stamp.strftime(_TIMESTAMP_FORMAT)}-{staged.sha256[:12]}"
        # History copies may be private keys or relay passwords: readable by the owner only.
        _install(staged, directory / name, 0o600, label=label)
    for stale in _version_names(directory)[keep:]:
        with contextlib.suppress(FileNotFoundError):
            (directory / stale).unlink()


def _read_manifest(history: Path, *, repair: bool = False) -> dict[str, str]:
    """The files this writer manages, path -> sha256 as written. An unreadable manifest is set aside, not fatal:
    it only decides which files to remove, and blocking every sync over it would be worse."""
    location = history / MANIFEST_NAME
    try:
        data = json.loads(location.read_bytes())
        files = data["files"]
        if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise ValueError("files is not a mapping of path to checksum")
        return dict(files)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError):
        if repair:
            with contextlib.suppress(OSError):
                os.replace(location, location.with_name(f"{MANIFEST_NAME}.unreadable-{int(time.time())}"))
        return {}


def _write_manifest(history: Path, files: dict[str, str]) -> None:
    content = json.dumps({"format": 1, "files": dict(sorted(files.items()))}, indent=2).encode() + b"\n"
    if _read_or_none(MANIFEST_NAME, history / MANIFEST_NAME) != content:
        _atomic_write(history / MANIFEST_NAME, content, 0o600, history, label=f"history {MANIFEST_NAME}")
