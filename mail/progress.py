"""Progress of the long mail commands (CSV import, DMS import, full DMS export) on a terminal.

A command asks `terminal_progress(stream)` for a progress factory: on a terminal it draws tqdm bars
(rows done, rate, time left) on that stream; anywhere else (pipes, cron, tests, tqdm not installed)
it draws nothing and the command prints only its summary. The work itself takes the factory as
`progress=` and calls `with progress(description, total) as bar: ... bar.update(n)`.
"""

import contextlib
from typing import Protocol


class Bar(Protocol):
    def update(self, n: int = 1) -> object: ...


class ProgressFactory(Protocol):
    """What `progress=` takes: `silent`, what terminal_progress returns, or anything called the same way."""

    def __call__(self, description: str, total: int, unit: str = "row") -> contextlib.AbstractContextManager[Bar]: ...


class _Silent:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        pass


def silent(description, total, unit="row"):
    """The progress factory that draws nothing."""
    return _Silent()


def terminal_progress(stream):
    """A progress factory drawing on `stream` (a command's raw stderr) when it is a terminal."""
    isatty = getattr(stream, "isatty", None)
    try:
        on_terminal = bool(isatty and isatty())
    except ValueError:  # a closed stream
        on_terminal = False
    if not on_terminal:
        return silent
    try:
        from tqdm import tqdm
    except ImportError:  # not installed yet (requirements.txt pins it): work on, without bars
        return silent

    def bar(description, total, unit="row"):
        return tqdm(total=total, desc=description, unit=unit, file=stream, dynamic_ncols=True, mininterval=0.2)

    return bar


def counted_lines(files, bar):
    """{path: content} for the DMS writer with each streamed file counted into `bar`, line by line."""

    def counting(producer):
        def produce():
            for chunk in producer():
                bar.update(chunk.count(b"\n"))
                yield chunk

        return produce

    return {path: counting(content) if callable(content) else content for path, content in files.items()}


def dms_line_estimate():
    """About how many lines a full write of the DMS account files holds: the total of its progress bar."""
    from mail.dms import catalog
    from mail.models import Alias, Group, Mailbox

    mailboxes = Mailbox.objects.exclude(state=Mailbox.DISABLED).count()
    blocked = Mailbox.objects.exclude(state=Mailbox.ACTIVE).count()
    lists = Group.objects.exclude(list_address=None).count()
    headers = sum(isinstance(item, catalog.DmsFile) for item in catalog.declared_files())
    return 2 * mailboxes + Alias.objects.count() + lists + blocked + headers


@contextlib.contextmanager
def counting_dms_files(files, progress):
    """`with counting_dms_files(files, progress) as files:` the same files, counted into a bar while written."""
    if progress is None or progress is silent:
        yield files
        return
    with progress("DMS files", dms_line_estimate(), "line") as bar:
        yield counted_lines(files, bar)
