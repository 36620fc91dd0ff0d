"""Tasks that end while the store cannot write (another process holds its
write lock past the busy timeout) are written once it can again, without
anyone asking for their keys; and none of them is dropped from memory for
room meanwhile (with a store, memory keeps 64 ended records: the 70th
ended record pushed the oldest out, and it was the only copy of its end).
Before: the store kept the tasks as running, and a restart ran them again
(found in an audit: "unsaved records are retried only on a request for
their key")."""
from conftest import TIMEOUT, store_locked, wait_until
from test_dynamic import pool
from test_ledger_store import settings, stored_states as stored

N = 70


def test_tasks_ended_during_a_store_outage_are_written_after_it(supd):
    end = supd.tmp / "end"
    files = {"00-settings.yaml": settings(supd),
             "a.yaml": pool(template=f"""\
                 template:
                   command: ["/bin/sh", "-c", "while [ ! -e {end} ]; do sleep 0.2; done"]
                   backoff: none
                 """)}
    d = supd.start(files)
    d.wait("started", "root/idle")
    for i in range(N):
        d.ctl("spawn", "pool", "--key", f"t{i}", check=0)
    d.wait_count("started", N + 1)
    assert sorted(stored(supd)) == sorted(f"t{i}" for i in range(N))
    assert all(s in (0, 1) for s in stored(supd).values())  # not ended
    with store_locked(supd.tmp / "state" / "agentsup.db"):
        end.write_text("")
        d.wait_count("task_done", N)
        # every end's write failed: the lock was held past the busy timeout
        d.wait_detail("store_error", "task pool/t", N)
    wait_until(lambda: sorted(stored(supd).values()) == [2] * N,
               timeout=TIMEOUT,
               what=f"all {N} ends written once the store works again")
