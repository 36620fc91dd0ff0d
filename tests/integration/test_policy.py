"""The restart policy of DESIGN §9 with real processes (issue 11): backoff
with growing delays that replay under --seed, a circuit that quarantines,
probes and closes while siblings run on, `agentsupctl reset NAME`, and the
reasons a worker declares with exit_reason()."""
import json
import time
import os
import re
import signal
import subprocess
import textwrap
from datetime import datetime

from conftest import AGENTSUPD, SRC, TIMEOUT, Daemon, sh, wait_until

PY = "/usr/bin/python3"
CLIENT = os.path.join(SRC, "tools", "python")
SLEEP = sh("exec sleep 1000")
CRASH = sh("exit 1")


def tree(child, intensity=100):
    return {"a.yaml": f"""
        supervisor: root
        intensity: {intensity}
        period: 10s
        children:
          - {{worker: sibling, command: {SLEEP}}}
          - {child}
        """}


def node(d, name):
    """Its status map (status may exit 3: a node is unhealthy)."""
    r = d.ctl("--json", "status")
    assert r.returncode in (0, 3), r
    return [n for n in json.loads(r.stdout) if n["name"] == name][0]


def delay_ms(ev):
    m = re.match(r"restart in ([0-9.]+)(ms|s)", ev.detail)
    assert m, ev.detail
    return float(m.group(1)) * (1 if m.group(2) == "ms" else 1000)


def ms(ev):
    return datetime.fromisoformat(ev.time.replace("Z", "+00:00")).timestamp() \
        * 1000


def test_crash_loop_backs_off_with_growing_delays(supd):
    d = supd.start(tree(f"""worker: flaky
            command: {CRASH}
            backoff: {{initial: 300ms, max: 1200ms, multiplier: 2, jitter: none}}"""))
    sib = d.wait("started", "root/sibling").pid
    # failure 1 is restarted at once; then 300ms, 600ms, 1.2s, 1.2s
    delays = [delay_ms(d.wait("backoff", "root/flaky")) for _ in range(3)]
    assert delays == [300, 600, 1200], delays
    wait_until(lambda: node(d, "flaky")["state"] == "backoff",
               what="state backoff")
    st = node(d, "flaky")
    # a wall time within the longest delay from now (>= 0 held of anything)
    now_ms = time.time() * 1000
    assert st["backoff_until_ms"] is not None and \
        now_ms - 2000 <= st["backoff_until_ms"] <= now_ms + 1200 + 2000, st
    out = d.ctl("status").stdout
    line = [x for x in out.splitlines() if "flaky" in x][0]
    assert "backoff" in line and "retry in" in line, out
    assert node(d, "sibling")["pid"] == sib  # untouched throughout


def seeded_delays(tmp_path, tag, seed, n=5):
    confdir = tmp_path / f"d-{tag}"
    confdir.mkdir()
    events = tmp_path / f"events-{tag}.jsonl"
    (confdir / "00-settings.yaml").write_text(
        f"agentsupd:\n  events_file: {events}\n")
    (confdir / "a.yaml").write_text(textwrap.dedent(f"""
        supervisor: root
        intensity: 100
        period: 10s
        children:
          - worker: flaky
            command: {CRASH}
            backoff: {{initial: 50ms, max: 400ms, multiplier: 2, jitter: full}}
        """))
    d = Daemon(confdir, events, socket_path=str(tmp_path / f"{tag}.sock"),
               argv_prefix=("/bin/sh", "-c",
                            f'exec "$0" --seed {seed} "$@"'))
    try:
        return [d.wait("backoff", "root/flaky").detail for _ in range(n)]
    finally:
        d.signal(signal.SIGTERM)
        d.exit_code()


def test_seed_replays_the_jittered_delays(tmp_path):
    first = seeded_delays(tmp_path, "a", 1234)
    again = seeded_delays(tmp_path, "b", 1234)
    other = seeded_delays(tmp_path, "c", 99)
    assert first == again, (first, again)
    assert first != other  # 5 draws: the same by chance ~never


