"""A spawn whose record cannot be committed (the store's write lock held by
another process past the busy timeout, or agentsup.db moved away) is
refused, and its task never runs. Before, the answer said "the ledger could
not be stored" while the task was started anyway: a caller that took the
error at its word and spawned again under a new key ran the work twice,
and the same key answered the error again, then "not created: the task is
running" (found in an audit). DESIGN §12, docs/config.md: an answered
spawn is durable; one that cannot be stored is never both refused and
running. The same for a worker's {t: spawn} and for a retry."""
import json
import os

import pytest

from conftest import store_locked, wait_until
from test_dynamic import PY, pool, py
from test_ledger_store import restart, settings, stored_keys, stored_states
from test_wait_durable import Conn

TEMPLATE = """\
template:
  command: [sleep, '300']
  backoff: none
"""


def locked(supd):
    return store_locked(supd.tmp / "state" / "agentsup.db")


def gone(d, name):
    """No record of name: `wait` says so (a live one would time out)."""
    r = d.ctl("wait", name, "--timeout", "5s")  # answered at once
    assert r.returncode == 1 and "no such task" in r.stderr, r
    return True


def test_a_spawn_that_cannot_be_stored_is_refused_and_never_runs(supd):
    files = {"00-settings.yaml": settings(supd), "a.yaml": pool(template=TEMPLATE)}
    d = supd.start(files)
    d.wait("started", "root/idle")
    with locked(supd):
        r = d.ctl("spawn", "pool", "--key", "k1")
        assert r.returncode == 1 and "could not be stored" in r.stderr, r
        # refused, and nothing of it stays: no record to wait on
        assert gone(d, "pool/k1")
    # said with the pool's path, as every event is (it said "pool")
    d.wait_detail("store_error", "pool/k1")
    assert {e.path for e in d.seen if e.kind == "store_error"} == {"root/pool"}
    # the store works again: the same spawn is a new task (before: "not
    # created: the task is running", the refused one)
    rec = json.loads(d.ctl("--json", "spawn", "pool", "--key", "k1",
                           check=0).stdout)
    assert rec["created"] is True, rec
    d.wait("started", "root/pool/k1")
    assert d.count("spawned", "root/pool/k1") == 1
    assert d.count("started", "root/pool/k1") == 1, "the refused one ran"
    # answered, so durable: SIGKILL right after the answer loses nothing
    d.kill()
    for p in list(d.pids):
        wait_until(lambda: not d.runs(p), what="tasks die with agentsupd")
    assert "k1" in stored_keys(supd), "answered (running) but not stored"
    d = restart(supd, 1)
    d.wait("spawned", "root/pool/k1")


def test_a_retry_that_cannot_be_stored_leaves_the_record_as_it_was(supd):
    files = {"00-settings.yaml": settings(supd),
             "a.yaml": pool(template=SH_TEMPLATE_EXIT)}
    d = supd.start(files)
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "t", "--", "first", check=0)
    done = json.loads(d.ctl("--json", "wait", "pool/t", check=0).stdout)
    assert done["state"] == "done" and done["args"] == ["first"], done
    with locked(supd):
        r = d.ctl("spawn", "pool", "--key", "t", "--retry", "--", "again")
        assert r.returncode == 1 and "could not be stored" in r.stderr, r
    # the record is the ended one again (written again once the store
    # works), not a retry that never ran
    rec = json.loads(d.ctl("--json", "wait", "pool/t", check=0).stdout)
    assert rec["state"] == "done" and rec["args"] == ["first"], rec
    rec = json.loads(d.ctl("--json", "spawn", "pool", "--key", "t", "--retry",
                           "--", "again", check=0).stdout)
    assert rec["created"] is True and rec["args"] == ["again"], rec
    d.wait("task_done", "root/pool/t")
    d.wait("task_done", "root/pool/t")
    assert d.count("started", "root/pool/t") == 2, "the refused retry ran"


SH_TEMPLATE_EXIT = """\
template:
  command: ["/bin/sh", "-c", "exit 0", "task"]
  backoff: none
"""

ORCH = """\
import json, os, agentsup
def ask(go):
    while not os.path.exists(go):
        a.wait(0.05)
    s = a.spawn("pool", key="w1", timeout=30)
    with open(go + ".out", "w") as f:
        json.dump([s.ok, s.created, s.error], f)
with agentsup.Agent() as a:
    a.restored
    ask(os.environ["GO1"])
    ask(os.environ["GO2"])
    a.wait(300)
"""


def answer(path):
    wait_until(lambda: path.exists() and path.stat().st_size > 0,
               what=str(path))
    return json.loads(path.read_text())


