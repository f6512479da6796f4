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
