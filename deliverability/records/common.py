"""What a record check concludes, as plain values: findings (ok / warning / failed, a one-line reason, and when
something must change the exact record to publish). A later domain-check service stores them."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from deliverability.dns.answer import Answer
from mail.dkim import split_txt_for_dns

OK = "ok"
WARNING = "warning"
FAILED = "failed"
LEVELS = (OK, WARNING, FAILED)

Lookup = Callable[[str, str], Answer]
"""`lookup(name, rdtype) -> Answer`: the one way record checks ask DNS (the resolver module gives the real one)."""


@dataclass(frozen=True)
class RecordToPublish:
    """One DNS record the domain owner should publish, replacing any record of that type and purpose there."""

    name: str
    rdtype: str
    value: str

    def __str__(self) -> str:
        """As a zone file line; a TXT value over 255 characters is cut into consecutive strings (RFC 1035)."""
        return f"{self.name}. {self.rdtype} {' '.join(self.strings())}"

    def strings(self) -> list[str]:
        """The value as quoted DNS character-strings: what a DNS provider's form or a zone file takes."""
        if self.rdtype != "TXT":
            return [self.value]
        chunks = split_txt_for_dns(self.value) if self.value.isascii() else [self.value]
        return ['"' + chunk.replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in chunks]


@dataclass(frozen=True)
class Finding:
    """One conclusion of a check: a problem found (warning/failed), or a check's overall outcome. An outcome's
    `problems` are every problem the check found, worst first (its reason names only the first)."""

    level: str
    reason: str
    record_to_publish: RecordToPublish | None = None
    problems: tuple["Finding", ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level: {self.level!r} is not one of {', '.join(LEVELS)}.")
        if not self.reason:
            raise ValueError("reason: must not be empty.")
        # Reasons quote what DNS holds: whatever it holds, the reason stays one line.
        object.__setattr__(self, "reason", one_line(self.reason, limit=None))

    @property
    def is_ok(self) -> bool:
        return self.level == OK


def worst_level(findings: Sequence[Finding]) -> str:
    """failed if any failed, else warning if any warned, else ok."""
    levels = {finding.level for finding in findings}
    return FAILED if FAILED in levels else WARNING if WARNING in levels else OK


def outcome(problems: Sequence[Finding], ok_reason: str, record_to_publish: RecordToPublish | None = None) -> Finding:
    """The check's one-line outcome: the first of its worst problems (with how many more there are), or ok; every
    problem stays on it (`problems`, worst first, else in the order found).

    `record_to_publish` is attached only when the outcome is not ok; a problem's own record wins over it."""
    level = worst_level(problems)
    if level == OK:
        return Finding(OK, ok_reason)
    ranked = tuple(sorted(problems, key=lambda problem: -LEVELS.index(problem.level)))
    first = ranked[0]
    others = len(problems) - 1
    reason = first.reason if not others else f"{first.reason} (and {others} more)"
    return Finding(level, reason, first.record_to_publish or record_to_publish, ranked)


def one_line(text: str, limit: int | None = 200) -> str:
    """Text from DNS or a user as it can go into a reason: control characters shown escaped, cut at `limit`."""
    shown = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
    return shown if limit is None or len(shown) <= limit else shown[: limit - 3] + "..."
