"""Outbound IP pools, warmup, DNSBL and DNS record checks (later issue)."""
