"""`agentsupctl tasks [SUP] [--state S]` and Control.tasks(): every task of
the ledger, live and ended, in order of acceptance, a line's worth each;
what was spawned and then forgotten by its key alone was nowhere to be
seen but a dead letter."""
import json
import os
import signal
import socket
import sys
import textwrap

from conftest import SRC, catches, wait_until
from test_dynamic import pool
from test_ledger_store import frame, frames, restart, settings

sys.path.insert(0, os.path.join(SRC, "tools", "python"))
from agentsup.control import Control, ControlError  # noqa: E402

# $1: run (until stopped), or the exit status; temporary: a failure is dead
TEMPLATE = """\
template:
  command: [/bin/sh, -c, '[ "$1" = run ] && exec sleep 1000; exit $1', task]
  restart: temporary
  backoff: none
"""


def four_tasks(d):
    """a-ok done, b-bad dead, c-live running, d-gone cancelled (keys in
    the order of their spawns: a tie of acceptance times is in key order)."""
    d.wait("started", "root/idle")
    for key, arg in (("a-ok", "0"), ("b-bad", "1"), ("c-live", "run"),
                     ("d-gone", "run")):
        d.ctl("spawn", "pool", "--key", key, "--", arg, check=0)
    assert d.ctl("wait", "a-ok").returncode == 0
    assert d.ctl("wait", "b-bad").returncode == 2
    d.wait("started", "root/pool/c-live")
    d.wait("started", "root/pool/d-gone")
    d.ctl("stop", "root/pool/d-gone", check=0)
    assert d.ctl("wait", "d-gone").returncode == 4


def pool_removed(supd, d):
    """four_tasks' pool removed by a reload: c-live cancelled, and down."""
    (supd.dir / "a.yaml").write_text(textwrap.dedent("""\
        supervisor: root
        children:
          - {worker: idle, command: [sleep, '300']}
        """))
    d.ctl("reload", check=0)
    d.wait("exited", "root/pool/c-live")


def refused(c, cmd, args, says):
    """cmd with args, sent as they are, is refused saying says."""
    try:
        c._call(cmd, args)
    except ControlError as e:
        assert says in str(e), (cmd, args, e)
    else:
        raise AssertionError(f"{cmd} {args} taken")


def stopped_and_started(supd, d):
    """d stopped in order, and the next agentsupd on its store up: the
    ended records are the store's alone."""
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    d = restart(supd, 1)
    d.wait("started", "root/idle")
    return d


FOUR = [("pool/a-ok", "done"), ("pool/b-bad", "dead"),
        ("pool/c-live", "running"), ("pool/d-gone", "cancelled")]


def test_tasks_lists_each_task_live_or_ended_in_order(supd):
    d = supd.start({"a.yaml": pool(template=TEMPLATE)})
    four_tasks(d)
    listed = d.ctl_json("tasks")
    assert [(x["name"], x["state"]) for x in listed] == FOUR
    ok = listed[0]
    assert ok["sup"] == "pool" and ok["key"] == "a-ok"
    assert ok["attempts"] == 1 and ok["ended_ms"] >= ok["accepted_ms"] > 0
    assert listed[2]["ended_ms"] is None  # it runs
    assert "exit:1" in listed[1]["reasons"][-1]
    # a line's worth: no inputs, output or result bytes
    assert "args" not in ok and "tail" not in ok and "result" not in ok
    assert ok["result_size"] is None
    text = d.ctl("tasks", check=0).stdout.splitlines()
    assert [line.split()[:2] for line in text] == [list(x) for x in FOUR]
    # of a pool, by its name or its path; of a state
    assert d.ctl_json("tasks", "root/pool") == d.ctl_json("tasks", "pool")
    for name, state in FOUR:
        got = d.ctl_json("tasks", "--state", state)
        assert [x["name"] for x in got] == [name], (state, got)
    assert d.ctl_json("tasks", "pool", "--state", "pending") == []
    assert d.ctl_json("tasks", "root") == []  # no task of its own
    # the newest N, still oldest first; of a state; -n 0: all
    assert [x["name"] for x in d.ctl_json("tasks", "-n", "2")] == \
        [n for n, _ in FOUR[2:]]
    assert [x["name"] for x in d.ctl_json("tasks", "-n", "9")] == \
        [n for n, _ in FOUR]
    assert [x["name"] for x in d.ctl_json("tasks", "pool", "--state", "done",
                                          "-n", "1")] == ["pool/a-ok"]
    assert d.ctl_json("tasks", "-n", "0") == listed
    assert d.ctl("tasks", "-n", "x", check=64).stderr.startswith(
        "agentsupctl: tasks: -n wants a count")


