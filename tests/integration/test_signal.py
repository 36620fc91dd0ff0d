"""`agentsupctl signal NAME SIG`: a signal to a worker's process, or to
every running worker below a supervisor (an agent told to reload its
prompts with SIGHUP), as supervisorctl's `signal` and `systemctl kill`."""
import json

from conftest import sh, wait_until
from test_python_control import Control, ControlError


def trapper(name):
    return sh(f'''
    trap 'echo "{name} hup"' HUP
    trap 'echo "{name} usr1"' USR1
    echo "{name} up"
    while :; do sleep 0.05; done
''')


def start(supd):
    d = supd.start({"w.yaml": f"""
        supervisor: root
        children:
          - supervisor: team
            children:
              - {{worker: a, command: {trapper('a')}}}
              - {{worker: b, command: {trapper('b')}}}
          - {{worker: solo, command: {trapper('solo')}}}
        """})
    d.wait("started", "root/solo")
    wait_until(lambda: all(any(l.endswith(f"{n} up") for l in d.lines)
                           for n in ("a", "b", "solo")), what="traps set")
    return d


def said(d, text):
    return any(l.endswith(text) for l in d.lines)


def test_a_worker_and_a_subtree(supd):
    d = start(supd)
    pid = d.ctl_json("status", "a")[0]["pid"]
    r = d.ctl("signal", "a", "HUP", check=0)
    assert r.stdout.strip() == f"root/team/a: SIGHUP sent (pid {pid})"
    wait_until(lambda: said(d, "a hup"), what="a's trap")
    r = d.ctl("signal", "team", "sigusr1", check=0)
    assert r.stdout.strip() == "root/team: SIGUSR1 sent to 2 workers"
    wait_until(lambda: said(d, "a usr1") and said(d, "b usr1"),
               what="the team's traps")
    assert d.ctl("signal", "root", "1", check=0).stdout.strip() == \
        "root: SIGHUP sent to 3 workers"
    wait_until(lambda: said(d, "solo hup"), what="solo's trap")
    assert not said(d, "solo usr1")
    d.wait_detail("command", "signal SIGUSR1 by agentsupctl (uid")
    # the workers go on: a signal they handle is no failure
    assert d.count("exited") == 0
    # from Python too
    with Control(d.socket) as ctl:
        assert ctl.signal("b", "USR1").startswith("root/team/b: SIGUSR1 sent")


def test_refusals(supd):
    d = start(supd)
    r = d.ctl("signal", "nobody", "HUP")
    assert r.returncode == 1 and "no such worker or supervisor" in r.stderr
    # 32 and 33: glibc's own, no name (they were sent as "SIG(null)")
    for bad in ("BOGUS", "SIGNOPE", "0", "99999", "", "32", "33"):
        r = d.ctl("signal", "a", bad)
        assert r.returncode == 1 and "must be a signal's name" in r.stderr, (bad, r.stderr)
    assert d.ctl("signal", "a").returncode == 64  # missing SIG
    d.ctl("stop", "b", check=0)
    d.wait("exited", "root/team/b")
    r = d.ctl("signal", "b", "HUP")
    assert r.returncode == 1 and "no worker of it is running" in r.stderr
    r = d.ctl("--json", "signal", "b", "HUP")
    assert json.loads(r.stdout)["ok"] is False
    with Control(d.socket) as ctl:
        for bad in (32, 33, 64):
            try:
                ctl.signal("a", bad)
                raise AssertionError(f"sent signal {bad}")
            except ControlError as e:
                assert "must be a signal's name" in str(e)
        try:
            ctl.signal("b", "HUP")
            raise AssertionError("signalled a stopped worker")
        except ControlError as e:
            assert "no worker of it is running" in str(e)


def test_a_signal_that_ends_the_worker_is_a_failure(supd):
    d = start(supd)
    d.ctl("signal", "solo", "KILL", check=0)
    e = d.wait("exited", "root/solo")
    assert e.get("reason") == "signal:SIGKILL", e.get("reason")
    d.wait("started", "root/solo")  # restarted, as any failure
