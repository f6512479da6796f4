"""Generate a realistic docker-mailserver (DMS) mail log for the mail-traffic benchmarks: N lines (default 1,000,000)
as DMS's rsyslog writes them (`2026-03-02T10:15:02.123456+00:00 mail postfix/smtpd[1234]: ...`), many messages in
flight at once, deterministic for a given --seed.

Run by hand from the project root:

    .venv/bin/python bench/maillog_generate.py [--lines 1000000] [--seed 1] [--out mail.log]

The Postfix line shapes are those of a real Postfix 3.7 configured like DMS (monitoring/tests/postfix_instance.py
captured them into monitoring/tests/maillog_lines/real_postfix_3_7.log); delays are formatted as Postfix's
format_tv does. The mix, per story (one client connection, one message or one IMAP session):

- mail from outside: postscreen CONNECT and PASS OLD/NEW, smtpd connect/TLS/client=/disconnect, cleanup message-id,
  OpenDKIM and Rspamd lines, qmgr from=/size=, Dovecot LMTP lines and postfix/lmtp status=sent to the mailboxes
  (an alias may forward to an outside address: orig_to=), removed; a few rejected by Rspamd (cleanup milter-reject),
  a few held or discarded by a header_checks HOLD or DISCARD (cleanup `hold:`/`discard:`, then nothing more),
  some with one recipient refused at RCPT (`QID: reject:`), a few to a full mailbox (LMTP 552, bounced, and the
  non-delivery notification leaves with the null sender);
- NOQUEUE rejects at RCPT (relay, unknown user, sender domain, HELO, access), postscreen DNSBL and PREGREET rejects,
  scanners that hang up;
- submissions with SASL through `submission` (587) or `submissions` (465) and sender-cleanup, leaving through `smtp`
  or, for the pooled domains, a sending IP's transport (`postfix/out-192-0-2-10/smtp`): sent with the providers'
  replies, greylisted or rate-limited then sent on a retry, bounced (550/552/554 or a domain that does not exist) with
  a non-delivery notification to the sender, or deferred to a dead host until maximal_queue_lifetime (5 days) expires
  it (`status=expired, returned to sender`); retries follow Postfix's backoff (300 s doubling to 4000 s, queue runs
  every 300 s) and qmgr logs `from=... (queue active)` again at each;
- cron mail picked up and forwarded by local(8) (`status=sent (forwarded as ...)`), failed SASL logins on submission,
  Dovecot IMAP logins, logouts and failed logins, anvil statistics.

The log starts at --start (default 2026-03-02T00:00:00+00:00); --lines-per-day (default 150,000, a busy small
company: ~10,000 messages a day) sets how fast the clock runs, with a day/night swing. The file ends with messages
still in flight, as a real log does.
"""

import argparse
import heapq
import math
import random
import sys
import time
from datetime import datetime

HOST = "mail"
FQDN = "mail.example.com"
LOCAL_IP = "172.18.0.2"  # the container's address: postscreen's "to [...]:25", Dovecot's lip=
LMTP_RELAY = f"{FQDN}[/var/run/dovecot/lmtp]"
LOCAL_DOMAINS = ["example.com", "example.org", "example.net", "shop.example.com"]
POOLED_DOMAINS = {"example.org": ["192.0.2.10", "192.0.2.11"], "shop.example.com": ["192.0.2.12"]}
MAX_QUEUE_LIFETIME = 5 * 86400
BEFORE_HANDSHAKE, AFTER_HANDSHAKE = "tests before SMTP handshake", "tests after SMTP handshake"  # postscreen's stages
MIN_BACKOFF, MAX_BACKOFF, QUEUE_RUN_DELAY = 300, 4000, 300

# fmt: off
FIRST = [
    "anna", "ben", "carla", "david", "emma", "felix", "greta", "hugo", "ida", "jonas", "klara", "lena", "marie",
    "noah", "olga", "paul", "rosa", "sami", "tara", "uwe", "vera", "wim", "xenia", "yara", "zoe", "alex", "chris",
    "dana", "eli", "finn", "gina", "hans", "ines", "jan", "kim", "leo", "mia", "nina", "otto", "pia", "quinn",
    "rene", "sara", "tom"
]
LAST = [
    "meyer", "schmidt", "novak", "rossi", "garcia", "smith", "jones", "dubois", "martin", "weber", "bauer",
    "keller", "fischer", "wagner", "becker", "hoffmann", "schulz", "koch", "richter", "klein", "wolf", "neumann",
    "schwarz", "zimmermann", "braun", "krueger", "hartmann", "lange", "werner", "krause"
]
# fmt: on

# Remote domains by weight, with their MX host, reply style and address.
PROVIDERS = [
    # domain, weight, mx host, mx ip, style
    ("gmail.com", 30, "gmail-smtp-in.l.google.com", "142.250.153.27", "gmail"),
    ("googlemail.com", 2, "gmail-smtp-in.l.google.com", "142.250.153.26", "gmail"),
    ("outlook.com", 8, "outlook-com.olc.protection.outlook.com", "52.101.68.18", "outlook"),
    ("hotmail.com", 6, "hotmail-com.olc.protection.outlook.com", "52.101.11.0", "outlook"),
    ("yahoo.com", 4, "mta7.am0.yahoodns.net", "67.195.204.72", "yahoo"),
    ("gmx.de", 6, "mx00.emig.gmx.net", "212.227.15.9", "gmx"),
    ("web.de", 5, "mx-ha03.web.de", "212.227.17.8", "gmx"),
    ("icloud.com", 3, "mx01.mail.icloud.com", "17.57.155.23", "postfix"),
    ("t-online.de", 3, "mx00.t-online.de", "194.25.134.8", "postfix"),
    ("posteo.de", 1, "mx01.posteo.de", "185.67.36.61", "postfix"),
    ("partner-firm.example", 6, "mx1.partner-firm.example", "198.51.100.20", "postfix"),
    ("supplier.example", 4, "mail.supplier.example", "198.51.100.35", "postfix"),
    ("customer-a.example", 4, "example-a.mail.protection.outlook.com", "52.101.73.4", "outlook"),
    ("customer-b.example", 3, "aspmx.l.google.com", "142.250.27.26", "gmail"),
    ("agency.example", 2, "mx.agency.example", "203.0.113.44", "postfix"),
    ("university.example", 2, "mx.university.example", "198.51.100.80", "postfix"),
]
DEAD_DOMAINS = [("old-firm.example", "mx.old-firm.example", "192.0.2.200")]  # deferred until it expires
TYPO_DOMAINS = ["gmial.com", "gmx.dee", "outlok.com", "hotmial.com"]  # no such domain: bounced at once

