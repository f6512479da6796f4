"""Dockspace's own files are private to its user: directories 0700, files 0600, whatever the umask.

The data directory holds the SQLite database (password hashes, TOTP seeds, DKIM and OIDC private
keys), the development secret key, the outbox (reset links) and the task queue."""

import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path):
    """Create PATH (and missing parents) as 0700; an existing directory keeps its mode (check W003 says
    when it is looser). Returns the Path."""
    path = Path(path)
    if not path.is_dir():
        old = os.umask(0o077)  # the parents created on the way are private too
        try:
            path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        finally:
            os.umask(old)
    return path


def private_file_create(path):
    """Create PATH empty as 0600 if it does not exist (never truncates). Returns True if it created it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def private_file_write(path, text):
    """Write TEXT to a new file PATH that only this user can read (created 0600, never world-readable
    for an instant). Replaces an existing file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def loose_modes(paths):
    """[(path, mode)] of the existing PATHS that their group or others may read, write or enter."""
    found = []
    for path in paths:
        try:
            mode = Path(path).stat().st_mode & 0o777
        except OSError:
            continue
        if mode & 0o077:
            found.append((Path(path), mode))
    return found
