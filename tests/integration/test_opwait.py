"""`agentsupctl start|stop|restart|drain NAME --wait`: the command answers
once it has begun; --wait returns once it has been carried out (as
supervisorctl's stop and systemctl do), so that a deploy script can go on:
after a stop the process is gone, after a restart every worker below is a
new process, after a start the worker is running (and ready, when it has
a start_timeout). A start that does not come up exits 1, a wait past
--timeout exits 124, as `wait` does."""
import json
import os
import signal
import subprocess
import textwrap
import threading
import time

from conftest import (AGENTSUPCTL, SRC, TIMEOUT, alive, catches,
                      flapper_team, ignores, sh, wait_until)

PY = "/usr/bin/python3"
CLIENT = os.path.join(SRC, "tools", "python")

# stops a second after its SIGTERM
SLOW_STOP = sh("trap 'sleep 1; exit 0' TERM; while :; do sleep 0.05; done")


def trapped(pid):
    """Once SLOW_STOP's trap is set (a stop before it kills at once)."""
    wait_until(lambda: catches(pid, signal.SIGTERM), what="its TERM trap")


def node(d, name):
    return [n for n in d.ctl_json("status", name) if n["name"] == name][0]


def test_stop_wait_returns_once_the_process_is_gone(supd, tmp_path):
    release = tmp_path / "release"
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: slow, command: {SLOW_STOP}, shutdown: 10s}}
          - {{worker: held, command: {held_stop(release)}, shutdown: 60s}}
        """})
    pid = d.wait("started", "root/slow").pid
    trapped(pid)
    t0 = time.monotonic()
    r = d.ctl("stop", "slow", "--wait", check=0)
    assert time.monotonic() - t0 >= 0.9, r  # its TERM handler's second
    assert not alive(pid)
    assert node(d, "slow")["state"] == "stopped"
    # without --wait the answer comes at once, while it is still stopping
    # (held until the release: a second's stop could end before the look
    # on a loaded machine; an answer that waited for it would never come)
    trapped(d.wait("started", "root/held").pid)
    d.ctl("stop", "held", check=0)
    assert node(d, "held")["state"] == "stopping"
    release.touch()


def test_restart_wait_every_worker_below_is_new(supd):
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - supervisor: team
            strategy: one_for_all
            children:
              - {{worker: a, command: {SLOW_STOP}, shutdown: 10s}}
              - {{worker: b, command: {sh("exec sleep 1000")}}}
        """})
    old = {n: d.wait("started", f"root/team/{n}").pid for n in ("a", "b")}
    r = d.ctl("restart", "team", "--wait", check=0)
    for n in ("a", "b"):
        st = node(d, n)
        assert st["state"] == "running", (st, r)
        assert st["pid"] != old[n] and not alive(old[n])


