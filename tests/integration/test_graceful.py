"""Graceful by default (DESIGN §9, issue 11): an operator's stop or restart,
and a reload that changes a worker's command, send a protocol worker
`drain` (with its drain_timeout) before any signal, and it can finish
cleanly; SIGTERM to agentsupd sends protocol workers `drain` with their
`shutdown` as the deadline, and non-protocol workers SIGTERM."""
import json
import os
import signal
import textwrap

from conftest import SRC, sh, wait_until

PY = "/usr/bin/python3"
CLIENT = os.path.join(SRC, "tools", "python")


def drainer(tmp_path, name, log):
    """A protocol worker that says ready, waits to be told to drain, writes
    what it was told (its incarnation and the deadline) and exits 0."""
    p = tmp_path / f"{name}.py"
    p.write_text(textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {CLIENT!r})
        import agentsup
        a = agentsup.Agent()
        a.ready()
        while not a.draining:
            a.wait(1.0)
        with open({str(log)!r}, "a") as f:
            f.write(json.dumps({{"inc": a.incarnation,
                                "deadline": a.drain_deadline_ms,
                                "args": sys.argv[1:]}}) + "\\n")
        sys.exit(0)
    """))
    return [PY, str(p)]


def told(log):
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_operator_stop_and_restart_drain_first(supd, tmp_path):
    log = tmp_path / "drained.jsonl"
    cmd = json.dumps(drainer(tmp_path, "w", log))
    d = supd.start({"a.yaml": f"""
        worker: agent
        command: {cmd}
        start_timeout: 10s
        drain_timeout: 3s
        shutdown: 7s
        """})
    d.wait("ready", "root/agent")
    d.ctl("restart", "root/agent", check=0)
    wait_until(lambda: len(told(log)) == 1, what="the drain of restart")
    assert told(log)[0] == {"inc": 0, "deadline": 3000, "args": []}
    ex = d.wait("exited", "root/agent")
    assert ex.reason == "exit:0", ex  # finished cleanly, never signalled
    d.wait("ready", "root/agent")
    d.ctl("stop", "root/agent", check=0)
    wait_until(lambda: len(told(log)) == 2, what="the drain of stop")
    assert told(log)[1] == {"inc": 1, "deadline": 3000, "args": []}
    ex = d.wait("exited", "root/agent")
    assert ex.reason == "exit:0", ex
    st = [n for n in d.ctl_json("status") if n["name"] == "agent"][0]
    assert st["state"] == "stopped"


def test_sigterm_drains_protocol_workers_with_shutdown_as_deadline(supd,
                                                                   tmp_path):
    log = tmp_path / "drained.jsonl"
    termed, up = tmp_path / "termed", tmp_path / "up"
    cmd = json.dumps(drainer(tmp_path, "w", log))
    plain = sh(f"""
        trap 'echo TERM > {termed}; exit 0' TERM
        : > {up}
        while :; do sleep 0.05; done
    """)
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - worker: agent
            command: {cmd}
            start_timeout: 10s
            drain_timeout: 3s
            shutdown: 4s
          - worker: plain
            command: {plain}
        """})
    d.wait("ready", "root/agent")
    wait_until(up.exists, what="the plain worker's trap")
    d.signal(signal.SIGTERM)
    assert d.wait("exited", "root/agent").reason == "exit:0"
    assert d.exit_code() == 0
    assert told(log) == [{"inc": 0, "deadline": 4000, "args": []}]
    assert termed.read_text().strip() == "TERM"


def test_reload_changing_the_command_drains_first(supd, tmp_path):
    log = tmp_path / "drained.jsonl"
    argv = drainer(tmp_path, "w", log)
    conf = """
        worker: agent
        command: {cmd}
        start_timeout: 10s
        drain_timeout: 2s
        """
    d = supd.start({"a.yaml": conf.format(cmd=json.dumps(argv))})
    d.wait("ready", "root/agent")
    supd.write({"a.yaml": conf.format(cmd=json.dumps(argv + ["v2"]))})
    d.ctl("reload", check=0)
    wait_until(lambda: len(told(log)) == 1, what="the drain of the reload")
    assert told(log)[0] == {"inc": 0, "deadline": 2000, "args": []}
    ex = d.wait("exited", "root/agent")
    assert ex.reason == "exit:0", ex
    d.wait("ready", "root/agent")
    d.ctl("stop", "root/agent", check=0)
    wait_until(lambda: len(told(log)) == 2, what="the new command's drain")
    assert told(log)[1]["args"] == ["v2"]


def deaf(tmp_path, on_term="lambda *_: sys.exit(143)"):
    """A protocol worker that never finishes a drain: only a signal ends
    it (exit 143 on SIGTERM; or, with on_term signal.SIG_IGN, SIGKILL)."""
    p = tmp_path / "deaf.py"
    p.write_text(textwrap.dedent(f"""
        import signal, sys, time
        sys.path.insert(0, {CLIENT!r})
        import agentsup
        signal.signal(signal.SIGTERM, {on_term})
        a = agentsup.Agent()
        a.ready()
        while True:
            a.wait(1.0)
    """))
    return json.dumps([PY, str(p)])


