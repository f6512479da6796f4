"""Fixtures of the monitoring tests: a real sshd on loopback (monitoring/tests/sshd.py)."""

from monitoring.tests.sshd import silent_port, sshd, sshd_keys  # noqa: F401 (pytest finds fixtures by name)