def ready_after(tmp_path, marker):
    """A protocol worker that says ready once marker exists, and ends
    when told to drain."""
    p = tmp_path / "late.py"
    p.write_text(textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {CLIENT!r})
        import agentsup
        a = agentsup.Agent()
        while not os.path.exists({str(marker)!r}):
            time.sleep(0.02)
        a.ready()
        while not a.draining:
            a.wait(1.0)
    """))
    return json.dumps([PY, str(p)])


def test_start_wait_waits_for_ready(supd, tmp_path):
    marker = tmp_path / "go"
    d = supd.start({"a.yaml": f"""
        worker: late
        command: {ready_after(tmp_path, marker)}
        start_timeout: 20s
        """})
    marker.touch()
    d.wait("ready", "root/late")
    d.ctl("stop", "late", "--wait", check=0)
    marker.unlink()
    t0 = time.monotonic()
    threading.Timer(1.0, marker.touch).start()
    d.ctl("start", "late", "--wait", check=0)
    assert time.monotonic() - t0 >= 0.9  # not before its ready
    assert node(d, "late")["state"] == "running"


def test_start_wait_of_a_worker_that_does_not_come_up(supd):
    d = supd.start({"a.yaml": f"""
        worker: broken
        command: {sh("exit 1")}
        start_timeout: 5s
        backoff: {{initial: 10s}}
        """})
    d.wait("backoff", "root/broken")
    d.ctl("stop", "broken", "--wait", check=0)
    r = d.ctl("start", "broken", "--wait", check=1)
    # backoff, or stopped for the moment its failure waits for its
    # supervisor's start to end
    assert "broken did not come up: " in r.stderr, r
    assert ", last exit:1" in r.stderr, r


def test_wait_past_its_timeout_exits_124(supd):
    d = supd.start({"a.yaml": f"""
        worker: slow
        command: {sh("trap 'sleep 5; exit 0' TERM; while :; do sleep 0.05; done")}
        shutdown: 10s
        """})
    trapped(d.wait("started", "root/slow").pid)  # else killed at once: done
    # 2 s: its looks answered on a loaded host (its trap sleeps 5 s)
    r = d.ctl("stop", "slow", "--wait", "--timeout", "2s", check=124)
    assert "timed out after 2000ms waiting for slow (it is stopping)" in r.stderr


def test_a_look_the_wait_s_end_cuts_short_says_the_wait_timed_out(supd):
    """On a loaded host the last status look of a --wait can be cut short
    by the wait's own end: it said "agentsupd did not answer within 0.001
    s", as if agentsupd hung. It is the wait timing out, said as such.
    (agentsupd is held stopped here so that the look cannot be answered.)"""
    told = supd.tmp / "told"
    d = supd.start({"a.yaml": f"""
        worker: slow
        command: {sh(f"trap 'touch {told}; sleep 5; exit 0' TERM; while :; do sleep 0.05; done")}
        shutdown: 10s
        """})
    trapped(d.wait("started", "root/slow").pid)
    r = subprocess.Popen([AGENTSUPCTL, "--socket", d.socket, "stop", "slow",
                          "--wait", "--timeout", "2s"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    wait_until(told.exists, what="the stop under way")
    d.signal(signal.SIGSTOP)
    try:
        out, err = r.communicate(timeout=TIMEOUT)
    finally:
        d.signal(signal.SIGCONT)
    assert r.returncode == 124, (out, err)
    assert "timed out after 2000ms waiting for slow (it is " in err, err
    assert "did not answer" not in err, err


def test_stop_wait_of_a_task(supd):
    """A task stopped ends, and its node goes with it: done, not 'no such
    worker'."""
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: w, command: {sh("exec sleep 300")}}}
          - supervisor: pool
            template: {{command: {sh("exec sleep 300")}}}
        """})
    d.wait("started", "root/w")
    for key, cmd in (("k1", "stop"), ("k2", "drain")):
        d.ctl("spawn", "pool", "--key", key, check=0)
        d.wait("started", f"root/pool/{key}")
        d.ctl(cmd, f"pool/{key}", "--wait", check=0)
    d.ctl("spawn", "pool", "--key", "k3", check=0)
    d.ctl("restart", "pool/k3", "--wait", check=0)
    assert [n["state"] for n in d.ctl_json("status", "pool/k3")] == ["running"]


def test_start_wait_of_one_shots_never_started(supd):
    """A one-shot's first start: it may have run and ended before the
    first look. Its restarts stay 0 across a first start, so --wait took
    'stopped' for not started yet and waited out its timeout (exit 124,
    found by a second reader); it counts starts now."""
    jobs = "".join(f"  - {{worker: job{i}, command: {sh('exit 0')}, "
                   "restart: transient, autostart: false}\n" for i in range(6))
    d = supd.start({"a.yaml": "supervisor: root\nchildren:\n"
                    f"  - {{worker: w, command: {sh('exec sleep 300')}}}\n"
                    + jobs})
    d.wait("started", "root/w")
    for i in range(6):
        r = d.ctl("start", f"job{i}", "--wait", "--timeout", "10s")
        assert r.returncode == 0, (i, r)
    assert [n["starts"] for n in d.ctl_json("status", "job0")] == [1]


def test_wait_usage(supd):
    d = supd.start({"a.yaml": f"""
        worker: w
        command: {sh("exec sleep 1000")}
        """})
    d.wait("started", "root/w")  # its socket is there (69 before, loaded)
    r = d.ctl("start", "--wait", check=64)  # drain --wait is the tree's
    assert "start: missing NAME" in r.stderr
    r = d.ctl("stop", "w", "--timeout", "1s", check=64)
    assert "--timeout is for --wait" in r.stderr
    r = d.ctl("status", "--wait", check=64)
    assert "unknown option" in r.stderr
    d.ctl("stop", "nosuch", "--wait", check=1)


def ctl_bg(d, *args):
    return subprocess.Popen([AGENTSUPCTL, "--socket", d.socket, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_wait_findings_of_an_sre(supd, tmp_path):
    """From an SRE's trial: --timeout bounds a wait on an agentsupd that
    does not answer (exit 124, not 69 after 30 s); a start of a running
    supervisor is done at once though a child below keeps failing its
    start; a start whose first attempt fails says so at once (1), not
    after its timeout; a stop whose node a reload removes meanwhile is
    done (0, not 'no such worker'); ^C says so and exits 130."""
    never_ready = sh("exec sleep 300")  # no protocol: start_timeout fails
    release = tmp_path / "release"
    d = supd.start({"a.yaml": f"""
        supervisor: root
        intensity: 1000
        period: 1s
        children:
          - {{worker: slow, command: {SLOW_STOP}, shutdown: 10s}}
          - {{worker: held, command: {held_stop(release)}, shutdown: 60s}}
          - supervisor: team
            intensity: 1000
            period: 1s
            children:
              - {{worker: ok, command: {sh("exec sleep 300")}}}
              - {{worker: flap, command: {never_ready}, start_timeout: 1s,
                  backoff: {{initial: 30ms, max: 50ms}}}}
        """})
    d.wait("started", "root/slow")
    d.wait("started", "root/team/flap")
    r = d.ctl("start", "team", "--wait", "--timeout", "20s")
    assert r.returncode in (0, 3), r  # settles at once: team runs
    d.ctl("stop", "flap", "--wait", check=0)
    # at once: its --timeout is an hour, so an answer at all (d.ctl gives it
    # the harness's TIMEOUT) is one that did not wait it out
    r = d.ctl("start", "flap", "--wait", "--timeout", "1h", check=1)
    assert "flap did not come up" in r.stderr, r
    # an agentsupd that does not answer: 124 is --timeout's (agentsupctl's
    # own 30 s answer timeout says 69, and is past d.ctl's TIMEOUT)
    d.proc.send_signal(signal.SIGSTOP)
    try:
        r = d.ctl("stop", "slow", "--wait", "--timeout", "1s", check=124)
        assert "stop slow: not sent" in r.stderr, r  # a script must know
    finally:
        d.proc.send_signal(signal.SIGCONT)
    # ^C while waiting for a stop (held until the release: a second's
    # stop could end first on a loaded machine, and the wait with it)
    trapped(node(d, "held")["pid"])
    p = ctl_bg(d, "stop", "held", "--wait")
    wait_until(lambda: node(d, "held")["state"] == "stopping",
               what="held stopping")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 130 and "interrupted" in err, (p.returncode, err)
    release.touch()
    # a reload removes the node being stopped
    p = ctl_bg(d, "stop", "slow", "--wait")
    wait_until(lambda: node(d, "slow")["state"] == "stopping",
               what="slow stopping")
    supd.write({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: other, command: {sh("exec sleep 300")}}}
        """})
    d.ctl("reload", check=0)
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, (p.returncode, out, err)