def test_circuit_quarantines_probes_and_closes(supd, tmp_path):
    healthy = tmp_path / "healthy"
    flaky = sh(f"[ -e {healthy} ] && exec sleep 1000; exit 1")
    d = supd.start(tree(f"""worker: flaky
            command: {flaky}
            backoff: none
            circuit: {{failures: 3, window: 10s, open: 500ms, open_max: 2s, probe_stable: 300ms}}"""))
    sib = d.wait("started", "root/sibling").pid
    q = d.wait("quarantined", "root/flaky")
    assert d.count("exited", "root/flaky") == 3
    st = node(d, "flaky")
    assert st["state"] == "quarantined" and st["circuit"] == "open", st
    assert st["probe_at_ms"] is not None
    r = d.ctl("status")
    assert r.returncode == 3  # a health check says so
    line = [x for x in r.stdout.splitlines() if "flaky" in x][0]
    assert "circuit open, probe in" in line, r.stdout
    # the probe fails: open again, for twice as long
    d.wait("probing", "root/flaky")
    q2 = d.wait("quarantined", "root/flaky")
    assert "1.0s" in q2.detail or "1s" in q2.detail, (q.detail, q2.detail)
    healthy.touch()
    d.wait("probing", "root/flaky")
    d.wait("circuit_closed", "root/flaky")
    st = node(d, "flaky")
    assert st["state"] == "running" and st["circuit"] == "closed", st
    assert d.ctl("status").returncode == 0
    assert node(d, "sibling")["pid"] == sib
    assert d.count("gave_up") == 0


def test_reset_closes_the_circuit_and_starts_it(supd, tmp_path):
    healthy = tmp_path / "healthy"
    flaky = sh(f"[ -e {healthy} ] && exec sleep 1000; exit 1")
    d = supd.start(tree(f"""worker: flaky
            command: {flaky}
            backoff: none
            circuit: {{failures: 2, window: 10s, open: 10m, probe_stable: 1s}}"""))
    d.wait("quarantined", "root/flaky")
    healthy.touch()
    r = d.ctl("reset", "root/flaky", check=0)
    assert "root/flaky" in r.stdout
    cmd = d.wait("command", "root/flaky")
    assert "reset" in cmd.detail
    d.wait("started", "root/flaky")
    st = node(d, "flaky")
    assert st["state"] == "running" and st["circuit"] == "closed", st
    assert d.ctl("status").returncode == 0
    # reset of a name that does not exist, and usage
    r = d.ctl("reset", "root/nobody")
    assert r.returncode != 0 and "no such" in r.stderr
    assert d.ctl("reset").returncode == 64


def test_a_stopped_quarantined_worker_shows_no_probe(supd, tmp_path):
    """A stop calls the probe off: status still said "probe in 9m45s",
    then "probe in 0.0s" for ever. And a command refused is said to be
    refused in its `command` event (an audit trail showed it as done)."""
    d = supd.start(tree(f"""worker: flaky
            command: {sh("exit 1")}
            backoff: none
            circuit: {{failures: 2, window: 10s, open: 10m}}"""))
    d.wait("quarantined", "root/flaky")
    assert node(d, "flaky")["probe_at_ms"] is not None
    d.ctl("stop", "root/flaky")
    d.wait("command", "root/flaky")
    st = node(d, "flaky")
    assert st["state"] == "quarantined" and st["probe_at_ms"] is None, st
    line = [x for x in d.ctl("status").stdout.splitlines() if "flaky" in x][0]
    assert "probe in" not in line, line
    d.ctl("stop", "root")
    d.wait("stopped", "root")
    d.ctl("restart", "root/flaky", check=1)
    d.wait_detail("command", "refused: its supervisor root is stopped")
    assert all("refused" not in (e.detail or "") for e in d.seen
               if e.kind == "command" and "stop by" in e.detail)


