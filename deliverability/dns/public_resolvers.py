"""Well-known public recursive resolvers (pure data): Spamhaus and other blocklists refuse queries that reach them
through one (Spamhaus answers 127.255.255.254), so Dockspace's resolver must not be one (check deliverability.W001)."""

import ipaddress

# Each provider's published anycast addresses, its filtering variants included (they forward the same way).
PUBLIC_RESOLVERS = {
    "Google Public DNS": ("8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844"),
    "Cloudflare": (
        "1.1.1.1",
        "1.0.0.1",
        "2606:4700:4700::1111",
        "2606:4700:4700::1001",
        "1.1.1.2",
        "1.0.0.2",
        "2606:4700:4700::1112",
        "2606:4700:4700::1002",
        "1.1.1.3",
        "1.0.0.3",
        "2606:4700:4700::1113",
        "2606:4700:4700::1003",
    ),
    "Quad9": (
        "9.9.9.9",
        "149.112.112.112",
        "2620:fe::fe",
        "2620:fe::9",
        "9.9.9.10",
        "149.112.112.10",
        "2620:fe::10",
        "2620:fe::fe:10",
        "9.9.9.11",
        "149.112.112.11",
        "2620:fe::11",
        "2620:fe::fe:11",
    ),
    "OpenDNS": (
        "208.67.222.222",
        "208.67.220.220",
        "208.67.222.220",
        "208.67.220.222",
        "2620:119:35::35",
        "2620:119:53::53",
        "208.67.222.123",
        "208.67.220.123",
    ),
    "AdGuard DNS": (
        "94.140.14.14",
        "94.140.15.15",
        "2a10:50c0::ad1:ff",
        "2a10:50c0::ad2:ff",
        "94.140.14.140",
        "94.140.14.141",
        "2a10:50c0::1:ff",
        "2a10:50c0::2:ff",
    ),
    "Level 3 (Lumen)": ("4.2.2.1", "4.2.2.2", "4.2.2.3", "4.2.2.4", "4.2.2.5", "4.2.2.6"),
    "Comodo Secure DNS": ("8.26.56.26", "8.20.247.20"),
    "CleanBrowsing": ("185.228.168.9", "185.228.169.9", "185.228.168.168", "185.228.169.168"),
    "Yandex DNS": ("77.88.8.8", "77.88.8.1"),
    "DNS.WATCH": ("84.200.69.80", "84.200.70.40"),
    "AliDNS": ("223.5.5.5", "223.6.6.6"),
    "114DNS": ("114.114.114.114", "114.114.115.115"),
    "DNSPod": ("119.29.29.29",),
}

_PROVIDER_OF = {
    ipaddress.ip_address(address): provider for provider, addresses in PUBLIC_RESOLVERS.items() for address in addresses
}


def public_resolver(address: str) -> str:
    """The provider whose public resolver `address` is ("" when it is none of them, or not an IP address). An
    IPv4-mapped IPv6 address (::ffff:8.8.8.8) is its IPv4 address; a zone (fe80::1%eth0) is ignored."""
    try:
        ip = ipaddress.ip_address(str(address).strip().split("%", 1)[0])
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return _PROVIDER_OF.get(ip, "")