def test_a_start_of_a_starting_supervisor_waits_not_for_a_flapping_child(
        supd, tmp_path):
    """A start of a supervisor still starting (a child before it not yet
    ready) whose other child then fails its start each time: done once the
    supervisor is up, that child said (3), not waited for to the end
    (--timeout, 124: the clean-clone CI, where an SRE finding's start came
    before its supervisor was up). No backoff: the child is never out of
    starting or stopping for a look to catch."""
    go = tmp_path / "go"
    d = supd.start(flapper_team(go))
    d.wait("started", "root/team/gate")
    assert node(d, "team")["state"] == "starting"
    p = ctl_bg(d, "start", "team", "--wait", "--timeout", "60s")
    d.wait("command", "root/team")
    go.touch()
    out, err = p.communicate(timeout=90)
    assert p.returncode == 3, (p.returncode, out, err)
    assert "1 node below it is not in the state it should be" in err, err
    assert node(d, "flap")["consecutive_failures"] >= 1

def held_stop(release):
    """A worker whose stop is held until the file release exists: its
    supervisor stays busy with a restart of it for as long as a test
    wants, not for a second a loaded machine may use up."""
    return sh(f"trap 'while [ ! -e {release} ]; do sleep 0.02; done; exit 0' "
              "TERM; while :; do sleep 0.05; done")


