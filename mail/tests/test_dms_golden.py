"""Golden comparison: on the same data, the DMS files are byte for byte what they were when the golden
copies under mail/tests/golden/ were written before the DMS file catalog replaced the per-file code (the
files carry no timestamp), in both DKIM layouts, and the values left out are reported with the same words.

After a deliberate change of the output, rewrite the copies with
`DOCKSPACE_WRITE_GOLDEN=1 .venv/bin/python -m pytest mail/tests/test_dms_golden.py -p no:cacheprovider`
and review the diff.
"""

import os
from pathlib import Path

import pytest

from mail.dms import catalog, sync
from mail.tests import golden_data

pytestmark = pytest.mark.django_db

GOLDEN = Path(__file__).parent / "golden"
SKIPPED = "skipped.txt"


def _tree(root):
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != SKIPPED
    }


def _write_golden(directory, files, skipped):
    for old in directory.rglob("*"):
        if old.is_file():
            old.unlink()
    for path, content in files.items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_bytes(content)
    (directory / SKIPPED).write_text("".join(f"{line}\n" for line in skipped))


def _is_mail_file(path):
    declared = catalog.declared_for(path)
    return declared is not None and declared.app_label == "mail"


@pytest.mark.parametrize("layout", ["opendkim", "rspamd"])
def test_the_dms_files_are_byte_for_byte_the_golden_ones(layout, settings):
    settings.DKIM_LAYOUT = layout
    golden_data.build()

    report = sync.dms_sync(force=True)
    # Mail's files: another app (a test-only one) may declare more.
    written = {path: content for path, content in _tree(settings.DMS_DIR).items() if _is_mail_file(path)}

    directory = GOLDEN / layout
    if os.environ.get("DOCKSPACE_WRITE_GOLDEN") == "1":
        _write_golden(directory, written, report.skipped)
    assert sorted(written) == sorted(_tree(directory))
    for path, content in _tree(directory).items():
        assert written[path] == content, f"{path} differs from its golden copy"
    assert report.skipped == (directory / SKIPPED).read_text().splitlines()
