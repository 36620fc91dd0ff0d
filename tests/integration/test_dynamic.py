"""Dynamic children (DESIGN §12) with the real agentsupd: spawns by
agentsupctl and by a worker in spawn_from, idempotency keys, max_children,
results and `wait`'s exit codes, dead letters, replay and drop, and hostile
input (floods, huge arguments, odd keys). Waits are on events with
deadlines."""
import json
import os
import subprocess
import textwrap

import pytest

from conftest import AGENTSUPCTL, SRC, TIMEOUT, wait_until

PY = "/usr/bin/python3"
PYPATH = os.path.join(SRC, "tools", "python")


def py(tmp, name, body):
    """A Python worker script using the agentsup client."""
    path = tmp / name
    path.write_text(f"import sys\nsys.path.insert(0, {PYPATH!r})\n"
                    + textwrap.dedent(body))
    return path


def pool(extra="", template="", name="pool"):
    """root: the dynamic supervisor, then a plain worker whose start says
    the pool is up (supervisors have no started event)."""
    return textwrap.dedent(f"""\
        supervisor: root
        children:
          - supervisor: {name}
            intensity: 50
        """) + textwrap.indent(textwrap.dedent(extra), "    ") + \
        textwrap.indent(textwrap.dedent(template), "    ") + \
        "  - {worker: idle, command: [sleep, '300']}\n"


SH_TEMPLATE = """\
template:
  command: ["/bin/sh", "-c", "sleep ${DELAY:-0}; while [ -n \\"$GATE\\" ] && [ ! -e \\"$GATE\\" ]; do sleep 0.02; done; exit $1", "task"]
  backoff: none
"""


def test_spawn_by_ctl_idempotent_keys_and_wait(supd):
    d = supd.start({"a.yaml": pool(template=SH_TEMPLATE)})
    d.wait("started", "root/idle")
    gate = supd.tmp / "gate"  # it runs until the test has looked at it
    r = d.ctl("--json", "spawn", "pool", "--key", "a", "--env", f"GATE={gate}",
              "--", "0", check=0)
    rec = json.loads(r.stdout)
    assert rec["created"] is True and rec["name"] == "pool/a"
    assert rec["args"] == ["0"] and rec["env"] == [f"GATE={gate}"]
    d.wait("spawned", "root/pool/a")
    again = json.loads(d.ctl("--json", "spawn", "pool", "--key", "a", "--",
                             "0", check=0).stdout)
    assert again["created"] is False and again["state"] in ("running", "pending")
    st = d.ctl_json("status", "root/pool/a")
    assert st[0]["key"] == "a"
    gate.touch()
    w = d.ctl("wait", "a", "--timeout", "10s", check=0)
    done = json.loads(w.stdout)
    assert done["state"] == "done" and done["attempts"] == 1
    d.wait("task_done", "root/pool/a")
    # ended within key_ttl: the record, not a new task
    r = json.loads(d.ctl("--json", "spawn", "pool", "--key", "a", check=0).stdout)
    assert r["created"] is False and r["state"] == "done"
    r = json.loads(d.ctl("--json", "spawn", "pool", "--key", "a", "--retry",
                         "--", "0", check=0).stdout)
    assert r["created"] is True
    assert d.ctl("wait", "pool/a", check=0).returncode == 0
    # the ended child has left the tree; its record stays
    assert [n["path"] for n in d.ctl_json("status")] == [
        "root", "root/pool", "root/idle"]


def test_a_wait_with_timeout_0_looks(supd):
    """wait KEY --timeout 0, a poll from a script: an ended task's record
    and its exit status, a live one's 124 at once (it was 124 for a task
    long done: the answer had been given no time)."""
    d = supd.start({"a.yaml": pool(template=SH_TEMPLATE)})
    d.wait("started", "root/idle")
    gate = supd.tmp / "gate"
    d.ctl("spawn", "pool", "--key", "a", "--env", f"GATE={gate}", "--",
          "0", check=0)
    d.wait("started", "root/pool/a")
    r = d.ctl("wait", "a", "--timeout", "0", check=124)
    assert r.stdout == "" and "has not ended (it is running)" in r.stderr
    gate.touch()
    d.wait("task_done", "root/pool/a")
    r = d.ctl("wait", "a", "--timeout", "0", check=0)
    assert json.loads(r.stdout)["state"] == "done"
    d.ctl("spawn", "pool", "--key", "b", "--", "0", check=0)
    d.wait("task_done", "root/pool/b")
    assert json.loads(d.ctl("wait", "pool/b", "--timeout", "0s",
                            check=0).stdout)["name"] == "pool/b"


