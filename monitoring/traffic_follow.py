"""The mail-log follower (`manage.py maillog follow`, the maillog process): reads DOCKSPACE_MAIL_LOG, or a mail
host's log over SSH, from its log source's stored checkpoint on, and stores each batch of lines with the checkpoint
after it in one transaction (monitoring.traffic.maillog_ingest_lines), until told to stop. A batch that cannot be
stored, or a log that cannot be read, is logged and tried again after a pause, from the last stored checkpoint."""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, connections

from accounts.authz import SYSTEM, Actor
from monitoring import ssh, traffic
from monitoring.maillog import follow, remote
from monitoring.maillog.follow import Batch, Checkpoint, FileFollower
from monitoring.maillog.remote import RemoteFollower, RemoteLogError
from monitoring.models import MailHost
from monitoring.traffic_models import LogSource

log = logging.getLogger(__name__)

RETRY_SECONDS = 10.0  # after a batch that could not be stored or a log that could not be read
CLAIM_RETRY_SECONDS = 5.0  # while another follower holds the source
RENEW_SECONDS = traffic.FOLLOWER_LEASE.total_seconds() / 4  # an idle follower says it runs this often
MAX_LINES = 5000  # lines per batch (and per transaction)
HOST_MAIL_LOG = f"{ssh.MAIL_LOG_DIR}/mail.log"  # inside the mail host's container


class Follower(Protocol):
    checkpoint: Checkpoint | None

    def read_batch(self, max_lines: int = ...) -> Batch: ...


def stored_checkpoint(source: LogSource) -> Checkpoint | None:
    """The checkpoint stored on the source; None before its first batch."""
    if not source.path:
        return None
    return Checkpoint(source.path, source.device, source.inode, source.head, source.position)


def _where(checkpoint: Checkpoint | None, path: str) -> str:
    if checkpoint is None:
        return f"{path} from the top (no stored position)"
    if checkpoint.path != path:
        return f"{path} from the top (the stored position was for {checkpoint.path})"
    return f"{path} from byte {checkpoint.position:,} (the stored position)"


def maillog_follow_file(
    source: LogSource,
    path: str,
    *,
    stop: threading.Event,
    poll: float,
    retry: float = RETRY_SECONDS,
    actor: Actor = SYSTEM,
) -> None:
    """Follow the mail-log file at `path` into `source` until `stop` is set."""
    checkpoint = stored_checkpoint(source)
    log.info("following %s into log source %r", _where(checkpoint, path), source.name)
    follower = FileFollower(path, checkpoint)
    _keep_following(
        lambda: contextlib.nullcontext(follower), follower, source, stop=stop, poll=poll, retry=retry, actor=actor
    )


def maillog_follow_host(
    source: LogSource,
    host: MailHost,
    *,
    stop: threading.Event,
    poll: float,
    retry: float = RETRY_SECONDS,
    actor: Actor = SYSTEM,
) -> None:
    """Follow the mail log of `host` (its container's /var/log/mail/mail.log, over SSH) into `source` until `stop`
    is set; a lost connection is made again after a pause."""
    checkpoint = stored_checkpoint(source)
    log.info(
        "following %s on mail host %s into log source %r", _where(checkpoint, HOST_MAIL_LOG), host.name, source.name
    )
    follower = RemoteFollower(None, HOST_MAIL_LOG, checkpoint)

    @contextlib.contextmanager
    def connected() -> Iterator[RemoteFollower]:
        with ssh.session(host) as session:
            follower.log = HostMailLog(session, host.container)
            try:
                yield follower
            finally:
                follower.log = None

    _keep_following(connected, follower, source, stop=stop, poll=poll, retry=retry, actor=actor)