def test_wait_asks_again_while_the_supervisor_is_busy(supd, tmp_path):
    """A start refused for a moment (its supervisor busy restarting a
    sibling that is still stopping) is asked again until taken, as
    systemctl queues a job behind the one running; without --wait it is
    refused at once, as before. Past --timeout: 124, saying why."""
    release = tmp_path / "release"
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: slow, command: {held_stop(release)}, shutdown: 60s}}
          - {{worker: b, command: {sh("exec sleep 300")}}}
        """})
    trapped(d.wait("started", "root/slow").pid)
    d.wait("started", "root/b")
    d.ctl("stop", "b", "--wait", check=0)
    d.ctl("restart", "slow", check=0)  # root busy until the release
    r = d.ctl("start", "b", check=1)
    assert "busy" in r.stderr, r
    r = d.ctl("start", "b", "--wait", "--timeout", "2s", "--json", check=124)
    assert "busy" in r.stderr and "not free to take it" in r.stderr, r
    o = json.loads(r.stdout)
    assert o["outcome"] == "timeout" and "busy" in o["error"], o
    p = ctl_bg(d, "start", "b", "--wait")
    release.touch()
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, (out, err)
    assert node(d, "b")["state"] == "running"
    assert node(d, "slow")["state"] == "running"
    # a supervisor's own restart while it is busy, likewise
    release.unlink()
    trapped(node(d, "slow")["pid"])
    d.ctl("restart", "slow", check=0)
    d.ctl("restart", "root", check=1)  # busy
    p = ctl_bg(d, "restart", "root", "--wait")
    release.touch()
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, (out, err)
    assert all(node(d, n)["state"] == "running" for n in ("slow", "b"))


def test_json_wait_says_the_outcome(supd):
    """--json --wait: one object on stdout once the wait is over, for a
    deploy script that reads more than the exit status: ok, the
    command's answer, the outcome and NAME's last status."""
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: ok, command: {sh("exec sleep 300")}}}
          - {{worker: broken, command: {sh("exit 1")}, start_timeout: 5s,
              backoff: {{initial: 10s, jitter: none}}}}
        """})
    # jitter none: a full jitter's retry could come within the test's own
    # start of broken, the root's 4th restart in 5 s (1 run in 10 failed)
    d.wait("started", "root/ok")
    d.wait("backoff", "root/broken")

    def outcome(*args, check):
        r = d.ctl(*args, "--wait", "--json", check=check)
        lines = r.stdout.splitlines()
        assert len(lines) == 1, r  # one object, the answer inside it
        return json.loads(lines[0])

    o = outcome("restart", "ok", check=0)
    assert o["ok"] is True and o["result"] == "root/ok", o
    assert o["outcome"] == "done" and o["node"]["state"] == "running", o
    o = outcome("stop", "ok", check=0)
    assert o["outcome"] == "done" and o["node"]["state"] == "stopped", o
    o = outcome("start", "broken", check=1)
    assert o["ok"] is False and o["outcome"] == "not_up", o
    assert o["node"]["last_reason"] == "exit:1", o
    o = outcome("start", "nosuch", check=1)  # the command refused
    assert o == {"ok": False,
                 "error": "no such worker or supervisor: nosuch"}, o


