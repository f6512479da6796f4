"""Mail logs into data: parse DMS mail-log lines (parse), tie them into messages and attempts (correlate), follow
the files across rotations (follow). The issue "Mail traffic"."""