def test_tasks_refuses_what_it_cannot_list(supd):
    d = supd.start({"a.yaml": pool(template=TEMPLATE)})
    d.wait("started", "root/idle")
    r = d.ctl("tasks", "nosuch", check=1)
    assert "no such supervisor, and no task of one: nosuch" in r.stderr
    r = d.ctl("tasks", "--state", "finished", check=1)
    assert "STATE is one of pending, running, cancelling, done, dead, " \
        "cancelled" in r.stderr
    r = d.ctl("tasks", "--state", check=64)
    assert "--state wants a state" in r.stderr
    r = d.ctl("tasks", "pool", "extra", check=64)
    assert "too many arguments" in r.stderr


def test_tasks_of_a_removed_pool_are_still_listed(supd):
    d = supd.start({"a.yaml": pool(template=TEMPLATE)})
    four_tasks(d)
    pool_removed(supd, d)
    want = [(n, "cancelled" if s == "running" else s) for n, s in FOUR]
    assert [(x["name"], x["state"])
            for x in d.ctl_json("tasks", "pool")] == want
    # none of a state: none listed, as of a pool the tree has (it was
    # refused, "no such supervisor, and no task of one")
    assert d.ctl_json("tasks", "pool", "--state", "running") == []
    # by the path it had too (it was refused, "no such supervisor")
    assert d.ctl_json("tasks", "root/pool") == d.ctl_json("tasks", "pool")


def test_tasks_of_a_removed_pool_in_the_store_alone(supd):
    """After a restart the removed pool's ended tasks are the store's
    alone: one of a state none of them is in is still no refusal."""
    files = {"00-settings.yaml": settings(supd),
             "a.yaml": pool(template=TEMPLATE)}
    d = supd.start(files)
    four_tasks(d)
    pool_removed(supd, d)
    d = stopped_and_started(supd, d)
    assert [x["name"] for x in d.ctl_json("tasks", "pool", "--state",
                                          "done")] == ["pool/a-ok"]
    assert d.ctl_json("tasks", "pool", "--state", "pending") == []
    r = d.ctl("tasks", "nosuch", "--state", "done", check=1)
    assert "no such supervisor, and no task of one: nosuch" in r.stderr


def test_tasks_merges_the_store_with_memory(supd):
    """With a store, ended records leave memory but for a cache of 64: the
    list is the store's rows and memory's records in one order, each task
    once, memory's the newer; after a restart, the store's alone."""
    files = {"00-settings.yaml": settings(supd),
             "a.yaml": pool(template=TEMPLATE)}
    d = supd.start(files)
    d.wait("started", "root/idle")
    n = 100  # more than the cache (LEDGER_CACHE, 64)
    keys = [f"k{i:03}" for i in range(n)]
    for k in keys:
        d.ctl("spawn", "pool", "--key", k, "--", "0", check=0)
    d.wait_count("task_done", n)
    d.ctl("spawn", "pool", "--key", "live", "--", "run", check=0)
    d.wait("started", "root/pool/live")
    # an ended one run again: memory says running, the store still done
    d.ctl("spawn", "pool", "--key", "k000", "--retry", "--", "run", check=0)
    d.wait("started", "root/pool/k000")
    listed = d.ctl_json("tasks", "pool")
    names = [x["name"] for x in listed]
    assert sorted(names) == sorted(f"pool/{k}" for k in keys + ["live"])
    at = [x["accepted_ms"] for x in listed]
    assert at == sorted(at)  # in order of acceptance: k000's is its retry's
    assert names[-1] == "pool/k000"
    states = {x["key"]: x["state"] for x in listed}
    assert states.pop("k000") == "running" and states.pop("live") == "running"
    assert set(states.values()) == {"done"}
    done = d.ctl_json("tasks", "--state", "done")
    assert [x["name"] for x in done] == [f"pool/{k}" for k in keys[1:]]
    # the newest, merged newest first: memory's and the store's alike
    for n in (1, 3, 40, 99):
        assert d.ctl_json("tasks", "-n", str(n)) == listed[-n:], n
    d = stopped_and_started(supd, d)
    again = d.ctl_json("tasks", "--state", "done")
    assert [x["name"] for x in again] == [f"pool/{k}" for k in keys[1:]]
    # the live ones resumed (their records in memory from the start on)
    d.wait("started", "root/pool/live")
    d.wait("started", "root/pool/k000")
    running = d.ctl_json("tasks", "--state", "running")
    assert sorted(x["name"] for x in running) == ["pool/k000", "pool/live"]
    # the store's newest (and the two running), in an index's order
    for n in (1, 3, 40, 98, 200):
        assert d.ctl_json("tasks", "--state", "done", "-n", str(n)) == \
            again[-n:], n
        assert d.ctl_json("tasks", "pool", "-n", str(n)) == \
            d.ctl_json("tasks", "pool")[-n:], n


