"""How dynamic children's tasks end, and what their records keep (DESIGN
§12): a reload that removes a pool's template, the result of the run that
ends a task, the result size limit, key_ttl across restarts, keyless
numbering and attempts after a restart, the memory the ledger keeps.
Waits are on events with deadlines."""
import json
import signal
import subprocess
import textwrap

from conftest import AGENTSUPCTL, TIMEOUT, wait_until
from test_dynamic import PY, py


def settings(supd, store=False, extra=""):
    """00-settings.yaml: the events file, a state store if asked."""
    text = f"agentsupd:\n  events_file: {supd.events}\n"
    if store:
        text += f"  state_dir: {supd.tmp / 'state'}\n"
    return {"00-settings.yaml": text + textwrap.indent(
        textwrap.dedent(extra), "  ")}


def tree(pool_body):
    """root: the pool (its body indented under it), then a plain worker
    whose start says the tree is up."""
    return ("supervisor: root\nchildren:\n  - supervisor: pool\n"
            + textwrap.indent(textwrap.dedent(pool_body), "    ")
            + "  - {worker: idle, command: [sleep, '300']}\n")


SLEEPY = "template:\n  command: [sleep, '300']\n"


def listening(d):
    wait_until(lambda: any("supervising the tree" in l for l in d.lines),
               what="agentsupd listening")


def test_removing_the_template_cancels_the_tasks(supd):
    """A reload that turns a pool into a static supervisor (here with a
    child of a task's name) stopped the task but left its record running
    for good: no task_done, a wait never answered, drop refused, and with
    a store the ghost was started again at the next start."""
    files = settings(supd, store=True)
    d = supd.start({**files, "a.yaml": tree(SLEEPY)})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "a", check=0)
    d.wait("started", "root/pool/a")
    waiter = subprocess.Popen([AGENTSUPCTL, "--socket", d.socket, "--json",
                               "wait", "pool/a"],
                              stdout=subprocess.PIPE, text=True)
    supd.write({"a.yaml": tree("children:\n"
                               "  - {worker: a, command: [sleep, '301']}\n")},
               settings=False)
    assert "removed [root/pool/a]" in d.ctl("reload", check=0).stdout
    out, _ = waiter.communicate(timeout=TIMEOUT)
    assert waiter.returncode == 4, out  # cancelled
    rec = json.loads(out)
    assert rec["state"] == "cancelled"
    assert "template was removed by a reload" in rec["reasons"][-1]
    d.wait("task_done", "root/pool/a", reason="cancelled: its supervisor's "
           "template was removed by a reload")
    d.wait("started", "root/pool/a")  # the static worker, its own spec
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    supd.write({"a.yaml": tree(SLEEPY)}, settings=False)
    d2 = supd.start()
    listening(d2)
    rec = json.loads(d2.ctl("--json", "wait", "pool/a", check=4).stdout)
    assert rec["state"] == "cancelled"  # not resumed
    assert d2.ctl("drop", "pool/a", check=0).returncode == 0


def test_logs_of_an_ended_task_show_its_last_lines(supd):
    """Once a task's node is swept, `logs SUP/KEY` said "no such worker":
    its output survived only in `wait`. Its record's last lines now."""
    files = settings(supd)
    d = supd.start({**files, "a.yaml": tree(
        "template:\n  restart: temporary\n"
        "  command: [sh, -c, 'echo working; echo cannot go on >&2; exit 1']\n")})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "k", check=0)
    d.wait("dead_lettered", "root/pool/k")
    wait_until(lambda: d.ctl("logs", "pool/k").returncode == 0,
               what="the task swept, its record answering")
    out = d.ctl("logs", "pool/k", check=0).stdout
    assert sorted(out.splitlines()) == ["cannot go on", "working"], out
    r = d.ctl("logs", "pool/k", "-f")
    assert r.returncode != 0 and "has ended" in r.stderr, r