def declarer(tmp_path, name, call, code):
    p = tmp_path / f"{name}.py"
    p.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {CLIENT!r})
        import agentsup
        a = agentsup.Agent()
        if a.incarnation == 0:
            a.{call}
            sys.exit({code})
        a.wait(1000)  # until told to drain: the test's end is quick
    """))
    return json.dumps([PY, str(p)])


def test_declared_done_is_a_normal_exit(supd, tmp_path):
    cmd = declarer(tmp_path, "d", 'exit_reason("done")', 1)
    d = supd.start(tree(f"""worker: finisher
            command: {cmd}
            restart: transient"""))
    ex = d.wait("exited", "root/finisher")
    assert "declared done" in (ex.detail or ""), ex
    st = node(d, "finisher")
    assert st["state"] == "stopped" and st["restarts"] == 0, st
    assert st["declared"].startswith("done"), st
    assert d.count("restarting", "root/finisher") == 0


def test_declared_rate_limited_waits_retry_after(supd, tmp_path):
    cmd = declarer(tmp_path, "r", 'exit_reason("rate_limited", retry_after=1.5)', 1)
    d = supd.start(tree(f"""worker: caller
            command: {cmd}
            backoff: none"""))
    ex = d.wait("exited", "root/caller")
    again = d.wait("started", "root/caller")
    assert ms(again) - ms(ex) >= 1500 - 5, (ex.time, again.time)
    assert d.count("quarantined") == 0 and d.count("gave_up") == 0
    assert node(d, "root")["window_restarts"] == 0  # no intensity stamp


def test_welcome_says_a_declared_failure_with_status_0(supd, tmp_path):
    """A worker that declared rate_limited and exited 0 was restarted with
    restarts=1 but last_reason "": it could not tell it had been limited."""
    said = tmp_path / "said"
    p = tmp_path / "limited.py"
    p.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {CLIENT!r})
        import agentsup
        a = agentsup.Agent()
        if a.incarnation == 0:
            a.exit_reason("rate_limited", retry_after=0.1)
            sys.exit(0)
        r = a.restored
        open({str(said)!r}, "w").write("%d %s" % (r.restarts, r.last_reason))
        a.wait(1000)
    """))
    d = supd.start(tree(f"""worker: caller
            command: {json.dumps([PY, str(p)])}
            backoff: none"""))
    d.wait("started", "root/caller")
    d.wait("started", "root/caller")
    wait_until(lambda: said.exists() and said.read_text(), what="welcome")
    assert said.read_text() == "1 exit:0 (declared rate_limited)"


def test_declared_permanent_fails_the_child(supd, tmp_path):
    cmd = declarer(tmp_path, "p", 'exit_reason("permanent", detail="bad API key")', 2)
    d = supd.start(tree(f"""worker: keyed
            command: {cmd}"""))
    d.wait("failed", "root/keyed")
    st = node(d, "keyed")
    assert st["state"] == "failed", st
    assert "permanent" in st["declared"], st
    r = d.ctl("status")
    assert r.returncode == 3, r
    assert d.count("restarting", "root/keyed") == 0
    assert node(d, "sibling")["state"] == "running"


def test_ready_after_holds_the_later_siblings_until_it_ran(supd):
    """ready_after (supervisord's startsecs): a worker that never says
    ready is starting until it has run that long; under rest_for_one its
    later sibling starts only then."""
    d = supd.start({"a.yaml": f"""
        supervisor: root
        strategy: rest_for_one
        children:
          - {{worker: a, command: {SLEEP}, ready_after: 300ms}}
          - {{worker: b, command: {SLEEP}}}
        """})
    ready = d.wait("ready", "root/a")
    assert re.match(r"after \d+ms", ready.detail), ready.detail
    assert int(re.match(r"after (\d+)ms", ready.detail).group(1)) >= 300
    started = d.wait("started", "root/b")
    assert started.seq > ready.seq
    assert d.count("started", "root/b") == 1
    assert node(d, "a")["state"] == "running"


def test_clean_exits_before_ready_after_back_off(supd):
    """A permanent worker that exits 0 before ready_after never came up:
    its restarts back off as a failed start's (they looped at once), and
    its later sibling is never started meanwhile."""
    d = supd.start({"a.yaml": f"""
        supervisor: root
        strategy: rest_for_one
        intensity: 100
        period: 10s
        children:
          - worker: a
            command: {sh("exit 0")}
            ready_after: 5s
            backoff: {{initial: 300ms, max: 1200ms, jitter: none}}
          - {{worker: b, command: {SLEEP}}}
        """})
    delays = [delay_ms(d.wait("backoff", "root/a")) for _ in range(3)]
    assert delays == [300, 600, 1200], delays
    assert d.count("ready", "root/a") == 0
    assert d.count("started", "root/b") == 0


def test_ready_after_with_start_timeout_is_refused(supd):
    supd.write({"a.yaml": f"""
        worker: w
        command: {SLEEP}
        ready_after: 1s
        start_timeout: 5s
        """})
    r = subprocess.run([AGENTSUPD, "--check", "-c", str(supd.dir)],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 78, r
    assert "ready_after and start_timeout" in r.stderr, r.stderr