DEAF = """\
    supervisor: root
    children:
      - worker: deaf
        command: {cmd}
        start_timeout: 10s
        drain_timeout: 1h
        shutdown: 3s
      - worker: other
        command: {sleep}
"""


def test_sigterm_cuts_an_operators_stop_short(supd, tmp_path):
    """SIGTERM stops a worker an operator's stop left draining by its stop
    sequence, within its `shutdown`, not its 1 h drain_timeout."""
    d = supd.start({"a.yaml": DEAF.format(cmd=deaf(tmp_path),
                                          sleep=sh("exec sleep 1000"))})
    d.wait("ready", "root/deaf")
    d.ctl("stop", "deaf", check=0)
    d.signal(signal.SIGTERM)
    ex = d.wait("exited", "root/deaf")
    assert ex.reason == "exit:143", ex
    assert d.exit_code() == 0


def test_sigterm_stops_a_removed_worker_by_its_sequence(supd, tmp_path):
    """A worker a reload removed, still draining, gets its stop sequence and
    its event at SIGTERM, and agentsupd exits only once it is gone (it was
    SIGKILLed at exit, with no event)."""
    conf = DEAF.format(cmd=deaf(tmp_path), sleep=sh("exec sleep 1000"))
    d = supd.start({"a.yaml": conf})
    d.wait("ready", "root/deaf")
    supd.write({"a.yaml": "supervisor: root\nchildren:\n"
                "  - {worker: other, command: " + sh("exec sleep 1000") +
                "}\n"})
    d.ctl("reload", check=0)
    d.signal(signal.SIGTERM)
    ex = d.wait("exited", "root/deaf")
    assert ex.reason == "exit:143", ex
    assert d.exit_code() == 0


def test_a_hang_keeps_its_grace_through_a_drain(supd, tmp_path):
    """A hung worker in its 1 s grace is not given a drain's drain_timeout
    by SIGUSR1: it is stopped as hung."""
    p = tmp_path / "hung.py"
    p.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {CLIENT!r})
        import agentsup
        a = agentsup.Agent()
        a.ready()
        time.sleep(1000)
    """))
    d = supd.start({"a.yaml": f"""
        worker: h
        command: {json.dumps([PY, str(p)])}
        start_timeout: 10s
        heartbeat: 300ms
        heartbeat_timeout: 1s
        drain_timeout: 1h
        shutdown: 1s
        """})
    d.wait("hang", "root/h")
    d.signal(signal.SIGUSR1)
    assert d.exit_code() == 0
    assert d.count("drained", "root/h") == 0


def test_drain_refused_during_a_shutdown_and_not_done_when_cut(supd,
                                                               tmp_path):
    """`agentsupctl drain` during a shutdown is refused (it answered
    "draining the whole tree"); a drain that SIGTERM cut short ends as a
    shutdown, not as drain_done, in the events and the termination
    record."""
    record = tmp_path / "term.json"
    supd.write({"00-settings.yaml": f"""
        agentsupd:
          events_file: {supd.events}
          termination_log: {record}
        """,
        "a.yaml": DEAF.format(cmd=deaf(tmp_path, "signal.SIG_IGN"),
                              sleep=sh("exec sleep 1000")).replace(
                                  "shutdown: 3s", "shutdown: 1h")},
               settings=False)
    d = supd.start()
    pid = d.wait("started", "root/deaf").pid
    d.wait("ready", "root/deaf")
    d.signal(signal.SIGUSR1)
    d.wait("drain_started")
    d.signal(signal.SIGTERM)
    d.wait("shutdown")  # deaf ignores it: agentsupd waits, for an hour
    r = d.ctl("drain")
    assert r.returncode != 0 and "shutting down" in r.stderr, r
    os.kill(pid, signal.SIGKILL)
    assert d.exit_code() == 0
    assert d.count("drain_done") == 0
    assert json.loads(record.read_text())["reason"] == "shutdown"


def test_sigterm_cuts_short_a_sequential_stop_not_yet_reached(supd,
                                                              tmp_path):
    """An operator's stop of a one_for_all supervisor goes child by child,
    each drained first; SIGTERM makes the children it has not reached yet
    stop by their stop sequence too, not after a 1 h drain_timeout."""
    cmd = deaf(tmp_path)
    kids = "".join(f"      - {{worker: {n}, command: {cmd}, start_timeout: 10s,"
                   " drain_timeout: 1h, shutdown: 3s}\n" for n in ("a", "b"))
    d = supd.start({"a.yaml": "supervisor: root\nchildren:\n"
                    "  - supervisor: s\n    strategy: one_for_all\n"
                    "    children:\n" + kids})
    d.wait("ready", "root/s/a")
    d.wait("ready", "root/s/b")
    d.ctl("stop", "s", check=0)
    d.signal(signal.SIGTERM)
    # b, draining for the operator: SIGTERM at once; a, not reached yet:
    # as at any shutdown, drain with `shutdown` as the deadline, then
    # SIGKILL (it is deaf), 3 s later, not an hour
    assert d.wait("exited", "root/s/b").reason == "exit:143"
    assert d.wait("exited", "root/s/a").reason == "signal:SIGKILL"
    assert d.exit_code() == 0


def test_stop_signal_begins_the_stop_sequence(supd, tmp_path):
    """A program that stops cleanly only on QUIT (nginx) or INT (many
    Node.js apps) could not be supervised as it is: the stop sequence
    always began with SIGTERM (found by an SRE's trial coming from
    supervisord's `stopsignal`). `stop_signal` names it, for a stop, a
    drain of a worker that does not speak the protocol, and agentsupd's
    own shutdown."""
    got = tmp_path / "got"
    body = (f"trap 'echo INT >> {got}; exit 0' INT; trap '' TERM; "
            f"echo up >> {got}; while :; do sleep 0.05; done")
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - worker: web
            stop_signal: SIGINT
            shutdown: 60s
            command: {sh(body)}
          - {{worker: idle, command: [sleep, '300']}}
        """})
    d.wait("started", "root/idle")
    wait_until(lambda: got.exists() and "up" in got.read_text(),
               what="the trap set")
    d.ctl("stop", "web", check=0)
    ev = d.wait("exited", "root/web")
    assert ev.detail == "stopped" and ev.reason == "exit:0", ev
    assert got.read_text().split() == ["up", "INT"]
    d.ctl("start", "web", check=0)
    wait_until(lambda: got.read_text().split().count("up") == 2,
               what="started again")
    d.ctl("drain", "web", check=0)
    d.wait("drained", "root/web")
    assert got.read_text().split() == ["up", "INT", "up", "INT"]
    d.ctl("start", "web", check=0)
    wait_until(lambda: got.read_text().split().count("up") == 3,
               what="started again")
    d.signal(signal.SIGTERM)  # within 60 s: by its INT, not a SIGKILL
    assert d.exit_code() == 0
    assert got.read_text().split() == ["up", "INT"] * 3