def _keep_following(
    opened: Callable[[], contextlib.AbstractContextManager[Follower]],
    follower: Follower,
    source: LogSource,
    *,
    stop: threading.Event,
    poll: float,
    retry: float,
    actor: Actor,
) -> None:
    """Run the follow loop on what `opened()` gives (the follower, read through a connection it may open), again
    after each failure; `follower` is the same each time, its checkpoint set back to the last one stored. Only
    while this follower holds the source (claim_logsource): it waits while another runs, and goes back to waiting
    (from the checkpoint the other stored) if another took over."""
    token = secrets.token_hex(16)
    me = _me()
    renewed = time.monotonic()

    def renew_when_due() -> None:
        nonlocal renewed
        if time.monotonic() - renewed >= RENEW_SECONDS:
            traffic.renew_logsource(source, token, actor=actor)
            renewed = time.monotonic()

    told_old = False

    def store(batch: Batch) -> None:
        nonlocal renewed, told_old
        try:
            result = traffic.maillog_ingest_lines(
                source, batch.lines, batch.checkpoint, actor=actor, follower_token=token
            )
            if not told_old and result.newest_at is not None and result.newest_at < traffic.retention_start():
                told_old = True
                log.warning(
                    "log source %r: the mail read is from %s, older than DOCKSPACE_TRAFFIC_DAYS (%d days): the next "
                    "prune deletes it, and it is not rolled up",
                    source.name,
                    result.newest_at.isoformat(timespec="seconds"),
                    settings.TRAFFIC_DAYS,
                )
        except _POISON:
            # Not the database being away: something in these lines (a shape no test foresaw). Tried again, the
            # batch would fail for ever and nothing after it would be read: store its lines one by one instead,
            # leaving out the ones that fail, then the checkpoint.
            log.exception("log source %r: a batch of %d lines could not be stored", source.name, len(batch.lines))
            _store_one_by_one(source, batch, token=token, actor=actor)
        renewed = time.monotonic()  # a stored batch says the follower runs
        # Told once stored: a batch read again after a failure would tell it twice.
        # A routine rotation is information; a gap (lines that cannot be read any more) is a warning.
        for note in batch.notes:
            (log.warning if batch.has_gap else log.info)("log source %r: %s", source.name, note)

    holding = False
    try:
        while not stop.is_set():
            try:
                if not holding:
                    holding = _wait_for_source(source, follower, token, me, stop=stop, actor=actor)
                    if not holding:
                        break  # told to stop while waiting
                    renewed = time.monotonic()
                with opened() as reading:
                    follow.follow(reading, store, stop, poll_interval=poll, max_lines=MAX_LINES, on_idle=renew_when_due)
                break
            except traffic.FollowerReplaced:
                holding = False
                log.error(
                    "log source %r: another follower took it over (this one was not heard of for %d s, or looked "
                    "gone); waiting until it stops",
                    source.name,
                    traffic.FOLLOWER_LEASE.total_seconds(),
                )
                continue
            except DatabaseError as exc:
                connections.close_all()  # a connection that failed is not used again
                log.error(
                    "log source %r: storing lines failed (%s); trying again in %g s", source.name, _line(exc), retry
                )
            except (OSError, RemoteLogError, ssh.SshError) as exc:
                log.error(
                    "log source %r: reading the log failed (%s); trying again in %g s", source.name, _line(exc), retry
                )
            except Exception:
                log.exception("log source %r: following the log failed; trying again in %g s", source.name, retry)
            stop.wait(retry)
    finally:
        if holding:
            with contextlib.suppress(DatabaseError):
                traffic.release_logsource(source, token, actor=actor)
    checkpoint = follower.checkpoint
    where = f"byte {checkpoint.position:,} of {checkpoint.path}" if checkpoint else "the start"
    log.info("log source %r: stopped at %s", source.name, where)


_FOLLOWER = "pid {pid} on {host} (kernel boot {boot}, pid namespace {namespace})"
_FOLLOWER_PATTERN = re.compile(r"pid (\d{1,10}) on .+ \(kernel boot ([0-9a-f-]{36}), pid namespace (\d{1,20})\)")


