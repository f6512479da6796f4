"""One DNS answer as data: what the resolver returns and what the record checks read (they never see dnspython)."""

from dataclasses import dataclass

OK = "ok"
NXDOMAIN = "nxdomain"  # the name does not exist
NODATA = "nodata"  # the name exists, with no record of this type
TIMEOUT = "timeout"
SERVFAIL = "servfail"
ERROR = "error"  # anything else (refused, malformed answer, no server reachable)

STATUSES = (OK, NXDOMAIN, NODATA, TIMEOUT, SERVFAIL, ERROR)


@dataclass(frozen=True)
class Answer:
    """`records` in text form: TXT as the strings of each record joined without separator (RFC 7208 3.3), A and
    AAAA as addresses, MX as "preference exchange", PTR, CNAME and NS as names; names absolute, lower case,
    without the trailing dot."""

    name: str
    rdtype: str
    status: str
    records: tuple[str, ...] = ()
    error: str = ""

    @property
    def is_ok(self) -> bool:
        return self.status == OK

    @property
    def is_void(self) -> bool:
        """RFC 7208 4.6.4: a lookup that returns no records (NXDOMAIN or NODATA) counts against the void limit."""
        return self.status in (NXDOMAIN, NODATA)

    @property
    def is_failure(self) -> bool:
        """The server did not answer usefully: nothing may be concluded from this lookup."""
        return self.status in (TIMEOUT, SERVFAIL, ERROR)
