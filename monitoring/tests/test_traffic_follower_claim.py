"""One follower per log source (monitoring.traffic.claim_logsource): a second one is refused while the first runs,
takes over once the first let go, went silent for longer than the lease or is known to have died; a follower that
was replaced stores nothing more."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from monitoring import traffic
from monitoring.models import LogSource, SmtpRejection

pytestmark = pytest.mark.django_db

REJECT = (
    "2026-12-06T09:41:00.000001+00:00 mail postfix/smtpd[2202]: NOQUEUE: reject: RCPT from unknown[203.0.113.10]: "
    "554 5.7.1 <r1@elsewhere.example>: Relay access denied; from=<spam@example.biz> to=<r1@elsewhere.example> "
    "proto=ESMTP helo=<203.0.113.10>"
)


@pytest.fixture
def source():
    return traffic.logsource_for()


def test_a_second_follower_is_refused_while_the_first_runs_and_told_who_holds_it(source):
    assert traffic.claim_logsource(source, "first", "pid 10 on mx1").held
    claim = traffic.claim_logsource(source, "second", "pid 20 on mx2")
    assert (claim.held, claim.follower) == (False, "pid 10 on mx1")
    assert traffic.claim_logsource(source, "first", "pid 10 on mx1").held  # the holder may claim again


def test_a_follower_that_let_go_is_replaced_at_once(source):
    traffic.claim_logsource(source, "first", "pid 10 on mx1")
    traffic.release_logsource(source, "first")
    assert traffic.claim_logsource(source, "second", "pid 20 on mx2").held
    assert LogSource.objects.get(pk=source.pk).follower == "pid 20 on mx2"


def test_a_silent_follower_is_replaced_once_its_lease_ran_out_and_then_stores_nothing(source):
    traffic.claim_logsource(source, "first", "pid 10 on mx1")
    with time_machine.travel(timezone.now() + traffic.FOLLOWER_LEASE - timedelta(seconds=5)):
        assert not traffic.claim_logsource(source, "second", "pid 20 on mx2").held
    with time_machine.travel(timezone.now() + traffic.FOLLOWER_LEASE + timedelta(seconds=5)):
        assert traffic.claim_logsource(source, "second", "pid 20 on mx2").held
        with pytest.raises(traffic.FollowerReplaced):
            traffic.renew_logsource(source, "first")
        with pytest.raises(traffic.FollowerReplaced):
            traffic.maillog_ingest_lines(source, [REJECT], follower_token="first")
    assert not SmtpRejection.objects.exists()
    traffic.maillog_ingest_lines(source, [REJECT], follower_token="second")
    assert SmtpRejection.objects.count() == 1


def test_a_follower_known_to_have_died_is_replaced_before_its_lease_runs_out(source):
    traffic.claim_logsource(source, "first", "pid 10 on mx1")
    assert traffic.claim_logsource(source, "second", "pid 20 on mx1", is_gone=lambda f: f == "pid 10 on mx1").held


def test_storing_a_batch_says_the_follower_runs(source):
    traffic.claim_logsource(source, "first", "pid 10 on mx1")
    later = timezone.now() + traffic.FOLLOWER_LEASE - timedelta(seconds=5)
    with time_machine.travel(later):
        traffic.maillog_ingest_lines(source, [REJECT], follower_token="first")
    with time_machine.travel(later + timedelta(seconds=30)):  # past the claim's lease, within the batch's
        assert not traffic.claim_logsource(source, "second", "pid 20 on mx2").held


def test_a_follower_is_known_gone_only_in_this_kernels_pid_namespace():
    import os
    import socket
    import subprocess

    from monitoring import traffic_follow

    ended = subprocess.Popen(["true"])
    ended.wait()
    here = socket.gethostname()
    boot = open("/proc/sys/kernel/random/boot_id").read().strip()  # noqa: SIM115
    namespace = os.stat("/proc/self/ns/pid").st_ino
    assert traffic_follow._me() == f"pid {os.getpid()} on {here} (kernel boot {boot}, pid namespace {namespace})"
    assert traffic_follow._is_gone(f"pid {ended.pid} on {here} (kernel boot {boot}, pid namespace {namespace})")
    assert traffic_follow._is_gone(traffic_follow._me())  # this pid, another token: an earlier run of it
    # Another PID namespace (a container), or another kernel (a machine with the same host name): not ours to judge.
    other_boot = "00000000-0000-0000-0000-000000000000"
    for where in (
        f"kernel boot {boot}, pid namespace {namespace + 1}",
        f"kernel boot {other_boot}, pid namespace {namespace}",
    ):
        assert not traffic_follow._is_gone(f"pid {ended.pid} on {here} ({where})")
        assert not traffic_follow._is_gone(f"pid {os.getpid()} on {here} ({where})")
    assert not traffic_follow._is_gone(f"pid {os.getppid()} on {here} (kernel boot {boot}, pid namespace {namespace})")
    assert not traffic_follow._is_gone("anything else")
