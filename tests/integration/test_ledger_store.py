"""The task ledger in the state store (DESIGN §11, §12): an answered spawn
is durable (SIGKILL right after the answer loses nothing), `drop` takes the
task's checkpoints with its record, a record carries its last checkpoint
(`wait`, `dead`, after a restart, its supervisor gone) and `replay` starts
from it. Waits are on events and answers with deadlines."""
import json
import os
import socket
import sqlite3
import struct
import textwrap

import msgpack

from conftest import TIMEOUT, wait_until
from test_dynamic import PY, pool, py


def settings(supd, state=True):
    text = f"agentsupd:\n  events_file: {supd.events}\n"
    if state:
        text += f"  state_dir: {supd.tmp / 'state'}\n"
    return text


def restart(supd, n, state=True):
    """A new agentsupd on the same config and store, with its own events
    file (a file of the one before would answer its waits)."""
    supd.events = supd.tmp / f"events-{n}.jsonl"
    supd.write({"00-settings.yaml": settings(supd, state)}, settings=False)
    return supd.start()


def frame(msg):
    body = msgpack.packb(msg)
    return struct.pack(">I", len(body)) + body


def frames(s, buf, timeout=TIMEOUT):
    """The next frame from s (None at EOF), and the bytes left over."""
    s.settimeout(timeout)
    while True:
        if len(buf) >= 4:
            (n,) = struct.unpack(">I", buf[:4])
            if len(buf) >= 4 + n:
                return msgpack.unpackb(buf[4:4 + n], raw=False), buf[4 + n:]
        chunk = s.recv(1 << 16)
        if not chunk:
            return None, buf
        buf += chunk


def stored_states(supd):
    """Key -> state of the tasks table, as a fresh reader of the store sees
    it (what a restart reads back)."""
    db = sqlite3.connect(str(supd.tmp / "state" / "agentsup.db"))
    try:
        return dict(db.execute("SELECT key, state FROM tasks"))
    finally:
        db.close()


def stored_keys(supd):
    return set(stored_states(supd))


def test_answered_spawns_survive_sigkill(supd):
    """Spawns pipelined over one connection; agentsupd SIGKILLed right
    after an answer: every key answered (all the answers that reached the
    socket) is in the store, and resumed by the next start."""
    files = {"00-settings.yaml": settings(supd),
             "a.yaml": pool(extra="max_children: 1000\n", template="""\
                 template:
                   command: [sleep, '300']
                   backoff: none
                 """)}
    answered = set()
    for rnd in range(4):
        d = supd.start(files) if rnd == 0 else restart(supd, rnd)
        d.wait("started", "root/idle")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.socket)
        keys = [f"r{rnd}k{i}" for i in range(120)]
        s.sendall(b"".join(
            frame({"t": "req", "id": i + 1, "cmd": "spawn",
                   "args": ["pool", {"key": k}]})
            for i, k in enumerate(keys)))
        m, buf = frames(s, b"")
        assert m is not None and m["ok"], m
        d.kill()  # SIGKILL at the first answer
        got = {m["result"]["key"]}
        while True:  # the answers sent before it died
            m, buf = frames(s, buf)
            if m is None:
                break
            assert m["ok"], m
            got.add(m["result"]["key"])
        s.close()
        for p in list(d.pids):
            wait_until(lambda: not d.runs(p), what="tasks die with agentsupd")
        answered |= got
        missing = answered - stored_keys(supd)
        assert not missing, f"round {rnd}: answered but lost: {sorted(missing)}"
    d = restart(supd, 9)
    d.wait_count("spawned", len(stored_keys(supd)))  # every one resumed
    assert all(d.count("spawned", f"root/pool/{k}") for k in answered)


CKPT = """\
import os, sys, agentsup
with agentsup.Agent() as a:
    r = a.restored
    if sys.argv[1] == "report":
        got = r.checkpoint.decode() if r.checkpoint else "none"
        a.result(("checkpoint:" + got).encode())
        a.flush(2)
        sys.exit(0)
    if r.checkpoint:
        a.result(b"from " + r.checkpoint)
        a.flush(2)
        sys.exit(0)
    seq = a.checkpoint(b"step-" + sys.argv[1].encode())
    while a.checkpoint_acked < seq:
        a.wait(0.05)
    a.exit_reason("permanent", detail="fails after its checkpoint")
    sys.exit(3)
"""


def ckpt_pool(supd, name="pool"):
    script = py(supd.tmp, "ckpt.py", CKPT)
    return pool(name=name, template=f"""\
        template:
          command: [{PY}, {script}]
          backoff: none
        """)


def test_drop_forgets_the_checkpoints(supd):
    """A dropped task's checkpoints go with its record: the same key
    spawned again starts with none, in this run and after a restart."""
    files = {"00-settings.yaml": settings(supd), "a.yaml": ckpt_pool(supd)}
    d = supd.start(files)
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "t", "--", "1", check=0)
    assert d.ctl("wait", "t").returncode == 2  # dead, checkpoint 1 kept
    d.ctl("drop", "t", check=0)
    d.ctl("spawn", "pool", "--key", "t", "--", "report", check=0)
    rec = json.loads(d.ctl("wait", "t", check=0).stdout)
    assert rec["result"] == "checkpoint:none", rec
    assert rec["checkpoint_seq"] is None
    # on disk too: a restart hands none either
    d.ctl("spawn", "pool", "--key", "u", "--", "2", check=0)
    assert d.ctl("wait", "u").returncode == 2
    d.ctl("drop", "pool/u", check=0)
    d.signal(15)
    assert d.exit_code() == 0
    d = restart(supd, 1)
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "u", "--", "report", check=0)
    rec = json.loads(d.ctl("wait", "u", check=0).stdout)
    assert rec["result"] == "checkpoint:none", rec


