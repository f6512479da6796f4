"""Follow one mail-log file across restarts and rotations, handing out every complete line exactly once, and read a
whole archive (plain or gzip). The one module that reads mail-log files.

A file is known by its device and inode and by its *head*, the sha256 of its first line: a copy made by logrotate
keeps the head (not the inode), a file truncated in place (copytruncate, as DMS rotates) keeps the inode (not the
head). A position is the byte offset just after the last complete line handed out: a line still being written (no
newline yet) waits for the next read. The decisions (is it still the same file? which rotated copy is it?) are pure
functions of those plain values; FileFollower does the reading around them."""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import re
import stat as stat_module
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import BinaryIO

HEAD_LIMIT = 4096  # the head hashes at most this many bytes of the first line
READ_CHUNK = 1 << 16
ROTATION_WAIT_READS = 20  # reads a follower waits for logrotate to finish a copy it may be looking for
MAX_LINE_BYTES = 16 * 1024  # no syslog line is this long (rsyslog's default maximum is 8 KiB)
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Checkpoint:
    """Where reading `path` goes on: the file being read (device, inode, head) and the byte offset just after the
    last complete line handed out. While a rotated copy is being finished, device and inode are the copy's (and for
    a gzip copy the position counts uncompressed bytes). inode 0 means no file has been seen yet. Device and inode
    are st_dev and st_ino: store them as 64-bit integers."""

    path: str
    device: int
    inode: int
    head: str
    position: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Checkpoint:
        return cls(
            path=str(data["path"]),
            device=int(data["device"]),
            inode=int(data["inode"]),
            head=str(data["head"]),
            position=int(data["position"]),
        )


@dataclass(frozen=True)
class Batch:
    """Complete lines read in order (decoded as UTF-8, bad bytes replaced, without the newline) and the checkpoint
    to store with them, in the same transaction. `notes` say what happened on the way (a rotated file finished, a
    truncation); `has_gap` is True when lines may be missing before some of these (the notes say where);
    `is_caught_up` when the read reached the end of what is written so far."""

    lines: list[str]
    checkpoint: Checkpoint
    notes: tuple[str, ...] = ()
    has_gap: bool = False
    is_caught_up: bool = False


@dataclass(frozen=True)
class FileId:
    """A file as opened: its name, identity, size on disk and head."""

    name: str
    device: int
    inode: int
    size: int
    head: str


# Pure decisions -----------------------------------------------------------------------------------------------------


def head_of(first_bytes: bytes) -> str:
    """The head of a file starting with `first_bytes` (give at least HEAD_LIMIT bytes when the file has them):
    sha256 of the first line without its newline, of its first HEAD_LIMIT bytes when it is longer, "" while the
    first line is shorter and not complete."""
    end = first_bytes.find(b"\n", 0, HEAD_LIMIT)
    if end >= 0:
        return hashlib.sha256(first_bytes[:end]).hexdigest()
    if len(first_bytes) >= HEAD_LIMIT:
        return hashlib.sha256(first_bytes[:HEAD_LIMIT]).hexdigest()
    return ""


def is_same_file(checkpoint: Checkpoint, current: FileId) -> bool:
    """Whether the file now at the followed path is the checkpoint's file, read up to its position: same inode,
    not shorter than the position, same first line (a file whose first line was not complete yet has consumed
    nothing, so any first line is its own)."""
    return (
        (current.device, current.inode) == (checkpoint.device, checkpoint.inode)
        and current.size >= checkpoint.position
        and (checkpoint.head == "" or current.head == checkpoint.head)
    )


def rotated_names(base: str, names: Iterable[str]) -> list[str]:
    """The names among `names` (a directory listing) of rotated copies of the file called `base`, newest first:
    base.0, base.1, base.2... (each plain before .gz), then base-YYYYMMDD[HH...] (logrotate's dateext) from the
    latest date."""
    numbered = re.compile(re.escape(base) + r"\.(\d+)(\.gz)?")
    dated = re.compile(re.escape(base) + r"-(\d{8,14})(\.gz)?")
    keyed = []
    for name in names:
        if match := numbered.fullmatch(name):
            keyed.append(((0, int(match[1]), bool(match[2])), name))
        elif match := dated.fullmatch(name):
            keyed.append(((1, -int(match[1]), bool(match[2])), name))
    return [name for _, name in sorted(keyed)]


