"""A dynamic task's checkpoints leave agentsupd's memory when the task ends
(DESIGN §11, §12): the worker paths whose checkpoints agentsupd holds
(agentsup_checkpoint_workers) do not grow with the tasks ever run, with or
without a state store, and a replay (or, with a store, a restart) still
hands back the task's last checkpoint. A dropped task whose supervisor a
reload removed takes its checkpoints out of the store too. Waits are on
events and answers with deadlines."""
import json
import sqlite3
import textwrap

import pytest

from conftest import wait_until
from test_dynamic import PY, pool, py
from test_ledger_store import ckpt_pool, restart, settings
from test_metrics import free_port, samples, scrape

TASKS = 12


def held(port):
    return samples(scrape(port), "agentsup_checkpoint_workers")[""]


def start(supd, state, port):
    return supd.start({
        "00-settings.yaml": settings(supd, state) +
        f"  metrics: 127.0.0.1:{port}\n",
        "a.yaml": ckpt_pool(supd)})


def replayed_from_last(d, key, step):
    d.ctl("replay", key, check=0)
    rec = json.loads(d.ctl("wait", key, check=0).stdout)
    assert rec["result"] == f"from step-{step}" and rec["state"] == "done", rec
    assert rec["checkpoint_seq"] == 1, rec


def run_many(supd, state):
    port = free_port()
    d = start(supd, state, port)
    d.wait("started", "root/idle")
    for i in range(TASKS):  # each checkpoints "step-i", then dead-letters
        d.ctl("spawn", "pool", "--key", f"t{i}", "--", str(i), check=0)
    d.wait_count("dead_lettered", TASKS)
    wait_until(lambda: held(port) == 0, what="no ended task's entry held")
    assert [x["checkpoint_seq"] for x in d.ctl_json("dead")] == [1] * TASKS
    replayed_from_last(d, "t3", 3)
    wait_until(lambda: held(port) == 0, what="the replay's entry gone too")
    return d, port


def test_ended_tasks_checkpoints_leave_memory(supd):
    run_many(supd, False)


def test_ended_tasks_checkpoints_leave_memory_for_the_store(supd):
    d, _ = run_many(supd, True)
    d.signal(15)
    assert d.exit_code() == 0
    # a restart reads no ended task's checkpoints into memory, and a replay
    # reads them back from the store
    port = free_port()
    supd.events = supd.tmp / "events-1.jsonl"
    supd.write({"00-settings.yaml": settings(supd) +
                f"  metrics: 127.0.0.1:{port}\n"}, settings=False)
    d = supd.start()
    d.wait("started", "root/idle")
    assert held(port) == 0
    replayed_from_last(d, "t5", 5)


POISON = """\
import sys, agentsup
with agentsup.Agent() as a:
    r = a.restored
    a.result(b"from " + r.checkpoint if r.checkpoint else b"fresh")
    if not r.checkpoint:
        a.checkpoint(b"step-" + sys.argv[1].encode())
    a.flush(2)
    a.exit_reason("permanent", detail="fails")
    sys.exit(3)
"""


def test_an_entry_with_a_write_in_flight_goes_after_it(supd):
    """A replayed task that fails on its checkpoint (poison_after 1) ends
    with the discard of that checkpoint in flight to the store: its entry
    goes once the discard is committed (under ASan a use after free
    otherwise), and the next replay starts with none."""
    port = free_port()
    script = py(supd.tmp, "poison.py", POISON)
    d = supd.start({
        "00-settings.yaml": settings(supd) + f"  metrics: 127.0.0.1:{port}\n",
        "a.yaml": pool(template=f"""\
            template:
              command: [{PY}, {script}]
              backoff: none
              checkpoint: {{keep: 2, poison_after: 1}}
            """)})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "p", "--", "4", check=0)
    assert d.ctl("wait", "p").returncode == 2
    d.ctl("replay", "p", check=0)
    rec = json.loads(d.ctl("wait", "p", check=None).stdout)
    assert rec["result"] == "from step-4" and rec["state"] == "dead", rec
    d.wait("checkpoint_discarded", "root/pool/p")
    wait_until(lambda: held(port) == 0, what="the entry gone after the discard")
    d.ctl("replay", "p", check=0)
    rec = json.loads(d.ctl("wait", "p", check=None).stdout)
    assert rec["result"] == "fresh", rec


def checkpoint_paths(supd):
    db = sqlite3.connect(str(supd.tmp / "state" / "agentsup.db"))
    try:
        return {p for (p,) in db.execute("SELECT path FROM checkpoints")}
    finally:
        db.close()


def test_drop_after_its_supervisor_is_gone_forgets_the_checkpoints(supd):
    d = start(supd, True, free_port())
    d.wait("started", "root/idle")
    for k in ("v", "w"):
        d.ctl("spawn", "pool", "--key", k, "--", "1", check=0)
        assert d.ctl("wait", k).returncode == 2  # dead, checkpoint 1 kept
    assert checkpoint_paths(supd) == {"root/pool/v", "root/pool/w"}
    (supd.dir / "a.yaml").write_text(textwrap.dedent("""\
        supervisor: root
        children:
          - {worker: idle, command: [sleep, '300']}
        """))
    d.ctl("reload", check=0)
    d.ctl("drop", "pool/v", check=0)  # answered after the commit
    assert checkpoint_paths(supd) == {"root/pool/w"}
    d.signal(15)
    assert d.exit_code() == 0
    d = restart(supd, 1)
    d.wait("started", "root/idle")
    assert checkpoint_paths(supd) == {"root/pool/w"}


