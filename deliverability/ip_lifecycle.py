"""The sending IP lifecycle as data: the states, the only moves between them, and what a refused move says. Pure:
no database, no clock; deliverability.sending_ips applies it."""

ACTIVE = "ACTIVE"
RETIRING = "RETIRING"
RESTING = "RESTING"
WARMING = "WARMING"

STATES = (ACTIVE, RETIRING, RESTING, WARMING)
STATE_CHOICES = [
    (ACTIVE, "active (sends)"),
    (RETIRING, "retiring (drains: no new mail)"),
    (RESTING, "resting (cool-down, standby or quarantine)"),
    (WARMING, "warming (new or back from rest: building its reputation)"),
]

# ACTIVE -> RETIRING -> RESTING -> WARMING -> ACTIVE, and standby: ACTIVE/WARMING -> RESTING.
MOVES = {
    ACTIVE: (RETIRING, RESTING),
    RETIRING: (RESTING,),
    RESTING: (WARMING,),
    WARMING: (ACTIVE, RESTING),
}

# The states whose IPs take new mail (the pool's rotation, what the Postfix map will list).
IN_ROTATION = (ACTIVE, WARMING)
# A new IP starts WARMING (no reputation yet), or ACTIVE for one that already sends today.
INITIAL_STATES = (WARMING, ACTIVE)

REASON_MAX_LENGTH = 500


def allowed_moves(state: str) -> tuple[str, ...]:
    return MOVES.get(state, ())


def move_refusal(from_state: str, to_state: str) -> str | None:
    """Why the move from_state -> to_state is refused, in words; None when it is allowed."""
    if to_state not in STATES:
        return f"{to_state!r} is not a state; choose one of {', '.join(STATES)}."
    if from_state == to_state:
        return f"the IP is already {to_state}."
    allowed = allowed_moves(from_state)
    if to_state in allowed:
        return None
    return (
        f"an IP cannot move from {from_state} to {to_state}; from {from_state} it may move to "
        f"{' or '.join(allowed)} only (ACTIVE -> RETIRING -> RESTING -> WARMING -> ACTIVE; ACTIVE or WARMING -> "
        "RESTING for standby)."
    )
