"""`agentsupctl restart NAME --rolling`: the copies of a worker of
`instances:`, or a supervisor's children, restarted one at a time, each a
new process and up before the next is stopped (PM2's reload, a Kubernetes
rollout), so that a fleet is never short of more than one; the rollout
stops at the first that does not come up and leaves the rest running."""
import json
import os
import signal
import subprocess
import sys
import textwrap

from conftest import AGENTSUPCTL, SRC, TIMEOUT, sh, wait_until

CLIENT = os.path.join(SRC, "tools", "python")

# a copy that finds broken-ITS_NAME in its directory fails at once
COPY = sh('[ -e "broken-$AGENTSUP_NAME" ] && exit 1; exec sleep 1000')


def pids(d):
    return {n["name"]: n["pid"] for n in d.ctl_json("status")
            if n["kind"] == "worker"}


def tree(supd, children):
    return {"a.yaml": f"""
        supervisor: root
        intensity: 100
        period: 10s
        children:
{children}
        """}


def copies(supd, n=3):
    return tree(supd, f"""          - worker: web
            instances: {n}
            command: {COPY}
            directory: {supd.tmp}
            backoff: {{initial: 200ms, jitter: none}}
          - {{worker: other, command: {sh("exec sleep 1000")}}}""")


def test_rolling_restart_of_instances_one_at_a_time(supd):
    d = supd.start(copies(supd))
    for i in (1, 2, 3):
        d.wait("started", f"root/web-{i}")
    before = pids(d)
    r = d.ctl("restart", "web", "--rolling", check=0)
    assert "restarting root/web-1 (1 of 3)" in r.stdout, r.stdout
    after = pids(d)
    for i in (1, 2, 3):
        assert after[f"web-{i}"] != before[f"web-{i}"], (before, after)
    assert after["other"] == before["other"]
    # one at a time: each copy's new process started before the next
    # copy's old one was stopped
    d.count("started")  # reads every event so far into d.seen
    evs = sorted((e for e in d.seen if e.path.startswith("root/web-")),
                 key=lambda e: e.seq)
    started = {e.path: e.seq for e in evs
               if e.kind == "started" and e.pid not in before.values()}
    stopped = {e.path: e.seq for e in evs
               if e.kind == "exited" and e.pid in before.values()}
    assert set(started) == set(stopped) == {f"root/web-{i}" for i in (1, 2, 3)}
    assert started["root/web-1"] < stopped["root/web-2"]
    assert started["root/web-2"] < stopped["root/web-3"]


def test_rolling_restart_stops_at_a_copy_that_does_not_come_up(supd):
    d = supd.start(copies(supd))
    for i in (1, 2, 3):
        d.wait("started", f"root/web-{i}")
    before = pids(d)
    (supd.tmp / "broken-web-2").touch()
    r = d.ctl("--json", "restart", "web", "--rolling", "--timeout", "60s",
              check=1)
    out = json.loads(r.stdout)
    assert out == {"ok": False, "restarted": ["root/web-1"],
                   "stopped_at": "root/web-2", "left": 2, "skipped": 0}, out
    assert "stopped at root/web-2" in r.stderr, r.stderr
    assert pids(d)["web-3"] == before["web-3"]  # left running as it was


def test_rolling_restart_of_a_supervisors_children(supd):
    d = supd.start(tree(supd, f"""          - supervisor: pool
            children:
              - {{worker: a, command: {sh("exec sleep 1000")}}}
              - {{worker: b, command: {sh("exec sleep 1000")}}}
              - {{worker: c, command: {sh("exec sleep 1000")}}}"""))
    d.wait("started", "root/pool/c")
    d.ctl("stop", "c", "--wait", check=0)
    before = pids(d)
    r = d.ctl("restart", "pool", "--rolling", check=0)
    assert "2 restarted one at a time (those not up left as they are)" \
        in r.stdout, r.stdout
    after = pids(d)
    assert after["a"] != before["a"] and after["b"] != before["b"]
    assert after["c"] is None  # stopped by command: left so


def test_rolling_restart_refusals(supd):
    d = supd.start(copies(supd))
    d.wait("started", "root/other")
    r = d.ctl("restart", "other", "--rolling", check=1)
    assert "other is a worker" in r.stderr, r.stderr
    r = d.ctl("--json", "restart", "other", "--rolling", check=1)
    assert json.loads(r.stdout)["ok"] is False, r.stdout
    r = d.ctl("restart", "nosuch", "--rolling", check=1)
    assert "no such worker or supervisor: nosuch" in r.stderr, r.stderr
    r = d.ctl("stop", "web", "--rolling", check=64)
    assert "unknown option" in r.stderr, r.stderr
    r = d.ctl("restart", "web", "--rolling", "--timeout", "0", check=64)
    assert "--timeout 0" in r.stderr, r.stderr
    # an empty NAME matched every node that is not a copy: the whole tree
    before = pids(d)
    r = d.ctl("restart", "", "--rolling", check=1)
    assert "NAME is empty" in r.stderr, r.stderr
    assert pids(d) == before


