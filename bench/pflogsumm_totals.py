"""Debian's pflogsumm (1.1.5, /usr/sbin/pflogsumm) as the oracle of the mail-traffic totals: run it on a mail log and
read its "Grand Totals" into a dict, printed as JSON; with --time, also its wall time, lines per second and peak
memory (`/usr/bin/time -v`).

Run by hand from the project root:

    .venv/bin/python bench/pflogsumm_totals.py MAIL_LOG [--time] [--approximate]

pflogsumm prints a number over 512k as thousands ("1986m bytes received" is megabytes), which loses precision. By
default this script runs pflogsumm's own code with those two display thresholds raised (a copy of the script with
`$divByOneKAt` and `$divByOneMegAt` set to 1e30; nothing else changes) so every total prints whole; --approximate
runs /usr/sbin/pflogsumm untouched and multiplies "k" and "m" back (the JSON then says "exact": false).

How pflogsumm 1.1.5 counts (read from its source; `maillog ingest` + `traffic --json` must count the same way):

- Lines. Only lines with a classic (`Mar  2 10:15:02 host ...`) or RFC 3339 (`2026-03-02T10:15:02.123456+00:00 host
  ...`, also `Z` and no fraction) stamp whose program is `postfix/<cmd>[pid]` or `postfix/smtps/...` or
  `postfix/submission/...`. Dovecot, Rspamd and OpenDKIM lines are ignored. For any other syslog_name the command
  keeps it: `postfix/submissions/smtpd` (DMS's port 465) is the command "submissions/smtpd",
  `postfix/out-192-0-2-10/smtp` is "out-192-0-2-10/smtp", `postfix/sender-cleanup/cleanup` is
  "sender-cleanup/cleanup", which matters below where a rule names a command.
- received: lines `QID: client=...` of the command "smtpd" exactly (postfix/smtpd, postfix/submission/smtpd,
  postfix/smtps/smtpd; NOT postfix/submissions/smtpd, nor an amavis re-injection postfix/smtpd-amavis/smtpd), plus
  pickup's `QID: uid=...`/`sender=...` lines. One per line.
- delivered: every `to=<r>, [orig_to=<o>,] relay=..., [conn_use=N,] delay=..., [delays=...,] [dsn=...,]
  status=sent` line of any other command (smtp, lmtp, local, virtual, pipe, out-*/smtp...): one per recipient per
  line, local (LMTP to Dovecot) and remote alike, including the delivery of non-delivery notifications and of
  content-filter hops (e.g. amavis). Not those whose reply says "forwarded as " (local(8) forwarding): those are
  "forwarded".
- deferred: the queue ids with at least one `status=deferred` line; "deferrals": the `status=deferred` lines
  (recipients x attempts).
- bounced: `status=bounced` lines (one per recipient). An expired message (qmgr `status=expired, returned to sender`)
  is counted nowhere in the Grand Totals: its recipients have deferred lines only (its notification's delivery counts
  as delivered).
- rejected: smtpd and postscreen lines `NOQUEUE: reject: ...` or `QID: reject: ...` (SMTP-stage refusals, postscreen's
  DNSBL/PREGREET/denylist refusals at RCPT included; one per refused RCPT, not per connection), plus cleanup lines
  `reject:`/`milter-reject:` at `header`, `body` or `END-OF-MESSAGE` (header_checks, Rspamd/milter rejects) of the
  command "cleanup" exactly (not sender-cleanup/cleanup). Not counted: smtpd's `milter-reject:` (e.g. `NOQUEUE:
  milter-reject: RCPT ...`), postscreen's DNSBL rank/PREGREET/HANGUP lines themselves, SASL failures.
  "rejected (N%)" is int(100 x rejected / (delivered + rejected + discarded)), truncated.
- reject warnings, held, discarded: the same lines with `reject_warning:`, `hold:`, `discard:` (discarded % as for
  rejected).
- bytes received: the size= of the first qmgr `from=<s>, size=N` line of each queue id counted as received whose
  client=/pickup line came first (so not submissions/465, nor notifications, nor a message whose client line is
  before the log starts); each queue id once.
- bytes delivered: for each delivered line, the size of its message (0 when no size line came before it).
- senders / sending hosts/domains: distinct envelope senders (domain part lowercased; the null sender counts as
  "from=<>") of those received-and-sized messages / their domains (the client's domain when the sender has none).
- recipients / recipient hosts/domains: distinct recipient addresses of delivered lines (domain part lowercased) /
  their domains.
- Order matters: sizes come from the qmgr line, so a message's lines must come in log order (chronological input).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PFLOGSUMM = "/usr/sbin/pflogsumm"
TIME = "/usr/bin/time"
UNITS = {" ": 1, "k": 1024, "m": 1024 * 1024}
# Grand Totals label -> JSON key.
LABELS = {
    "received": "received",
    "delivered": "delivered",
    "forwarded": "forwarded",
    "deferred": "deferred",
    "bounced": "bounced",
    "rejected": "rejected",
    "reject warnings": "reject_warnings",
    "held": "held",
    "discarded": "discarded",
    "bytes received": "bytes_received",
    "bytes delivered": "bytes_delivered",
    "senders": "senders",
    "sending hosts/domains": "sending_hosts_domains",
    "recipients": "recipients",
    "recipient hosts/domains": "recipient_hosts_domains",
}
_LINE = re.compile(r"^\s*(\d+)([ km])\s+(.*?)\s*$")
_THRESHOLDS = re.compile(r"^(\$divBy(?:OneK|OneMeg)At\s*=\s*)\d+;", re.MULTILINE)


def parse_grand_totals(report: str) -> dict:
    """The Grand Totals of a pflogsumm report: {"received": 9, "deferred": 3, "deferrals": 7, "rejected": 4,
    "rejected_percent": 26, ...}; a value printed with a unit ("1986m") is multiplied back and marks the result
    {"exact": False}."""
    try:
        section = report.split("Grand Totals", 1)[1].split("\n\n\n", 1)[0]
    except IndexError:
        raise ValueError("no Grand Totals in pflogsumm's report") from None
    totals, exact = {}, True
    for line in section.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        value, unit, rest = int(match.group(1)), match.group(2), match.group(3)
        label = re.sub(r"\s*\(.*\)$", "", rest)
        if label not in LABELS:
            continue
        key = LABELS[label]
        totals[key] = value * UNITS[unit]
        exact = exact and unit == " "
        if deferrals := re.search(r"\((\d+)([km]?)\s+deferrals\)", rest):
            totals["deferrals"] = int(deferrals.group(1)) * UNITS[deferrals.group(2) or " "]
            exact = exact and not deferrals.group(2)
        elif percent := re.search(r"\((\d+)%\)", rest):
            totals[f"{key}_percent"] = int(percent.group(1))
    totals.setdefault("deferrals", 0)
    missing = [key for key in LABELS.values() if key not in totals]
    if missing:
        raise ValueError(f"pflogsumm's Grand Totals lack {', '.join(missing)}")
    totals["exact"] = exact
    return totals


def _exact_script(directory) -> Path:
    """A copy of pflogsumm that prints every number whole (its 512k/512m display thresholds raised)."""
    source = Path(PFLOGSUMM).read_text()
    patched, count = _THRESHOLDS.subn(r"\g<1>1e30;", source)
    if count != 2:
        raise RuntimeError(f"{PFLOGSUMM}: did not find its two display thresholds ($divByOneKAt, $divByOneMegAt)")
    path = Path(directory) / "pflogsumm-exact"
    path.write_text(patched)
    return path


def pflogsumm_command(directory, *, exact=True) -> list[str]:
    return ["perl", str(_exact_script(directory))] if exact else [PFLOGSUMM]


def pflogsumm_totals(log_path, *, exact=True) -> dict:
    """Run pflogsumm on `log_path` and return its Grand Totals (see parse_grand_totals)."""
    with tempfile.TemporaryDirectory(prefix="pflogsumm-") as directory:
        done = subprocess.run(
            [*pflogsumm_command(directory, exact=exact), str(log_path)], capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"pflogsumm failed ({done.returncode}): {done.stderr.strip()}")
    return parse_grand_totals(done.stdout)


def time_pflogsumm(log_path, *, exact=True, repeat=3) -> dict:
    """Run pflogsumm `repeat` times under /usr/bin/time -v: the best and median wall seconds, the best CPU seconds
    (user + system), lines per second from the best wall time, and the peak RSS in MiB. On a shared machine the CPU
    time is the steadier figure."""
    lines = _count_lines(log_path)
    walls, cpus, rss = [], [], 0
    with tempfile.TemporaryDirectory(prefix="pflogsumm-") as directory:
        command = pflogsumm_command(directory, exact=exact)
        for _ in range(repeat):
            began = time.perf_counter()
            done = subprocess.run(
                [TIME, "-v", *command, str(log_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            walls.append(time.perf_counter() - began)
            if done.returncode != 0:
                raise RuntimeError(f"pflogsumm failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
            cpus.append(_seconds(done.stderr, "User time") + _seconds(done.stderr, "System time"))
            rss = max(rss, int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)))
    return {
        "lines": lines,
        "runs": repeat,
        "best_seconds": round(min(walls), 2),
        "median_seconds": round(statistics.median(walls), 2),
        "best_cpu_seconds": round(min(cpus), 2),
        "lines_per_second": round(lines / min(walls)),
        "lines_per_cpu_second": round(lines / min(cpus)),
        "peak_rss_mib": round(rss / 1024, 1),
    }


def _seconds(report, label):
    return float(re.search(rf"{label} \(seconds\): ([\d.]+)", report).group(1))


def _count_lines(path):
    count = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def _why_not():
    if not os.path.exists(PFLOGSUMM):
        return f"{PFLOGSUMM} is missing (Debian: apt-get install pflogsumm)"
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", help="a Postfix mail log (plain text)")
    parser.add_argument("--time", action="store_true", help="also time pflogsumm (wall time, lines/s, peak RSS)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (default 3): best and median are shown")
    parser.add_argument(
        "--approximate", action="store_true", help="run /usr/sbin/pflogsumm untouched (totals over 512k rounded)"
    )
    args = parser.parse_args(argv)
    problem = _why_not()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    result = {"totals": pflogsumm_totals(args.log, exact=not args.approximate)}
    if args.time:
        result["timing"] = time_pflogsumm(args.log, exact=not args.approximate, repeat=args.repeat)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