@pytest.mark.parametrize("cmd", ["stop", "drain"])
def test_a_task_in_backoff_stopped_is_cancelled(supd, cmd):
    """A task waiting out its backoff (no process) stopped by an operator
    stayed "stopped" in the tree for good: `wait` never answered, a spawn
    of its key said "cancelling" and `drop` "stop it first"."""
    d = supd.start({"a.yaml": pool(template="""\
        template:
          command: ["/bin/sh", "-c", "exit 1"]
          backoff: {initial: 1m, max: 1m}
        """)})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "k", check=0)
    d.wait("backoff", "root/pool/k")
    d.ctl(cmd, "pool/k", check=0)
    d.wait("task_done", "root/pool/k")
    r = d.ctl("--json", "wait", "pool/k", "--timeout", "10s")
    assert r.returncode == 4 and json.loads(r.stdout)["state"] == "cancelled"
    assert [n["path"] for n in d.ctl_json("status")] == [
        "root", "root/pool", "root/idle"]
    assert d.ctl("drop", "pool/k").returncode == 0
    r = json.loads(d.ctl("--json", "spawn", "pool", "--key", "k",
                         check=0).stdout)
    assert r["created"] is True


def test_a_tasks_events_follower_ends_with_it(supd):
    """`events pool/KEY --follow` went on after the task ended, for
    ever, with nothing more to come (`logs pool/KEY -f` ended; found by a
    hostile tester). It gets the task's last event, then is told."""
    d = supd.start({"a.yaml": pool(template=SH_TEMPLATE)})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "k", "--env", "DELAY=300", "--", "0",
          check=0)
    d.wait("started", "root/pool/k")
    f = subprocess.Popen([AGENTSUPCTL, "--socket", d.socket, "--json",
                          "events", "pool/k", "--follow"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        f.stdout.readline()  # its history: following
        d.ctl("stop", "pool/k", check=0)
        out, err = f.communicate(timeout=TIMEOUT)
    finally:
        if f.poll() is None:
            f.kill()
            f.wait()
    assert f.returncode == 1, (out, err)
    assert "task_done" in [json.loads(l)["kind"] for l in out.splitlines()]
    assert "task root/pool/k has ended" in err, err


def test_unkeyed_children_are_numbered(supd):
    d = supd.start({"a.yaml": pool(template=SH_TEMPLATE)})
    d.wait("started", "root/idle")
    names = [json.loads(d.ctl("--json", "spawn", "pool", "--", "0",
                              check=0).stdout)["name"] for _ in range(3)]
    assert names == ["pool/1", "pool/2", "pool/3"]
    for n in names:
        d.ctl("wait", n, check=0)


def test_max_children_refused_with_the_count(supd):
    d = supd.start({"a.yaml": pool("max_children: 2\n", SH_TEMPLATE)})
    d.wait("started", "root/idle")
    for k in ("a", "b"):
        d.ctl("spawn", "pool", "--key", k, "--env", "DELAY=30", "--", "0",
              check=0)
    r = d.ctl("spawn", "pool", "--key", "c", "--", "0", check=1)
    assert "max_children" in r.stderr and "2 live children" in r.stderr
    assert d.ctl("wait", "c").returncode == 1  # never accepted: no record
    d.ctl("stop", "root/pool/a", check=0)  # cancelled: room again
    d.wait("task_done", "root/pool/a", reason="cancelled")
    assert d.ctl("wait", "a", check=4).returncode == 4
    d.ctl("spawn", "pool", "--key", "c", "--", "0", check=0)


def test_wait_timeout_exit_code(supd):
    d = supd.start({"a.yaml": pool(template=SH_TEMPLATE)})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "slow", "--env", "DELAY=30", "--", "0",
          check=0)
    r = d.ctl("wait", "slow", "--timeout", "300ms")
    assert r.returncode == 124, (r.stdout, r.stderr)
    # it is the task that has not ended, not agentsupd that is silent
    assert "the task has not ended within" in r.stderr, r.stderr
    assert d.ctl("wait", "nosuch", "--timeout", "1s").returncode == 1


POISON = """\
import os, sys, agentsup
with agentsup.Agent() as a:
    a.restored
    if sys.argv[1] == "poison" and not os.path.exists(os.environ["FIXED"]):
        print("poison: cannot parse the input", file=sys.stderr, flush=True)
        a.exit_reason("permanent", detail="cannot parse the input")
        sys.exit(3)
    a.result(("ok:" + sys.argv[1]).encode())
    a.flush(2)
"""


def test_dead_letter_replay_and_drop(supd):
    script = py(supd.tmp, "task.py", POISON)
    fixed = supd.tmp / "fixed"
    d = supd.start({"a.yaml": pool(template=f"""\
        template:
          command: [{PY}, {script}]
          environment: {{FIXED: {fixed}}}
          backoff: none
        """)})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "good", "--", "fine", check=0)
    d.ctl("spawn", "pool", "--key", "bad", "--", "poison", check=0)
    r = d.ctl("wait", "good", check=0)
    assert json.loads(r.stdout)["result"] == "ok:fine"
    r = d.ctl("wait", "bad")
    assert r.returncode == 2, (r.stdout, r.stderr)
    rec = json.loads(r.stdout)
    assert rec["state"] == "dead"
    assert "declared permanent: cannot parse the input" in rec["reasons"][-1]
    assert "poison: cannot parse the input" in rec["tail"]  # its output
    ev = d.wait("dead_lettered", "root/pool/bad")
    assert "agentsupctl replay pool/bad" in ev.detail
    assert "poison: cannot parse the input" in ev.tail  # a failure event
    dead = d.ctl_json("dead")
    assert [x["name"] for x in dead] == ["pool/bad"]
    assert "pool/bad" in d.ctl("dead", check=0).stdout
    assert d.ctl("drop", "bad", check=0).stdout.strip() == "dropped pool/bad"
    # dropped: gone; spawn it again to have a dead letter to replay
    assert d.ctl("wait", "bad").returncode == 1
    d.ctl("spawn", "pool", "--key", "bad", "--", "poison", check=0)
    assert d.ctl("wait", "bad").returncode == 2
    fixed.write_text("")  # the operator fixed the cause
    r = json.loads(d.ctl("--json", "replay", "pool/bad", check=0).stdout)
    assert r["created"] is True and r["args"] == ["poison"]
    d.wait("replayed", "root/pool/bad")
    rec = json.loads(d.ctl("wait", "bad", check=0).stdout)
    assert rec["state"] == "done" and rec["replays"] == 1
    assert rec["result"] == "ok:poison" and rec["attempts"] == 2
    assert rec["tail"] is None  # it printed nothing
    assert d.ctl_json("dead") == []
    d.ctl("drop", "pool/bad", check=0)
    r = d.ctl("replay", "bad")
    assert r.returncode == 1 and "no such task" in r.stderr


