"""Mail-log follower lag: a steady stream of lines written to a mail log rotated every few seconds, read by the
follow loop (`monitoring.maillog.follow.follow`, the loop of `manage.py maillog follow`) with a no-op store.

Run by hand from the project root (needs logrotate, as the follower's tests do):

    .venv/bin/python bench/maillog_follow_lag.py [--seconds 20] [--rate 1000] [--rotate-every 5]
        [--modes copytruncate,rename] [--polls 0.5]

For each rotation mode and poll interval, a writer thread appends `--rate` DMS-shaped lines a second, each through
one O_APPEND descriptor as rsyslog does, one line in 50 in two writes 2 ms apart (a half-written line for the
reader to leave alone), and every `--rotate-every` seconds runs the real logrotate on the file:

- copytruncate: DMS's settings (compress, delaycompress, copytruncate, rotate 4). logrotate runs in the writer's
  thread, between two lines, so no line is written between its copy and its truncation (those lines are lost by
  copytruncate itself, not by the reader);
- rename: logrotate's `create` (rename, then an empty file); the writer goes on writing to the renamed file for
  100 ms, halfway through a line, before it reopens the log, as a syslog daemon does until it is signalled.

The follow loop runs in another thread of the same process. It prints the lag of each line (from the moment its
last byte was written to the moment on_batch got it) as percentiles, the lines lost, duplicated, out of order or
garbled, the notes of the batches, and the follower thread's CPU time. It asserts nothing.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitoring.maillog.follow import FileFollower, follow  # noqa: E402
from monitoring.tests.mail_log_files import LOGROTATE, Syslog, logrotate  # noqa: E402

LINE = (
    "2026-12-06T10:15:02.123456+00:00 mail postfix/smtp[4242]: {seq:09d}: to=<bob@example.net>, "
    "relay=mx.example.net[198.51.100.7]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 OK)\n"
)
SPLIT_EVERY = 50
RENAME_GRACE = 0.1


class Writer(threading.Thread):
    def __init__(self, path, *, seconds, rate, rotate_every, mode):
        super().__init__(daemon=True)
        self.path, self.seconds, self.rate, self.rotate_every, self.mode = path, seconds, rate, rotate_every, mode
        self.written = {}  # seq -> monotonic ns once its last byte was written
        self.rotations = 0

    def run(self):
        syslog = Syslog(self.path)
        start = time.monotonic()
        next_rotation = start + self.rotate_every
        reopen_at = None
        seq = 0
        try:
            while True:
                now = time.monotonic()
                if now - start >= self.seconds:
                    break
                if reopen_at is not None and now >= reopen_at:
                    syslog.reopen()
                    reopen_at = None
                if now >= next_rotation:
                    next_rotation += self.rotate_every
                    self.rotations += 1
                    if self.mode == "copytruncate":
                        logrotate(self.path)
                    else:
                        self._write_split(syslog, seq, rotate_between=True)
                        seq += 1
                        reopen_at = time.monotonic() + RENAME_GRACE
                due = int((now - start) * self.rate)
                while seq < due:
                    if seq % SPLIT_EVERY == SPLIT_EVERY - 1:
                        self._write_split(syslog, seq)
                    else:
                        syslog.write(LINE.format(seq=seq))
                        self.written[seq] = time.monotonic_ns()
                    seq += 1
                time.sleep(0.001)
        finally:
            syslog.close()

    def _write_split(self, syslog, seq, rotate_between=False):
        text = LINE.format(seq=seq)
        syslog.write(text[:40])
        if rotate_between:
            logrotate(self.path, copytruncate=False)
        time.sleep(0.002)
        syslog.write(text[40:])
        self.written[seq] = time.monotonic_ns()


def run(seconds, rate, rotate_every, mode, poll):
    directory = Path(tempfile.mkdtemp(prefix="maillog-follow-lag-"))
    try:
        path = directory / "mail.log"
        path.touch()
        received, notes, gaps = [], [], [0]
        cpu = {}

        def on_batch(batch):
            now = time.monotonic_ns()
            received.extend((line, now) for line in batch.lines)
            notes.extend(batch.notes)
            gaps[0] += batch.has_gap

        def reader():
            started = time.thread_time()
            follow(FileFollower(path), on_batch, stop, poll_interval=poll)
            cpu["seconds"] = time.thread_time() - started

        stop = threading.Event()
        writer = Writer(path, seconds=seconds, rate=rate, rotate_every=rotate_every, mode=mode)
        loop = threading.Thread(target=reader, daemon=True)
        writer.start()
        # Started on a log with a first line, as in production: a file known before its first line is complete is
        # known by its inode alone, and a copytruncate within a poll of that start would take lines unnoticed.
        while not path.read_bytes().count(b"\n"):
            time.sleep(0.001)
        loop.start()
        writer.join()
        deadline = time.monotonic() + 5 + poll
        while len(received) < len(writer.written) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(poll * 2)  # anything handed out twice would come now
        stop.set()
        loop.join(timeout=5)
        report(
            mode,
            poll,
            writer,
            received,
            [note.replace(str(directory), "$DIR") for note in notes],
            gaps[0],
            cpu.get("seconds"),
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def report(mode, poll, writer, received, notes, gaps, cpu_seconds):
    lags, seqs, garbled = [], [], 0
    for line, at in received:
        try:
            seq = int(line.split(": ", 2)[1])
        except (IndexError, ValueError):
            garbled += 1
            continue
        if line + "\n" != LINE.format(seq=seq) or seq not in writer.written:
            garbled += 1
            continue
        seqs.append(seq)
        lags.append((at - writer.written[seq]) / 1e6)
    unique = set(seqs)
    lost = len(set(writer.written) - unique)
    duplicated = len(seqs) - len(unique)
    out_of_order = sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b <= a)
    cuts = statistics.quantiles(lags, n=100) if len(lags) >= 2 else [float("nan")] * 99
    print(
        f"\n{mode}, poll {poll} s: {len(writer.written)} lines written, {writer.rotations} rotations; "
        f"{len(received)} handed out"
    )
    print(
        f"  lag ms: p50 {cuts[49]:.1f}  p90 {cuts[89]:.1f}  p99 {cuts[98]:.1f}  max {max(lags, default=0):.1f}  "
        f"mean {statistics.fmean(lags) if lags else 0:.1f}"
    )
    print(f"  lost {lost}, duplicated {duplicated}, out of order {out_of_order}, garbled {garbled}, gaps {gaps}")
    if cpu_seconds is not None:
        print(f"  follower thread CPU: {cpu_seconds:.2f} s")
    for note in sorted(set(notes)):
        print(f"  note x{notes.count(note)}: {note}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=int, default=1000, help="lines a second")
    parser.add_argument("--rotate-every", type=float, default=5, help="seconds between rotations")
    parser.add_argument("--modes", default="copytruncate,rename")
    parser.add_argument("--polls", default="0.5", help="poll intervals to run, in seconds, comma-separated")
    args = parser.parse_args()
    if LOGROTATE is None:
        sys.exit("logrotate is not installed (apt-get install logrotate)")
    print(f"{os.cpu_count()} CPUs; {args.rate} lines/s for {args.seconds} s, a rotation every {args.rotate_every} s")
    for mode in args.modes.split(","):
        for poll in args.polls.split(","):
            run(args.seconds, args.rate, args.rotate_every, mode, float(poll))


if __name__ == "__main__":
    main()