def test_concurrent_restarts_wait_for_a_healthy_worker(supd):
    """Several deploy scripts restarting one worker at once: each wait saw
    the worker started twice since and not running (stopping, for another
    client's restart), took it for a start that failed, and exited 1 for
    a worker that was fine. A worker that failed since is what failed."""
    d = supd.start({"a.yaml": f"""
        worker: okw
        command: {sh("exec sleep 1000")}
        """})
    d.wait("started", "root/okw")
    ps = [ctl_bg(d, "restart", "okw", "--wait", "--timeout", "60s")
          for _ in range(8)]
    for p in ps:
        out, err = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, (out, err)
    assert node(d, "okw")["state"] == "running"


# a worker that stays up, and two that exit at once: one waits out its
# backoff, one is restarted at once
AT_ONCE_TREE = f"""
    supervisor: root
    intensity: 1000
    period: 1s
    children:
      - {{worker: good, command: {sh("exec sleep 300")}}}
      - {{worker: dies, command: {sh("sleep 0.2; exit 3")}}}
      - {{worker: loops, command: {sh("sleep 0.2; exit 3")}, backoff: none}}
    """


def test_start_wait_of_a_worker_that_exits_at_once(supd):
    """A worker without start_timeout counted as up once started, so
    `start --wait` of one that cannot run (a command that fails at once)
    exited 0 in 15 ms. Now it must have run a second (supervisord's
    startsecs, PM2's min_uptime): one that exits before is not up (1),
    restarted at once (backoff: none) or waiting out its backoff; one
    that stays up is (0). A restart of a supervisor waits for it too."""
    d = supd.start({"a.yaml": AT_ONCE_TREE})
    for n in ("good", "dies", "loops"):
        d.wait("started", f"root/{n}")
    for n in ("dies", "loops"):
        d.ctl("stop", n, "--wait", check=0)
        r = d.ctl("start", n, "--wait", "--timeout", "30s", check=1)
        assert f"{n} did not come up" in r.stderr and "exit:3" in r.stderr, r
    r = d.ctl("restart", "good", "--wait", check=0)
    assert node(d, "good")["uptime_ms"] >= 1000, r


def test_wait_on_a_supervisor_with_a_flapping_child(supd):
    """The settle rule (a worker up for a second) applied to every worker
    below NAME: a child that keeps failing and restarting at once, or a
    pool's short tasks, always had one under a second old, and a restart
    or start of their supervisor timed out (124) though it was up. It
    waits for the workers the command started, once; one that failed
    since is not in the state it should be (3)."""
    d = supd.start({"a.yaml": f"""
        supervisor: root
        intensity: 1000
        period: 1s
        children:
          - supervisor: team
            intensity: 1000
            period: 1s
            children:
              - {{worker: good, command: {sh("exec sleep 300")}}}
              - {{worker: flap, command: {sh("sleep 0.3; exit 1")},
                  backoff: none}}
        """})
    d.wait_count("started", 3, "root/team/flap")
    r = d.ctl("restart", "team", "--wait", "--timeout", "60s", check=3)
    assert "1 node below it is not" in r.stderr, r
    assert node(d, "good")["uptime_ms"] >= 1000, r