def _process_space() -> tuple[str, int]:
    """Where this process's pid means something: the running kernel (its boot id: another machine, or this one
    after a reboot, has another) and the PID namespace in it (containers have their own, whose pid 1s are
    different processes). ("", 0) where Linux does not tell."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        return boot, os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return "", 0


def _me() -> str:
    boot, namespace = _process_space()
    return _FOLLOWER.format(pid=os.getpid(), host=socket.gethostname(), boot=boot or "-", namespace=namespace)


def _is_gone(follower: str) -> bool:
    """Whether the follower described (`pid N on HOST (kernel boot B, pid namespace NS)`) is a process of this
    kernel and PID namespace that has ended (killed, or an earlier run of this process's pid): then no need to wait
    for its lease to run out. Unsure (another machine or namespace, neither known) means no."""
    m = _FOLLOWER_PATTERN.fullmatch(follower)
    boot, namespace = _process_space()
    if m is None or not boot or (m.group(2), int(m.group(3))) != (boot, namespace):
        return False
    pid = int(m.group(1))
    if pid == os.getpid():
        return True  # this process does not hold it under another token: a process before it had this pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


# Errors a batch's own lines cause (not a lost connection, which OperationalError and InterfaceError are).
_POISON = (ValueError, TypeError, OverflowError, ArithmeticError, LookupError, DataError, IntegrityError)


def _store_one_by_one(source: LogSource, batch: Batch, *, token: str, actor: Actor) -> None:
    """Store a batch that failed as a whole line by line, each in its own transaction, leaving out (and logging)
    the lines that fail; then the batch's checkpoint. A line left out is named by its number in the batch and its
    first 200 characters."""
    skipped = 0
    for number, line in enumerate(batch.lines, 1):
        try:
            traffic.maillog_ingest_lines(source, [line], None, actor=actor, follower_token=token)
        except _POISON as exc:
            skipped += 1
            log.error(
                "log source %r: left out line %d of a batch of %d (%s): %r",
                source.name,
                number,
                len(batch.lines),
                _line(exc),
                line[:200],
            )
    traffic.maillog_ingest_lines(source, [], batch.checkpoint, actor=actor, follower_token=token)
    log.warning("log source %r: stored the batch line by line; %d line(s) left out", source.name, skipped)


def _wait_for_source(
    source: LogSource, follower: Follower, token: str, me: str, *, stop: threading.Event, actor: Actor
) -> bool:
    """Hold the source for this follower, waiting while another runs (said once); the follower then goes on from
    the checkpoint stored on the source. False when told to stop while waiting."""
    told = False
    while not stop.is_set():
        claim = traffic.claim_logsource(source, token, me, actor=actor, is_gone=_is_gone)
        if claim.held:
            follower.checkpoint = stored_checkpoint(claim.source)
            if told:
                log.info("log source %r: the other follower is gone; following it now", source.name)
            return True
        if not told:
            log.warning(
                "log source %r is followed by %s (last heard of %s); waiting until it stops, or is silent for %d s",
                source.name,
                claim.follower,
                claim.seen_at.isoformat(timespec="seconds") if claim.seen_at else "never",
                traffic.FOLLOWER_LEASE.total_seconds(),
            )
            told = True
        stop.wait(CLAIM_RETRY_SECONDS)
    return False


def _line(exc: BaseException) -> str:
    if isinstance(exc, ssh.SshError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class HostMailLog:
    """A mail host's mail log read through the allow-listed commands of monitoring.ssh (stat, head, read at an
    offset) in its DMS container: the RemoteLog of monitoring.maillog.remote."""

    def __init__(self, session: ssh.Session, container: str):
        self.session = session
        self.container = container

    def _run(self, action: str, path: str, **where: int) -> bytes | None:
        """The command's output; None when the file does not exist."""
        directory, name = posixpath.split(path)
        if directory != ssh.MAIL_LOG_DIR:
            raise RemoteLogError(f"only {ssh.MAIL_LOG_DIR} is read on a mail host, not {directory}")
        try:
            argv = ssh.mail_log_argv(self.container, action, name, **where)
        except ValueError as exc:
            raise RemoteLogError(str(exc)) from None
        status, out, err = self.session.run_bytes(argv)
        if status == 0:
            return out
        if "No such file or directory" in err:
            return None
        detail = next((line.strip() for line in err.splitlines() if line.strip()), f"exit status {status}")
        raise RemoteLogError(f"`{self.session.command_line(argv)}` failed on {self.session.host.name}: {detail[:300]}")

    def stat(self, path: str) -> tuple[int, int, int] | None:
        out = self._run("stat", path)
        return None if out is None else remote.parse_stat(out.decode("ascii", "replace"))

    def head(self, path: str) -> bytes:
        return self._run("head", path) or b""

    def read(self, path: str, position: int, length: int) -> bytes:
        return self._run("read", path, position=position, length=length) or b""
