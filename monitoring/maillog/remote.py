"""Follow a mail log that is read through a few commands (a mail host's /var/log/mail/mail.log over SSH) with the
checkpoint of monitoring.maillog.follow: the same identity (device, inode, head), the same rules (only complete
lines; after a truncation or rotation the rotated copy mail.log.1, found by its first line, is finished from the
position before the new file is read from its start), the same Batch. The file is known through a RemoteLog
(stat, head, read at an offset); follow's pure functions make the decisions.

A read is made sure of afterwards: the first line is fetched after the bytes, so bytes read from a file that was
truncated and written anew meanwhile are dropped and read from the rotated copy instead."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from monitoring.maillog.follow import (
    Batch,
    Checkpoint,
    FileId,
    _Collected,
    _TellsLoss,
    find_rotated,
    head_of,
    is_same_file,
)

READ_BYTES = 1 << 20  # at most this much of the log per command


class RemoteLogError(Exception):
    """The log could not be read (the container is not running, permission denied): one sentence."""


class RemoteLog(Protocol):
    """A file system reached by commands: what RemoteFollower needs of it."""

    def stat(self, path: str) -> tuple[int, int, int] | None:
        """(device, inode, size) of the file, None when there is none."""

    def head(self, path: str) -> bytes:
        """Its first bytes (at least HEAD_LIMIT when it has them); b"" when there is no file."""

    def read(self, path: str, position: int, length: int) -> bytes:
        """Up to `length` bytes from byte `position` (fewer at its end); b"" when there is no file."""


def parse_stat(output: str) -> tuple[int, int, int]:
    """(device, inode, size) from `stat -c '%d %i %s'`; RemoteLogError for anything else."""
    words = output.split()
    if len(words) != 3 or not all(word.isdigit() for word in words):
        raise RemoteLogError(f"stat printed {output.strip()[:100]!r}, not 'DEVICE INODE SIZE'")
    device, inode, size = (int(word) for word in words)
    return device, inode, size


def complete_lines(data: bytes, room: int, *, is_whole_read: bool) -> tuple[list[bytes], int]:
    """Up to `room` complete lines at the start of `data` (without their newlines) and how many bytes they take.
    A read that filled its whole length without a newline (`is_whole_read`) is a line longer than a read: it is
    handed out in that piece, so the reader never stays stuck on it."""
    lines: list[bytes] = []
    start = 0
    while len(lines) < room:
        newline = data.find(b"\n", start)
        if newline < 0:
            break
        lines.append(data[start:newline])
        start = newline + 1
    if not lines and room > 0 and data and is_whole_read:
        return [data], len(data)
    return lines, start


class RemoteFollower(_TellsLoss):
    """Reads the log at `path` (and `path`.1, the copy logrotate makes) through `log`, from `checkpoint` on, one
    batch at a time; as monitoring.maillog.follow.FileFollower, which the follow loop (follow.follow) drives the
    same way. `log` may be replaced between batches (a new SSH session). Only mail.log.1 is looked at after a
    rotation: a checkpoint in an older copy (two rotations while stopped) is reported lost, with what was not read."""

    def __init__(
        self, log: RemoteLog | None, path: str, checkpoint: Checkpoint | None = None, *, read_bytes: int = READ_BYTES
    ):
        self.log = log
        self.path = path
        self.rotated_path = f"{path}.1"
        self.checkpoint = checkpoint
        self.read_bytes = read_bytes
        self._told_missing = False

    def read_batch(self, max_lines: int = 5000) -> Batch:
        if max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        collected = _Collected(room=max_lines)
        current = self._log.stat(self.path)
        if current is not None:
            self._told_missing = False
        checkpoint = self._starting_point(current, collected)
        moved = self._read_on(current, checkpoint, collected) if current is not None else None
        if moved is None:
            moved = self._after_rotation(current, checkpoint, collected)
        self.checkpoint = moved
        return Batch(collected.lines, moved, tuple(collected.notes), collected.has_gap, collected.is_caught_up)

    @property
    def _log(self) -> RemoteLog:
        if self.log is None:
            raise RemoteLogError("no connection to read the log through")
        return self.log

    def _file(self, path: str, stat: tuple[int, int, int] | None) -> FileId | None:
        if stat is None:
            return None
        device, inode, size = stat
        return FileId(path, device, inode, size, head_of(self._log.head(path)))

    def _starting_point(self, current: tuple[int, int, int] | None, collected: _Collected) -> Checkpoint:
        checkpoint = self._stored_position(collected)
        if checkpoint is not None:
            return checkpoint
        found = self._file(self.path, current)
        if found is None:
            return Checkpoint(self.path, 0, 0, "", 0)
        return Checkpoint(self.path, found.device, found.inode, found.head, 0)

    def _read(self, path: str, position: int, room: int) -> tuple[list[bytes], int, bytes, bool]:
        """(complete lines, bytes they take, the rest read, whether the end of the file was reached)."""
        data = self._log.read(path, position, self.read_bytes)
        is_whole_read = len(data) >= self.read_bytes
        lines, used = complete_lines(data, room, is_whole_read=is_whole_read)
        return lines, used, data[used:], not is_whole_read and len(lines) < room

    def _read_on(
        self, current: tuple[int, int, int] | None, checkpoint: Checkpoint, collected: _Collected
    ) -> Checkpoint | None:
        """Read the log on from the checkpoint while it is the checkpoint's file; None when it is not."""
        if current is None:
            return None
        device, inode, size = current
        if (device, inode) != (checkpoint.device, checkpoint.inode) or size < checkpoint.position:
            return None
        if collected.room <= 0:
            return checkpoint
        lines: list[bytes] = []
        used, is_at_end = 0, True
        if size > checkpoint.position:
            lines, used, _, is_at_end = self._read(self.path, checkpoint.position, collected.room)
        # Fetched after the read: the first line then is the one of the file the bytes were read from.
        read_from = FileId(self.path, device, inode, size, head_of(self._log.head(self.path)))
        if not is_same_file(checkpoint, read_from):
            return None  # truncated and written anew: what was read may be the new file's
        collected.add(lines)
        collected.is_caught_up = is_at_end
        return Checkpoint(self.path, device, inode, read_from.head, checkpoint.position + used)

    def _after_rotation(
        self, current_stat: tuple[int, int, int] | None, checkpoint: Checkpoint, collected: _Collected
    ) -> Checkpoint:
        current = self._file(self.path, current_stat)
        copy = self._file(self.rotated_path, self._log.stat(self.rotated_path))
        copies = [copy] if copy is not None else []
        if copy is None or find_rotated(checkpoint, copies) is None:
            return self._lost(current, checkpoint, copies, collected)
        lines, used, tail, is_at_end = self._read(copy.name, checkpoint.position, collected.room)
        collected.add(lines)
        here = Checkpoint(self.path, copy.device, copy.inode, copy.head, checkpoint.position + used)
        if not is_at_end:
            return here
        if current is None or current.size == 0:
            # Renamed, maybe still written by a syslog that has not reopened the log: finished once it has.
            collected.is_caught_up = True
            return here
        if tail:
            collected.add([tail])
            collected.notes.append(
                f"{copy.name} ended in the middle of a line: its last {len(tail)} bytes are a line of their own "
                "(the rest of it, if written, begins the next file)"
            )
            here = replace(here, position=here.position + len(tail))
        if not current.head:
            # Stay at the end of the rotated file until the new one has a complete line: it is known by that line.
            collected.is_caught_up = True
            return here
        collected.notes.append(f"finished rotated file {copy.name}")
        return self._from_the_top(current, collected)

    def _from_the_top(self, current: FileId, collected: _Collected) -> Checkpoint:
        start = Checkpoint(self.path, current.device, current.inode, current.head, 0)
        return self._read_on((current.device, current.inode, current.size), start, collected) or start

    def _lost(
        self, current: FileId | None, checkpoint: Checkpoint, copies: list[FileId], collected: _Collected
    ) -> Checkpoint:
        # Told first (a missing file is told too), then read from the top if there is a file.
        if not self._tell_lost(current, checkpoint, copies, collected) or current is None:
            return checkpoint
        return self._from_the_top(current, collected)
