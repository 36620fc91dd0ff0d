"""`drop` deletes a task's record and forgets its checkpoints: both, or
neither. The checkpoints' deletion was a store job of its own, queued
before the record's: when the record's deletion failed (the drop refused,
the record put back) the checkpoints' could still commit, and the dead
letter kept, replayed, started from nothing; when the checkpoints' could
not be queued (the store's queue full, its last places the ledger's) the
record's still was, and the key spawned afresh later was handed the dropped
task's checkpoint (found in an audit). docs/config.md: "`drop KEY` forgets
the task's checkpoints with its record"."""
import json
import os
import sqlite3
import sys
import textwrap

from conftest import store_locked
from test_ckpt_tasks import checkpoint_paths
from test_ledger_store import ckpt_pool, settings, stored_keys
from test_store_queue import FLOOD
from test_wait_durable import Conn


def db_path(supd):
    return supd.tmp / "state" / "agentsup.db"


def sql(supd, text):
    db = sqlite3.connect(str(db_path(supd)), timeout=5, isolation_level=None)
    try:
        db.execute(text)
    finally:
        db.close()


def dead_with_checkpoint(d, key, step):
    d.ctl("spawn", "pool", "--key", key, "--", step, check=0)
    rec = json.loads(d.ctl("wait", f"pool/{key}", check=2).stdout)
    assert rec["state"] == "dead" and rec["checkpoint_seq"] == 1, rec


def test_a_drop_whose_record_cannot_be_deleted_keeps_the_checkpoints(supd):
    """The record's deletion fails on its own (a trigger of the test's
    refuses it, as a failing statement would), in the transaction the
    checkpoints' deletion commits in."""
    d = supd.start({"00-settings.yaml": settings(supd),
                    "a.yaml": ckpt_pool(supd)})
    d.wait("started", "root/idle")
    dead_with_checkpoint(d, "t", "5")
    sql(supd, "CREATE TRIGGER keep BEFORE DELETE ON tasks BEGIN "
              "SELECT RAISE(ABORT, 'the record cannot be deleted'); END")
    r = d.ctl("drop", "pool/t")
    assert r.returncode == 1 and "the drop could not be stored" in r.stderr, r
    assert checkpoint_paths(supd) == {"root/pool/t"}
    sql(supd, "DROP TRIGGER keep")
    d.ctl("replay", "pool/t", check=0)
    rec = json.loads(d.ctl("wait", "pool/t", check=0).stdout)
    assert rec["result"] == "from step-5" and rec["state"] == "done", rec


def test_a_drop_refused_by_a_locked_store_keeps_the_checkpoints(supd):
    """Another process holds the write lock: the whole transaction fails,
    record and checkpoints stay (so it was before too, when both deletions
    were in the batch the lock failed)."""
    d = supd.start({"00-settings.yaml": settings(supd),
                    "a.yaml": ckpt_pool(supd)})
    d.wait("started", "root/idle")
    dead_with_checkpoint(d, "t", "7")
    with store_locked(db_path(supd)):
        r = d.ctl("drop", "pool/t")
    assert r.returncode == 1 and "the drop could not be stored" in r.stderr, r
    assert checkpoint_paths(supd) == {"root/pool/t"}
    d.ctl("replay", "pool/t", check=0)
    rec = json.loads(d.ctl("wait", "pool/t", check=0).stdout)
    assert rec["result"] == "from step-7" and rec["state"] == "done", rec


def conf(supd, flood):
    return {"00-settings.yaml": settings(supd),
            "a.yaml": ckpt_pool(supd) + textwrap.indent(textwrap.dedent(f"""\
                - worker: flood
                  command: [{sys.executable}, {flood}]
                  backoff: none
                """), "  ")}


def test_a_drop_while_the_queue_is_full_forgets_the_checkpoints(supd):
    """The store locked by another process while a worker floods
    checkpoints: the queue is full but for the ledger's places. A drop
    then is queued (or refused) whole: once answered "dropped", the key
    spawned again starts afresh."""
    src = os.environ.get("AGENTSUP_SRC", os.getcwd())
    flood = supd.tmp / "flood.py"
    flood.write_text(FLOOD.format(pyclient=os.path.join(src, "tools", "python"),
                                  go=str(supd.tmp / "go")))
    d = supd.start(conf(supd, flood))
    d.wait("started", "root/flood")
    dead_with_checkpoint(d, "t", "6")
    c = Conn(d.socket)
    with store_locked(db_path(supd)):
        (supd.tmp / "go").write_text("")
        # the queue full of checkpoints now (the writer takes them all
        # only once a second, when its wait for the lock times out)
        d.wait_detail("store_error", "queue is full")
        drop = c.send("drop", "pool/t")
        assert c.until(c.send("status"))["ok"]  # the drop was read
        r = d.ctl("stop", "flood")  # its hold not stored: said
        assert r.returncode == 0 or \
            "root/flood is stopped, but that could not be stored" in \
            r.stderr, r.stderr
    answer = c.until(drop)
    if not answer["ok"]:
        # its write waited out the busy timeout while the lock was held (a
        # slow host's stop took that long): refused whole, the record and
        # its checkpoints kept; a drop now is stored
        assert "the drop could not be stored" in answer["error"], answer
        assert "t" in stored_keys(supd)
        assert "root/pool/t" in checkpoint_paths(supd)
        d.ctl("drop", "pool/t", check=0)
    assert "t" not in stored_keys(supd)
    assert "root/pool/t" not in checkpoint_paths(supd)
    d.ctl("spawn", "pool", "--key", "t", "--", "report", check=0)
    rec = json.loads(d.ctl("wait", "pool/t", check=0).stdout)
    assert rec["result"] == "checkpoint:none", rec