ORCH = """\
import json, os, sys, agentsup
with agentsup.Agent() as a:
    a.restored
    out = []
    for k in ("k1", "k2", "k1"):
        s = a.spawn("pool", key=k, args=["--n", k], env={"WORD": "w-" + k})
        out.append([s.ok, s.name, s.created, s.error])
    s = a.spawn("nosuch")
    out.append([s.ok, s.error])
    s = a.spawn("pool", key="bad/key")
    out.append([s.ok, s.error])
    # a task keyed like the orchestrator, asking in its name: refused
    s = a.spawn("pool", key="orch", args=["--impostor"])
    out.append([s.ok, s.name])
    with open(os.environ["OUT"], "w") as f:
        json.dump(out, f)
    a.wait(60)
"""

CHILD = """\
import os, sys, agentsup
with agentsup.Agent() as a:
    a.restored
    if sys.argv[1:] == ["--impostor"]:
        s = a.spawn("pool", key="sneaky")
        a.result(("impostor " + str(s.ok) + " " + str(s.error)).encode())
        a.flush(2)
        sys.exit(0)
    a.result((os.environ["WORD"] + " " + " ".join(sys.argv[1:])).encode())
    a.flush(2)
"""


def store_settings(supd, store):
    """With store: the settings file, a state_dir in it (worker spawns
    are then answered once their records are committed)."""
    if not store:
        return {}
    return {"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                f"  state_dir: {supd.tmp / 'state'}\n"}


@pytest.mark.parametrize("store", [False, True])
def test_spawn_by_a_worker_and_results(supd, store):
    orch = py(supd.tmp, "orch.py", ORCH)
    child = py(supd.tmp, "child.py", CHILD)
    outf = supd.tmp / "out.json"
    d = supd.start({**store_settings(supd, store), "a.yaml": f"""\
        supervisor: root
        children:
          - worker: orch
            command: [{PY}, {orch}]
            environment: {{OUT: {outf}}}
          - worker: intruder
            command: [{PY}, {orch}]
            environment: {{OUT: {supd.tmp / 'intruder.json'}}}
          - supervisor: pool
            spawn_from: [orch]
            template: {{command: [{PY}, {child}]}}
        """})
    d.wait("spawned", "root/pool/k1")
    d.wait("spawned", "root/pool/k2")
    for k in ("k1", "k2"):
        rec = json.loads(d.ctl("wait", k, "--timeout", "20s", check=0).stdout)
        assert rec["result"] == f"w-{k} --n {k}"
    d.wait_count("task_done", 2)

    def read(p):
        from conftest import wait_until
        wait_until(lambda: p.exists() and p.stat().st_size > 0, what=str(p))
        return json.loads(p.read_text())
    out = read(outf)
    assert out[0] == [True, "pool/k1", True, None]
    assert out[1] == [True, "pool/k2", True, None]
    assert out[2][0] is True and out[2][1] == "pool/k1"  # the same child
    assert out[3] == [False, "no dynamic supervisor (with a template) nosuch"]
    assert out[4][0] is False and "spawn_from" not in out[4][1]
    assert out[5] == [True, "pool/orch"]
    rec = json.loads(d.ctl("wait", "pool/orch", "--timeout", "20s",
                           check=0).stdout)
    assert rec["result"] == "impostor False not in the spawn_from of pool"
    assert d.ctl("wait", "sneaky").returncode == 1  # never accepted
    intruder = read(supd.tmp / "intruder.json")
    assert intruder[0][0] is False and "spawn_from" in intruder[0][3]
    d.wait_count("spawned", 3)
    d.wait("task_done", "root/pool/orch")  # events up to its end are read
    assert d.count("spawned") == 3  # k1, k2, orch; never sneaky


FLOOD = """\
import json, os, agentsup
with agentsup.Agent() as a:
    a.restored
    oks = errs = 0
    last = None
    for i in range(3000):
        s = a.spawn("pool", key=f"f{i}", args=["x" * 100])
        if s.ok:
            oks += 1
        else:
            errs += 1
            last = [s.error, s.count]
    try:  # more than its frame limit (welcome: max_frame): the client refuses
        a.spawn("pool", key="huge", args=["y" * (1 << 20)])
        huge = "sent"
    except (ValueError, OSError) as e:
        huge = type(e).__name__
with open(os.environ["OUT"], "w") as f:
    json.dump([oks, errs, last, huge], f)
"""


@pytest.mark.parametrize("store", [False, True])
def test_hostile_flood_huge_args_odd_keys(supd, store):
    flood = py(supd.tmp, "flood.py", FLOOD)
    outf = supd.tmp / "flood.json"
    d = supd.start({**store_settings(supd, store), "a.yaml": f"""\
        supervisor: root
        children:
          - supervisor: pool
            max_children: 5
            spawn_from: [flood]
            template: {{command: [/bin/sh, -c, "exec sleep 30", t]}}
          - worker: flood
            restart: temporary
            command: [{PY}, {flood}]
            environment: {{OUT: {outf}}}
        """})
    from conftest import wait_until
    wait_until(lambda: outf.exists() and outf.stat().st_size > 0,
               what="the flood's tally")
    oks, errs, last, huge = json.loads(outf.read_text())
    assert oks == 5 and errs == 2995 and last == ["max_children", 5]
    assert huge != "sent"
    d.wait_count("spawned", 5)
    # the daemon still answers, and keys with odd bytes are refused
    d.ctl("status", check=0)
    for key in ("../x", "a b", "a/b", "-x", "k" * 65, "é", "a\tb"):
        r = d.ctl("spawn", "pool", "--key", key, "--", "1")
        assert r.returncode == 1 and "bad key" in r.stderr, (key, r.stderr)
    r = d.ctl("spawn", "pool", "--env", "AGENTSUP_FD=3", "--", "1")
    assert r.returncode == 1 and "AGENTSUP_" in r.stderr
    r = d.ctl("spawn", "pool", "--env", "1BAD=x", "--", "1")
    assert r.returncode == 1 and "variable name" in r.stderr
    r = d.ctl("spawn", "pool", "--", "z" * 70000)  # over the frame limit
    assert r.returncode == 64 and "larger than a frame" in r.stderr
    r = d.ctl("spawn", "nosuch", "--", "1")
    assert r.returncode == 1 and "no dynamic supervisor" in r.stderr
    r = d.ctl("spawn", "root", "--", "1")
    assert r.returncode == 1


def test_template_reload_reaches_new_children(supd):
    d = supd.start({"a.yaml": pool(template=SH_TEMPLATE)})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "old", "--env", "DELAY=30", "--", "0",
          check=0)
    supd.write({"a.yaml": pool(template="""\
        template:
          command: ["/bin/sh", "-c", "echo NEW; sleep ${DELAY:-0}; exit $1", "t"]
          backoff: none
        """)})
    r = d.ctl("reload", check=0)
    assert "updated [root/pool]" in r.stdout and "removed []" in r.stdout
    st = {n["path"]: n for n in d.ctl_json("status")}
    assert st["root/pool/old"]["state"] == "running"  # kept
    d.ctl("spawn", "pool", "--key", "new", "--", "0", check=0)
    assert d.ctl("wait", "new", check=0).returncode == 0


