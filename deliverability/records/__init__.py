"""The DNS records of a sending domain read as data: SPF (RFC 7208), DMARC (RFC 7489 / RFC 9989) and DKIM key
records (RFC 6376). Pure: DNS answers come in through a caller's `lookup(name, rdtype) -> Answer`, findings go out."""
