"""Tasks resumed after a restart of agentsupd on its state store, when their
pool cannot take them all at once (max_children lowered, or a pool full):
the ones still waiting are the same tasks to a spawn of their key, a `wait`
on one is answered however it ends, and one full pool holds up no other
pool's resume. Found in an audit; each test failed before its fix."""
import json
import textwrap

import pytest

from conftest import wait_until
from test_control import connect, frame, read_frame
from test_dynamic import pool
from test_metrics import free_port, samples, scrape

SLEEPER = """\
    template:
      command: [sleep, '300']
      backoff: none
    """


def settings(supd, port=None):
    return {"00-settings.yaml":
            f"agentsupd:\n  events_file: {supd.events}\n"
            f"  state_dir: {supd.tmp / 'state'}\n"
            + (f"  metrics: 127.0.0.1:{port}\n" if port else "")}


def fresh_events(supd):
    """The next agentsupd's events in a file of their own: a Daemon reads
    its events file from the start, and the first run's (its spawns, its
    workers' pids) are not the second's."""
    supd.events = supd.tmp / f"events.{len(supd.started)}.jsonl"


def sigkilled(supd, d):
    """d SIGKILLed, its workers seen gone (their numbers may be another's
    by the end), and the next agentsupd's events in a file of their own:
    every task stays pending in the store."""
    d.kill()
    for p in list(d.pids):
        wait_until(lambda: not d.runs(p), what="workers die with agentsupd")
    d.pids.clear()
    fresh_events(supd)


def two_tasks_then_one_place(supd, port=None):
    """Tasks a and b running, agentsupd SIGKILLed, started again with
    max_children 1: one is resumed, the other waits. (d, waiting key)"""
    d = supd.start({**settings(supd), "a.yaml": pool("max_children: 2\n", SLEEPER)})
    d.wait("started", "root/idle")
    for k in ("a", "b"):
        d.ctl("spawn", "pool", "--key", k, check=0)
        d.wait("started", f"root/pool/{k}")
    sigkilled(supd, d)
    supd.write({**settings(supd, port), "a.yaml": pool("max_children: 1\n", SLEEPER)},
               settings=False)
    d = supd.start()
    wait_until(lambda: any("supervising the tree" in l for l in d.lines),
               what="the new agentsupd listening")
    resumed = d.wait("spawned")
    return d, "b" if resumed.path == "root/pool/a" else "a"


def test_status_counts_the_tasks_waiting_to_be_resumed(supd):
    """They were no node, and nowhere in `status`: after a restart the pool
    showed one child of two, the other invisible until it ran."""
    port = free_port()
    d, key = two_tasks_then_one_place(supd, port)
    pool = d.ctl_json("status", "pool")[0]
    assert pool["resume_waiting"] == 1, pool
    assert samples(scrape(port), "agentsup_tasks_resume_waiting")[""] == 1
    assert "1 task waiting to resume" in d.ctl("status", "pool").stdout
    assert d.ctl_json("status", "idle")[0]["resume_waiting"] is None
    d.ctl("stop", f"pool/{key}", check=0)
    assert d.ctl_json("status", "pool")[0]["resume_waiting"] == 0
    assert "waiting to resume" not in d.ctl("status").stdout
    assert samples(scrape(port), "agentsup_tasks_resume_waiting")[""] == 0


def test_a_spawn_of_a_key_waiting_to_be_resumed_answers_that_task(supd):
    """It was refused (max_children), as if the accepted task were not
    there: an idempotent caller would think it refused."""
    d, key = two_tasks_then_one_place(supd)
    ans = d.ctl_json("spawn", "pool", "--key", key)
    assert ans["created"] is False and ans["state"] == "pending", ans


def test_a_wait_on_a_resume_that_is_cancelled_is_answered(supd):
    """The waiting task's pool removed by a reload: its record ends
    cancelled, and a `wait` already waiting on it was never answered."""
    d, key = two_tasks_then_one_place(supd)
    s = connect(d)
    s.sendall(frame({"t": "req", "id": 1, "cmd": "wait", "args": [f"pool/{key}"]}))
    s.sendall(frame({"t": "req", "id": 2, "cmd": "status", "args": []}))
    assert read_frame(s)["id"] == 2  # answered in order: the wait is in
    supd.write({"a.yaml": textwrap.dedent("""\
        supervisor: root
        children:
          - {worker: idle, command: [sleep, '300']}
        """)}, settings=False)
    d.ctl("reload", check=0)
    ans = read_frame(s)
    assert ans["id"] == 1 and ans["result"]["state"] == "cancelled", ans
    s.close()


