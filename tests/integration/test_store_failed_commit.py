"""A spawn whose record could not be committed (the store's write lock held
by another process for longer than the busy timeout) is answered with the
error, and its child runs. Once the store works again, the same spawn was
answered ok (created: false) without the record ever being written: a
SIGKILL then lost a running, acknowledged task (found in an audit). Now a
record whose last write failed is written again when its key is asked
for, and the answer comes after that write."""

from conftest import alive, store_locked, wait_until
from test_dynamic import pool
from test_ledger_store import restart, settings, stored_keys


def test_spawn_acknowledged_after_a_failed_commit_is_durable(supd):
    files = {"00-settings.yaml": settings(supd),
             "a.yaml": pool(template="""\
                 template:
                   command: [sleep, '300']
                   backoff: none
                 """)}
    d = supd.start(files)
    d.wait("started", "root/idle")
    with store_locked(supd.tmp / "state" / "agentsup.db"):
        r = d.ctl("spawn", "pool", "--key", "k1")
        # the commit failed: the answer says so
        assert r.returncode != 0 and "could not be stored" in r.stderr, r
    # ... and yet the task runs
    d.wait("started", "root/pool/k1")
    # the store works again; the same spawn is answered ok: acknowledged
    r = d.ctl("--json", "spawn", "pool", "--key", "k1")
    assert r.returncode == 0, r
    # an answered spawn is durable: SIGKILL right after the answer
    d.kill()
    for p in list(d.pids):
        wait_until(lambda: not alive(p), what="tasks die with agentsupd")
    assert "k1" in stored_keys(supd), "answered (running) but not stored"
    d = restart(supd, 1)
    d.wait("spawned", "root/pool/k1")
