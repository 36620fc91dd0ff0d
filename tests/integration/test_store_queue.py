"""The store's writer blocked (another process holds the database's write
lock) while a worker floods checkpoints: the store's queue fills. A spawn
and a drop made then could not be queued, yet were answered as if
committed (`spawn` ok, `drop` "dropped"), and a SIGKILL right after the
answers lost the spawned task and brought the dropped one back (found in
an audit). Now the ledger's writes have slots of the queue checkpoints
cannot take, and a spawn or a drop that cannot be queued is refused.
docs/config.md: "`agentsupctl spawn`, `replay` and a worker's `spawn` are
answered only once the task's record is committed ..., and `drop` once the
row is deleted"."""
import os
import sys
import textwrap

from conftest import store_locked, wait_until
from test_ledger_store import stored_keys


def conf(supd, flood):
    return textwrap.dedent(f"""\
        agentsupd:
          events_file: {supd.events}
          state_dir: {supd.tmp / 'state'}
        ---
        supervisor: root
        children:
          - supervisor: pool
            template:
              command: ["/bin/sh", "-c", "sleep ${{DELAY:-300}}"]
              backoff: none
          - {{worker: idle, command: [sleep, '300']}}
          - {{worker: flood, command: [{sys.executable}, {flood}], backoff: none}}
        """)


FLOOD = """\
import os, sys, time
sys.path.insert(0, {pyclient!r})
import agentsup
with agentsup.Agent() as a:
    i = 0
    while not os.path.exists({go!r}):  # floods only while the store is locked
        a.wait(0.02)
    while True:
        a.checkpoint(b"x")
        i += 1
        if i % 64 == 0:
            a.process()
"""


def test_answers_given_while_the_queue_is_full_are_durable(supd):
    pyclient = os.path.join(os.environ.get("AGENTSUP_SRC", os.getcwd()),
                            "tools", "python")
    flood = supd.tmp / "flood.py"
    flood.write_text(FLOOD.format(pyclient=pyclient, go=str(supd.tmp / "go")))
    supd.write({"a.yaml": conf(supd, flood)}, settings=False)
    d = supd.start()
    d.wait("started", "root/idle")
    # an ended task, to drop later
    d.ctl("spawn", "pool", "--key", "old", "--env", "DELAY=0", check=0)
    d.wait("task_done", "root/pool/old")
    wait_until(lambda: "old" in stored_keys(supd), what="old stored ended")
    with store_locked(supd.tmp / "state" / "agentsup.db"):
        (supd.tmp / "go").write_text("")
        d.wait_detail("store_error", "queue is full")
        spawn = d.ctl("spawn", "pool", "--key", "new")
        drop = d.ctl("drop", "pool/old")
        d.kill()  # SIGKILL right after the answers
    for p in list(d.pids):
        wait_until(lambda: not d.runs(p), what="tasks die with agentsupd")
    keys = stored_keys(supd)
    lost = []
    if spawn.returncode == 0 and "new" not in keys:
        lost.append(f"spawn answered ok ({spawn.stdout.strip()!r}) but not stored")
    if drop.returncode == 0 and "old" in keys:
        lost.append(f"drop answered {drop.stdout.strip()!r} but the row is there")
    assert not lost, lost