def find_rotated(checkpoint: Checkpoint, copies: Sequence[FileId]) -> int | None:
    """The index in `copies` (newest first) of the checkpoint's file, or None. Its first line identifies it; a copy
    that is the very file (renamed: same device and inode) wins over one that only begins the same way. A file
    whose first line was not complete is known by its inode alone."""
    identity = (checkpoint.device, checkpoint.inode)
    if not checkpoint.head:
        matches = [i for i, copy in enumerate(copies) if checkpoint.inode and (copy.device, copy.inode) == identity]
    else:
        same_head = [i for i, copy in enumerate(copies) if copy.head == checkpoint.head]
        same_inode = [i for i in same_head if (copies[i].device, copies[i].inode) == identity]
        matches = same_inode or same_head
    return matches[0] if matches else None


def newer_copies(copies: Sequence[FileId], found: int, current_head: str) -> list[int]:
    """Indexes of the copies rotated after copies[found], oldest first, each content once: a plain copy and its .gz
    are the same file while logrotate compresses; a copy that begins like the current file is the current file not
    truncated yet (copytruncate copies first), read there; a copy without a complete line is one logrotate has only
    begun to write."""
    seen = {copies[found].head, current_head}
    chosen = []
    for i in range(found):
        head = copies[i].head
        if not head or head in seen:
            continue  # no complete line: at most a copy logrotate has only begun
        seen.add(head)
        chosen.append(i)
    return chosen[::-1]


# Reading --------------------------------------------------------------------------------------------------------------


@dataclass
class _Opened:
    id: FileId
    file: BinaryIO
    is_gzip: bool = False

    def head_now(self) -> str:
        return head_of(os.pread(self.file.fileno(), HEAD_LIMIT, 0))


@dataclass
class _Read:
    lines: list[bytes]
    end: int  # position after the last complete line returned
    tail: bytes  # an unterminated last line, when the end of the file was reached
    is_at_end: bool


@dataclass
class _Collected:
    room: int
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    has_gap: bool = False
    is_caught_up: bool = False

    def add(self, raw_lines: Iterable[bytes]) -> None:
        for raw in raw_lines:
            self.lines.append(_decode(raw))
            self.room -= 1


def _decode(raw: bytes) -> str:
    # A writer without O_APPEND writing on after a copytruncate leaves NUL bytes where the old data was.
    return raw.lstrip(b"\0").decode("utf-8", "replace")


def _read_from(opened: _Opened, position: int, room: int) -> _Read:
    """Up to `room` complete lines from `position`."""
    opened.file.seek(position)
    lines: list[bytes] = []
    pending = b""
    end = position
    while True:
        chunk = opened.file.read(READ_CHUNK)
        if not chunk:
            return _Read(lines, end, pending, is_at_end=True)
        pending += chunk
        start = 0
        while len(lines) < room:
            newline = pending.find(b"\n", start)
            if newline < 0 or newline - start > MAX_LINE_BYTES:
                if len(pending) - start < MAX_LINE_BYTES:
                    break
                # No log line is this long (a run of NULs left by a copytruncate, a hostile writer): it comes in
                # pieces, so memory and the parser's work stay bounded.
                lines.append(pending[start : start + MAX_LINE_BYTES])
                start += MAX_LINE_BYTES
                continue
            lines.append(pending[start:newline])
            start = newline + 1
        end += start
        pending = pending[start:]
        if len(lines) >= room:
            return _Read(lines, end, b"", is_at_end=False)


def _open(name: str, stack: ExitStack, *, allow_gzip: bool) -> _Opened | None:
    try:
        raw = stack.enter_context(open(name, "rb"))  # noqa: SIM115 (closed by the stack)
    except FileNotFoundError:
        return None
    stat = os.fstat(raw.fileno())
    first = os.pread(raw.fileno(), HEAD_LIMIT, 0)
    if allow_gzip and first.startswith(GZIP_MAGIC):
        unpacked = stack.enter_context(gzip.GzipFile(fileobj=raw))
        try:
            first = unpacked.read(HEAD_LIMIT)
        except (OSError, EOFError):
            return None  # not gzip after all, or still being written by logrotate
        return _Opened(FileId(name, stat.st_dev, stat.st_ino, stat.st_size, head_of(first)), unpacked, is_gzip=True)
    return _Opened(FileId(name, stat.st_dev, stat.st_ino, stat.st_size, head_of(first)), raw)


