"""A mail log written and rotated as in DMS, for the follower's tests and its bench: a writer that appends as a
syslog daemon does (one O_APPEND descriptor, kept open until told to reopen), and the real logrotate run on it with
DMS's settings (weekly in DMS; forced here): compress, delaycompress, copytruncate, rotate 4."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

LOGROTATE = shutil.which("logrotate") or next(
    (path for path in ("/usr/sbin/logrotate", "/sbin/logrotate") if os.access(path, os.X_OK)), None
)


class Syslog:
    """Appends to `path` through one descriptor opened with O_APPEND, like rsyslog: after a copytruncate it writes
    at the new end of the truncated file; after a rename it goes on writing to the renamed file until reopen()."""

    def __init__(self, path):
        self.path = Path(path)
        self.fd = None
        self.reopen()

    def reopen(self):
        if self.fd is not None:
            os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def write(self, text):
        data = text.encode() if isinstance(text, str) else text
        while data:
            data = data[os.write(self.fd, data) :]

    def lines(self, *lines):
        self.write("".join(f"{line}\n" for line in lines))

    def close(self):
        os.close(self.fd)
        self.fd = None


def logrotate(path, *, rotate=4, delaycompress=True, compress=True, copytruncate=True):
    """Rotate `path` now with the real logrotate: DMS's settings by default; copytruncate=False renames the file
    and creates an empty one (logrotate's `create`). Skips the test when logrotate is not installed."""
    if LOGROTATE is None:
        pytest.skip("logrotate is not installed (apt-get install logrotate)")
    path = Path(path)
    options = [f"rotate {rotate}", "missingok"]
    options.append("compress" if compress else "nocompress")
    if compress and delaycompress:
        options.append("delaycompress")
    options.append("copytruncate" if copytruncate else "create")
    config = path.parent / f".{path.name}.logrotate.conf"
    config.write_text(f"{path} {{\n" + "".join(f"  {option}\n" for option in options) + "}\n")
    config.chmod(0o644)
    state = path.parent / f".{path.name}.logrotate.state"
    result = subprocess.run(
        [LOGROTATE, "--force", "--state", str(state), str(config)], capture_output=True, text=True, timeout=30
    )
    if result.returncode != 0:
        raise RuntimeError(f"logrotate failed: {result.stderr.strip()}")


def read_all(follower, max_lines=5000):
    """Every line the follower hands out until it has caught up, and the notes on the way."""
    lines, notes = [], []
    for _ in range(10_000):
        batch = follower.read_batch(max_lines)
        assert len(batch.lines) <= max_lines
        lines += batch.lines
        notes += batch.notes
        if batch.is_caught_up and not batch.lines:
            return lines, notes
    raise AssertionError("the follower never caught up")
