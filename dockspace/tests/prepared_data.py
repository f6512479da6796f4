"""A data directory as `make run` leaves it after its first start (a migrated SQLite database and the development
secret key), made once per test run and copied into a test's own. A test of `make run` or of the image's processes
that is not about a first start then does not migrate a new database again: six seconds of CPU each time, far more on
a loaded CI machine. The tests of the first start keep starting from nothing."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings

_made: Path | None = None


def _make() -> Path:
    root = Path(tempfile.mkdtemp(prefix="dockspace-prepared-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    data_dir = root / "data"
    unset = ("DATABASE_URL", "REDIS_URL", "DOCKSPACE_URL", "SECRET_KEY")
    env = {name: value for name, value in os.environ.items() if name not in unset}
    env.update(DEBUG="1", DOCKSPACE_DATA_DIR=str(data_dir))
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return data_dir


def prepared_data_dir(target: Path) -> Path:
    """A copy of the prepared data directory at `target` (which must not exist yet; its parents are made)."""
    global _made
    if _made is None:
        _made = _make()
    shutil.copytree(_made, target)
    return target