def test_dead_newest_merges_the_store_with_memory(supd):
    """dead -n N with a store: the newest dead letters from memory's cache
    (64) and the store's rows, newest first, sent oldest ended first; after
    a restart, the store's alone."""
    files = {"00-settings.yaml": settings(supd),
             "a.yaml": pool(template=TEMPLATE)}
    d = supd.start(files)
    d.wait("started", "root/idle")
    n = 100  # more than the cache (LEDGER_CACHE, 64)
    for i in range(n):
        d.ctl("spawn", "pool", "--key", f"k{i:03}", "--", "1", check=0)
    d.wait_count("dead_lettered", n)
    dead = d.ctl_json("dead")
    assert sorted(x["key"] for x in dead) == [f"k{i:03}" for i in range(n)]
    ends = [x["ended_ms"] for x in dead]
    assert ends == sorted(ends)
    for k in (1, 3, 40, 99):
        assert d.ctl_json("dead", "-n", str(k)) == dead[-k:], k
    d = stopped_and_started(supd, d)
    keys = [x["key"] for x in dead]
    assert [x["key"] for x in d.ctl_json("dead")] == keys
    assert [x["key"] for x in d.ctl_json("dead", "-n", "40")] == keys[-40:]


def test_control_tasks(supd):
    d = supd.start({"a.yaml": pool(template=TEMPLATE)})
    four_tasks(d)
    with Control(d.socket) as c:
        assert [(x["name"], x["state"]) for x in c.tasks()] == FOUR
        assert [x["name"] for x in c.tasks("pool", state="dead")] == \
            ["pool/b-bad"]
        assert [x["name"] for x in c.tasks(state="running")] == \
            ["pool/c-live"]
        assert [x["name"] for x in c.tasks(newest=1)] == ["pool/d-gone"]
        assert [x["name"] for x in c.tasks("pool", "done", 5)] == \
            ["pool/a-ok"]
        try:
            c.tasks("nosuch")
        except ControlError as e:
            assert "no such supervisor" in str(e)
        else:
            raise AssertionError("tasks of no supervisor")
        # refused as agentsupctl's are, not every task listed
        for kw, says in (({"state": ""}, "STATE is one of"),
                         ({"sup": ""}, "NAME must be a non-empty string")):
            try:
                c.tasks(**kw)
            except ControlError as e:
                assert says in str(e), (kw, e)
            else:
                raise AssertionError(f"tasks {kw} taken")
    assert json.loads(d.ctl("--json", "tasks", "pool", check=0).stdout) == \
        d.ctl_json("tasks")


def test_tasks_requests_of_a_hostile_client(supd):
    d = supd.start({"a.yaml": pool(template=TEMPLATE)})
    four_tasks(d)
    with Control(d.socket) as c:
        for args, says in (([None, 3], "STATE must be a string"),
                           ([None, None, 0], "N must be an integer from 1"),
                           (["pool", None, -1], "N must be an integer"),
                           (["pool", None, "2"], "N must be an integer"),
                           (["pool", None, 2, 1], "too many arguments"),
                           ([5], "NAME must be a non-empty string"),

                           (["pool", "Done"], "STATE is one of")):
            refused(c, "tasks", args, says)
        assert [x["name"] for x in c._call("tasks", [None])] == \
            [n for n, _ in FOUR]
        assert c.status()  # the connection goes on


