"""One spelling per email address and domain name, so that lookalike spellings of one address are one address:
`Root@Example.COM`, `root@example.com.` and `root@ｅxample.com` (a fullwidth e) are all `root@example.com`.

Pure and at the bottom of the layers: accounts (people's sign-in addresses) and mail (mailboxes, aliases, domains)
both compare and store addresses in this form, and mail adds its own validation on top.
"""

import idna


def canonical_domain(name):
    """Lower case, no trailing dot, and a non-ASCII name IDNA-encoded (punycode) after the UTS 46 mapping, as
    registries and resolvers spell it ('ｅxample．com' -> 'example.com', 'bücher.de' -> 'xn--bcher-kva.de').
    Raises ValueError (idna.IDNAError) when a non-ASCII name cannot be encoded; validates nothing else."""
    name = (name or "").rstrip(".").lower()
    if not name.isascii():
        # IDNA 2008 with UTS 46 mapping (ß stays ß: straße.de is xn--strae-oqa.de, not strasse.de as Python's
        # IDNA 2003 codec would have it). The mapping may turn a final '。' or '．' into a dot.
        name = idna.encode(name, uts46=True).decode("ascii").rstrip(".")
    return name


def canonical_email(value):
    """'Root@ＥXAMPLE.com.' -> 'root@example.com': trimmed, lower case, the domain as canonical_domain spells it.
    Never raises: text that is no address (or whose domain cannot be encoded) comes back trimmed and lower-cased,
    so looking it up simply finds nobody."""
    value = (value or "").strip()
    local, at, domain = value.rpartition("@")
    if not at:
        return value.lower()
    try:
        domain = canonical_domain(domain)
    except ValueError:
        domain = domain.lower()
    return f"{local.lower()}@{domain}"


def unicode_domain(name):
    """The Unicode form of a punycode domain name ('xn--bcher-kva.de' -> 'bücher.de'); the name itself otherwise.
    For display only: names are stored and compared in the canonical (ASCII) form."""
    if "xn--" not in (name or ""):
        return name
    try:
        return idna.decode(name)
    except (idna.IDNAError, UnicodeError):
        return name


def unicode_address(value, *, with_ascii=False):
    """How people read an address, '@domain' catch-all or domain name: its domain in Unicode
    ('anna@xn--bcher-kva.de' -> 'anna@bücher.de'). with_ascii adds the stored form for operators, who need it for
    DNS, DMS files and searches: 'anna@bücher.de (anna@xn--bcher-kva.de)'. Anything else comes back unchanged."""
    if not value or "xn--" not in value:
        return value
    local, at, domain = value.rpartition("@")
    shown = f"{local}{at}{unicode_domain(domain)}"
    if shown == value or not with_ascii:
        return shown
    return f"{shown} ({value})"
