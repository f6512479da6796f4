"""The quota probe's parser on what a real doveadm prints: the test Dovecot of mail/tests (the userdb DMS builds,
dovecot-quotas.cf included) with DMS v15.1's quota plugin settings answers `doveadm -f tab quota get -A`."""

import subprocess

import pytest

from mail.tests.dovecot_server import hash_password, running_dovecot, skip_unless_dovecot_23
from monitoring.probes.parse import QuotaUsage, parse_quota

# docker-mailserver v15.1.0 target/dovecot/90-quota.conf, the lines that decide what `quota get` reports
# (the quota-warning and quota-status services left out: they need DMS's scripts and a port).
DMS_QUOTA_PLUGIN = """
mail_plugins = $mail_plugins quota
plugin {
  quota = count:User quota
  quota_vsizes = yes
  quota_rule = *:storage=128M
  quota_rule2 = Trash:storage=+50M
}
"""

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"


@pytest.fixture
def dovecot():
    skip_unless_dovecot_23()
    password_hash = hash_password("Corr3ct-horse-battery")
    accounts = "".join(f"{address}|{password_hash}\n" for address in (ALICE, BOB, CAROL))
    # DMS's dovecot-quotas.cf (`setup quota set`): alice 50M, carol 0 = no limit, bob none (the 128M default).
    with running_dovecot(
        accounts,
        quotas_text=f"{ALICE}:50M\n{CAROL}:0\n",
        extend_config=lambda root, config: config + DMS_QUOTA_PLUGIN,
    ) as server:
        yield server


def test_parse_quota_reads_the_real_doveadm_of_a_dms_dovecot(dovecot):
    message = "From: someone@example.com\nSubject: quota\n\n" + "x" * 5000 + "\n"
    saved = subprocess.run(
        ["doveadm", "-c", str(dovecot.conf_path), "save", "-u", ALICE],
        input=message,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert saved.returncode == 0, saved.stderr + dovecot.log_tail()

    listed = dovecot.doveadm("-f", "tab", "quota", "get", "-A")
    assert listed.returncode == 0, listed.stderr + dovecot.log_tail()

    usages = {usage.user: usage for usage in parse_quota(listed.stdout)}
    assert set(usages) == {ALICE, BOB, CAROL}, listed.stdout
    # 5 kB of mail, counted in KiB (rounded up by Dovecot) and given here in bytes.
    assert usages[ALICE].limit_bytes == 50 * 1024**2
    assert 5 * 1024 <= usages[ALICE].used_bytes <= 8 * 1024 and usages[ALICE].used_bytes % 1024 == 0
    assert usages[BOB] == QuotaUsage(user=BOB, used_bytes=0, limit_bytes=128 * 1024**2)
    assert usages[CAROL] == QuotaUsage(user=CAROL, used_bytes=0, limit_bytes=None)