def check_last_checkpoint(supd, state):
    files = {"00-settings.yaml": settings(supd, state),
             "a.yaml": ckpt_pool(supd)}
    d = supd.start(files)
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "t", "--", "7", check=0)
    r = d.ctl("wait", "t")
    assert r.returncode == 2
    assert json.loads(r.stdout)["checkpoint_seq"] == 1
    assert [x["checkpoint_seq"] for x in d.ctl_json("dead")] == [1]
    if state:  # the record read back from the store carries it
        d.signal(15)
        assert d.exit_code() == 0
        d = restart(supd, 1)
        d.wait("started", "root/idle")
        assert json.loads(d.ctl("wait", "t").stdout)["checkpoint_seq"] == 1
    # replay starts from it
    d.ctl("replay", "t", check=0)
    rec = json.loads(d.ctl("wait", "t", check=0).stdout)
    assert rec["result"] == "from step-7" and rec["state"] == "done"
    assert rec["checkpoint_seq"] == 1
    # its supervisor gone by a reload: the record still says it
    d.ctl("spawn", "pool", "--key", "v", "--", "8", check=0)
    assert d.ctl("wait", "v").returncode == 2
    (supd.dir / "a.yaml").write_text(textwrap.dedent("""\
        supervisor: root
        children:
          - {worker: idle, command: [sleep, '300']}
        """))
    d.ctl("reload", check=0)
    dead = d.ctl_json("dead")
    assert [(x["name"], x["checkpoint_seq"]) for x in dead] == [("pool/v", 1)]


def test_record_carries_its_last_checkpoint_in_memory(supd):
    check_last_checkpoint(supd, False)


def test_record_carries_its_last_checkpoint_in_the_store(supd):
    check_last_checkpoint(supd, True)


def test_ended_records_read_from_the_store(supd):
    """With a store, ended records leave memory (a small cache stays):
    idempotency within key_ttl, wait by KEY, dead and drop still see every
    one, and a key in two supervisors is ambiguous."""
    files = {"00-settings.yaml": settings(supd),
             "a.yaml": pool(template="""\
                 template:
                   command: [/bin/sh, -c, 'exit $0', '3']
                   restart: temporary
                   backoff: none
                 """) + textwrap.indent(textwrap.dedent("""\
                 - supervisor: other
                   template:
                     command: [/bin/sh, -c, 'exit 0']
                     backoff: none
                 """), "  ")}
    d = supd.start(files)
    d.wait("started", "root/idle")
    n = 150  # more than the cache (LEDGER_CACHE, 64)
    for i in range(n):
        d.ctl("spawn", "pool", "--key", f"k{i}", check=0)
    d.wait_count("dead_lettered", n)
    dead = d.ctl_json("dead")
    assert sorted(x["name"] for x in dead) == sorted(f"pool/k{i}" for i in range(n))
    ends = [x["ended_ms"] for x in dead]
    assert ends == sorted(ends)  # oldest first
    again = json.loads(d.ctl("--json", "spawn", "pool", "--key", "k0", check=0).stdout)
    assert again["created"] is False and again["state"] == "dead"
    assert json.loads(d.ctl("wait", "k1").stdout)["state"] == "dead"
    d.ctl("spawn", "other", "--key", "k2", check=0)
    assert d.ctl("wait", "other/k2", check=0).returncode == 0
    r = d.ctl("wait", "k2")
    assert r.returncode == 1 and "ambiguous" in r.stderr
    assert d.ctl("drop", "pool/k3", check=0).returncode == 0
    assert d.ctl("wait", "pool/k3").returncode == 1
    assert len(d.ctl_json("dead")) == n - 1


def test_ended_tasks_leave_no_cgroup(supd):
    """Each task gets a cgroup (when cgroup v2 is writable); an ended task
    will not start again under its name, so its cgroup is removed, not
    kept idle for a next start (10,000 tasks left 10,000 cgroups)."""
    import pytest
    from test_contain import cgroup2_mount, writable_cgroup
    if not writable_cgroup():
        pytest.skip("needs a writable cgroup v2 (root)")
    d = supd.start({"a.yaml": pool(template="""\
        template:
          command: [/bin/sh, -c, 'exit 0']
          backoff: none
        """)})
    d.wait("started", "root/idle")
    for i in range(20):
        d.ctl("spawn", "pool", "--key", f"c{i}", check=0)
    d.wait_count("task_done", 20)
    top = os.path.join(cgroup2_mount(), f"agentsup.{d.proc.pid}")
    left = [n for n in os.listdir(top) if n.startswith("root:pool:")]
    assert left == [], left
    assert any(n.startswith("root:idle") for n in os.listdir(top))