def test_a_stop_signal_that_is_none_is_a_config_error(supd):
    import subprocess
    from conftest import AGENTSUPD
    for bad in ("STOP", "CONT", "SIGBOGUS", "2", "99"):
        supd.write({"a.yaml": f"""
            worker: w
            stop_signal: {bad}
            command: [sleep, '1']
            """})
        r = subprocess.run([AGENTSUPD, "-c", str(supd.dir), "--check"],
                           capture_output=True, text=True)
        assert r.returncode == 78, (bad, r.stderr)
        assert 'stop_signal: want TERM, INT, QUIT, HUP, USR1, USR2, WINCH, ' \
            f'PWR or KILL, not "{bad}"' in r.stderr, r.stderr


def test_a_removed_worker_still_stopping_is_in_status(supd, tmp_path):
    """A worker a reload removed runs on while it drains (up to its
    drain_timeout, then its shutdown): it was gone from status meanwhile,
    its process alive and nowhere said. The whole tree's status lists it,
    removed: true, until it has stopped; `signal PATH` reaches it."""
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: keep, command: {sh("exec sleep 300")}}}
          - {{worker: deaf, command: {deaf(tmp_path)}, start_timeout: 10s,
              drain_timeout: 60s}}
        """})
    pid = d.wait("ready", "root/deaf").pid
    supd.write({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: keep, command: {sh("exec sleep 300")}}}
        """})
    d.ctl("reload", check=0)
    st = {n["path"]: n for n in d.ctl_json("status")}
    assert st["root/deaf"]["removed"] is True, st
    assert st["root/deaf"]["state"] == "stopping" and st["root/deaf"]["pid"] == pid
    assert st["root/keep"]["removed"] is False
    r = d.ctl("status", check=0)  # stopping is no harm: exit 0
    assert "(removed by a reload)" in r.stdout, r.stdout
    # and reached by its path, to hurry it (its name may be a new node's)
    r = d.ctl("signal", "deaf", "TERM", check=1)
    # said as it is, not "no such worker" (which reads as a typo)
    assert "root/deaf was removed by a reload and is still stopping" \
        in r.stderr, r.stderr
    for cmd in ("stop", "restart", "logs"):
        r = d.ctl(cmd, "deaf", check=1)
        assert "root/deaf was removed by a reload" in r.stderr, (cmd, r.stderr)
    d.ctl("signal", "root/deaf", "TERM", check=0)  # its handler ends it
    d.wait("exited", "root/deaf")
    wait_until(lambda: "root/deaf" not in
               {n["path"] for n in d.ctl_json("status")}, what="it gone")