def test_a_workers_spawn_that_cannot_be_stored_is_refused_too(supd):
    orch = py(supd.tmp, "orch.py", ORCH)
    go1, go2 = supd.tmp / "go1", supd.tmp / "go2"
    d = supd.start({"00-settings.yaml": settings(supd), "a.yaml": f"""\
        supervisor: root
        children:
          - worker: orch
            command: [{PY}, {orch}]
            environment: {{GO1: {go1}, GO2: {go2}}}
          - supervisor: pool
            spawn_from: [orch]
            template: {{command: [sleep, '300'], backoff: none}}
          - {{worker: idle, command: [sleep, '300']}}
        """})
    d.wait("started", "root/idle")
    with locked(supd):
        go1.write_text("")
        ok, created, error = answer(supd.tmp / "go1.out")
        assert not ok and "could not be stored" in error, (ok, error)
        assert gone(d, "pool/w1")
    go2.write_text("")
    ok, created, error = answer(supd.tmp / "go2.out")
    assert ok and created is True, (ok, created, error)
    d.wait("started", "root/pool/w1")
    assert d.count("started", "root/pool/w1") == 1, "the refused one ran"


def test_a_spawn_into_a_store_moved_away_is_refused_and_never_runs(supd):
    d = supd.start({"00-settings.yaml": settings(supd),
                    "a.yaml": pool(template=TEMPLATE)})
    d.wait("started", "root/idle")
    db = supd.tmp / "state" / "agentsup.db"
    os.rename(db, supd.tmp / "moved.db")
    for _ in range(2):  # and again: refused, not "not created"
        r = d.ctl("spawn", "pool", "--key", "k1")
        assert r.returncode == 1 and "removed or replaced" in r.stderr, r
    d.ctl("spawn", "pool", "--key", "k2", "--env", "X=1")  # a marker
    d.wait_detail("store_error", "pool/k2")
    assert d.count("spawned", "root/pool/k1") == 0
    assert d.count("started", "root/pool/k1") == 0, "the refused one ran"


def test_a_stop_while_the_record_is_stored_cancels_the_task(supd):
    """`stop pool/k1` (or drain) made while k1's record is being
    committed: the commit cancels k1 instead of starting it (it ran,
    unheld, as if never stopped). A stop then a start starts it. (A stop
    is answered once its cancellation is stored too: after the lock.)"""
    files = {"00-settings.yaml": settings(supd), "a.yaml": pool(template=TEMPLATE)}
    d = supd.start(files)
    d.wait("started", "root/idle")
    c = Conn(d.socket)
    with locked(supd):
        sp = [c.send("spawn", "pool", {"key": k}) for k in ("k1", "k2", "k3")]
        cmds = [c.send(*cmd) for cmd in (("stop", "pool/k1"),
                                         ("drain", "pool/k2"),
                                         ("stop", "pool/k3"),
                                         ("start", "pool/k3"))]
        assert c.until(c.send("status"))["ok"]  # all of them taken
    for i in cmds:
        assert c.until(i)["ok"], c.answers[i]
    for i in sp:
        a = c.until(i)
        assert a["ok"] and a["result"]["created"], a
    d.wait("started", "root/pool/k3")
    for k in ("k1", "k2"):
        rec = json.loads(d.ctl("--json", "wait", f"pool/{k}", "--timeout", "10s",
                              check=4).stdout)
        assert rec["state"] == "cancelled", rec
    assert d.count("started", "root/pool/k1") == 0
    assert d.count("started", "root/pool/k2") == 0


NOPOOL = """\
supervisor: root
children:
  - {worker: idle, command: [sleep, '300']}
"""


def refused_in_the_window(supd, d, opts):
    """A spawn (pool, opts) made while the store is locked and a reload
    removes its pool before the write fails: its answer."""
    c = Conn(d.socket)
    with locked(supd):
        a = c.send("spawn", "pool", opts)
        assert c.until(c.send("status"))["ok"]  # the spawn is taken
        supd.write({"a.yaml": NOPOOL}, settings=False)
        assert c.until(c.send("reload"))["ok"]
        ra = c.until(a)
    c.s.close()
    assert not ra["ok"] and "could not be stored" in ra["error"], ra
    return ra


def test_a_retry_refused_after_a_reload_removed_its_pool_is_undone(supd):
    """The reload cancelled the held retry before its write failed: the
    record was left cancelled with the refused retry's inputs (the done
    one gone), and was stored so."""
    d = supd.start({"00-settings.yaml": settings(supd),
                    "a.yaml": pool(template=SH_TEMPLATE_EXIT)})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "t", "--", "first", check=0)
    done = d.ctl_json("wait", "pool/t")
    assert done["state"] == "done" and done["args"] == ["first"], done
    refused_in_the_window(supd, d, {"key": "t", "retry": True,
                                    "args": ["again"]})
    rec = d.ctl_json("wait", "pool/t")  # once what memory has is stored
    assert rec["state"] == "done" and rec["args"] == ["first"], rec
    assert rec["reasons"] == done["reasons"], rec
    assert stored_states(supd)["t"] == 2, "stored as cancelled"
    d.kill()
    d.drain_events()
    assert d.count("started", "root/pool/t") == 1, "the refused retry ran"


