"""A task's checkpoints are kept by its path (root/pool/KEY); a config that
moves its pool under another supervisor (`parent:` changed) gives the task
another path. The task run again there (resumed after agentsupd stopped,
replayed, or its pool moved by a live reload) still gets its last
checkpoint: it was handed none, and redid its work (found in an audit).
Waits are on events and answers with deadlines."""
import json
import signal
import textwrap

import pytest

from conftest import wait_until
from test_dynamic import PY, py
from test_ckpt_tasks import checkpoint_paths, held
from test_ledger_store import CKPT, settings
from test_metrics import free_port

# checkpoints, then runs until drained; run again, it ends at once with
# what it was handed
LONG = """\
import os, sys, agentsup
with agentsup.Agent() as a:
    r = a.restored
    ran = os.path.exists(sys.argv[0] + ".ran-" + sys.argv[1])
    if r.checkpoint or ran:
        a.result(b"from " + r.checkpoint if r.checkpoint else b"fresh")
        a.flush(2)
        sys.exit(0)
    open(sys.argv[0] + ".ran-" + sys.argv[1], "w").close()
    seq = a.checkpoint(b"step-" + sys.argv[1].encode())
    while a.checkpoint_acked < seq:
        a.wait(0.05)
    print("checkpointed", flush=True)
    while not a.draining:
        a.wait(1)
"""


def tree(script, moved):
    """root/pool, or root/sub/pool once moved (the pool a document of its
    own, attached by parent:)."""
    return {"a.yaml": textwrap.dedent("""\
                supervisor: root
                children:
                  - supervisor: sub
                    children:
                      - {worker: idle2, command: [sleep, '300']}
                  - {worker: idle, command: [sleep, '300']}
                """),
            "b.yaml": textwrap.dedent(f"""\
                supervisor: pool
                parent: {"sub" if moved else "root"}
                intensity: 50
                template:
                  command: [{PY}, {script}]
                  backoff: none
                """)}


def config(supd, script, moved, n=None, port=None):
    files = tree(script, moved)
    if n is not None:
        supd.events = supd.tmp / f"events-{n}.jsonl"
    files["00-settings.yaml"] = settings(supd)
    if port is not None:
        files["00-settings.yaml"] += f"  metrics: 127.0.0.1:{port}\n"
    supd.write(files, settings=False)


def spawned(supd, file, body, arg):
    """agentsupd on the tree with the pool in its first place, and task t
    of the script body spawned with arg: (d, the script)."""
    script = py(supd.tmp, file, body)
    config(supd, script, False)
    d = supd.start()
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "t", "--", arg, check=0)
    return d, script


def replayed(d):
    """pool/t replayed, and its record once it ended."""
    d.ctl("replay", "pool/t", check=0)
    return json.loads(d.ctl("wait", "pool/t", check=0).stdout)


def checkpointed(d, name):
    wait_until(lambda: "checkpointed" in d.ctl("logs", name).stdout,
               what=f"{name} checkpointed")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_resumed_task_whose_pool_moved_gets_its_checkpoint(supd, sig):
    d, script = spawned(supd, "long.py", LONG, "1")
    checkpointed(d, "pool/t")
    assert checkpoint_paths(supd) == {"root/pool/t"}
    d.signal(sig)
    d.exit_code()
    config(supd, script, True, 1)
    d = supd.start()
    d.wait("started", "root/sub/pool/t")
    rec = json.loads(d.ctl("wait", "pool/t", check=0).stdout)
    assert rec["result"] == "from step-1", rec
    assert checkpoint_paths(supd) == {"root/sub/pool/t"}


def test_a_dead_letter_replayed_after_its_pool_moved_gets_its_checkpoint(supd):
    """Replayed in the new place after a restart; meanwhile the start read
    the ended task's checkpoints under the old path into memory for good
    (no worker has that path any more)."""
    d, script = spawned(supd, "ckpt.py", CKPT, "2")
    assert d.ctl("wait", "pool/t").returncode == 2  # dead, checkpoint 1
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    port = free_port()
    config(supd, script, True, 1, port)
    d = supd.start()
    d.wait("started", "root/idle")
    assert held(port) == 0
    rec = replayed(d)
    assert rec["result"] == "from step-2" and rec["state"] == "done", rec
    assert rec["checkpoint_seq"] == 1, rec
    # moved with it in the store: a restart hands it from there too
    assert checkpoint_paths(supd) == {"root/sub/pool/t"}
    wait_until(lambda: held(port) == 0, what="the replay's entry gone")


def test_a_dead_letter_replayed_after_a_reload_moved_its_pool(supd):
    d, script = spawned(supd, "ckpt.py", CKPT, "3")
    assert d.ctl("wait", "pool/t").returncode == 2
    config(supd, script, True)
    d.ctl("reload", check=0)
    rec = replayed(d)
    assert rec["result"] == "from step-3" and rec["state"] == "done", rec
    assert checkpoint_paths(supd) == {"root/sub/pool/t"}
    # and back again: the rows follow the pool
    config(supd, script, False)
    d.ctl("reload", check=0)
    rec = replayed(d)
    assert rec["result"] == "from step-3" and rec["state"] == "done", rec
    assert checkpoint_paths(supd) == {"root/pool/t"}


