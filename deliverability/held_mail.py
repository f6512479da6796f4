"""Mail the policy service holds in Postfix's queue until its sending IP has room in its warmup caps: the backlog as
operators see it, and its release when the time comes (`postsuper -H QUEUE_ID` on the mail host, through the
command DOCKSPACE_POLICY_RELEASE_COMMAND names). The room was reserved when the message was held, so releasing it
is all that is left to do: the message leaves through the IP its FILTER names."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shlex
import subprocess
from dataclasses import dataclass

from deliverability.policy_counters import Counters

logger = logging.getLogger("dockspace.policy")

# A release that keeps failing this long after its time is given up (the message was deleted or released by hand).
GIVE_UP_AFTER = dt.timedelta(hours=24)


@dataclass(frozen=True)
class HeldMessage:
    queue_id: str
    release_at: dt.datetime
    sender: str
    pool: str
    ip: str
    recipients: int

    def as_dict(self) -> dict:
        return {
            "queue_id": self.queue_id,
            "release_at": self.release_at.isoformat(),
            "sender": self.sender,
            "pool": self.pool,
            "ip": self.ip,
            "recipients": self.recipients,
        }


def held_messages(counters: Counters, due_by: dt.datetime | None = None) -> list[HeldMessage]:
    found = []
    for queue_id, release_at, payload in counters.holds(None if due_by is None else due_by.timestamp()):
        try:
            data = json.loads(payload)
        except ValueError:
            data = {}
        found.append(
            HeldMessage(
                queue_id,
                dt.datetime.fromtimestamp(release_at, dt.UTC),
                str(data.get("sender", "")),
                str(data.get("pool", "")),
                str(data.get("ip", "")),
                int(data.get("recipients", 0) or 0),
            )
        )
    return found


def release_command_argv(command: str, queue_id: str) -> list[str]:
    """The release command (e.g. `postsuper -H`, `docker exec mailserver postsuper -H`) with the queue id last."""
    return [*shlex.split(command), queue_id]


def release_due(counters: Counters, command: str, now: dt.datetime, *, timeout: float = 30) -> list[tuple[str, str]]:
    """Release every held message whose time has come; (queue id, outcome) for each tried. A failed release is
    tried again next time, and given up (with a warning) a day after its time."""
    outcomes = []
    for held in held_messages(counters, due_by=now):
        if not command:
            break
        try:
            done = subprocess.run(  # noqa: S603 - the operator's command, a fixed argument list, no shell
                release_command_argv(command, held.queue_id), capture_output=True, text=True, timeout=timeout
            )
            failed = done.returncode != 0
            why = (done.stderr or done.stdout).strip()[:300]
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            failed, why = True, str(exc)[:300]
        if not failed:
            counters.hold_done(held.queue_id)
            logger.info("policy: released %s (%s, via %s)", held.queue_id, held.sender, held.ip)
            outcomes.append((held.queue_id, "released"))
        elif now - held.release_at > GIVE_UP_AFTER:
            counters.hold_done(held.queue_id)
            logger.warning("policy: gave up releasing %s after a day of failures: %s", held.queue_id, why)
            outcomes.append((held.queue_id, f"given up: {why}"))
        else:
            logger.warning("policy: releasing %s failed (will try again): %s", held.queue_id, why)
            outcomes.append((held.queue_id, f"failed: {why}"))
    return outcomes
