"""The test extension's DMS file, declared the way any app adds one: postfix-helo-access.cf, a line
`NAME REJECT` per BlockedHelo row, with its pure render and parse functions."""

from dockspace.tests.extension_app.models import BlockedHelo
from mail.dms.catalog import DmsFile, refuse
from mail.dms.parse import Problem

HELO_ACCESS_PATH = "postfix-helo-access.cf"


def blocked_helo_names(reads):
    """The rows: every blocked name, sorted, streamed from the database."""
    return BlockedHelo.objects.order_by("name").values_list("name", flat=True).iterator()


def helo_access_lines(names, on_skip=None):
    """`NAME REJECT` for each name; one that would break its line is refused."""
    for name in names:
        if not name or name.startswith("#") or any(char.isspace() for char in name):
            refuse(on_skip, f"HELO name {name!r} cannot be written to a DMS file")
            continue
        yield f"{name} REJECT"


def parse_helo_access(text, path=HELO_ACCESS_PATH):
    """postfix-helo-access.cf -> ([name], problems); a line other than `NAME REJECT` is a problem."""
    names, problems = [], []
    for number, raw in enumerate(text.replace("\r", "").split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1].upper() != "REJECT":
            problems.append(Problem(path, number, raw, "expected NAME REJECT"))
            continue
        names.append(parts[0])
    return names, problems


HELO_ACCESS = DmsFile(
    path=HELO_ACCESS_PATH,
    collect=blocked_helo_names,
    render=helo_access_lines,
    parse=parse_helo_access,
    sync_on=("extension_app.BlockedHelo",),
)
