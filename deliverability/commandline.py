"""What `manage.py sending_ip` and `manage.py ip_pool` print: an IP, a pool and the pools' Postfix routing as plain
data (their --json, and the lines of `show`)."""

from deliverability import ip_pools
from deliverability.ip_warmup import warmup_summary
from deliverability.models import IpPool, SendingIp
from deliverability.selectors import PostfixRouting


def ip_data(ip: SendingIp, *, history: bool = False) -> dict:
    data = {
        "address": ip.address,
        "helo_name": ip.helo_name,
        "pool": ip.pool.name if ip.pool_id else None,
        "weight": ip.weight,
        "state": ip.state,
        "state_since": ip.state_since.isoformat(),
        "in_rotation": ip.is_in_rotation,
        "warmup": warmup_summary(ip) or None,
        "notes": ip.notes,
        "created_at": ip.created_at.isoformat(),
    }
    if history:
        data["history"] = [
            {
                "at": change.at.isoformat(),
                "from": change.from_state or None,
                "to": change.to_state,
                "reason": change.reason,
                "by": change.actor_label,
            }
            for change in ip.state_changes.all()
        ]
    return data


def pool_data(pool: IpPool) -> dict:
    return {
        "name": pool.name,
        "description": pool.description,
        "rotation_enabled": pool.rotation_enabled,
        "domains": sorted(d.name for d in pool.domains.all()),
        "tiers": sorted(t.name for t in pool.tiers.all()),
        "ips": [
            {"address": ip.address, "helo_name": ip.helo_name, "state": ip.state, "weight": ip.weight}
            for ip in pool.ips.order_by("address")
        ],
        "in_rotation": [
            {"address": ip.address, "helo_name": ip.helo_name, "weight": ip.weight, "state": ip.state}
            for ip in ip_pools.pool_rotation_ips(pool)
        ],
        "created_at": pool.created_at.isoformat(),
    }


def routing_data(routing: PostfixRouting) -> dict:
    """`ip_pool routing --json`: selectors.postfix_routing as plain data."""
    files = routing.files
    return {
        "pools": [
            {
                "name": pool.name,
                "domains": [
                    {"name": d.name, "via_tier": d.via_tier or None, "routed": d.is_routed, "reason": d.reason or None}
                    for d in pool.domains
                ],
                "in_rotation": [
                    {
                        "address": ip.address,
                        "transport": ip.transport,
                        "helo_name": ip.helo_name,
                        "state": ip.state,
                        "weight": ip.weight,
                        "share_percent": ip.share_percent,
                    }
                    for ip in pool.in_rotation
                ],
                "not_in_rotation": [
                    {"address": ip.address, "state": ip.state, "since": ip.since.isoformat(), "reason": ip.reason}
                    for ip in pool.not_in_rotation
                ],
                "notes": list(pool.notes),
            }
            for pool in routing.pools
        ],
        "unpooled_domains": routing.unpooled_domains,
        "files": {
            "paths": list(files.paths),
            "up_to_date": files.is_up_to_date,
            "diffs": files.diffs,
            "not_written": list(files.not_written),
            "problem": files.problem or None,
            "restart_needed": files.restart_needed,
            "restart_reason": files.restart_reason or None,
        },
    }
