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
