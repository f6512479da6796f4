"""DNS for deliverability: one resolver module (deliverability.dns.resolver) that every lookup goes through, and
the answers it gives (deliverability.dns.answer)."""