# ignores SIGTERM: only its shutdown's SIGKILL (or an operator's) ends it
DEAF = sh("trap '' TERM; exec sleep 1000")
KEEP_AND_DEAF = {"a.yaml": f"""
    supervisor: root
    children:
      - {{worker: keep, command: {sh("exec sleep 1000")}}}
      - {{worker: deaf, command: {DEAF}, shutdown: 60s}}
    """}
KEEP_ONLY = {"a.yaml": f"""
    supervisor: root
    children:
      - {{worker: keep, command: {sh("exec sleep 1000")}}}
    """}


def between_looks(p):
    """agentsupctl --wait asleep between two looks at NAME (in
    clock_nanosleep): it has looked at least once."""
    try:
        with open(f"/proc/{p.pid}/syscall") as f:
            return f.read().split()[0] == "230"  # x86-64 clock_nanosleep
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def deaf_started(supd):
    d = supd.start(KEEP_AND_DEAF)
    pid = d.wait("started", "root/deaf").pid
    wait_until(lambda: ignores(pid, signal.SIGTERM), what="its TERM ignored")
    return d, pid


def test_stop_wait_of_a_removed_node_waits_until_it_is_gone(supd):
    """A node a reload removed goes on stopping (its shutdown); `stop
    --wait` of it waits for that to end, as of a node stopping in the tree,
    instead of being refused at once as if it were gone."""
    d, pid = deaf_started(supd)
    supd.write(KEEP_ONLY)
    d.ctl("reload", check=0)
    r = d.ctl("stop", "deaf", "--wait", "--timeout", "3s")
    assert r.returncode == 124, (r.returncode, r.stderr)
    assert "stopping, removed by a reload" in r.stderr, r.stderr
    assert alive(pid)
    w = ctl_bg(d, "stop", "deaf", "--wait")
    wait_until(lambda: between_looks(w) or w.poll() is not None,
               what="agentsupctl to look at deaf")
    assert w.poll() is None, w.communicate()
    d.ctl("signal", "root/deaf", "KILL", check=0)  # hurry its shutdown
    out, err = w.communicate(timeout=TIMEOUT)
    assert w.returncode == 0, (w.returncode, err)
    assert not alive(pid)


def test_a_cut_look_at_a_removed_node_says_it_is_stopping(supd):
    """The wait's end cutting short a look at a node a reload removed
    (agentsupd held stopped here, a loaded host in CI) said no look had
    been answered: the looks before were, refused as removed and still
    stopping, and that is what it is."""
    d, pid = deaf_started(supd)
    supd.write(KEEP_ONLY)
    d.ctl("reload", check=0)
    w = ctl_bg(d, "stop", "deaf", "--wait", "--timeout", "3s")
    wait_until(lambda: between_looks(w), what="agentsupctl to look at deaf")
    d.signal(signal.SIGSTOP)
    try:
        out, err = w.communicate(timeout=TIMEOUT)
    finally:
        d.signal(signal.SIGCONT)
    assert w.returncode == 124, (w.returncode, err)
    assert "(it is stopping, removed by a reload)" in err, err
    d.ctl("signal", "root/deaf", "KILL", check=0)


def test_stop_wait_of_a_node_a_reload_removes_meanwhile(supd):
    """A reload that removes NAME while `stop NAME --wait` follows it does
    not end the wait while its process still runs (it is down once gone)."""
    d, pid = deaf_started(supd)
    w = ctl_bg(d, "stop", "deaf", "--wait", "--timeout", "3s")
    wait_until(lambda: between_looks(w), what="agentsupctl to look at deaf")
    supd.write(KEEP_ONLY)
    d.ctl("reload", check=0)
    out, err = w.communicate(timeout=TIMEOUT)
    assert w.returncode == 124, (w.returncode, err)
    assert alive(pid)
    d.ctl("signal", "root/deaf", "KILL", check=0)
