"""The Postfix policy service (SMTPD_POLICY_README): Postfix sends `name=value` lines and an empty line, we answer
`action=...` and an empty line, on connections it keeps open. It enforces the tiers' send limits on our people's
mail and routes pooled mail to an IP with room in its warmup caps (deliverability.policy_rules decides).

One asyncio loop serves every connection; the configuration lives in memory and a thread reloads it when its
fingerprint changes (deliverability.policy_config), so no request waits on the database. A request that is too
long, malformed or idle too long closes its own connection only (Postfix then retries or uses its default action)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from deliverability import policy_rules as rules
from deliverability import postfix_policy
from deliverability.policy_counters import TTL_SECONDS, Count, Counters

logger = logging.getLogger("dockspace.policy")

MAX_LINE = 8192
MAX_ATTRIBUTES = 200
MAX_REQUEST_BYTES = 64 * 1024
# Postfix's smtpd_recipient_limit is 1000 by default; a message said to have more is kept on the default route.
MAX_RECIPIENTS_SEEN = 10_000
LOCAL_MARK = "@"  # a recipient that counts as local: the message is not routed to an IP
# Postfix closes a policy connection it has not used for smtpd_policy_service_max_idle (300 s).
IDLE_TIMEOUT = 600.0
IDLE_CHECK_SECONDS = 60.0
DUNNO = "DUNNO"
# The second policy check of the end of a message (postfix_policy: policy_context=hold) asks whether to hold it.
HOLD_CONTEXT = postfix_policy.HOLD_CONTEXT
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[IpNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
QUEUE_ID = re.compile(r"[0-9A-Za-z]{6,32}")


class BadRequest(Exception):
    """A request this server will not answer: its connection is closed, nothing else is touched."""


def parse_request(block: bytes) -> dict[str, str]:
    """The attributes of one request (its bytes up to, not including, the empty line), decoded once. Unknown
    attributes are kept and ignored by the rules; a line without `=`, a line over MAX_LINE and a request of more
    than MAX_ATTRIBUTES lines are malformed."""
    lines = block.decode("utf-8", "replace").split("\n")
    if len(lines) > MAX_ATTRIBUTES:
        raise BadRequest(f"more than {MAX_ATTRIBUTES} attributes")
    attributes: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition("=")
        if not sep or not name:
            if not line.strip("\r"):
                continue  # a stray empty line before the request
            raise BadRequest(f"a line is not name=value: {line[:80]!r}")
        if len(line) > MAX_LINE:
            raise BadRequest(f"a line longer than {MAX_LINE} bytes")
        attributes[name] = value.removesuffix("\r")
    return attributes


@dataclass
class MessageSeen:
    """What one connection learnt of the message in progress (Postfix's `instance`): its accepted recipients."""

    instance: str
    recipients: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Answer:
    action: str
    rule: str = ""  # why, for the log and the figures: "", "state", "window", "recipients", "route", "wait"


class Policy:
    """The decisions, given the configuration in memory and the counters. Synchronous: each call is a few counter
    reads and at most one atomic write."""

    def __init__(
        self,
        config: rules.PolicyConfig,
        counters: Counters,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.counters = counters
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - spreading mail, not a secret

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    def answer(self, request: Mapping[str, str], seen: MessageSeen) -> Answer:
        if request.get("request") != "smtpd_access_policy":
            return Answer(DUNNO)
        config = self.config
        sender = rules.sender_of(config, request)
        if sender is None:
            return Answer(DUNNO)
        refusal = rules.state_refusal(sender)
        if refusal:
            return Answer(refusal, "state")
        state = request.get("protocol_state", "").upper()
        if state == "RCPT":
            return self._recipient(sender, request, seen)
        if state == "DATA":
            return self._data(sender, _count(request))
        if state == "END-OF-MESSAGE":
            if request.get("policy_context") == HOLD_CONTEXT:
                return self._hold(request.get("queue_id", ""))
            return self._end_of_message(sender, _count(request), seen, request.get("queue_id", ""))
        return Answer(DUNNO)

    def _recipient(self, sender: rules.Sender, request: Mapping[str, str], seen: MessageSeen) -> Answer:
        windows = rules.windows(sender, self.now())
        pending = len(seen.recipients)
        full = rules.full_window(windows, self.counters.get([w.key for w in windows]), pending + 1)
        if full:
            return Answer(rules.window_refusal(*full), "window")
        if len(seen.recipients) < MAX_RECIPIENTS_SEEN:
            seen.recipients.append(request.get("recipient", "").strip().lower())
        else:
            seen.recipients[-1] = LOCAL_MARK  # past Postfix's own recipient limit: never routed, never grows
        return Answer(DUNNO)

    def _data(self, sender: rules.Sender, count: int) -> Answer:
        too_many = rules.too_many_recipients(sender, count)
        if too_many:
            return Answer(too_many, "recipients")
        windows = rules.windows(sender, self.now())
        full = rules.full_window(windows, self.counters.get([w.key for w in windows]), count)
        if full:
            return Answer(rules.window_refusal(*full), "window")
        return Answer(DUNNO)

    def _end_of_message(self, sender: rules.Sender, count: int, seen: MessageSeen, queue_id: str) -> Answer:
        too_many = rules.too_many_recipients(sender, count)
        if too_many:
            return Answer(too_many, "recipients")
        now = self.now()
        windows = rules.windows(sender, now)
        counts = [Count(w.key, w.limit) for w in windows]
        ips = self.config.pools.get(sender.domain.pool, ()) if sender.domain.pool else ()
        if not ips:
            added, index, used = self.counters.try_add(counts, count)
            if not added:
                return Answer(rules.window_refusal(windows[index], used, count), "window")
            return Answer(DUNNO)
        # A message with a recipient on our own domains cannot be routed (a FILTER would take the local ones out
        # too): it takes the pool's rotation, but still counts against, and waits for, an IP's caps.
        routed = rules.all_remote(seen.recipients, self.config.local_domains)
        # What leaves through the IP: the outside recipients (all of them when the connection saw none).
        remote = count if routed else min(count, rules.remote_count(seen.recipients, self.config.local_domains))
        if not remote:
            added, index, used = self.counters.try_add(counts, count)
            if not added:
                return Answer(rules.window_refusal(windows[index], used, count), "window")
            return Answer(DUNNO)
        for _attempt in range(3):
            ip = self._choose(ips, remote, now)
            if ip is None:
                return self._wait(sender, count, windows, ips, now, queue_id, routed=routed, remote=remote)
            day, hour = rules.day_of(now), rules.hour_of(now)
            ip_counts = [
                Count(rules.ip_day_key(ip.address, day), ip.daily_cap, remote),
                Count(rules.ip_hour_key(ip.address, hour), ip.hourly_cap, remote),
            ]
            added, index, used = self.counters.try_add([*counts, *ip_counts], count)
            if added:
                return Answer(f"FILTER {ip.transport}:", "route") if routed else Answer(DUNNO)
            if index < len(windows):
                return Answer(rules.window_refusal(windows[index], used, count), "window")
            # Another server filled that IP between the read and the write: choose again with fresh figures.
        return self._wait(sender, count, windows, ips, now, queue_id, routed=routed, remote=remote)

    def _choose(self, ips: tuple[rules.RouteIp, ...], count: int, now: dt.datetime) -> rules.RouteIp | None:
        day, hour = rules.day_of(now), rules.hour_of(now)
        keys = [key for ip in ips for key in (rules.ip_day_key(ip.address, day), rules.ip_hour_key(ip.address, hour))]
        values = self.counters.get(keys)
        rooms = [rules.IpRoom(ip, values[2 * i], values[2 * i + 1]) for i, ip in enumerate(ips)]
        return rules.choose_ip(rooms, count, now.minute, self.rng)

    def _wait(
        self,
        sender: rules.Sender,
        count: int,
        windows: list[rules.Window],
        ips: tuple[rules.RouteIp, ...],
        now: dt.datetime,
        queue_id: str,
        *,
        routed: bool = True,
        remote: int | None = None,
    ) -> Answer:
        """No IP of the pool has room now: the message is routed to the IP with the earliest room, that room is
        reserved (counted in that hour and day), and the second check of the end of the message holds it in
        Postfix's queue until then (the releaser lets it go). Without a queue id, or without room in the next
        HOLD_HORIZON_HOURS, the sender is asked to try again later (451): nothing is lost either way."""
        pool = sender.domain.pool
        later = f"451 4.7.1 pool {pool} has no room in its warmup caps; try again later"
        if not QUEUE_ID.fullmatch(queue_id or ""):
            return Answer(later, "wait")
        for _attempt in range(3):
            hours = rules.future_hours(now)
            keys = [
                key
                for ip in ips
                for hour in hours
                for key in (
                    rules.ip_day_key(ip.address, rules.day_of(hour)),
                    rules.ip_hour_key(ip.address, rules.hour_of(hour)),
                )
            ]
            keys = list(dict.fromkeys(keys))
            used = dict(zip(keys, self.counters.get(keys), strict=True))
            remote = count if remote is None else remote
            found = rules.earliest_room(ips, used, remote, hours)
            if found is None:
                return Answer(later, "wait")
            ip, hour = found
            ttl = int((hour - now).total_seconds()) + TTL_SECONDS
            reserve = [
                Count(rules.ip_day_key(ip.address, rules.day_of(hour)), ip.daily_cap, remote),
                Count(rules.ip_hour_key(ip.address, rules.hour_of(hour)), ip.hourly_cap, remote),
            ]
            added, index, used_now = self.counters.try_add(
                [*(Count(w.key, w.limit) for w in windows), *reserve], count, ttl
            )
            if not added and index < len(windows):
                return Answer(rules.window_refusal(windows[index], used_now, count), "window")
            if added:
                payload = json.dumps(
                    {
                        "sender": sender.address,
                        "pool": pool,
                        "ip": ip.address,
                        "recipients": count,
                        "queued_at": now.isoformat(),
                        "release_at": hour.isoformat(),
                    }
                )
                self.counters.hold_add(queue_id, hour.timestamp(), payload)
                # The second check of the end of the message holds it (HOLD_CONTEXT); unrouted, it then leaves by
                # the pool's rotation when released.
                return Answer(f"FILTER {ip.transport}:" if routed else DUNNO, "wait")
        return Answer(later, "wait")

    def _hold(self, queue_id: str) -> Answer:
        """The second check at the end of a message: hold it when the first routed it to later room."""
        if not QUEUE_ID.fullmatch(queue_id or ""):
            return Answer(DUNNO)
        payload = self.counters.hold_get(queue_id)
        if payload is None:
            return Answer(DUNNO)
        held = json.loads(payload)
        release = dt.datetime.fromisoformat(held["release_at"])
        return Answer(f"HOLD waiting for warmup room on {held['ip']} until {release:%Y-%m-%d %H:%M} UTC", "hold")


def _count(request: Mapping[str, str]) -> int:
    text = request.get("recipient_count", "0").strip() or "0"
    if not text.isdigit():
        return 0
    # Past nine digits it is no real message (Postfix caps recipients far below): a count that fits no limit.
    return int(text) if len(text) <= 9 else 10**9


class PolicyServer:
    """The asyncio side: connections, requests, answers, and the reloading thread."""

    def __init__(
        self,
        policy: Policy,
        *,
        load: Callable[[], rules.PolicyConfig] | None = None,
        fingerprint: Callable[[], str] | None = None,
        reload_seconds: float = 2.0,
        loaded_fingerprint: str = "",
        release_command: str = "",
        release_seconds: float = 5.0,
        allowed_clients: Sequence[IpNetwork] = LOOPBACK,
        max_connections: int = 1000,
    ) -> None:
        self.policy = policy
        self._load = load
        self._fingerprint = fingerprint
        self.reload_seconds = reload_seconds
        self.loaded_fingerprint = loaded_fingerprint
        self.release_command = release_command
        self.release_seconds = release_seconds
        self.allowed_clients = tuple(allowed_clients)
        self.max_connections = max_connections
        self._last_refusal_log = 0.0
        self._stop = threading.Event()
        self.served = 0
        self.refused: dict[str, int] = {}
        self.connections: set[PolicyConnection] = set()
        # Answers waiting for their counts to be committed (group commit): (connection, answers, close after).
        self._waiting: list[tuple[PolicyConnection, list[bytes], bool]] = []
        self._flush: asyncio.Handle | None = None

    def answer_block(self, block: bytes, seen: MessageSeen) -> tuple[bytes, MessageSeen]:
        """The answer to one request (its bytes), and what the connection knows of the message after it."""
        request = parse_request(block)
        instance = request.get("instance", "")
        if instance != seen.instance:
            seen = MessageSeen(instance)
        answer = self.policy.answer(request, seen)
        self.served += 1
        if answer.rule:
            self.refused[answer.rule] = self.refused.get(answer.rule, 0) + 1
            if answer.rule != "route":
                logger.info(
                    "policy: %s for sasl_username=%s sender=%s: %s",
                    answer.rule,
                    request.get("sasl_username", ""),
                    request.get("sender", ""),
                    answer.action,
                )
        return f"action={answer.action}\n\n".encode(), seen

    def deliver(self, connection: PolicyConnection, answers: list[bytes], *, close: bool = False) -> None:
        """Send a connection's answers, or, while counts they depend on are not yet committed, queue them for the
        commit at the end of this turn of the loop: every connection served in one turn shares it."""
        if self.policy.counters.pending or self._waiting:
            self._waiting.append((connection, answers, close))
            if close:
                connection.pause_reading()  # nothing more is read (or counted) from a connection about to close
            if self._flush is None:
                self._flush = asyncio.get_running_loop().call_soon(self._commit_and_send)
            return
        connection.send(answers)
        if close:
            connection.close()

    def _commit_and_send(self) -> None:
        self._flush = None
        waiting, self._waiting = self._waiting, []
        try:
            self.policy.counters.commit()
        except Exception:
            # Nothing was counted: no answer goes out, and Postfix asks again (or applies its default action).
            logger.exception("policy: saving the counts failed; %d connections closed unanswered", len(waiting))
            for connection, _, _ in waiting:
                connection.close()
            return
        for connection, answers, close in waiting:
            connection.send(answers)
            if close:
                connection.close()

    def abort_waiting(self) -> None:
        """Trouble of our own while counts were pending: undo them all and close, unanswered, every connection whose
        answer depended on them."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self.policy.counters.rollback()
        waiting, self._waiting = self._waiting, []
        for connection, _, _ in waiting:
            connection.close()

    def reload_forever(self) -> None:
        """In a thread: look for a change every reload_seconds; load the new configuration off the hot path and swap
        it in whole. A failed load keeps the last good configuration."""
        if self._load is None or self._fingerprint is None:
            return
        from django.db import close_old_connections

        last = self.loaded_fingerprint
        while not self._stop.wait(self.reload_seconds if last else 0):
            try:
                close_old_connections()
                current = self._fingerprint()
                if current != last:
                    config = self._load()
                    self.policy.config = config
                    if last:
                        logger.info("policy: configuration reloaded (%d senders)", len(config.senders))
                    last = current
            except Exception:
                logger.exception("policy: reloading the configuration failed; keeping the last one")
                last = last or "failed"

    def release_forever(self) -> None:
        """In a thread: release held mail as its reserved room comes (deliverability.held_mail)."""
        from deliverability.held_mail import release_due

        while not self._stop.wait(self.release_seconds):
            try:
                release_due(self.policy.counters, self.release_command, self.policy.now())
            except Exception:
                logger.exception("policy: releasing held mail failed; trying again later")

    def stop(self) -> None:
        self._stop.set()

    async def serve(self, host: str, port: int, ready: Callable[[], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: PolicyConnection(self), host, port, reuse_address=True)
        # This thread's counts are committed once per turn of the loop (deliver), before their answers go out.
        self.policy.counters.defer_commits()
        threading.Thread(target=self.reload_forever, name="policy-reload", daemon=True).start()
        if self.release_command:
            threading.Thread(target=self.release_forever, name="policy-release", daemon=True).start()
        idle = loop.call_later(IDLE_CHECK_SECONDS, self._close_idle, loop)
        if ready:
            ready()
        async with server:
            try:
                await server.serve_forever()
            finally:
                self.stop()
                idle.cancel()
                if self._flush is not None:  # requests read in the last turn: counted and answered before closing
                    self._flush.cancel()
                    self._commit_and_send()
                # Open connections end with the server (Python 3.11's Server does not close them).
                for connection in list(self.connections):
                    connection.close()

    def admits(self, peer: object) -> str:
        """Why a new connection from `peer` is refused ("" when it is admitted)."""
        try:
            address = ipaddress.ip_address(peer[0].split("%")[0])  # type: ignore[index]
        except (TypeError, IndexError, ValueError):
            return "not an IP client"
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not any(address in network for network in self.allowed_clients):
            return f"{address} is not in DOCKSPACE_POLICY_ALLOWED_CLIENTS"
        if len(self.connections) >= self.max_connections:
            return f"{self.max_connections} connections are open (DOCKSPACE_POLICY_MAX_CONNECTIONS)"
        return ""

    def log_refusal(self, peer: object, why: str) -> None:
        now = time.monotonic()
        if now - self._last_refusal_log >= 60:  # at most one line a minute: a flood must not fill the log
            self._last_refusal_log = now
            logger.warning("policy: refused a connection from %s: %s", peer, why)

    def _close_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for connection in list(self.connections):
            if now - connection.last_active > IDLE_TIMEOUT:
                connection.close()
        loop.call_later(IDLE_CHECK_SECONDS, self._close_idle, loop)


class PolicyConnection(asyncio.Protocol):
    """One Postfix connection: bytes in, each complete request (up to its empty line) answered at once, in order.
    No task per connection or request: the cheapest way asyncio has to serve many small requests."""

    def __init__(self, server: PolicyServer) -> None:
        self.server = server
        self.buffer = b""
        self.seen = MessageSeen("")
        self.transport: asyncio.Transport | None = None
        self.peer: object = None
        self.last_active = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        self.last_active = asyncio.get_running_loop().time()
        refused = self.server.admits(self.peer)
        if refused:
            self.server.log_refusal(self.peer, refused)
            transport.abort()  # type: ignore[attr-defined]
            return
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.last_active = asyncio.get_running_loop().time()
        self.buffer += data
        answers = []
        counters = self.server.policy.counters
        writes = counters.writes  # before each request: whether the one that fails wrote
        try:
            while True:
                end = self.buffer.find(b"\n\n")
                if end < 0:
                    break
                block, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
                writes = counters.writes
                answer, self.seen = self.server.answer_block(block, self.seen)
                answers.append(answer)
            if len(self.buffer) > MAX_REQUEST_BYTES:
                raise BadRequest(f"a request over {MAX_REQUEST_BYTES} bytes")
        except BadRequest as exc:
            logger.warning("policy: closing the connection from %s: %s", self.peer, exc)
            self.server.deliver(self, answers, close=True)
            return
        except Exception:
            # Trouble of our own: Postfix's advice is to log and disconnect without answering. When the failed
            # request wrote to the turn's uncommitted counts, they are all undone, and no answer that depended on
            # them is sent; otherwise only this connection closes (after its earlier answers, as they stand).
            logger.exception("policy: internal error answering %s; connection closed", self.peer)
            if counters.pending and counters.writes != writes:
                self.server.abort_waiting()
                self.close()
            else:
                self.server.deliver(self, answers, close=True)
            return
        self.server.deliver(self, answers)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def send(self, answers: list[bytes]) -> None:
        if answers and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(answers))

    def pause_writing(self) -> None:
        # Our answers pile up unread (the transport's buffer passed its high-water mark): a client that sends and
        # never reads would grow it without end. Postfix waits for each answer, so this is not Postfix.
        logger.warning("policy: closing the connection from %s: it does not read its answers", self.peer)
        if self.transport is not None:
            self.transport.abort()