def test_logs_of_an_ended_task_that_printed_nothing_are_empty(supd):
    """An ended task that printed nothing has no last lines in its record:
    `logs SUP/KEY` said "no such worker: pool/k" of a task `wait` knew.
    Now it is empty, as for a worker that has said nothing yet."""
    files = settings(supd)
    d = supd.start({**files, "a.yaml": tree(
        "template:\n  restart: temporary\n  command: [sh, -c, 'exit 1']\n")})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "k", check=0)
    d.wait("dead_lettered", "root/pool/k")
    wait_until(lambda: not any(n.get("path") == "root/pool/k"
                               for n in d.ctl_json("status")),
               what="the task's node swept")
    r = d.ctl("logs", "pool/k")
    assert r.returncode == 0 and r.stdout == "", r
    assert d.ctl("logs", "pool/nosuch").returncode != 0


def test_a_follower_of_a_task_that_ends_is_told(supd, tmp_path):
    """`logs -f` on a running task stayed connected and silent for ever once
    the task ended (followers are matched by name)."""
    go = tmp_path / "go"
    files = settings(supd)
    d = supd.start({**files, "a.yaml": tree(
        "template:\n"
        f"  command: [sh, -c, 'echo up; while [ ! -e {go} ]; do sleep 0.05; done']\n")})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "f", check=0)
    d.wait("started", "root/pool/f")
    follower = subprocess.Popen([AGENTSUPCTL, "--socket", d.socket, "logs",
                                 "pool/f", "-f"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    assert follower.stdout.readline() == "up\n"  # it follows by now
    go.write_text("")
    d.wait("task_done", "root/pool/f")
    out, err = follower.communicate(timeout=TIMEOUT)
    assert follower.returncode == 1, (out, err)
    assert "has ended" in err, err


def test_the_result_is_the_one_of_the_run_that_ends_the_task(supd):
    """A run that sent a result and failed: its result stayed on the
    record, and the done task (its second run sent none) presented it."""
    task = py(supd.tmp, "task.py", """\
        import agentsup, os, sys
        marker = sys.argv[1]
        with agentsup.Agent() as a:
            a.restored
            if not os.path.exists(marker):
                open(marker, "w").close()
                a.result(b"the failed run's")
                a.flush(2)
                sys.exit(1)
        """)
    d = supd.start({"a.yaml": tree(f"""\
        template:
          command: [{PY}, {task}]
          backoff: none
        """)})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "a", "--", str(supd.tmp / "m"), check=0)
    rec = json.loads(d.ctl("wait", "pool/a", check=0).stdout)
    assert rec["state"] == "done" and rec["attempts"] == 2
    assert rec["result"] is None


def test_a_result_of_64_kib(supd):
    """The documented limit, with checkpoints off (the worker's frame
    limit was the daemon's 64 KiB: no room for the frame around it) and
    from the Python client before welcome (its default limit)."""
    task = py(supd.tmp, "task.py", """\
        import agentsup, sys
        with agentsup.Agent() as a:
            if sys.argv[1] == "after":
                a.restored
            a.result(b"x" * 65536)
            a.flush(2)
        """)
    body = f"""\
        template:
          command: [{PY}, {task}]
          restart: temporary
        """
    d = supd.start({"a.yaml": tree(body + "  checkpoint: none\n")})
    d.wait("started", "root/idle")
    for key, when in (("a", "after"), ("b", "early")):
        d.ctl("spawn", "pool", "--key", key, "--", when, check=0)
        rec = json.loads(d.ctl("wait", f"pool/{key}", check=0).stdout)
        assert rec["state"] == "done", rec
        assert len(rec["result"]) == 65536


def test_key_ttl_after_a_restart_counts_by_the_wall_clock(supd):
    """A stored record's end was moved to the monotonic clock, clamped to
    1 when it ended longer ago than the machine's uptime: a key that ended
    long before a reboot stayed blocked until the uptime reached key_ttl."""
    import sqlite3
    up = float(open("/proc/uptime").read().split()[0])
    ttl = int(up) + 86400  # a day more than the uptime
    body = f"template:\n  command: [/bin/sh, -c, 'exit 0']\nkey_ttl: {ttl}s\n"
    d = supd.start({**settings(supd, store=True), "a.yaml": tree(body)})
    d.wait("started", "root/idle")
    for k in ("old", "recent"):
        d.ctl("spawn", "pool", "--key", k, check=0)
        assert d.ctl("wait", f"pool/{k}", check=0).returncode == 0
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    db = sqlite3.connect(str(supd.tmp / "state" / "agentsup.db"))
    db.execute("UPDATE tasks SET ended_ms = ended_ms - ? WHERE key = 'old'",
               ((ttl + 86400) * 1000,))  # ended longer ago than key_ttl
    db.commit()
    db.close()
    d2 = supd.start()
    listening(d2)
    again = json.loads(d2.ctl("--json", "spawn", "pool", "--key", "old",
                              check=0).stdout)
    assert again["created"] is True
    again = json.loads(d2.ctl("--json", "spawn", "pool", "--key", "recent",
                              check=0).stdout)
    assert again["created"] is False  # within key_ttl still


def test_keyless_numbers_go_on_past_the_stored_ones(supd):
    """After a restart on a store the first keyless spawn probed SUP/1,
    SUP/2, ... one SQLite read each on the loop (3 s for 200,000 stored
    tasks) until a free number: here it stopped at the gap, pool/3. Now
    the numbers go on past the highest stored, read once at start."""
    body = "template:\n  command: [/bin/sh, -c, 'exit 0']\n"
    d = supd.start({**settings(supd, store=True), "a.yaml": tree(body)})
    d.wait("started", "root/idle")
    for key in ([], [], ["--key", "500"]):
        d.ctl("spawn", "pool", *key, check=0)
    for k in ("1", "2", "500"):
        assert d.ctl("wait", f"pool/{k}", check=0).returncode == 0
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    d2 = supd.start()
    listening(d2)
    r = json.loads(d2.ctl("--json", "spawn", "pool", check=0).stdout)
    assert r["name"] == "pool/501" and r["created"] is True


def test_a_run_cut_short_by_a_sigkill_counts_and_keeps_its_acceptance(supd):
    """A task running when agentsupd was SIGKILLed: its first process was
    never counted (attempts 1 after two starts), and accepted_ms became the
    time of the resume."""
    from conftest import alive
    marker = supd.tmp / "marker"
    body = ("template:\n  command: [/bin/sh, -c, 'if [ -e $0 ]; then exit 0;"
            f" fi; touch $0; sleep 300', '{marker}']\n")
    d = supd.start({**settings(supd, store=True), "a.yaml": tree(body)})
    d.wait("started", "root/idle")
    first = json.loads(d.ctl("--json", "spawn", "pool", "--key", "a",
                             check=0).stdout)
    pid = d.wait("started", "root/pool/a").pid
    wait_until(marker.exists, what="the first run")
    d.kill()  # SIGKILL
    wait_until(lambda: not alive(pid), what="the task dies with agentsupd")
    d2 = supd.start()
    listening(d2)
    rec = json.loads(d2.ctl("wait", "pool/a", check=0).stdout)
    assert rec["state"] == "done" and rec["attempts"] == 2, rec
    assert rec["accepted_ms"] == first["accepted_ms"]
    assert "resumed: agentsupd stopped while it ran" in rec["reasons"]


def test_spawn_from_names_configured_workers(supd, tmp_path):
    """A spawn_from naming no configured worker (a typo) loaded without a
    word and granted nobody; a worker's spawn into a supervisor that does
    not exist was answered 'not in the spawn_from of nosuch'."""
    from conftest import AGENTSUPD
    bad = tmp_path / "bad.d"
    bad.mkdir()
    (bad / "a.yaml").write_text(tree(
        "spawn_from: [orchestratr]\ntemplate:\n  command: [sleep, '1']\n")
        + "  - {worker: orchestrator, command: [sleep, '1']}\n")
    r = subprocess.run([AGENTSUPD, "--check", "-c", str(bad)],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 78
    assert 'spawn_from: "orchestratr" is no configured worker' in r.stderr
    orch = py(supd.tmp, "orch.py", """\
        import agentsup, time
        with agentsup.Agent() as a:
            a.restored
            s = a.spawn("nosuch", key="k")
            print("ANSWER", s.ok, s.error, flush=True)
            time.sleep(300)
        """)
    d = supd.start({"a.yaml": tree(
        "spawn_from: [orch]\ntemplate:\n  command: [sleep, '300']\n")
        + f"  - {{worker: orch, command: [{PY}, {orch}], shutdown: 1s}}\n"})
    wait_until(lambda: any("ANSWER" in l for l in d.lines), what="answer")
    line = next(l for l in d.lines if "ANSWER" in l)
    assert "ANSWER False no dynamic supervisor (with a template) nosuch" in line


LATE = """\
    import os, sys, time
    import agentsup
    go = sys.argv[1]
    with agentsup.Agent() as a:
        a.ready()
        if len(sys.argv) > 2:  # a retry: done once told, no result
            while not os.path.exists(go + ".2"):
                a.wait(0.05)
            sys.exit(0)
        while not a.draining:
            a.wait(0.05)
        while not os.path.exists(go):  # cancelled: its result comes late
            time.sleep(0.05)
        a.result(b"late: the cancelled run's")
        a.flush(2)
    """


def cancel_by_reload(supd, d, body):
    supd.write({"a.yaml": tree("children:\n"
                               "  - {worker: b, command: [sleep, '301']}\n")},
               settings=False)
    d.ctl("reload", check=0)
    d.wait("task_done", "root/pool/a")
    supd.write({"a.yaml": tree(body)}, settings=False)
    d.ctl("reload", check=0)


def test_a_cancelled_runs_late_result_counts_no_start_and_speaks_for_no_retry(
        supd):
    """A run cancelled by a reload that sends its result while it stops:
    its record's stored attempts were doubled (its starts counted at the
    cancel, then again with the result), and a retry of its key took the
    old run's result as its own."""
    task = py(supd.tmp, "late.py", LATE)
    go = supd.tmp / "go"
    body = (f"template:\n  command: [{PY}, {task}, {go}]\n"
            "  start_timeout: 10s\n  drain_timeout: 1h\n")
    d = supd.start({**settings(supd, store=True), "a.yaml": tree(body)})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "a", check=0)
    d.wait("ready", "root/pool/a")  # it listens: it is drained
    cancel_by_reload(supd, d, body)
    d.ctl("spawn", "pool", "--key", "a", "--retry", "--", "again", check=0)
    go.write_text("")  # the cancelled run sends its result, and exits
    d.wait("exited", "root/pool/a")
    # the retry starts once the cancelled run is down (one run at a time)
    d.wait_count("ready", 2, "root/pool/a")
    (supd.tmp / "go.2").write_text("")  # the retry ends, with none
    rec = json.loads(d.ctl("--json", "wait", "pool/a", check=0).stdout)
    assert rec["state"] == "done" and rec.get("result") is None, rec
    assert rec["attempts"] == 2, rec  # one run each
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    d2 = supd.start()
    listening(d2)
    again = json.loads(d2.ctl("--json", "wait", "pool/a", check=0).stdout)
    assert again["attempts"] == 2 and again.get("result") is None, again


def test_key_ttl_counts_from_the_load_when_the_clock_went_back(supd):
    """A stored end ahead of the wall clock (the clock set back since):
    key_ttl counts from the load, it held the key for as long as the clock
    lagged."""
    import sqlite3
    body = "key_ttl: 1s\ntemplate:\n  command: [/bin/sh, -c, 'exit 0']\n"
    d = supd.start({**settings(supd, store=True), "a.yaml": tree(body)})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "a", check=0)
    assert d.ctl("wait", "pool/a", check=0).returncode == 0
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    db = sqlite3.connect(str(supd.tmp / "state" / "agentsup.db"))
    db.execute("UPDATE tasks SET ended_ms = ended_ms + 3600 * 1000")
    db.commit()
    db.close()
    d2 = supd.start()
    listening(d2)
    wait_until(lambda: json.loads(d2.ctl("--json", "spawn", "pool", "--key",
                                         "a", check=0).stdout)["created"],
               what="the key free a second after the load")