def _end_of_last_line(opened: _Opened) -> int:
    end = opened.id.size
    while end > 0:
        start = max(0, end - READ_CHUNK)
        newline = os.pread(opened.file.fileno(), end - start, start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def _still_listed(directory: str, base: str, listed: list[str], opened: list[_Opened]) -> bool:
    """Whether the rotated copies are still the ones listed: the same names, each still the file opened."""
    try:
        if rotated_names(base, os.listdir(directory or ".")) != listed:
            return False
        return all(os.stat(copy.id.name).st_ino == copy.id.inode for copy in opened)
    except FileNotFoundError:
        return False


class _TellsLoss:
    """What a follower (of a file here, or of a mail host's file: remote.RemoteFollower) says when its position is
    lost: the file is missing (said once, waited for), or it was truncated or replaced with no copy to finish."""

    path: str
    checkpoint: Checkpoint | None
    _told_missing: bool

    def _stored_position(self, collected: _Collected) -> Checkpoint | None:
        """The checkpoint to go on from: None without one, or when it was for another path (said in `collected`)."""
        checkpoint = self.checkpoint
        if checkpoint is not None and checkpoint.path != self.path:
            collected.notes.append(f"the stored position was for {checkpoint.path}, not {self.path}: starting afresh")
            return None
        return checkpoint

    def _tell_lost(
        self, current: FileId | None, checkpoint: Checkpoint, copies: list[FileId], collected: _Collected
    ) -> bool:
        """Note the loss in `collected`; whether to read `current` from its top (False: there is no file yet)."""
        if current is None:
            if not self._told_missing:
                collected.notes.append(f"{self.path} does not exist: waiting for it")
                self._told_missing = True
            collected.is_caught_up = True
            return False
        if checkpoint.head or checkpoint.position:  # else nothing was read from it: nothing can be lost
            collected.has_gap = True
            collected.notes.append(_lost_note(self.path, checkpoint, current, copies))
        return True


class FileFollower(_TellsLoss):
    """Reads the mail log at `path` from `checkpoint` on, one batch at a time; after a rotation it finishes the
    rotated file (found among path.0, path.1, path.2... and path-YYYYMMDD, plain or gzip, by its first line) and the
    files rotated after it, then reads the new file from its start.

    read_batch() moves `self.checkpoint` on; a caller whose store fails sets it back (follow() does). Without a
    checkpoint it starts at the top of the file, or after its last complete line with start_at_end=True.
    Assumes one writer (the syslog daemon) that, after a rename, writes to the new file only once it has let go of
    the old one: a renamed file is finished only when the new file has data. A file whose first line was not
    complete at the last read is known by its inode alone: if a copytruncate empties it before that line is read
    (only possible within one poll of a first start on an empty log, or of a truncation without a copy), the lines
    it had are not found. After finishing a rotated file the follower stays on it until the new file has a complete
    line, so a steady follower never relies on the inode alone."""

    def __init__(self, path: str | os.PathLike, checkpoint: Checkpoint | None = None, *, start_at_end: bool = False):
        self.path = os.fspath(path)
        self.checkpoint = checkpoint
        self.start_at_end = start_at_end
        self._told_missing = False
        self._rotation_in_progress = False
        self._waited_for_rotation = 0

    def read_batch(self, max_lines: int = 5000) -> Batch:
        if max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        collected = _Collected(room=max_lines)
        with ExitStack() as stack:
            current = _open(self.path, stack, allow_gzip=False)
            if current is not None:
                self._told_missing = False
            checkpoint = self._starting_point(current, collected)
            if current is not None and is_same_file(checkpoint, current.id):
                checkpoint = self._read_current(current, checkpoint, collected)
            else:
                checkpoint = self._after_rotation(current, checkpoint, collected, stack)
        self.checkpoint = checkpoint
        return Batch(collected.lines, checkpoint, tuple(collected.notes), collected.has_gap, collected.is_caught_up)

    def _starting_point(self, current: _Opened | None, collected: _Collected) -> Checkpoint:
        checkpoint = self._stored_position(collected)
        if checkpoint is not None:
            return checkpoint
        if current is None:
            return Checkpoint(self.path, 0, 0, "", 0)
        position = 0
        if self.start_at_end:
            position = _end_of_last_line(current)
            collected.notes.append(f"started at the end of {self.path}: its first {position} bytes not read")
        return Checkpoint(self.path, current.id.device, current.id.inode, current.id.head, position)

    def _read_current(self, current: _Opened, checkpoint: Checkpoint, collected: _Collected) -> Checkpoint:
        read = _read_from(current, checkpoint.position, collected.room)
        head = current.head_now()
        if checkpoint.head and head != checkpoint.head:
            # Truncated and written again while being read: what was read may be the new file's; read it anew.
            return checkpoint
        collected.add(read.lines)
        collected.is_caught_up = read.is_at_end
        return Checkpoint(self.path, current.id.device, current.id.inode, head, read.end)

    def _rotated(self, stack: ExitStack) -> list[_Opened]:
        directory, base = os.path.split(self.path)
        try:
            names = os.listdir(directory or ".")
        except FileNotFoundError:
            return []
        listed = rotated_names(base, names)
        opened = [_open(os.path.join(directory, name), stack, allow_gzip=True) for name in listed]
        # logrotate shifts names (mail.log.2.gz -> .3.gz, .1 -> .2) while they are listed and opened: a copy that
        # was listed and is gone or unreadable, or a name that now holds another file, or a listing that changed,
        # means a rotation is under way.
        self._rotation_in_progress = any(copy is None for copy in opened) or not _still_listed(
            directory, base, listed, [copy for copy in opened if copy is not None]
        )
        return [copy for copy in opened if copy is not None]

    def _after_rotation(
        self, current: _Opened | None, checkpoint: Checkpoint, collected: _Collected, stack: ExitStack
    ) -> Checkpoint:
        copies = self._rotated(stack)
        in_progress = self._rotation_in_progress or any(not copy.id.head for copy in copies)
        if in_progress and self._waited_for_rotation < ROTATION_WAIT_READS:
            # logrotate is moving or compressing a copy right now (a listed copy vanished, or a .gz being written
            # has no complete first line yet): that copy may be the one sought, or one of those to read after it;
            # look again next time (a few times only: a copy that stays unreadable, a corrupt .gz, must not stop
            # the follower).
            self._waited_for_rotation += 1
            collected.is_caught_up = True
            return checkpoint
        self._waited_for_rotation = 0
        found = find_rotated(checkpoint, [copy.id for copy in copies])
        if found is None:
            return self._lost(current, checkpoint, copies, collected)
        chain = [found, *newer_copies([copy.id for copy in copies], found, current.id.head if current else "")]
        is_writer_elsewhere = current is not None and current.id.size > 0
        position = checkpoint.position
        for index in chain:
            copy = copies[index]
            read = _read_from(copy, position, collected.room)
            collected.add(read.lines)
            here = Checkpoint(self.path, copy.id.device, copy.id.inode, copy.id.head, read.end)
            if not read.is_at_end:
                return here
            if index == 0 and not copy.is_gzip and not is_writer_elsewhere:
                # Renamed, maybe still written by a syslog that has not reopened the log: finished once it has.
                collected.is_caught_up = True
                return here
            if read.tail:
                collected.add([read.tail])
                collected.notes.append(
                    f"{copy.id.name} ended in the middle of a line: its last {len(read.tail)} bytes are a line of "
                    "their own (the rest of it, if written, begins the next file)"
                )
                here = replace(here, position=read.end + len(read.tail))
            if index == chain[-1] and (current is None or not current.id.head):
                # Stay at the end of the last rotated file until the new one has a complete line: the new file is
                # known by its first line, and if it is rotated before that, its copy is found after this one.
                collected.is_caught_up = True
                return here
            what = "finished rotated file" if index == found else "read rotated file"
            collected.notes.append(f"{what} {copy.id.name}")
            position = 0
        start = Checkpoint(self.path, current.id.device, current.id.inode, current.id.head, 0)
        return self._read_current(current, start, collected)

    def _lost(
        self, current: _Opened | None, checkpoint: Checkpoint, copies: list[_Opened], collected: _Collected
    ) -> Checkpoint:
        current_id = current.id if current is not None else None
        # Told first (a missing file is told too), then read from the top if there is a file.
        if not self._tell_lost(current_id, checkpoint, [copy.id for copy in copies], collected) or current is None:
            return checkpoint
        start = Checkpoint(self.path, current.id.device, current.id.inode, current.id.head, 0)
        return self._read_current(current, start, collected)


def _lost_note(path: str, checkpoint: Checkpoint, current: FileId, copies: list[FileId]) -> str:
    position = checkpoint.position
    if (current.device, current.inode) != (checkpoint.device, checkpoint.inode):
        what = f"{path} is a new file and no rotated copy begins with the first line of the file being read"
    elif current.size < position:
        what = f"file truncated ({position} bytes read, {current.size} now), no rotated copy begins with its first line"
    else:
        what = f"{path} was written anew in place (its first line changed) and no rotated copy begins with the old one"
    note = f"{what}: lines written to it after byte {position} are lost; started again from the top of {path}"
    if copies:
        unread = ", ".join(f"{copy.name} ({copy.size} bytes)" for copy in copies)
        note += (
            f". Rotated copies not read: {unread}; `maillog ingest --file` reads one whole (lines already stored are "
            "stored once)"
        )
    return note


def follow(
    follower: FileFollower,
    on_batch: Callable[[Batch], None],
    stop_event: threading.Event,
    poll_interval: float = 0.5,
    max_lines: int = 5000,
    on_idle: Callable[[], None] | None = None,
) -> None:
    """Read batches until `stop_event` is set, giving on_batch every batch that has lines, notes or a new
    checkpoint (it stores the lines and the checkpoint in one transaction). Waits `poll_interval` only after a read
    that found no line, calling `on_idle` first. If on_batch raises, the follower is set back to where that batch
    began and the error goes up: the batch is read again by whoever goes on (a restarted process resumes from its
    stored checkpoint)."""
    while not stop_event.is_set():
        before = follower.checkpoint
        batch = follower.read_batch(max_lines)
        if batch.lines or batch.notes or batch.checkpoint != before:
            try:
                on_batch(batch)
            except BaseException:
                follower.checkpoint = before
                raise
        if not batch.lines:
            if on_idle is not None:
                on_idle()
            stop_event.wait(poll_interval)


def _open_regular_file(path: str | os.PathLike) -> BinaryIO:
    """`path` opened for reading if it is a regular file: opened without blocking first, so a FIFO or a device
    named by mistake (or on purpose) is refused instead of waiting forever or reading without end."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if stat_module.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        if not stat_module.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (a log file is one)", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_lines(
    path: str | os.PathLike,
    on_progress: Callable[[int, int], None] | None = None,
    *,
    max_line_bytes: int = -1,
) -> Iterator[str]:
    """Every line of the file at `path`, gzip-compressed or not (told by its first bytes, not its name), decoded as
    the follower decodes them; an unterminated last line too (an archive is complete). on_progress(bytes read,
    size), if given, is called now and then with the bytes of the file on disk read so far (compressed ones for a
    gzip file), for a progress bar. A gzip file cut short raises gzip.BadGzipFile (an OSError). With
    `max_line_bytes`, a longer line comes in pieces of at most that many bytes (a file without line endings is
    not read whole into memory)."""
    with _open_regular_file(path) as raw:
        size = os.fstat(raw.fileno()).st_size
        is_gzip = os.pread(raw.fileno(), 2, 0) == GZIP_MAGIC
        with gzip.GzipFile(fileobj=raw) if is_gzip else ExitStack() as unpacked:
            stream = unpacked if is_gzip else raw
            lines = iter(partial(stream.readline, max_line_bytes), b"") if max_line_bytes > 0 else stream
            try:
                for number, line in enumerate(lines, 1):
                    yield _decode(line[:-1] if line.endswith(b"\n") else line)
                    if on_progress is not None and number % 4096 == 0:
                        on_progress(raw.tell(), size)
            except EOFError as error:
                raise gzip.BadGzipFile(f"{path}: the compressed data ends early (cut short?)") from error
        if on_progress is not None:
            on_progress(size, size)