def test_a_spawn_refused_after_a_reload_removed_its_pool_leaves_none(supd):
    """The same for a fresh key: the same spawn made again, once the pool
    is back, is a new task (it answered created: false with a cancelled
    record of the refused one)."""
    files = {"00-settings.yaml": settings(supd), "a.yaml": pool(template=TEMPLATE)}
    d = supd.start(files)
    d.wait("started", "root/idle")
    refused_in_the_window(supd, d, {"key": "k1"})
    assert gone(d, "pool/k1")
    supd.write(files, settings=False)
    d.ctl("reload", check=0)
    r = d.ctl_json("spawn", "pool", "--key", "k1")
    assert r["created"] is True and r["state"] != "cancelled", r
    d.wait("started", "root/pool/k1")


def test_a_wait_on_a_spawn_then_refused_is_answered_as_after_it(supd):
    """A wait taken while the spawn's record is being written, then the
    write fails: it was answered ok with the record in state pending (a
    task that never ran nor ended; agentsupctl exits 124). Now as a wait
    made after the refusal: no such task; for a refused retry, the ended
    record as it was."""
    d = supd.start({"00-settings.yaml": settings(supd),
                    "a.yaml": pool(template=SH_TEMPLATE_EXIT)})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "t", "--", "first", check=0)
    assert d.ctl_json("wait", "pool/t")["state"] == "done"
    c = Conn(d.socket)
    with locked(supd):
        a1 = c.send("spawn", "pool", {"key": "k1"})
        w1 = c.send("wait", "pool/k1")
        a2 = c.send("spawn", "pool", {"key": "t", "retry": True,
                                      "args": ["again"]})
        w2 = c.send("wait", "pool/t")
        assert c.until(c.send("status"))["ok"]  # the waits are taken
        for a in (a1, a2):
            assert "could not be stored" in c.until(a)["error"]
    m = c.until(w1)
    assert not m["ok"] and "no such task" in m["error"], m
    m = c.until(w2)
    assert m["ok"] and m["result"]["state"] == "done", m
    assert m["result"]["args"] == ["first"], m
    c.s.close()


def cancelled_then_retried(supd, c):
    """With the store locked: spawn K (held for its write), a reload that
    removes the pool (K cancelled), one that adds it back, and a retry of
    K; the two spawns' request ids."""
    a1 = c.send("spawn", "pool", {"key": "K", "args": ["1"]})
    supd.write({"a.yaml": NOPOOL}, settings=False)
    assert c.until(c.send("reload"))["ok"]
    supd.write({"a.yaml": pool(template=TEMPLATE)}, settings=False)
    assert c.until(c.send("reload"))["ok"]
    return a1, c.send("spawn", "pool", {"key": "K", "retry": True,
                                        "args": ["2"]})


def test_a_refused_spawn_leaves_a_later_retry_of_its_key_alone(supd):
    """k held for its commit, cancelled by a reload that removes its pool;
    the pool added back, `spawn --retry` of k accepted; k's first write then
    fails. Its undo took the retry's child (the record's live one by then)
    and dropped the record: the retry, answered created, never ran, and
    its wait never answered."""
    files = {"00-settings.yaml": settings(supd), "a.yaml": pool(template=TEMPLATE)}
    d = supd.start(files)
    d.wait("started", "root/idle")
    c = Conn(d.socket)
    with locked(supd):
        a1, a2 = cancelled_then_retried(supd, c)
        r1 = c.until(a1)
    assert not r1["ok"] and "could not be stored" in r1["error"], r1
    r2 = c.until(a2)
    if r2["ok"]:  # its write came after the lock: the retry runs
        assert r2["result"]["created"], r2
        d.wait("started", "root/pool/K")
        w = d.ctl("--json", "wait", "pool/K", "--timeout", "300ms")
        assert w.returncode == 124, w  # running, not gone
    else:  # in the same failed batch: refused too, and nothing runs
        assert "could not be stored" in r2["error"], r2
        assert d.count("started", "root/pool/K") == 0


def test_a_spawn_stored_after_a_reload_cancelled_it_still_says_spawned(supd):
    """k held for its commit, cancelled by a reload that removes its pool,
    the pool added back and k retried; both writes then succeed: each
    accepted spawn has its `spawned` event (the first lost it)."""
    files = {"00-settings.yaml": settings(supd), "a.yaml": pool(template=TEMPLATE)}
    d = supd.start(files)
    d.wait("started", "root/idle")
    c = Conn(d.socket)
    with locked(supd):  # let go well within the store's 1 s busy timeout
        a1, a2 = cancelled_then_retried(supd, c)
        assert c.until(c.send("status"))["ok"]
    r1 = c.until(a1)
    if not r1["ok"]:
        pytest.skip("the machine held the lock past the busy timeout")
    assert r1["result"]["created"], r1
    assert c.until(a2)["ok"]
    d.wait("started", "root/pool/K")
    d.wait_count("spawned", 2, "root/pool/K")