def test_rolling_restart_by_path_and_instance_of(supd):
    """The copies by their supervisor's path and the name (as the daemon's
    hint says to); status names what a copy is a copy of."""
    d = supd.start(copies(supd, 2))
    d.wait("started", "root/web-2")
    st = {n["name"]: n for n in d.ctl_json("status")}
    assert st["web-1"]["instance_of"] == "web"
    assert st["other"]["instance_of"] is None
    assert st["root"]["instance_of"] is None
    before = pids(d)
    d.ctl("restart", "root/web", "--rolling", check=0)
    after = pids(d)
    assert after["web-1"] != before["web-1"]
    assert after["web-2"] != before["web-2"]
    assert after["other"] == before["other"]


def test_rolling_restart_of_an_ambiguous_name_is_refused(supd):
    """A supervisor `web` beside the copies of a worker `web` (root/web
    both): neither is rolled, rather than the one not meant."""
    d = supd.start(tree(supd, f"""          - supervisor: web
            children:
              - {{worker: a, command: {sh("exec sleep 1000")}}}
          - {{worker: web, instances: 2, command: {COPY},
              directory: {supd.tmp}}}"""))
    d.wait("started", "root/web-2")
    before = pids(d)
    r = d.ctl("restart", "web", "--rolling", check=1)
    assert "names both a supervisor and the copies" in r.stderr, r.stderr
    d.ctl("restart", "root/web", "--rolling", check=1)
    assert pids(d) == before


def test_python_control_rolling_restart(supd):
    """Control.restart(name, rolling=True), as agentsupctl's."""
    import sys
    sys.path.insert(0, CLIENT)
    from agentsup.control import Control, ControlError
    d = supd.start(copies(supd))
    for i in (1, 2, 3):
        d.wait("started", f"root/web-{i}")
    before = pids(d)
    with Control(d.socket) as c:
        assert c.restart("web", wait=60, rolling=True) == \
            "web: 3 restarted one at a time"
        after = pids(d)
        assert all(after[f"web-{i}"] != before[f"web-{i}"] for i in (1, 2, 3))
        (supd.tmp / "broken-web-2").touch()
        try:
            c.restart("web", rolling=True)
            raise AssertionError("the broken copy came up")
        except ControlError as e:
            assert "stopped at root/web-2 (1 of 3 restarted" in str(e), e
        assert pids(d)["web-3"] == after["web-3"]
        try:
            c.restart("other", rolling=True)
            raise AssertionError("a worker was rolled")
        except ControlError as e:
            assert "other is a worker" in str(e), e


def test_rolling_restart_leaves_out_a_copy_a_reload_removes(supd):
    """A reload during the rollout (held while a copy starts, applied once
    it is ready) takes web-3 away: the rollout goes on with web-2 and
    leaves web-3 out, not a failure."""
    late = supd.tmp / "late.py"
    late.write_text(textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {CLIENT!r})
        import agentsup
        a = agentsup.Agent()
        gate = os.path.join({str(supd.tmp)!r}, "gate-" + os.environ["AGENTSUP_NAME"])
        while not os.path.exists(gate):
            time.sleep(0.02)
        a.ready()
        while not a.draining:
            a.wait(1.0)
    """))

    def conf(n):
        return tree(supd, f"""          - worker: web
            instances: {n}
            command: {json.dumps([sys.executable, str(late)])}
            start_timeout: 60s""")
    for i in (1, 2, 3):
        (supd.tmp / f"gate-web-{i}").touch()
    d = supd.start(conf(3))
    for i in (1, 2, 3):
        d.wait("ready", f"root/web-{i}")
    (supd.tmp / "gate-web-1").unlink()  # its next start waits for the test
    r = subprocess.Popen([AGENTSUPCTL, "--socket", d.socket, "--json",
                          "restart", "web", "--rolling"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    d.wait("exited", "root/web-1")
    d.wait("started", "root/web-1")  # its new process: not ready yet
    supd.write(conf(2))
    d.signal(signal.SIGHUP)
    wait_until(lambda: any("reload waits" in l for l in d.lines),
               what="the reload held while web-1 starts")
    (supd.tmp / "gate-web-1").touch()
    ev = d.wait("reload_applied")
    assert "root/web-3" in ev.detail, ev.detail
    out, err = r.communicate(timeout=TIMEOUT)
    assert r.returncode == 0, (out, err)
    res = json.loads(out)
    assert res["restarted"] == ["root/web-1", "root/web-2"], res
    assert res["ok"] is True and res["skipped"] == 1, res