FINISHER = """\
    import sys
    import agentsup
    key, mode = sys.argv[1], sys.argv[2]
    with agentsup.Agent() as a:
        a.ready()
        a.beat(steps=1, tokens=400)
        while not a.draining:
            a.wait(5)
        if mode == "done":  # finishes its work on the drain
            a.result("result of " + key)
            a.exit_reason("done")
    """


def finisher_pool(supd, extra=""):
    task = py(supd.tmp, "finisher.py", FINISHER)
    return tree(f"{extra}template:\n  command: [{PY}, {task}]\n"
                "  start_timeout: 10s\n")


def test_a_task_done_on_its_pools_budget_drain_is_done(supd):
    """A task that the drain of its spent pool found finishing, and that
    sent its result and declared done, was left pending: `wait` never
    answered, a spawn of its key said it was pending, and `reset` ran it
    again from scratch, its result thrown away. One that exits 0 on the
    drain without declaring done is not done: it runs again."""
    d = supd.start({"a.yaml": finisher_pool(supd, "budget: {tokens: 1000}\n")})
    d.wait("started", "root/idle")
    for key, mode in (("t1", "done"), ("t2", "done"), ("t3", "plain")):
        d.ctl("spawn", "pool", "--key", key, "--", key, mode, check=0)
        d.wait("ready", f"root/pool/{key}")  # it listens: it is drained
    d.wait("exhausted", "root/pool")  # 1200 tokens of 1000
    for key in ("t1", "t2"):
        d.wait_count("task_done", 1, f"root/pool/{key}")
        rec = json.loads(d.ctl("--json", "wait", key, "--timeout", "5s",
                               check=0).stdout)
        assert rec["state"] == "done", rec
        assert rec["result"] == f"result of {key}", rec
        again = json.loads(d.ctl("--json", "spawn", "pool", "--key", key,
                                 check=0).stdout)
        assert again["created"] is False and again["state"] == "done"
    t3 = json.loads(d.ctl("--json", "spawn", "pool", "--key", "t3",
                          check=0).stdout)
    assert t3["created"] is False and t3["state"] == "pending", t3
    d.ctl("reset", "pool", check=0)
    d.wait("started", "root/pool/t3")  # after where t1 and t2 would start
    assert d.count("started", "root/pool/t1") == 1
    assert d.count("started", "root/pool/t2") == 1
    assert d.count("dead_lettered") == 0


def test_a_task_done_on_shutdown_is_not_resumed(supd):
    """The same on SIGTERM with a store: the task finished on its drain,
    with a result and done, was resumed at the next start with its result
    gone; one that did not declare done is resumed, as before."""
    d = supd.start({**settings(supd, store=True),
                    "a.yaml": finisher_pool(supd)})
    d.wait("started", "root/idle")
    for key, mode in (("t1", "done"), ("t2", "plain")):
        d.ctl("spawn", "pool", "--key", key, "--", key, mode, check=0)
        d.wait("ready", f"root/pool/{key}")
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    d.drain_events()
    assert d.count("task_done", "root/pool/t1") == 1
    assert d.count("task_done", "root/pool/t2") == 0
    d2 = supd.start()  # its own events only
    listening(d2)
    d2.wait("ready", "root/pool/t2")  # resumed, after where t1 was
    rec = json.loads(d2.ctl("--json", "wait", "pool/t1", "--timeout", "5s",
                            check=0).stdout)
    assert rec["state"] == "done" and rec["result"] == "result of t1", rec
    assert rec["attempts"] == 1, rec
    assert d2.count("started", "root/pool/t1") == 0  # not run again
