"""System checks of deliverability (registered by DeliverabilityConfig.ready(), run by `manage.py check` and every
start): the resolver Dockspace asks must not be a public one, which blocklists refuse."""

from django.core.checks import Warning, register

from deliverability.dns import public_resolvers, resolver


@register()
def check_public_resolvers(app_configs=None, **kwargs):
    """A well-known public resolver in DOCKSPACE_DNS_RESOLVER, or (when it is unset) among resolv.conf's nameservers:
    Spamhaus (ZEN, DBL) and other blocklists refuse queries through it, so their answers tell nothing."""
    servers, source = resolver.nameservers_in_use()
    public = [
        (address, provider) for address, _port in servers if (provider := public_resolvers.public_resolver(address))
    ]
    if not public:
        return []
    named = ", ".join(f"{address} ({provider})" for address, provider in public)
    where = (
        "DOCKSPACE_DNS_RESOLVER names"
        if source == "DOCKSPACE_DNS_RESOLVER"
        else f"DOCKSPACE_DNS_RESOLVER is not set and {source} names"
    )
    what = "a public resolver" if len(public) == 1 else "public resolvers"
    return [
        Warning(
            f"{where} {what}: {named}. Spamhaus (ZEN, DBL) and other blocklists refuse queries that reach them "
            "through public resolvers (Spamhaus answers 127.255.255.254, an error): those lists fail their test "
            "points and check nothing.",
            hint="Run a recursive resolver of your own (Unbound, for example) and set DOCKSPACE_DNS_RESOLVER to its IP "
            'address: see "The resolver to use" in the README.',
            id="deliverability.W001",
        )
    ]