def test_reload_removing_the_pool_cancels_its_tasks(supd):
    """Its children are stopped with it; their records were left running
    for good: a `wait` never answered, and after a restart the task was
    cancelled only then."""
    d = supd.start({"a.yaml": pool(template=SH_TEMPLATE)})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "live", "--env", "DELAY=300", "--", "0",
          check=0)
    d.wait("started", "root/pool/live")
    d.ctl("spawn", "pool", "--key", "ended", "--", "0", check=0)
    d.wait("task_done", "root/pool/ended")
    waiter = subprocess.Popen([AGENTSUPCTL, "--socket", d.socket, "--json",
                               "wait", "live"],
                              stdout=subprocess.PIPE, text=True)
    supd.write({"a.yaml": "supervisor: root\nchildren:\n"
                          "  - {worker: idle, command: [sleep, '300']}\n"})
    assert "removed [root/pool]" in d.ctl("reload", check=0).stdout
    out, _ = waiter.communicate(timeout=TIMEOUT)
    assert waiter.returncode == 4, out  # cancelled
    rec = json.loads(out)
    assert rec["state"] == "cancelled"
    assert "removed by a reload" in rec["reasons"][-1]
    d.wait("task_done", "root/pool/live", reason="cancelled: its supervisor "
           "was removed by a reload")
    assert json.loads(d.ctl("--json", "wait", "ended", check=0).stdout)[
        "state"] == "done"  # an ended one is as it was


