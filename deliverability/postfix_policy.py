"""Where DMS's Postfix asks the policy service, as pure functions: the policy check and the lines that place it.

- postfix-main.cf (DMS appends it to main.cf): smtpd_data_restrictions with the check first, then DMS's own value
  (target/postfix/main.cf; no DMS feature edits that list), and smtpd_end_of_data_restrictions, which DMS leaves
  unset. Both run before permit_sasl_authenticated could let our people's mail through unasked.
- user-patches.sh (run after DMS's set-up): the check put in front of smtpd_recipient_restrictions as DMS left it.
  DMS edits that list at start (postgrey, policyd-spf, receive access), so it cannot be written whole in
  postfix-main.cf without losing those.

default_action=DUNNO: while the service is down, Postfix lets mail through, unlimited, and logs "problem talking to
server" (deliverability's mail-log reading counts those and alerts)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from dockspace.ports import parse_bind

_HOST_NAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z"
)


def service_host_is_valid(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOST_NAME.match(host))
    return True


# DMS's smtpd_data_restrictions (target/postfix/main.cf), which the policy check goes in front of.
DMS_DATA_RESTRICTIONS = "permit_mynetworks, permit_sasl_authenticated, reject_unauth_pipelining"
# Postfix tries twice per check, and checks a message at each recipient, at DATA and twice at its end: a service
# that does not answer delays mail by that much each time (a refused connection fails at once).
TIMEOUT = "5s"
HOLD_CONTEXT = "hold"
CHECK_VARIABLE = "DOCKSPACE_POLICY_CHECK"


def policy_check(service: str, context: str = "") -> str:
    """The restriction that asks the policy service at HOST:PORT (ValueError naming the setting if unusable);
    `context` is sent as policy_context, to tell a second check from the first. HOST is a host name or an IP
    address, nothing else: the value is written into main.cf and a shell script."""
    host, port = parse_bind(service, setting="DOCKSPACE_POLICY_SERVICE")
    if not service_host_is_valid(host):
        raise ValueError(
            f"DOCKSPACE_POLICY_SERVICE must be HOST:PORT, HOST a host name or an IP address; got {service!r}."
        )
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    extra = f", policy_context={context}" if context else ""
    return f"check_policy_service {{ inet:{target}, timeout={TIMEOUT}, default_action=DUNNO{extra} }}"


def main_policy_lines(service: str) -> Iterator[str]:
    if not service:
        return
    check = policy_check(service)
    yield ""
    yield f"# Dockspace's policy service ({service}): send limits and warmup routing, asked at DATA and at the end"
    yield "# of each message (and at RCPT: user-patches.sh). If it does not answer, Postfix lets mail through."
    yield f"smtpd_data_restrictions = {check}, {DMS_DATA_RESTRICTIONS}"
    # The second check holds a message the first routed to later warmup room (policy_server.HOLD_CONTEXT).
    yield f"smtpd_end_of_data_restrictions = {check}, {policy_check(service, HOLD_CONTEXT)}"


def user_patches_policy_lines(service: str) -> Iterator[str]:
    if not service:
        return
    check = policy_check(service)
    yield "# Dockspace's policy service at RCPT, in front of DMS's smtpd_recipient_restrictions as set up."
    yield f"{CHECK_VARIABLE}='{check}'"
    yield 'RECIPIENT_RESTRICTIONS="$(postconf -c "$POSTFIX_DIR" -h smtpd_recipient_restrictions)"'
    yield 'case "$RECIPIENT_RESTRICTIONS" in'
    yield f'    *"${CHECK_VARIABLE}"*) ;;'
    yield (
        f'    *) postconf -c "$POSTFIX_DIR" -e "smtpd_recipient_restrictions = ${CHECK_VARIABLE}, '
        '$RECIPIENT_RESTRICTIONS" ;;'
    )
    yield "esac"