def test_a_task_running_when_a_reload_moved_its_pool(supd):
    """A live reload that moves the pool removes it from its old place
    (docs/operations.md, "Reload"): its running task is cancelled; its
    replay in the new place starts from its checkpoint."""
    d, script = spawned(supd, "long.py", LONG, "4")
    checkpointed(d, "pool/t")
    config(supd, script, True)
    d.signal(signal.SIGHUP)
    d.wait("reload_applied")
    rec = json.loads(d.ctl("wait", "pool/t").stdout)
    assert rec["state"] == "cancelled", rec
    rec = replayed(d)
    assert rec["result"] == "from step-4" and rec["state"] == "done", rec
    assert checkpoint_paths(supd) == {"root/sub/pool/t"}


def test_a_configured_workers_path_like_an_old_pools_is_not_a_task(supd):
    """root/jobs/t was a configured worker's (jobs a configured supervisor);
    the next config has a pool named jobs elsewhere. A task t spawned there
    afresh starts without a checkpoint: root/jobs/t looks like the pool's
    old place, but the store never had a task jobs/t (it was handed the
    worker's, and took its rows away from a worker of that path added
    again)."""
    script = py(supd.tmp, "ckpt.py", CKPT)
    head = textwrap.dedent("""\
        supervisor: root
        children:
          - {worker: idle, command: [sleep, '300']}
        """)
    supd.write({"00-settings.yaml": settings(supd), "a.yaml": head +
                textwrap.indent(textwrap.dedent(f"""\
                    - supervisor: jobs
                      children:
                        - {{worker: t, command: [{PY}, {script}, cfg],
                            restart: temporary}}
                    """), "  ")}, settings=False)
    d = supd.start()
    d.wait("started", "root/idle")
    wait_until(lambda: "root/jobs/t" in checkpoint_paths(supd),
               what="the configured worker's checkpoint stored")
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    supd.events = supd.tmp / "events-1.jsonl"
    supd.write({"00-settings.yaml": settings(supd), "a.yaml": head +
                textwrap.indent(textwrap.dedent(f"""\
                    - supervisor: sub
                      children:
                        - {{worker: idle2, command: [sleep, '300']}}
                        - supervisor: jobs
                          template:
                            command: [{PY}, {script}]
                            backoff: none
                    """), "  ")}, settings=False)
    d = supd.start()
    d.wait("started", "root/idle")
    d.ctl("spawn", "jobs", "--key", "t", "--", "report", check=0)
    rec = json.loads(d.ctl("wait", "jobs/t", check=0).stdout)
    assert rec["result"] == "checkpoint:none", rec
    assert "root/jobs/t" in checkpoint_paths(supd)


def test_a_pool_removed_then_added_back_elsewhere_after_a_restart(supd):
    """The pool removed from the config while agentsupd was stopped (the
    start finds no pool of that name), then added back in another place by
    a reload: its dead letter replayed there gets its checkpoint still."""
    d, script = spawned(supd, "ckpt.py", CKPT, "5")
    assert d.ctl("wait", "pool/t").returncode == 2
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    (supd.dir / "b.yaml").unlink()
    supd.events = supd.tmp / "events-1.jsonl"
    supd.write({"00-settings.yaml": settings(supd)}, settings=False)
    d = supd.start()
    d.wait("started", "root/idle")
    config(supd, script, True)
    d.ctl("reload", check=0)
    rec = replayed(d)
    assert rec["result"] == "from step-5" and rec["state"] == "done", rec
    assert checkpoint_paths(supd) == {"root/sub/pool/t"}


def test_a_pool_that_was_the_root_moved_under_a_new_root(supd):
    """The whole first config was the pool (the root); the next one adds a
    root above it (`parent: main`). The reload keeps the old root as the
    new one and buries the pool's tasks alone (its template went), so the
    pool's old place was never remembered: the replay under main/pool
    started afresh (found in a trial)."""
    script = py(supd.tmp, "long.py", LONG)
    pool = textwrap.dedent(f"""\
        supervisor: pool
        intensity: 50
        template:
          command: [{PY}, {script}]
          backoff: none
        """)
    supd.write({"00-settings.yaml": settings(supd), "b.yaml": pool},
               settings=False)
    d = supd.start()
    wait_until(lambda: any("supervising the tree" in l for l in d.lines),
               what="agentsupd listening")
    d.ctl("spawn", "pool", "--key", "t", "--", "6", check=0)
    checkpointed(d, "pool/t")
    supd.write({"00-settings.yaml": settings(supd),
                "a.yaml": textwrap.dedent("""\
                    supervisor: main
                    children:
                      - {worker: idle, command: [sleep, '300']}
                    """),
                "b.yaml": pool + "parent: main\n"}, settings=False)
    d.ctl("reload", check=0)
    d.wait("started", "main/idle")
    rec = json.loads(d.ctl("wait", "pool/t").stdout)
    assert rec["state"] == "cancelled", rec
    rec = replayed(d)
    assert rec["result"] == "from step-6" and rec["state"] == "done", rec
    assert checkpoint_paths(supd) == {"main/pool/t"}