@pytest.mark.parametrize("cmd", ["stop", "drain"])
def test_a_task_waiting_to_be_resumed_can_be_stopped_by_key(supd, cmd):
    """`stop pool/KEY` of a task waiting for a place answered "no such
    worker or supervisor": the operator could not keep it from running
    once a place came free."""
    d, key = two_tasks_then_one_place(supd)
    r = d.ctl(cmd, f"pool/{key}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"root/pool/{key}"
    d.wait("task_done", f"root/pool/{key}")
    r = d.ctl("--json", "wait", f"pool/{key}")
    rec = json.loads(r.stdout)
    assert r.returncode == 4 and rec["state"] == "cancelled", rec
    assert "before it was resumed" in rec["reasons"][-1], rec
    # a place comes free: the cancelled one does not take it
    other = "a" if key == "b" else "b"
    d.ctl("stop", f"pool/{other}", check=0)
    d.wait("task_done", f"root/pool/{other}")
    assert d.count("spawned", f"root/pool/{key}") == 0
    # and a second stop is what any stop of an ended task is
    assert d.ctl("stop", f"pool/{key}").returncode == 1
    # nor does the next agentsupd run it: the cancellation was stored
    d.kill()
    fresh_events(supd)
    supd.write(settings(supd), settings=False)
    d = supd.start()
    wait_until(lambda: any("supervising the tree" in l for l in d.lines),
               what="the next agentsupd listening")
    d.wait("started", "root/idle")
    r = d.ctl("--json", "wait", f"pool/{key}")
    assert r.returncode == 4 and json.loads(r.stdout)["state"] == "cancelled"
    assert d.count("spawned", f"root/pool/{key}") == 0


def test_a_task_waiting_to_be_resumed_is_found_by_its_full_path(supd):
    """`stop root/pool/KEY` (the path status and events show) took
    "root" for the pool and "pool/KEY" for the key: "no such worker or
    supervisor", and `wait root/pool/KEY` "no such task"."""
    d, key = two_tasks_then_one_place(supd)
    r = d.ctl("wait", f"root/pool/{key}", "--timeout", "200ms")
    assert r.returncode == 124, r.stderr  # found, still waiting
    r = d.ctl("stop", f"root/pool/{key}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"root/pool/{key}"
    d.wait("task_done", f"root/pool/{key}")
    r = d.ctl("--json", "wait", f"root/pool/{key}")
    assert r.returncode == 4 and json.loads(r.stdout)["state"] == "cancelled"


def two_pools(max_children):
    return textwrap.dedent(f"""\
        supervisor: root
        children:
          - supervisor: pool
            intensity: 50
            max_children: {max_children}
            template: {{command: [sleep, '300'], backoff: none}}
          - supervisor: poolb
            intensity: 50
            max_children: {max_children}
            template: {{command: [sleep, '300'], backoff: none}}
          - {{worker: idle, command: [sleep, '300']}}
        """)


def test_a_stop_by_a_key_two_pools_wait_to_resume_says_it_is_ambiguous(supd):
    """`stop KEY` of a key that tasks waiting to be resumed have in two
    pools answered "no such worker or supervisor: KEY", as if neither
    waited (wait KEY says which it is: ambiguous, say SUP/KEY)."""
    d = supd.start({**settings(supd), "a.yaml": two_pools(2)})
    d.wait("started", "root/idle")
    for p in ("pool", "poolb"):
        for k in ("a", "b"):
            d.ctl("spawn", p, "--key", k, check=0)
            d.wait("started", f"root/{p}/{k}")
    sigkilled(supd, d)
    supd.write({**settings(supd), "a.yaml": two_pools(1)}, settings=False)
    d = supd.start()
    wait_until(lambda: any("supervising the tree" in l for l in d.lines),
               what="the new agentsupd listening")
    d.wait_count("spawned", 2)
    for cmd in ("stop", "drain"):
        for k in ("a", "b"):
            r = d.ctl(cmd, k)
            assert r.returncode == 1, r
            assert "ambiguous key: say SUP/KEY" in r.stderr, r.stderr
    # nothing was cancelled: a spawn of each key answers its task, live
    for p in ("pool", "poolb"):
        for k in ("a", "b"):
            rec = d.ctl_json("spawn", p, "--key", k)
            assert rec["state"] in ("pending", "running"), rec
    assert d.ctl("stop", "nosuchkey").stderr.strip().endswith(
        "no such worker or supervisor: nosuchkey")


M64 = (1 << 64) - 1


def fnv(sup, key):
    """ledger.c ledger_hash: FNV-1a over "sup\\0key"."""
    h = 1469598103934665603
    for c in sup.encode():
        h = ((h ^ c) * 1099511628211) & M64
    h = (h * 1099511628211) & M64
    for c in key.encode():
        h = ((h ^ c) * 1099511628211) & M64
    return h


def starved_conf(max_a):
    return textwrap.dedent(f"""\
        supervisor: root
        children:
          - supervisor: pool
            intensity: 50
            max_children: {max_a}
            template: {{command: [sleep, '300'], backoff: none}}
          - supervisor: poolb
            intensity: 50
            template: {{command: [sleep, '300'], backoff: none}}
          - {{worker: idle, command: [sleep, '300']}}
        """)


def test_a_full_pool_does_not_starve_anothers_resume(supd):
    """More than 64 tasks waiting in a full pool, ahead of another pool's
    in the ledger's order: the resume pass took 64 at a time and stopped
    when a whole batch was refused, so the other pool's task (with room)
    waited for the full pool's children to end."""
    # B's key in the last bucket (128, 256 or 512 of them), A's elsewhere:
    # B is the last record a resume pass would reach
    bkey = next(f"b{i}" for i in range(100000)
                if fnv("poolb", f"b{i}") & 511 == 511)
    akeys = [f"a{i}" for i in range(400)
             if fnv("pool", f"a{i}") & 255 != 255
             and fnv("pool", f"a{i}") & 127 != 127][:80]
    settings = {"00-settings.yaml":
                f"agentsupd:\n  events_file: {supd.events}\n"
                f"  state_dir: {supd.tmp / 'state'}\n"}
    d = supd.start({**settings, "a.yaml": starved_conf(100)})
    d.wait("started", "root/idle")
    for k in akeys:
        d.ctl("spawn", "pool", "--key", k, check=0)
    d.ctl("spawn", "poolb", "--key", bkey, check=0)
    d.wait_count("started", len(akeys) + 2)
    sigkilled(supd, d)
    settings = {"00-settings.yaml":
                f"agentsupd:\n  events_file: {supd.events}\n"
                f"  state_dir: {supd.tmp / 'state'}\n"}
    supd.write({**settings, "a.yaml": starved_conf(1)}, settings=False)
    d2 = supd.start()
    wait_until(lambda: any("supervising the tree" in l for l in d2.lines),
               what="the new agentsupd listening")
    # poolb has room: its task must run again, whatever pool's backlog
    wait_until(lambda: d2.ctl_json("status", f"root/poolb/{bkey}")[0]
               .get("state") == "running"
               if d2.ctl("status", f"root/poolb/{bkey}").returncode == 0
               else False, timeout=10, what=f"poolb/{bkey} resumed")


def test_tasks_are_resumed_in_the_order_they_were_accepted(supd):
    """After a restart the tasks waiting were resumed in the ledger's hash
    order: with fewer places than tasks, the oldest accepted could wait
    behind every newer one. Oldest first, at the start and at each place
    that a task's end frees."""
    keys = [f"k{i}" for i in range(8)]
    d = supd.start({**settings(supd), "a.yaml": pool("max_children: 8\n", SLEEPER)})
    d.wait("started", "root/idle")
    for k in keys:
        d.ctl("spawn", "pool", "--key", k, check=0)
        d.wait("started", f"root/pool/{k}")
    sigkilled(supd, d)
    supd.write({**settings(supd), "a.yaml": pool("max_children: 3\n", SLEEPER)},
               settings=False)
    d = supd.start()
    first = [d.wait("spawned").path for _ in range(3)]
    assert first == [f"root/pool/{k}" for k in keys[:3]]
    for gone, nxt in (("k1", "k3"), ("k0", "k4"), ("k3", "k5")):
        d.ctl("stop", f"pool/{gone}", check=0)
        assert d.wait("spawned").path == f"root/pool/{nxt}"