def test_a_cancelling_task_is_listed_and_its_retry_told_to_wait(supd):
    """A stopped task whose process takes its time going down: listed
    `cancelling` (its column as wide as the word), and a spawn --retry of
    it meanwhile said "--retry to run an ended one again", the very option
    it was given."""
    gate = supd.tmp / "gate"
    d = supd.start({"a.yaml": pool(template=f"""\
        template:
          command: [/bin/sh, -c, 'trap "while [ ! -e {gate} ]; do sleep 0.02; done; exit 0" TERM; while :; do sleep 0.05; done']
          shutdown: 60s
        """)})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "slow", check=0)
    pid = d.wait("started", "root/pool/slow").pid
    wait_until(lambda: catches(pid, signal.SIGTERM), what="its trap")
    d.ctl("stop", "pool/slow", check=0)
    line = d.ctl("tasks", check=0).stdout.splitlines()
    assert [x.split()[:2] for x in line] == [["pool/slow", "cancelling"]]
    assert line[0].index("1 attempt") == 32 + 1 + 10 + 1 + 2, line  # aligned
    r = d.ctl("spawn", "pool", "--key", "slow", "--retry", check=0)
    assert "the task is cancelling, its process still going down " \
        "(--retry once it has ended: agentsupctl wait pool/slow)" in r.stdout
    gate.write_text("")
    assert d.ctl("wait", "slow").returncode == 4
    r = d.ctl("spawn", "pool", "--key", "slow", "--retry", check=0)
    assert r.stdout.strip() == "pool/slow: created"


def list_frames(d, cmd, args):
    """cmd's answer frame by frame, on a socket of the test's own: the
    frames, and their results joined."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(d.socket)
    s.sendall(frame({"t": "req", "id": 7, "cmd": cmd, "args": args}))
    got, buf = [], b""
    while True:
        m, buf = frames(s, buf)
        assert m is not None and m["ok"] and m["id"] == 7, m
        got.append(m)
        if not m.get("more"):
            break
    s.close()
    return got, [x for m in got for x in m["result"]]


def test_long_lists_come_in_bounded_frames_in_order(supd):
    """dead's whole records and tasks' lines, more than one frame's worth
    (32 KiB of items): every frame but the last says more, and the joined
    list is each task once in order, -n's newest too (dead -n N, for a
    ledger of many dead letters, was the whole list or nothing)."""
    d = supd.start({"a.yaml": pool(template=TEMPLATE)})
    d.wait("started", "root/idle")
    n = 300
    keys = [f"k{i:03}" for i in range(n)]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(d.socket)
    s.sendall(b"".join(
        frame({"t": "req", "id": i + 1, "cmd": "spawn",
               "args": ["pool", {"key": k, "args": ["1", "x" * 400]}]})
        for i, k in enumerate(keys)))
    buf = b""
    for _ in keys:
        m, buf = frames(s, buf)
        assert m is not None and m["ok"], m
    s.close()
    d.wait_count("dead_lettered", n)
    got, dead = list_frames(d, "dead", [])
    assert len(got) >= 3 and all(m["more"] for m in got[:-1])
    assert [x["key"] for x in dead] == \
        [x["key"] for x in sorted(dead, key=lambda x: x["ended_ms"])]
    assert sorted(x["key"] for x in dead) == keys
    assert all(x["args"] == ["1", "x" * 400] for x in dead)
    got, listed = list_frames(d, "tasks", [])
    assert len(got) >= 2 and [x["key"] for x in listed] == keys
    got, newest = list_frames(d, "tasks", [None, "dead", n - 10])
    assert len(got) >= 2 and newest == listed[10:]
    # dead -n: the newest dead letters, whole, still oldest ended first
    got, last = list_frames(d, "dead", [n - 10])
    assert len(got) >= 3 and last == dead[10:]
    text = d.ctl("dead", "-n", "2", check=0).stdout.splitlines()
    assert [line.split()[0] for line in text] == \
        [f"pool/{x['key']}" for x in dead[-2:]]
    assert d.ctl_json("dead", "-n", "0") == dead
    assert d.ctl("dead", "-n", "x", check=64).stderr.startswith(
        "agentsupctl: dead: -n wants a count")
    with Control(d.socket) as c:
        assert c.dead(newest=3) == dead[-3:] and c.dead() == dead
        # 0 is all, as agentsupctl's -n 0 (it was sent, and refused)
        assert c.dead(newest=0) == dead
        assert c.tasks(newest=0) == c.tasks()
        assert c.tasks("pool", "dead", 0) == c.tasks("pool", "dead")
        for args, says in (([0], "dead: N must be an integer from 1"),
                           (["2"], "N must be an integer"),
                           ([2, 1], "too many arguments")):
            refused(c, "dead", args, says)
