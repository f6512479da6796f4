"""A zone as a dict for the record checks' `lookup`: they are pure, so a table stands in for DNS here (the resolver
module has its own tests against a real DNS server)."""

from deliverability.dns.answer import NODATA, NXDOMAIN, OK, STATUSES, Answer


class Zone:
    """`Zone({(name, rdtype): records or status})` is a lookup(name, rdtype) -> Answer. Records are a string or a
    list of strings (TXT already joined, A/AAAA addresses, MX "pref exchange"); a status ("timeout", "servfail")
    answers with that status. A name with no entry at all is NXDOMAIN, a missing type of a known name NODATA.
    `asked` lists every (name, rdtype) looked up, in order."""

    def __init__(self, entries):
        self.entries = {(name.lower(), rdtype): value for (name, rdtype), value in entries.items()}
        self.asked = []

    def __call__(self, name, rdtype):
        self.asked.append((name, rdtype))
        value = self.entries.get((name, rdtype))
        if value is None:
            known = any(entry_name == name for entry_name, _ in self.entries)
            return Answer(name, rdtype, NODATA if known else NXDOMAIN)
        if isinstance(value, str) and value in STATUSES and value != OK:
            return Answer(name, rdtype, value, error=f"{value} (test zone)")
        records = (value,) if isinstance(value, str) else tuple(value)
        return Answer(name, rdtype, OK, records)