TLS_IN = [
    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS "
    "(2048 bits) server-digest SHA256",
    "TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits) key-exchange X25519 server-signature RSA-PSS "
    "(2048 bits) server-digest SHA256",
    "TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
]
TLS_OUT = [
    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA (P-256) "
    "server-digest SHA256",
    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS "
    "(2048 bits) server-digest SHA256",
    "TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
]
PUBLIC_FIRST_OCTETS = [5, 31, 37, 45, 46, 62, 77, 78, 80, 81, 82, 84, 85, 87, 89, 91, 93, 94, 95, 109, 141, 151, 176,
                       178, 185, 188, 193, 194, 195, 212, 213, 217]  # fmt: skip
ISP_PTR = ["dip0.t-ipconnect.de", "dynamic.kabel-deutschland.de", "cable.virginm.net", "rev.sfr.net", "telefonica.de"]


def format_tv(seconds):
    """Postfix's format_tv(sec, usec, 2 significant digits, delay_max_res 2): "0.06", "2.4", "12", "0"."""
    sec = int(seconds)
    usec = int(round((seconds - sec) * 1_000_000))
    ures, wid = 10_000, 100
    if sec > 0:
        n = 1
        while sec >= n and n <= wid // 10:
            n *= 10
        ures = (1_000_000 // wid) * n
    else:
        while usec >= wid * ures:
            ures *= 10
    if ures > 1:
        usec += ures // 2
        if usec >= 1_000_000:
            sec += 1
            usec -= 1_000_000
    out = str(sec)
    if usec >= ures:
        digits = []
        rem, n = usec, 100_000
        while rem >= ures and n > 0:
            digits.append("0123456789"[rem // n])
            rem %= n
            n //= 10
        out += "." + "".join(digits)
    return out


class Sim:
    """The server being simulated: its people, the world's clients and servers, process ids, queue ids; and the
    stories (generators yielding (time, "program[pid]: text")) that make the log."""

    def __init__(self, rng):
        self.rng = rng
        self.spawned = []  # stories started by other stories (non-delivery notifications), drained by the loop
        self._pid = 3000
        self._pools = {}
        self._inode = rng.randrange(0x100000, 0x200000)
        self.active_qids = set()
        self._mx = {}
        self.seen_ips = set()
        self.mailboxes = [
            f"{first}.{last}@{domain}"
            for domain in LOCAL_DOMAINS
            for first, last in self._names(60 if domain == "example.com" else 25)
        ]
        self.mailboxes += [f"info@{d}" for d in LOCAL_DOMAINS[:2]]
        self.aliases = {"info@example.com": ["anna.meyer@example.com", "ops.desk@gmail.com"], "sales@example.org": []}
        self.aliases["sales@example.org"] = [m for m in self.mailboxes if m.endswith("@example.org")][:3]
        self.full_mailboxes = set(rng.sample(self.mailboxes, 3))
        self.senders_out = [m for m in self.mailboxes if not m.startswith("info@")]
        self.remote_weights = [p[1] for p in PROVIDERS]
        self.remote_people = {p[0]: [f"{f}.{last}" for f, last in self._names(120)] for p in PROVIDERS}
        self.mtas = [self._mta() for _ in range(1500)]
        self.laptops = [self._laptop() for _ in range(300)]
        self.bad_clients = [self._ip() for _ in range(4000)]

    # --- identities -----------------------------------------------------------------------------------------------

    def _names(self, count):
        pairs = [(f, last) for f in FIRST for last in LAST]
        return self.rng.sample(pairs, count)

    def _ip(self):
        r = self.rng
        return f"{r.choice(PUBLIC_FIRST_OCTETS)}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"

    def _mta(self):
        r = self.rng
        ip = self._ip()
        kind = r.random()
        if kind < 0.25:
            last = r.randrange(20, 200)
            host = f"mail-{r.choice('ewlpo')}{r.choice('jdfs')}1-f{last}.google.com"
            ip = f"209.85.{r.randrange(128, 224)}.{last}"
            domain = "gmail.com"
        elif kind < 0.4:
            number = r.randrange(600, 730)
            site = f"{r.choice(['am0', 'db5', 'vi1', 'he1'])}eur0{r.randrange(1, 6)}"
            host = f"mail-{site}on20{number}.outbound.protection.outlook.com"
            ip = f"40.107.{r.randrange(0, 256)}.{number - 600}"
            domain = r.choice(["outlook.com", "hotmail.com", "customer-a.example"])
        elif kind < 0.55:
            host = f"mout.{r.choice(['gmx.net', 'web.de', 'kundenserver.de'])}"
            ip = f"212.227.{r.randrange(15, 18)}.{r.randrange(1, 30)}"
            domain = r.choice(["gmx.de", "web.de"])
        elif kind < 0.7:
            host = "unknown"
            domain = r.choice(["newsletter.example", "shop-mailer.example", "notify.example"])
        else:
            domain = r.choice([p[0] for p in PROVIDERS[10:]] + ["news.example", "bank.example"])
            host = f"{r.choice(['mail', 'mx1', 'smtp', 'out'])}.{domain}"
        return (host, ip, host if host != "unknown" else f"mail.{domain}", domain)

    def _laptop(self):
        r = self.rng
        ip = self._ip()
        if r.random() < 0.5:
            host = "unknown"
        else:
            host = f"p{r.getrandbits(32):08x}.{r.choice(ISP_PTR)}"
        return (host, ip, r.choice(["[192.168.1.23]", "[10.0.0.5]", "laptop.fritz.box", "DESKTOP-4F2K1Q"]))

    def remote_address(self):
        r = self.rng
        provider = r.choices(PROVIDERS, self.remote_weights)[0]
        return f"{r.choice(self.remote_people[provider[0]])}@{provider[0]}"

    # --- process ids, queue ids, message ids ----------------------------------------------------------------------

    def pid(self, program, size=3):
        pool = self._pools.get(program)
        if pool is None:
            pool = self._pools[program] = [self._new_pid() for _ in range(size)]
        if size > 1 and self.rng.random() < 0.002:  # max_use / idle exit: a new process replaces an old one
            pool[self.rng.randrange(len(pool))] = self._new_pid()
        return pool[self.rng.randrange(len(pool))]

    def _new_pid(self):
        self._pid += self.rng.randrange(1, 40)
        if self._pid > 4_000_000:
            self._pid = 3000
        return self._pid

    def qid(self, t):
        """A short Postfix queue id: the microseconds of the queue file's creation (5 hex digits) then its inode."""
        while True:
            self._inode += self.rng.randrange(1, 9)
            if self._inode > 0xFFFFFF:
                self._inode = 0x100000
            qid = f"{int((t % 1) * 1_000_000):05X}{self._inode:X}"
            if qid not in self.active_qids:
                self.active_qids.add(qid)
                return qid

    def msgid(self, t, sender_domain):
        r = self.rng
        kind = r.random()
        if sender_domain in ("gmail.com", "googlemail.com"):
            return f"<CA+{r.getrandbits(160):040x}@mail.gmail.com>"
        if kind < 0.4:
            return f"<{r.getrandbits(128):032x}@{sender_domain}>"
        return f"<{_stamp(t)}.{r.getrandbits(40):010x}@{sender_domain}>"

    def size(self):
        return max(600, min(25_000_000, int(self.rng.lognormvariate(math.log(18_000), 1.3))))

    def session(self):
        """A Dovecot session id: 16 random bytes in base64 without padding (22 characters)."""
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        bits = self.rng.getrandbits(132)
        return "".join(alphabet[(bits >> (6 * i)) & 63] for i in range(22))

    # --- shared pieces ------------------------------------------------------------------------------------------

    def qmgr(self, text):
        return f"postfix/qmgr[{self.pid('postfix/qmgr', 1)}]: {text}"

    def active(self, qid, sender, size, nrcpt):
        """qmgr's line each time a message enters the active queue (first delivery and every retry)."""
        return self.qmgr(f"{qid}: from=<{sender}>, size={size}, nrcpt={nrcpt} (queue active)")

    def delays(self, before_qmgr, in_qmgr, setup, transfer):
        total = before_qmgr + in_qmgr + setup + transfer
        return (
            f"delay={format_tv(total)}, delays={format_tv(before_qmgr)}/{format_tv(in_qmgr)}/"
            f"{format_tv(setup)}/{format_tv(transfer)}"
        )

    def lmtp_delivery(self, t, qid, arrival, recipients, msgid, orig=None, full_ok=True):
        """Dovecot LMTP delivers the recipients in one session; yields the lines, returns (the bounced ones, the time
        it ended)."""
        r = self.rng
        dpid = self.pid("dovecot-lmtp", 4)
        lpid = self.pid("postfix/lmtp", 3)
        yield t, f"dovecot: lmtp({dpid}): Connect from local"
        t += r.uniform(0.005, 0.05)
        session = self.session()
        setup, transfer = r.uniform(0, 0.01), r.uniform(0.005, 0.2)
        timing = self.delays(t - arrival - 0.01, 0.01, setup, transfer)
        bounced = []
        for rcpt in recipients:
            orig_to = f", orig_to=<{orig[rcpt]}>" if orig and rcpt in orig else ""
            if rcpt in self.full_mailboxes and full_ok:
                text = (
                    f"postfix/lmtp[{lpid}]: {qid}: to=<{rcpt}>{orig_to}, relay={LMTP_RELAY}, {timing}, dsn=5.2.2, "
                    f"status=bounced (host {LMTP_RELAY} said: 552 5.2.2 <{rcpt}> Quota exceeded (mailbox for user "
                    "is full) (in reply to RCPT TO command))"
                )
                yield t, text
                bounced.append(rcpt)
                continue
            folder = "Junk" if r.random() < 0.04 else "INBOX"
            yield t, f"dovecot: lmtp({rcpt})<{dpid}><{session}>: msgid={msgid}: saved mail to {folder}"
            t += 0.0004
            text = (
                f"postfix/lmtp[{lpid}]: {qid}: to=<{rcpt}>{orig_to}, relay={LMTP_RELAY}, {timing}, dsn=2.0.0, "
                f"status=sent (250 2.0.0 <{rcpt}> {session} Saved)"
            )
            yield t, text
        t += r.uniform(0.001, 0.01)
        yield t, f"dovecot: lmtp({dpid}): Disconnect from local: Client has quit the connection (state=READY)"
        return bounced, t

    def remote_round(self, t, qid, arrival, recipients, transport, orig=None, first=True):
        """One delivery round of a message to outside recipients, grouped by domain (one connection each).
        Yields the lines; returns ({recipient: "sent" | "bounced" | "deferred"}, the time it ended)."""
        r = self.rng
        outcome = {}
        by_domain = {}
        for rcpt in recipients:
            by_domain.setdefault(rcpt.rsplit("@", 1)[1], []).append(rcpt)
        for domain, rcpts in by_domain.items():
            pid = self.pid(transport, 4)
            t += r.uniform(0.001, 0.05)
            dead = next((d for d in DEAD_DOMAINS if d[0] == domain), None)
            if domain in TYPO_DOMAINS:
                timing = self.delays(t - arrival, 0.01, 0, 0)
                for rcpt in rcpts:
                    outcome[rcpt] = "bounced"
                    text = (
                        f"{transport}[{pid}]: {qid}: to=<{rcpt}>{_orig(orig, rcpt)}, relay=none, {timing}, dsn=5.4.4, "
                        f"status=bounced (Host or domain name not found. Name service error for name={domain} "
                        "type=A: Host not found)"
                    )
                    yield t, text
                continue
            if dead:
                t += 30.0
                yield t, f"{transport}[{pid}]: connect to {dead[1]}[{dead[2]}]:25: Connection timed out"
                timing = self.delays(t - arrival - 30.01, 0.01, 30.0, 0)
                for rcpt in rcpts:
                    outcome[rcpt] = "deferred"
                    text = (
                        f"{transport}[{pid}]: {qid}: to=<{rcpt}>{_orig(orig, rcpt)}, relay=none, {timing}, dsn=4.4.1, "
                        f"status=deferred (connect to {dead[1]}[{dead[2]}]:25: Connection timed out)"
                    )
                    yield t, text
                continue
            mx, ip, style = self.mx_for(domain)
            relay = f"{mx}[{ip}]:25"
            setup = r.uniform(0.05, 0.9)
            t += setup
            if r.random() < 0.9:
                trust = r.choice(["Trusted", "Trusted", "Untrusted", "Verified"])
                yield t, f"{transport}[{pid}]: {trust} TLS connection established to {relay}: {r.choice(TLS_OUT)}"
            transfer = r.uniform(0.05, 1.5)
            t += transfer
            timing = self.delays(t - arrival - setup - transfer, r.uniform(0, 0.02), setup, transfer)
            roll = r.random()
            if first and roll < 0.035:
                status = "greylist"
            elif first and roll < 0.042:
                status = "ratelimit"
            else:
                status = "ok"
            for rcpt in rcpts:
                if status == "ok" and r.random() < 0.02:
                    outcome[rcpt] = "bounced"
                    dsn, reply = _bounce_reply(style, rcpt, mx, ip, r)
                    text = (
                        f"{transport}[{pid}]: {qid}: to=<{rcpt}>{_orig(orig, rcpt)}, relay={relay}, {timing}, "
                        f"dsn={dsn}, status=bounced ({reply})"
                    )
                    yield t, text
                elif status == "ok":
                    outcome[rcpt] = "sent"
                    text = (
                        f"{transport}[{pid}]: {qid}: to=<{rcpt}>{_orig(orig, rcpt)}, relay={relay}, {timing}, "
                        f"dsn=2.0.0, status=sent ({_sent_reply(style, r)})"
                    )
                    yield t, text
                else:
                    outcome[rcpt] = "deferred"
                    dsn, reply = _defer_reply(status, style, rcpt, mx, ip)
                    text = (
                        f"{transport}[{pid}]: {qid}: to=<{rcpt}>{_orig(orig, rcpt)}, relay={relay}, {timing}, "
                        f"dsn={dsn}, status=deferred ({reply})"
                    )
                    yield t, text
        return outcome, t

    def mx_for(self, domain):
        """(MX host, its address, reply style) of a remote domain: the providers' own, else a plain Postfix MX."""
        known = self._mx.get(domain)
        if known is None:
            provider = next((p for p in PROVIDERS if p[0] == domain), None)
            known = (provider[2], provider[3], provider[4]) if provider else (f"mx.{domain}", self._ip(), "postfix")
            self._mx[domain] = known
        return known

    def notify(self, t, qid, sender):
        """bounce(8) queues a non-delivery notification to the sender; the caller logs the bounce line after this
        story has started (cleanup and qmgr come first in the log, as in the capture)."""
        nqid = self.qid(t)
        self.spawned.append(self.ndn_story(t, nqid, sender))
        return f"postfix/bounce[{self.pid('postfix/bounce', 2)}]: {qid}: sender non-delivery notification: {nqid}"

    def removed(self, t, qid):
        self.active_qids.discard(qid)
        return t, self.qmgr(f"{qid}: removed")

    # --- stories ------------------------------------------------------------------------------------------------

    def postscreen_pass(self, t, ip, port):
        ps = self.pid("postfix/postscreen", 1)
        yield t, f"postfix/postscreen[{ps}]: CONNECT from [{ip}]:{port} to [{LOCAL_IP}]:25"
        if ip in self.seen_ips:
            t += self.rng.uniform(0.001, 0.01)
            yield t, f"postfix/postscreen[{ps}]: PASS OLD [{ip}]:{port}"
        else:
            self.seen_ips.add(ip)
            t += 6.0 + self.rng.uniform(0, 0.01)
            yield t, f"postfix/postscreen[{ps}]: PASS NEW [{ip}]:{port}"
        return t

    def inbound(self, t):
        """Mail from outside to our mailboxes (and aliases)."""
        r = self.rng
        host, ip, helo, domain = r.choice(self.mtas)
        port = r.randrange(20000, 65000)
        t = yield from self.postscreen_pass(t, ip, port)
        smtpd = self.pid("postfix/smtpd", 6)
        client = f"{host}[{ip}]"
        t += 0.05
        yield t, f"postfix/smtpd[{smtpd}]: connect from {client}"
        tls = r.random() < 0.8
        if tls:
            t += r.uniform(0.05, 0.3)
            yield t, f"postfix/smtpd[{smtpd}]: Anonymous TLS connection established from {client}: {r.choice(TLS_IN)}"
        local_part = r.choice(["news", "noreply", "info", "j.doe", "billing", "support"])
        sender = "" if r.random() < 0.03 else f"{local_part}@{domain}"
        count = r.choices([1, 2, 3, 5], [80, 12, 5, 3])[0]
        rcpts = r.sample(self.mailboxes, count)
        if r.random() < 0.05:
            rcpts[0] = r.choice(list(self.aliases))
        t += r.uniform(0.1, 0.6)
        qid = self.qid(t)
        arrival = t
        yield t, f"postfix/smtpd[{smtpd}]: {qid}: client={client}"
        refused = 0
        if r.random() < 0.02:  # one more recipient refused once the queue file exists: logged with the queue id
            refused = 1
            bad = f"{r.choice(FIRST)}{r.randrange(10, 99)}@{r.choice(LOCAL_DOMAINS)}"
            text = (
                f"postfix/smtpd[{smtpd}]: {qid}: reject: RCPT from {client}: 550 5.1.1 <{bad}>: Recipient address "
                f"rejected: User unknown in virtual mailbox table; from=<{sender}> to=<{bad}> proto=ESMTP helo=<{helo}>"
            )
            yield t + 0.01, text
        t += r.uniform(0.05, 1.5)
        msgid = self.msgid(t, domain)
        size = self.size()
        cleanup = self.pid("postfix/cleanup", 4)
        yield t, f"postfix/cleanup[{cleanup}]: {qid}: message-id={msgid}"
        t += r.uniform(0.02, 0.2)
        verdict = "DKIM verification successful" if r.random() < 0.8 else "no signature data"
        yield t, f"opendkim[{self.pid('opendkim', 1)}]: {qid}: {verdict}"
        spam = r.random()
        t += r.uniform(0.05, 0.6)
        score = r.uniform(-4, 3) if spam > 0.05 else r.uniform(15, 40)
        action = "no action" if spam > 0.05 else "reject"
        bayes = "BAYES_HAM(-3.00){99.9%;}" if spam > 0.05 else "BAYES_SPAM(5.10){100.0%;}"
        text = (
            f"rspamd_proxy[{self.pid('rspamd_proxy', 1)}]: <{r.getrandbits(24):06x}>; proxy; rspamd_task_write_log: "
            f"id: {msgid}, qid: <{qid}>, ip: {ip}, from: <{sender}>, (default: {'F' if spam > 0.05 else 'T'} "
            f"({action}): [{score:.2f}/15.00] [{bayes},"
            f"R_SPF_ALLOW(-0.20){{+ip4:{ip};}},MIME_GOOD(-0.10){{text/plain;}}]), len: {size}, "
            f"time: {r.uniform(30, 400):.3f}ms, dns req: {r.randrange(5, 40)}, digest: <{r.getrandbits(128):032x}>, "
            f"rcpts: <{','.join(rcpts)}>"
        )
        yield t, text
        commands = [*(["ehlo=2", "starttls=1"] if tls else ["ehlo=1"]), "mail=1"]
        total_rcpt = len(rcpts) + refused
        commands.append(f"rcpt={len(rcpts)}" if not refused else f"rcpt={len(rcpts)}/{total_rcpt}")
        kept = r.random()
        ended = None  # what ends the message at cleanup, and the data= count smtpd logs for it
        if spam <= 0.05:
            ended = (
                f"milter-reject: END-OF-MESSAGE from {client}: 5.7.1 Spam message rejected; from=<{sender}> "
                f"to=<{rcpts[0]}> proto=ESMTP helo=<{helo}>",
                "data=0/1",
            )
        elif kept < 0.007:  # a header_checks HOLD (kept in the hold queue) or DISCARD (dropped)
            action, subject = ("hold", "Invoice overdue") if kept < 0.004 else ("discard", "Unsubscribe confirmation")
            reason = ": looks like invoice fraud" if action == "hold" else ""
            ended = (
                f"{action}: header Subject: {subject} from {client}; from=<{sender}> to=<{rcpts[0]}> proto=ESMTP "
                f"helo=<{helo}>{reason}",
                "data=1",
            )
        if ended is not None:
            yield t, f"postfix/cleanup[{cleanup}]: {qid}: {ended[0]}"
            commands += [ended[1], "quit=1"]
            yield t + 0.001, _disconnect("postfix/smtpd", smtpd, client, commands)
            self.active_qids.discard(qid)
            return
        yield t, self.active(qid, sender, size, len(self._expand(rcpts)))
        commands += ["data=1", "quit=1"]
        t += 0.001
        yield t, _disconnect("postfix/smtpd", smtpd, client, commands)
        expanded = self._expand(rcpts)
        local = [rc for rc, _ in expanded if _is_local(rc)]
        remote = [rc for rc, _ in expanded if not _is_local(rc)]
        orig = {rc: o for rc, o in expanded if o}
        bounced = []
        if local:
            bounced, t = yield from self.lmtp_delivery(t + r.uniform(0.01, 0.05), qid, arrival, local, msgid, orig)
        if remote:  # an alias forwarding outside: the message leaves through the default transport
            outcome, t = yield from self.remote_round(t, qid, arrival, remote, "postfix/smtp", orig)
            bounced += [rcpt for rcpt, state in outcome.items() if state == "bounced"]
        if bounced and sender:
            yield t + 0.002, self.notify(t, qid, sender)
        t += 0.003
        yield self.removed(t, qid)

    def _expand(self, rcpts):
        out = []
        for rc in rcpts:
            if rc in self.aliases:
                out += [(target, rc) for target in self.aliases[rc]]
            else:
                out.append((rc, None))
        return out

    def ndn_story(self, t, nqid, sender):
        """A non-delivery notification: queued by bounce(8) with the null sender, delivered to the sender."""
        r = self.rng
        stamp = _stamp(t)
        yield t, f"postfix/cleanup[{self.pid('postfix/cleanup', 4)}]: {nqid}: message-id=<{stamp}.{nqid}@{FQDN}>"
        t += 0.0005
        yield t, self.active(nqid, "", r.randrange(2400, 9000), 1)
        t += r.uniform(0.002, 0.02)
        if _is_local(sender):
            _, t = yield from self.lmtp_delivery(t, nqid, t - 0.01, [sender], f"<{stamp}.{nqid}@{FQDN}>", full_ok=False)
        else:
            _, t = yield from self.remote_round(t, nqid, t - 0.01, [sender], "postfix/smtp", first=False)
        yield self.removed(t + 0.002, nqid)

    def submission(self, t):
        """A person sends mail through submission (587) or submissions (465) with SASL."""
        r = self.rng
        host, ip, helo = r.choice(self.laptops)
        service = "postfix/submission/smtpd" if r.random() < 0.7 else "postfix/submissions/smtpd"
        pid = self.pid(service, 2)
        client = f"{host}[{ip}]"
        sender = r.choice(self.senders_out)
        yield t, f"{service}[{pid}]: connect from {client}"
        t += r.uniform(0.05, 0.3)
        yield t, f"{service}[{pid}]: Anonymous TLS connection established from {client}: {r.choice(TLS_IN)}"
        count = r.choices([1, 2, 3, 4, 8], [70, 15, 8, 5, 2])[0]
        rcpts = []
        for _ in range(count):
            roll = r.random()
            if roll < 0.12:
                rcpts.append(r.choice(self.mailboxes))
            elif roll < 0.128:
                rcpts.append(f"{r.choice(FIRST)}@{r.choice(TYPO_DOMAINS)}")
            elif roll < 0.132:
                rcpts.append(f"{r.choice(FIRST)}@{DEAD_DOMAINS[0][0]}")
            else:
                rcpts.append(self.remote_address())
        rcpts = list(dict.fromkeys(rcpts))
        t += r.uniform(0.2, 1.0)
        qid = self.qid(t)
        arrival = t
        method = "PLAIN" if r.random() < 0.8 else "LOGIN"
        yield t, f"{service}[{pid}]: {qid}: client={client}, sasl_method={method}, sasl_username={sender}"
        t += r.uniform(0.2, 3.0)
        domain = sender.rsplit("@", 1)[1]
        msgid = self.msgid(t, domain)
        cleanup = self.pid("postfix/sender-cleanup/cleanup", 2)
        yield t, f"postfix/sender-cleanup/cleanup[{cleanup}]: {qid}: message-id={msgid}"
        t += r.uniform(0.01, 0.1)
        yield t, f"opendkim[{self.pid('opendkim', 1)}]: {qid}: DKIM-Signature field added (s=mail, d={domain})"
        size = self.size()
        t += r.uniform(0.01, 0.2)
        yield t, self.active(qid, sender, size, len(rcpts))
        ehlo = ["ehlo=2", "starttls=1"] if service.startswith("postfix/submission/") else ["ehlo=1"]
        commands = [*ehlo, "auth=1", "mail=1", f"rcpt={len(rcpts)}", "data=1", "quit=1"]
        yield t + 0.001, _disconnect(service, pid, client, commands)
        ips = POOLED_DOMAINS.get(domain)
        transport = f"postfix/out-{r.choice(ips).replace('.', '-')}/smtp" if ips else "postfix/smtp"
        local = [rc for rc in rcpts if _is_local(rc)]
        remote = [rc for rc in rcpts if not _is_local(rc)]
        if local:
            _, t = yield from self.lmtp_delivery(t + 0.02, qid, arrival, local, msgid, full_ok=False)
        pending = remote
        first = True
        while True:
            outcome = {}
            if pending:
                outcome, t = yield from self.remote_round(t + 0.03, qid, arrival, pending, transport, first=first)
            if any(state == "bounced" for state in outcome.values()):
                yield t + 0.002, self.notify(t, qid, sender)
                t += 0.003
            pending = [rc for rc, state in outcome.items() if state == "deferred"]
            if not pending:
                break
            if t - arrival >= MAX_QUEUE_LIFETIME:
                yield t, self.qmgr(f"{qid}: from=<{sender}>, status=expired, returned to sender")
                yield t + 0.002, self.notify(t, qid, sender)
                t += 0.003
                break
            first = False
            age = t - arrival
            t += min(MAX_BACKOFF, max(MIN_BACKOFF, age)) + r.uniform(0, QUEUE_RUN_DELAY)
            yield t, self.active(qid, sender, size, len(rcpts))
        yield self.removed(t + 0.01, qid)

    def noqueue_reject(self, t):
        """A client that passes postscreen and is refused at RCPT (no queue file)."""
        r = self.rng
        ip = r.choice(self.bad_clients)
        host = "unknown" if r.random() < 0.7 else f"{ip.replace('.', '-')}.static.example-hosting.net"
        helo = r.choice(["localhost", "User", host if host != "unknown" else f"[{ip}]", "mail.example.com"])
        port = r.randrange(20000, 65000)
        t = yield from self.postscreen_pass(t, ip, port)
        smtpd = self.pid("postfix/smtpd", 6)
        client = f"{host}[{ip}]"
        yield t, f"postfix/smtpd[{smtpd}]: connect from {client}"
        sender = f"{r.choice(FIRST)}@{r.choice(['mailer.example', 'promo.example', 'example.net', 'bulk.example'])}"
        attempts = r.choices([1, 2, 5], [80, 15, 5])[0]
        for _ in range(attempts):
            t += r.uniform(0.2, 1.5)
            kind = r.random()
            if kind < 0.35:
                rcpt = f"{r.choice(FIRST)}@{r.choice(['gmail.com', 'yahoo.com', 'victim.example'])}"
                reply = f"554 5.7.1 <{rcpt}>: Relay access denied"
            elif kind < 0.75:
                rcpt = f"{r.choice(FIRST)}{r.randrange(1, 999)}@{r.choice(LOCAL_DOMAINS)}"
                reply = f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table"
            elif kind < 0.85:
                rcpt = r.choice(self.mailboxes)
                sender = f"{r.choice(FIRST)}@{r.choice(['nonexistent.example', 'no-such-domain.example'])}"
                reply = f"450 4.1.8 <{sender}>: Sender address rejected: Domain not found"
            elif kind < 0.95 and helo in ("localhost", "User"):
                rcpt = r.choice(self.mailboxes)
                reply = f"504 5.5.2 <{helo}>: Helo command rejected: need fully-qualified hostname"
            else:
                rcpt = r.choice(self.mailboxes)
                reply = f"554 5.7.1 <{rcpt}>: Recipient address rejected: Access denied"
            text = (
                f"postfix/smtpd[{smtpd}]: NOQUEUE: reject: RCPT from {client}: {reply}; from=<{sender}> "
                f"to=<{rcpt}> proto=ESMTP helo=<{helo}>"
            )
            yield t, text
        t += r.uniform(0.1, 1.0)
        if r.random() < 0.5:
            commands = ["ehlo=1", "mail=1", f"rcpt=0/{attempts}", "rset=1", "quit=1"]
        else:
            commands = ["ehlo=1", "mail=1", f"rcpt=0/{attempts}", "data=0/1", "quit=1"]
        yield t, _disconnect("postfix/smtpd", smtpd, client, commands)

    def postscreen_reject(self, t):
        """postscreen: a DNSBL-listed client (enforce: refused at RCPT), a pregreeting bot, or one that hangs up."""
        r = self.rng
        ip = r.choice(self.bad_clients)
        port = r.randrange(20000, 65000)
        ps = self.pid("postfix/postscreen", 1)
        yield t, f"postfix/postscreen[{ps}]: CONNECT from [{ip}]:{port} to [{LOCAL_IP}]:25"
        kind = r.random()
        helo = r.choice(["User", "localhost", "ylmf-pc", f"[{ip}]", "WIN-3K9QF1"])
        if kind < 0.6:
            t += r.uniform(0.05, 0.5)
            yield t, f"postfix/postscreen[{ps}]: DNSBL rank {r.randrange(3, 12)} for [{ip}]:{port}"
            if r.random() < 0.25:
                after = r.uniform(1, 6)
                t += after
                text = (
                    f"postfix/postscreen[{ps}]: HANGUP after {format_tv(after)} from [{ip}]:{port} in {AFTER_HANDSHAKE}"
                )
                yield t, text
            else:
                lists = r.choice(["zen.spamhaus.org", "b.barracudacentral.org", "bl.spamcop.net", "bl.mailspike.net"])
                for _ in range(r.choices([1, 2, 3], [85, 10, 5])[0]):
                    t += r.uniform(6, 8)
                    sender = f"{r.choice(FIRST)}@{r.choice(['bulk.example', 'promo.example', 'example.net'])}"
                    text = (
                        f"postfix/postscreen[{ps}]: NOQUEUE: reject: RCPT from [{ip}]:{port}: 550 5.7.1 Service "
                        f"unavailable; client [{ip}] blocked using {lists}; from=<{sender}>, "
                        f"to=<{r.choice(self.mailboxes)}>, proto=ESMTP, helo=<{helo}>"
                    )
                    yield t, text
        elif kind < 0.8:
            after = r.uniform(0.05, 1.0)
            t += after
            greeting = f"EHLO {helo}"
            text = (
                f"postfix/postscreen[{ps}]: PREGREET {len(greeting) + 2} after {format_tv(after)} from [{ip}]:{port}: "
                f"{greeting}\\r\\n"
            )
            yield t, text
            t += r.uniform(6, 8)
            text = (
                f"postfix/postscreen[{ps}]: NOQUEUE: reject: RCPT from [{ip}]:{port}: 550 5.5.1 Protocol error; "
                f"from=<{r.choice(FIRST)}@example.net>, to=<{r.choice(self.mailboxes)}>, proto=ESMTP, helo=<{helo}>"
            )
            yield t, text
        else:
            after = r.uniform(0.5, 5)
            t += after
            text = f"postfix/postscreen[{ps}]: HANGUP after {format_tv(after)} from [{ip}]:{port} in {BEFORE_HANDSHAKE}"
            yield t, text
        t += r.uniform(0.01, 0.5)
        yield t, f"postfix/postscreen[{ps}]: DISCONNECT [{ip}]:{port}"

    def scanner(self, t):
        """A client that connects and leaves without mail."""
        r = self.rng
        ip = r.choice(self.bad_clients)
        port = r.randrange(20000, 65000)
        t = yield from self.postscreen_pass(t, ip, port)
        smtpd = self.pid("postfix/smtpd", 6)
        client = f"unknown[{ip}]"
        yield t, f"postfix/smtpd[{smtpd}]: connect from {client}"
        t += r.uniform(0.1, 5)
        step = r.choice(["CONNECT", "EHLO", "STARTTLS"])
        if step == "STARTTLS":
            yield t, f"postfix/smtpd[{smtpd}]: SSL_accept error from {client}: lost connection"
        yield t, f"postfix/smtpd[{smtpd}]: lost connection after {step} from {client}"
        commands = {
            "CONNECT": ["commands=0"],
            "EHLO": ["ehlo=1", "commands=1"],
            "STARTTLS": ["ehlo=1", "starttls=0/1", "commands=1/2"],
        }[step]
        yield t, f"postfix/smtpd[{smtpd}]: disconnect from {client} {' '.join(commands)}"

    def sasl_failure(self, t):
        """Password guessing on submission."""
        r = self.rng
        ip = r.choice(self.bad_clients)
        service = r.choice(["postfix/submission/smtpd", "postfix/submissions/smtpd"])
        pid = self.pid(service, 2)
        client = f"unknown[{ip}]"
        yield t, f"{service}[{pid}]: connect from {client}"
        t += r.uniform(0.1, 0.4)
        yield t, f"{service}[{pid}]: Anonymous TLS connection established from {client}: {r.choice(TLS_IN)}"
        t += r.uniform(1.5, 4)
        user = r.choice(["admin", "info@example.com", "test", "webmaster@example.org", r.choice(self.mailboxes)])
        failed = f"SASL LOGIN authentication failed: (reason unavailable), sasl_username={user}"
        yield t, f"{service}[{pid}]: warning: {client}: {failed}"
        t += r.uniform(0.1, 2)
        yield t, f"{service}[{pid}]: lost connection after AUTH from {client}"
        ehlo = ["ehlo=2", "starttls=1"] if service.startswith("postfix/submission/") else ["ehlo=1"]
        yield t, _disconnect(service, pid, client, [*ehlo, "auth=0/1"])

    def imap(self, t):
        """A Dovecot IMAP session: a login and, later, its logout; or a failed login."""
        r = self.rng
        user = r.choice(self.senders_out)
        host, ip, _ = r.choice(self.laptops)
        session = self.session()[:16]
        if r.random() < 0.15:
            bad_ip = r.choice(self.bad_clients)
            who = r.choice([user, "admin", "test@example.com"])
            t += r.uniform(1, 3)
            attempts = r.randrange(1, 4)
            text = (
                f"dovecot: imap-login: Disconnected: Connection closed (auth failed, {attempts} attempts in "
                f"{r.randrange(2, 12)} secs): user=<{who}>, method=PLAIN, rip={bad_ip}, lip={LOCAL_IP}, TLS, "
                f"session=<{session}>"
            )
            yield t, text
            return
        mpid = self._new_pid()
        text = (
            f"dovecot: imap-login: Login: user=<{user}>, method=PLAIN, rip={ip}, lip={LOCAL_IP}, mpid={mpid}, TLS, "
            f"session=<{session}>"
        )
        yield t, text
        t += r.expovariate(1 / 900)
        text = (
            f"dovecot: imap({user})<{mpid}><{session}>: Logged out in={r.randrange(50, 5000)} "
            f"out={r.randrange(500, 900000)} deleted={r.randrange(0, 3)} expunged={r.randrange(0, 3)} trashed=0 "
            f"hdr_count={r.randrange(0, 40)} hdr_bytes={r.randrange(0, 90000)} body_count={r.randrange(0, 10)} "
            f"body_bytes={r.randrange(0, 900000)}"
        )
        yield t, text

    def cron(self, t):
        """Mail from a cron job on the host: pickup, then local(8) forwards root's mail to the postmaster."""
        r = self.rng
        qid = self.qid(t)
        yield t, f"postfix/pickup[{self.pid('postfix/pickup', 1)}]: {qid}: uid=0 from=<root>"
        t += 0.01
        stamp = _stamp(t)
        yield t, f"postfix/cleanup[{self.pid('postfix/cleanup', 4)}]: {qid}: message-id=<{stamp}.{qid}@{FQDN}>"
        t += 0.01
        yield t, self.active(qid, f"root@{FQDN}", r.randrange(700, 4000), 1)
        t += 0.02
        nqid = self.qid(t)
        yield t, f"postfix/cleanup[{self.pid('postfix/cleanup', 4)}]: {nqid}: message-id=<{stamp}.{qid}@{FQDN}>"
        yield t, self.active(nqid, f"root@{FQDN}", r.randrange(900, 4200), 1)
        text = (
            f"postfix/local[{self.pid('postfix/local', 1)}]: {qid}: to=<root@{FQDN}>, orig_to=<root>, relay=local, "
            f"{self.delays(0.03, 0, 0, 0.01)}, dsn=2.0.0, status=sent (forwarded as {nqid})"
        )
        yield t, text
        yield self.removed(t + 0.001, qid)
        msgid = f"<{stamp}.{qid}@{FQDN}>"
        _, t = yield from self.lmtp_delivery(t + 0.01, nqid, t - 0.03, ["info@example.com"], msgid, full_ok=False)
        yield self.removed(t + 0.002, nqid)


def _stamp(t):
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t))


def _orig(orig, rcpt):
    return f", orig_to=<{orig[rcpt]}>" if orig and orig.get(rcpt) else ""


def _is_local(address):
    return address.rsplit("@", 1)[-1] in LOCAL_DOMAINS


def _disconnect(program, pid, client, commands):
    done = sum(int(c.split("=")[1].split("/")[0]) for c in commands)
    tried = sum(int(c.split("=")[1].split("/")[-1]) for c in commands)
    total = f"commands={done}" if done == tried else f"commands={done}/{tried}"
    return f"{program}[{pid}]: disconnect from {client} {' '.join(commands)} {total}"


def _gmail_id(r):
    return f"{r.getrandbits(48):012x}si{r.randrange(10**6, 10**7)}ejc.{r.randrange(100, 999)}"


def _sent_reply(style, r):
    if style == "gmail":
        return f"250 2.0.0 OK  {r.randrange(1_700_000_000, 1_800_000_000)} {_gmail_id(r)} - gsmtp"
    if style == "outlook":
        box = f"AM{r.randrange(0, 9)}PR0{r.randrange(1, 9)}MB{r.randrange(1000, 9999)}"
        return (
            f"250 2.6.0 <{r.getrandbits(64):016x}@example.com> [InternalId={r.randrange(10**13, 10**14)}, "
            f"Hostname={box}.eurprd0{r.randrange(1, 9)}.prod.outlook.com] {r.randrange(2000, 90000)} bytes in "
            f"{r.uniform(0.05, 0.5):.3f}, {r.uniform(20, 900):.3f} KB/sec Queued mail for delivery"
        )
    if style == "yahoo":
        return "250 ok dirdel"
    if style == "gmx":
        return f"250 Requested mail action okay, completed: id=1M{r.getrandbits(40):010x}-1t{r.getrandbits(40):010x}"
    return f"250 2.0.0 Ok: queued as 4{r.getrandbits(48):012X}"


def _bounce_reply(style, rcpt, mx, ip, r):
    said = f"host {mx}[{ip}] said:"
    if style == "gmail":
        return "5.1.1", (
            f"{said} 550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 "
            "double-checking the recipient's email address for typos or 550-5.1.1 unnecessary spaces. For more "
            f"information, go to 550 5.1.1  https://support.google.com/mail/?p=NoSuchUser {_gmail_id(r)} - gsmtp "
            "(in reply to RCPT TO command)"
        )
    if style == "outlook":
        return "5.5.0", (
            f"{said} 550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). "
            f"[AM{r.randrange(0, 9)}PEPF0000{r.randrange(1000, 9999)}.eurprd04.prod.outlook.com] "
            "(in reply to RCPT TO command)"
        )
    kind = r.random()
    if kind < 0.6:
        return "5.1.1", (
            f"{said} 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table "
            "(in reply to RCPT TO command)"
        )
    if kind < 0.85:
        return "5.2.2", f"{said} 552 5.2.2 <{rcpt}>: Mailbox full (in reply to RCPT TO command)"
    return "5.7.1", (
        f"{said} 554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using b.barracudacentral.org "
        "(in reply to RCPT TO command)"
    )


def _defer_reply(status, style, rcpt, mx, ip):
    said = f"host {mx}[{ip}] said:"
    if status == "greylist":
        if style == "gmail":
            return "4.7.28", (
                f"{said} 421-4.7.28 Gmail has detected an unusual rate of unsolicited mail from your IP address. "
                "421-4.7.28 To protect our users from spam, mail has been temporarily 421 4.7.28 rate limited. "
                "- gsmtp (in reply to end of DATA command)"
            )
        return "4.2.0", (
            f"{said} 450 4.2.0 <{rcpt}>: Recipient address rejected: Greylisted, see "
            "http://postgrey.schweikert.ch/help/example.net.html (in reply to RCPT TO command)"
        )
    if style == "outlook":
        return "4.7.500", (
            f"{said} 451 4.7.500 Server busy. Please try again later from [192.0.2.10]. (S77719) "
            "(in reply to RCPT TO command)"
        )
    if style == "yahoo":
        return "4.7.0", (
            f"{said} 421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or "
            "user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes "
            "(in reply to MAIL FROM command)"
        )
    return "4.3.0", f"{said} 451 4.3.0 <{rcpt}>: Temporary lookup failure (in reply to RCPT TO command)"


# What starts a story, by weight (per arrival).
STORIES = [
    ("inbound", 40),
    ("submission", 20),
    ("noqueue_reject", 10),
    ("postscreen_reject", 8),
    ("scanner", 5),
    ("sasl_failure", 3),
    ("imap", 13),
    ("cron", 1),
]
LINES_PER_STORY = 9.5  # measured average, to turn lines per day into arrivals per second


def generate(out, lines, seed, start, lines_per_day):
    """Write `lines` lines to `out`; return (lines written, first time, last time)."""
    rng = random.Random(seed)
    sim = Sim(rng)
    names = [name for name, _ in STORIES]
    weights = [w for _, w in STORIES]
    story_of = {name: getattr(sim, name) for name in names}
    base_rate = lines_per_day / 86400 / LINES_PER_STORY
    heap = []
    seq = 0
    next_arrival = start
    written = 0
    cached_sec, cached_prefix = -1, ""
    buffer = []
    pop, push = heapq.heappop, heapq.heappush
    last_t = start

    def add(story, first_event=None):
        nonlocal seq
        try:
            t, text = first_event or next(story)
        except StopIteration:
            return
        seq += 1
        push(heap, (t, seq, text, story))

    while written < lines:
        top = heap[0][0] if heap else math.inf
        while next_arrival <= top:
            add(story_of[rng.choices(names, weights)[0]](next_arrival))
            while sim.spawned:
                add(sim.spawned.pop())
            hour = (next_arrival % 86400) / 3600
            rate = base_rate * (1 + 0.6 * math.sin((hour - 9) / 24 * 2 * math.pi))  # busy days, quiet nights
            next_arrival += rng.expovariate(rate)
            top = heap[0][0]
        t, _, text, story = pop(heap)
        if t < last_t:  # a story's event may not go back before what was written
            t = last_t
        last_t = t
        sec = int(t)
        if sec != cached_sec:
            cached_sec = sec
            cached_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        buffer.append(f"{cached_prefix}.{int((t - sec) * 1_000_000):06d}+00:00 {HOST} {text}\n")
        written += 1
        if len(buffer) >= 10_000:
            out.write("".join(buffer))
            buffer.clear()
        add(story)
        while sim.spawned:
            add(sim.spawned.pop())
    out.write("".join(buffer))
    return written, start, last_t


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines to write (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=1, help="the same seed gives the same file (default 1)")
    parser.add_argument("--start", default="2026-03-02T00:00:00+00:00", help="time of the first line (RFC 3339)")
    parser.add_argument("--lines-per-day", type=int, default=150_000, help="log volume (default 150,000 a day)")
    parser.add_argument("--out", default="-", help="output file (default: standard output)")
    args = parser.parse_args(argv)
    start = datetime.fromisoformat(args.start).timestamp()
    began = time.perf_counter()
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    try:
        written, first, last = generate(out, args.lines, args.seed, start, args.lines_per_day)
    finally:
        if out is not sys.stdout:
            out.close()
    took = time.perf_counter() - began
    print(
        f"{written:,} lines in {took:.1f} s ({written / took:,.0f} lines/s), "
        f"covering {(last - first) / 86400:.2f} days",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