def test_a_task_cancelled_by_a_reload_still_stops_gracefully(supd):
    """Its record was cancelled before the stop, and its capture went with
    the record: the task's goodbye on SIGTERM met a closed pipe (SIGPIPE)."""
    d = supd.start({"a.yaml": pool(template="""\
        template:
          command: ["/bin/sh", "-c", "trap 'echo bye; exit 0' TERM; while :; do sleep 0.05; done", t]
        """)})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "live", check=0)
    d.wait("started", "root/pool/live")
    supd.write({"a.yaml": "supervisor: root\nchildren:\n"
                          "  - {worker: idle, command: [sleep, '300']}\n"})
    d.ctl("reload", check=0)
    assert d.wait("exited", "root/pool/live").reason == "exit:0"


def test_bad_usage(supd):
    d = supd.start({"a.yaml": pool(template=SH_TEMPLATE)})
    d.wait("started", "root/idle")
    assert d.ctl("spawn").returncode == 64
    assert d.ctl("spawn", "pool", "--env", "NOEQUALS").returncode == 64
    assert d.ctl("wait", "a", "--timeout", "soon").returncode == 64
    r = subprocess.run([AGENTSUPCTL, "--socket", d.socket, "wait"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 64


def test_c_client_spawns_and_results(supd):
    """libagentsup end to end: agentsup_spawn and agentsup_result."""
    from conftest import BUILD
    agent = os.path.abspath(os.path.join(BUILD, "fanout_agent"))
    d = supd.start({"a.yaml": f"""\
        supervisor: root
        children:
          - supervisor: cpool
            max_children: 2
            spawn_from: [corch]
            template: {{command: [{agent}]}}
          - worker: corch
            command: [{agent}, spawn, cpool, x1, x2, x1, x3]
            stdout: {supd.tmp / 'corch.out'}
        """})
    d.wait("spawned", "root/cpool/x1")
    d.wait("spawned", "root/cpool/x2")
    for k in ("x1", "x2"):
        rec = json.loads(d.ctl("wait", f"cpool/{k}", "--timeout", "20s",
                               check=0).stdout)
        assert rec["result"] == f"{k} from C (c)"
    from conftest import wait_until
    out = supd.tmp / "corch.out"
    wait_until(lambda: out.exists() and out.read_text().count("\n") == 4,
               what="the C orchestrator's answers")
    lines = out.read_text().splitlines()
    assert lines[0] == "ok cpool/x1 created - 0"
    assert lines[1] == "ok cpool/x2 created - 0"
    # x1 again: running (the same child), or ended within key_ttl (its
    # record): not created either way
    assert lines[2] == "ok cpool/x1 existing - 0"
    # x3: refused while x1 and x2 run, or created once they ended
    assert lines[3] in ("refused - existing max_children 2",
                        "ok cpool/x3 created - 0")


RESUMABLE = """\
import os, sys, agentsup
with agentsup.Agent() as a:
    r = a.restored
    if sys.argv[1] == "quick":
        a.result(b"quick done")
        a.flush(2)
        sys.exit(0)
    if sys.argv[1] == "poison":
        a.exit_reason("permanent", detail="bad input")
        sys.exit(3)
    if r.checkpoint:
        a.result(b"resumed from " + r.checkpoint)
        a.flush(2)
        sys.exit(0)
    seq = a.checkpoint(b"step-" + sys.argv[1].encode())
    while a.checkpoint_acked < seq:
        a.wait(0.05)
    open(os.environ["MARK"] + sys.argv[1], "w").close()
    a.wait(300)
"""


def test_resume_after_sigkill(supd):
    """With a state store, tasks pending or running when agentsupd is
    SIGKILLed start again with the same key and their last checkpoint; the
    ended records (done, dead) are still there."""
    from conftest import wait_until
    script = py(supd.tmp, "resumable.py", RESUMABLE)
    mark = supd.tmp / "mark-"
    files = {"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                 f"  state_dir: {supd.tmp / 'state'}\n",
             "a.yaml": pool(template=f"""\
                 template:
                   command: [{PY}, {script}]
                   environment: {{MARK: {mark}}}
                   backoff: none
                 """)}
    d = supd.start(files)
    d.wait("started", "root/idle")
    for k in ("a", "b", "quick", "poison"):
        d.ctl("spawn", "pool", "--key", k, "--", k, check=0)
    for k in ("a", "b"):
        wait_until(lambda: (supd.tmp / f"mark-{k}").exists(), what=f"{k}'s checkpoint")
    assert d.ctl("wait", "quick", check=0).returncode == 0
    assert d.ctl("wait", "poison").returncode == 2
    d.kill()  # SIGKILL
    for p in list(d.pids):
        wait_until(lambda: not d.runs(p), what="workers die with agentsupd")
    d2 = supd.start()
    wait_until(lambda: any("supervising the tree" in l for l in d2.lines),
               what="the new agentsupd listening")
    for k in ("a", "b"):  # in either order
        d2.wait_count("spawned", 1, f"root/pool/{k}")
        rec = json.loads(d2.ctl("wait", f"pool/{k}", "--timeout", "20s", check=0).stdout)
        assert rec["result"] == f"resumed from step-{k}" and rec["state"] == "done"
    rec = json.loads(d2.ctl("wait", "quick", check=0).stdout)
    assert rec["result"] == "quick done"
    assert [x["name"] for x in d2.ctl_json("dead")] == ["pool/poison"]
    again = json.loads(d2.ctl("--json", "spawn", "pool", "--key", "quick", check=0).stdout)
    assert again["created"] is False  # within key_ttl, across the restart


def _pool_with_a_stopping_task(supd, then="exec sleep 1000"):
    """Pool `pool` (its own file) whose task K traps TERM until `go`
    exists, and once it does runs `then` (a run after the old one); K
    started."""
    stopping, go = supd.tmp / "stopping", supd.tmp / "go"
    task = json.dumps(["/bin/sh", "-c", f"""
        if [ -e {go} ]; then
            {then}
        fi
        trap 'touch {stopping}; while [ ! -e {go} ]; do sleep 0.02; done; exit 0' TERM
        while :; do sleep 0.02; done"""])
    keep = "supervisor: root\nchildren:\n  - {worker: idle, command: [sleep, '300']}\n"
    pool_file = ("supervisor: pool\nparent: root\n"
                 f"template: {{command: {task}, shutdown: 60s}}\n")
    d = supd.start({"a.yaml": keep, "b.yaml": pool_file})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "K", check=0)
    old = d.wait("started", "root/pool/K").pid
    return d, pool_file, old, stopping, go


def _pool_removed_and_added_back(supd, d, pool_file, stopping):
    """A reload removes the pool (its K told to stop, still stopping),
    another adds it back."""
    (supd.dir / "b.yaml").unlink()
    d.ctl("reload", check=0)
    wait_until(stopping.exists, what="the old K told to stop")
    (supd.dir / "b.yaml").write_text(pool_file)
    d.ctl("reload", check=0)


def test_a_task_of_a_pool_removed_and_added_back_runs_once(supd):
    """A reload removes a pool whose task K is still stopping; the pool is
    added back and K spawned again (--retry): the new K starts once the
    old one is down. Both ran at once, sharing K's capture; the old one's
    end closed the new one's stdout and it died of SIGPIPE, a restart
    counted toward intensity (as a moved worker did, fixed before)."""
    later = supd.tmp / "later"
    d, pool_file, old, stopping, go = _pool_with_a_stopping_task(supd, f"""
            echo up
            while [ ! -e {later} ]; do sleep 0.02; done
            echo later
            exec sleep 1000""")
    _pool_removed_and_added_back(supd, d, pool_file, stopping)
    d.ctl("spawn", "pool", "--key", "K", "--retry", check=0)
    k = [n for n in d.ctl_json("status") if n["path"] == "root/pool/K"]
    assert k[0]["state"] == "stopped" and k[0]["pid"] is None, k
    go.touch()
    d.wait("exited", "root/pool/K", pid=old)
    new = d.wait("started", "root/pool/K")
    assert new.pid != old
    later.touch()
    wait_until(lambda: "later" in d.ctl("logs", "pool/K").stdout,
               what="the new K's output")
    evs = [json.loads(l) for l in supd.events.read_text().splitlines()]
    assert not [e for e in evs if e["path"] == "root/pool/K"
                and e["kind"] in ("restarting", "exited") and e["pid"] != old]


def test_a_stop_of_a_task_waiting_for_its_old_run_cancels_it(supd):
    """K spawned again (the pool removed and added back) waits for its old
    run; an operator's stop of it then cancels it (it stayed held and
    pending for good, its wait never answered, its slot taken)."""
    d, pool_file, old, stopping, go = _pool_with_a_stopping_task(supd)
    _pool_removed_and_added_back(supd, d, pool_file, stopping)
    d.ctl("spawn", "pool", "--key", "K", "--retry", check=0)
    d.ctl("stop", "pool/K", check=0)
    rec = json.loads(d.ctl("--json", "wait", "pool/K", "--timeout", "10s",
                           check=4).stdout)
    assert rec["state"] == "cancelled", rec
    go.touch()
    d.wait("exited", "root/pool/K", pid=old)
    assert d.ctl("spawn", "pool", "--key", "K", "--retry").returncode == 0
    d.wait("started", "root/pool/K")


def test_a_worker_in_a_tasks_place_starts_once_the_task_is_down(supd):
    """A reload turns the pool into a static supervisor with a worker K
    where task K still stops: the worker starts once the task's process
    is down (it ran beside it, at the same path)."""
    d, pool_file, old, stopping, go = _pool_with_a_stopping_task(supd)
    (supd.dir / "b.yaml").write_text(
        "supervisor: pool\nparent: root\nchildren:\n"
        "  - {worker: K, command: [sleep, '300']}\n")
    d.ctl("reload", check=0)
    wait_until(stopping.exists, what="the old K told to stop")
    k = [n for n in d.ctl_json("status") if n["path"] == "root/pool/K"]
    assert k[0]["state"] == "stopped" and k[0]["pid"] is None, k
    go.touch()
    d.wait("exited", "root/pool/K", pid=old)
    assert d.wait("started", "root/pool/K").pid != old
