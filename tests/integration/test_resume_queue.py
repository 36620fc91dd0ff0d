"""A task waiting to be resumed after a restart (its pool full) while the
store's queue is full (another process holds the database's write lock, a
worker floods checkpoints, spawns keep coming) is resumed once the queue
has room again. Before, the resume pass took the refusal ("the state store
is not keeping up (its queue is full): try again") for an end: the
accepted task was cancelled for good, and nothing tried again (found in an
audit). DESIGN §11: the tasks that were pending or running are started
again; docs/config.md: "... are started again ... once their supervisor
runs"."""
import json
import os
import sys
import textwrap
import threading

from conftest import store_locked
from test_ledger_store import frames, restart, settings
from test_store_queue import FLOOD
from test_wait_durable import Conn


def tree(supd, flood, max_children):
    end = supd.tmp / "end"
    return textwrap.dedent(f"""\
        supervisor: root
        children:
          - supervisor: pool
            max_children: 10000
            template: {{command: [sleep, '300'], backoff: none}}
          - supervisor: rp
            max_children: {max_children}
            template:
              command: ["/bin/sh", "-c", "while [ ! -e {end} ]; do sleep 0.05; done"]
              backoff: none
          - {{worker: idle, command: [sleep, '300']}}
          - {{worker: flood, command: [{sys.executable}, {flood}], backoff: none}}
        """)


def spawns(sock, stop):
    """Spawns of one key into pool, one after another on one connection
    (answers read and dropped), until stop is set: while its record's
    write is in flight, each queues a write of the ledger's (a barrier,
    its answer after that write), and one task at most runs."""
    c = Conn(sock)

    def read():
        m, buf = {}, b""
        while m is not None:
            m, buf = frames(c.s, buf, timeout=60)
    threading.Thread(target=read, daemon=True).start()
    while not stop.is_set():
        c.send("spawn", "pool", {"key": "s"})
    return c


def test_a_resume_refused_for_a_full_queue_is_tried_again(supd):
    src = os.environ.get("AGENTSUP_SRC", os.getcwd())
    flood = supd.tmp / "flood.py"
    flood.write_text(FLOOD.format(pyclient=os.path.join(src, "tools", "python"),
                                  go=str(supd.tmp / "go")))
    supd.write({"00-settings.yaml": settings(supd),
                "a.yaml": tree(supd, flood, 2)}, settings=False)
    d = supd.start()
    d.wait("started", "root/idle")
    for k in ("a", "b"):
        d.ctl("spawn", "rp", "--key", k, check=0)
        d.wait("started", f"root/rp/{k}")
    d.kill()
    # one of the two resumed, the other waits for room in rp
    supd.write({"a.yaml": tree(supd, flood, 1)}, settings=False)
    d = restart(supd, 1)
    d.wait("started", "root/flood")
    d.wait_count("spawned", 1)
    stop = threading.Event()
    with store_locked(supd.tmp / "state" / "agentsup.db"):
        (supd.tmp / "go").write_text("")
        d.wait_detail("store_error", "queue is full")
        pressure = threading.Thread(target=spawns, args=(d.socket, stop),
                                    daemon=True)
        pressure.start()
        # a whole batch of spawns failed: the queue was full of them
        d.wait_detail("store_error", "task pool/s:", 512)
        stop.set()
    pressure.join()
    (supd.tmp / "end").write_text("")
    for k in ("a", "b"):
        r = d.ctl("--json", "wait", f"rp/{k}", "--timeout", "20s")
        assert r.returncode == 0, (r, [l for l in d.lines if "resumed" in l])
        assert json.loads(r.stdout)["state"] == "done", r