def test_drop_after_its_supervisor_moved_forgets_the_checkpoints(supd):
    """A reload moved the pool under another supervisor; the drop deleted
    the rows under its new path only, and the key spawned afresh once the
    pool was back where it was got the dropped task's checkpoint (found in
    an audit)."""
    d = start(supd, True, free_port())
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "v", "--", "1", check=0)
    assert d.ctl("wait", "v").returncode == 2  # dead, checkpoint 1 kept
    assert checkpoint_paths(supd) == {"root/pool/v"}
    command = [l for l in ckpt_pool(supd).splitlines() if "command:" in l][0].strip()
    (supd.dir / "a.yaml").write_text(textwrap.dedent(f"""\
        supervisor: root
        children:
          - supervisor: sub
            children:
              - supervisor: pool
                intensity: 50
                template:
                  {command}
                  backoff: none
          - {{worker: idle, command: [sleep, '300']}}
        """))
    d.ctl("reload", check=0)
    d.ctl("drop", "pool/v", check=0)  # answered after the commit
    assert checkpoint_paths(supd) == set()


RENAMED = """\
import agentsup
with agentsup.Agent() as a:
    a.ready()
    a.checkpoint(b"state")
    a.flush(2)
    print("checkpointed", flush=True)
    while not a.draining:
        a.wait(1)
"""


def test_removed_workers_leave_no_checkpoint_or_capture(supd):
    """A configured worker that a reload removes takes its checkpoints and
    its captured output out of memory once it has stopped: renaming a
    worker again and again does not grow agentsupd."""
    script = py(supd.tmp, "renamed.py", RENAMED)
    port = free_port()

    def config(i):
        return {"00-settings.yaml": settings(supd, False) +
                f"  metrics: 127.0.0.1:{port}\n",
                "a.yaml": f"worker: ck{i}\ncommand: [{PY}, {script}]\n"}

    d = supd.start(config(0))
    d.wait("started", "root/ck0")
    wait_until(lambda: held(port) == 1, what="ck0's checkpoint held")
    for i in range(1, 4):
        supd.write(config(i))
        d.ctl("reload", check=0)
        d.wait("started", f"root/ck{i}")
        wait_until(lambda: "checkpointed" in d.ctl("logs", f"ck{i}").stdout,
                   what=f"ck{i} checkpointed")
        wait_until(lambda: held(port) == 1,
                   what=f"only ck{i}'s checkpoint held, not the removed")
        gone = d.ctl("logs", f"ck{i - 1}")
        assert gone.returncode != 0, gone.stdout


@pytest.mark.parametrize("state", [False, True])
def test_tasks_cancelled_by_a_reload_leave_no_checkpoint(supd, state):
    """A reload that removes a pool cancels its running tasks while their
    processes still run (they stop gracefully after): their checkpoints
    stayed in memory for good, the pool added back or not (found in an
    audit: agentsup_checkpoint_workers 24 -> 24 after the reload). They
    go once those processes have stopped, as a removed worker's do."""
    script = py(supd.tmp, "renamed.py", RENAMED)
    port = free_port()
    tree = pool(template=f"""\
        template:
          command: [{PY}, {script}]
          backoff: none
        """)
    d = supd.start({"00-settings.yaml": settings(supd, state) +
                    f"  metrics: 127.0.0.1:{port}\n", "a.yaml": tree})
    d.wait("started", "root/idle")
    for k in ("a", "b", "c"):
        d.ctl("spawn", "pool", "--key", k, check=0)
        wait_until(lambda: "checkpointed" in d.ctl("logs", f"pool/{k}").stdout,
                   what=f"pool/{k} checkpointed")
    assert held(port) == 3
    (supd.dir / "a.yaml").write_text(textwrap.dedent("""\
        supervisor: root
        children:
          - {worker: idle, command: [sleep, '300']}
        """))
    d.ctl("reload", check=0)
    d.wait_detail("task_done", "cancelled", 3)
    wait_until(lambda: held(port) == 0,
               what="the cancelled tasks' checkpoints released")
    (supd.dir / "a.yaml").write_text(tree)
    d.ctl("reload", check=0)
    d.ctl("spawn", "pool", "--key", "d", check=0)
    wait_until(lambda: "checkpointed" in d.ctl("logs", "pool/d").stdout,
               what="pool/d checkpointed")
    assert held(port) == 1


def test_a_tasks_record_has_its_last_checkpoint(supd):
    """With a store, a task that checkpoints to its end: its record took
    the newest committed seq at the exit, while the last write was still
    queued (it commits before the record does): `wait` said 18 of 30."""
    script = py(supd.tmp, "burst.py", """
        import agentsup
        with agentsup.Agent() as a:
            for i in range(30):
                a.checkpoint(b"step-%d" % i + bytes(8192))
            a.flush(10)  # sent; the exit is reaped within the group commit
    """)
    d = supd.start({"00-settings.yaml": settings(supd, True),
                    "a.yaml": pool(template=f"""\
                        template:
                          command: [{PY}, {str(script)!r}]
                          restart: temporary
                        """)})
    d.wait("started", "root/idle")
    for i in range(10):
        d.ctl("spawn", "pool", "--key", f"b{i}", check=0)
    for i in range(10):
        rec = json.loads(d.ctl("wait", f"pool/b{i}", check=0).stdout)
        assert rec["state"] == "done" and rec["checkpoint_seq"] == 30, rec
