"""The wire protocol end to end: the Python client against the real daemon,
hang and start_timeout detection, hostile workers, and drain."""
import json
import os
import re
import signal
import subprocess
import textwrap
import time

import pytest

from conftest import BUILD, SRC, alive, sh, wait_until

PY = "/usr/bin/python3"
CLIENT = os.path.join(SRC, "tools", "python")
SLEEP = sh("exec sleep 1000")


def script(tmp_path, name, body):
    """A Python worker using the agentsup module; returns its command."""
    p = tmp_path / f"{name}.py"
    p.write_text(
        f"import sys, os, time, json, socket, struct\n"
        f"sys.path.insert(0, {CLIENT!r})\n"
        f"import agentsup\n" + textwrap.dedent(body)
    )
    return json.dumps([PY, str(p)])


def test_hello_welcome_ready_and_beats(supd, tmp_path):
    out = tmp_path / "welcome.json"
    cmd = script(tmp_path, "w", f"""
        a = agentsup.Agent()
        a.ready()
        deadline = time.monotonic() + 10
        while not a.welcomed and time.monotonic() < deadline:
            a.wait(0.05)
        open({str(out)!r}, "w").write(json.dumps(dict(
            name=a.name, path=a.path, inc=a.incarnation,
            hb=a.heartbeat_ms, timeout=a.timeout_ms, sup=a.supervised,
            ckmax=a.checkpoint_max)))
        for i in range(3):
            a.beat(steps=i, tokens=10 * i, cost=0.5, state="thinking", status="ok")
        a.wait(1000)
    """)
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - worker: talker
            command: {cmd}
            heartbeat: 2s
            start_timeout: 10s
          - {{worker: after, command: {SLEEP}}}
        """})
    ready = d.wait("ready", "root/talker")
    started_after = d.wait("started", "root/after")
    # start order waits for readiness: "after" starts only once talker is ready
    assert started_after.seq > ready.seq
    wait_until(lambda: out.exists() and out.read_text().endswith("}"),
               what="welcome")
    w = json.loads(out.read_text())
    assert w == dict(name="talker", path="root/talker", inc=0, hb=2000,
                     timeout=6000, sup=True, ckmax=256 * 1024)
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0


def test_hang_detected_sigusr1_stacks_then_restart(supd, tmp_path):
    err = tmp_path / "hang.err"
    # ready once Agent() has set its SIGUSR1 stack dump: its heartbeat
    # deadline runs from then (a slow start of python under load was
    # declared hung before it, and died of the SIGUSR1 without a stack)
    cmd = script(tmp_path, "hang", """
        a = agentsup.Agent()
        a.ready()
        if a.incarnation == 0:
            for i in range(3):
                a.beat(steps=i)
                time.sleep(0.1)
            def stuck_in_model_call():
                time.sleep(1000)
            stuck_in_model_call()
        a.wait(1000)
    """)
    d = supd.start({"a.yaml": f"""
        worker: hanger
        command: {cmd}
        start_timeout: 60s
        heartbeat: 200ms
        heartbeat_timeout: 600ms
        stderr: {err}
        """})
    started = d.wait("started", "root/hanger")
    hang = d.wait("hang", "root/hanger")
    assert hang.reason == "hang"
    exited = d.wait("exited", "root/hanger")
    assert exited.reason == "hang"
    assert d.wait("restarting", "root/hanger").reason == "hang"
    d.wait("started", "root/hanger")
    # faulthandler, on SIGUSR1: the Python stack of the stuck call
    text = err.read_text()
    assert "stuck_in_model_call" in text, text
    assert started.pid != d.seen[-1].pid
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0


def test_silent_monitored_worker_is_hung(supd):
    d = supd.start({"a.yaml": f"""
        worker: mute
        command: {SLEEP}
        heartbeat: 100ms
        heartbeat_timeout: 300ms
        restart: temporary
        """})
    hang = d.wait("hang", "root/mute")
    assert d.wait("exited", "root/mute").reason == "hang"
    # declared for its silence past heartbeat_timeout, not before it
    said = re.fullmatch(r"no heartbeat for (\d+)ms", hang.detail or "")
    assert said and int(said[1]) >= 300, hang.detail
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0


def test_start_timeout(supd, tmp_path):
    cmd = script(tmp_path, "slow", """
        a = agentsup.Agent()
        a.wait(1000)   # never says ready
    """)
    d = supd.start({"a.yaml": f"""
        supervisor: root
        intensity: 0
        children:
          - worker: slow
            command: {cmd}
            start_timeout: 300ms
        """})
    d.wait("start_timeout", "root/slow")
    assert d.wait("exited", "root/slow").reason == "start_timeout"
    assert d.exit_code() == 75


def test_a_ready_already_sent_beats_the_start_deadline(supd, tmp_path):
    """A ready waiting on the socket when the start deadline's timer fires
    (a busy daemon: here one stopped with SIGSTOP past the deadline) is
    read first: it was not, and libev ran the timer before the socket's
    read, so a worker that had said ready failed start_timeout."""
    go, sent = tmp_path / "go", tmp_path / "sent"
    cmd = script(tmp_path, "prompt", f"""
        a = agentsup.Agent()
        while not os.path.exists({str(go)!r}):
            time.sleep(0.02)
        a.ready()
        open({str(sent)!r}, "w").close()
        a.wait(1000)
    """)
    d = supd.start({"a.yaml": f"""
        supervisor: root
        intensity: 0
        children:
          - worker: prompt
            command: {cmd}
            start_timeout: 2s
        """})
    started = d.wait("started", "root/prompt")
    os.kill(d.proc.pid, signal.SIGSTOP)
    try:
        go.touch()
        wait_until(sent.exists, what="the ready sent")
        # past the deadline, counted from the start event's own time
        deadline = started.time_ms / 1000 + 2.5
        wait_until(lambda: time.time() > deadline, timeout=60,
                   what="the start deadline passed")
    finally:
        os.kill(d.proc.pid, signal.SIGCONT)
    d.wait("ready", "root/prompt")
    assert d.count("start_timeout", "root/prompt") == 0
    d.ctl("status", check=0)  # still up: events up to now are read
    assert d.count("start_timeout", "root/prompt") == 0
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0


HOSTILE = {
    "too_long": "s.sendall(struct.pack('>I', 10_000_000) + b'x' * 100)",
    "not_a_map": "s.sendall(struct.pack('>I', 2) + b'\\x91\\x01')",
    "claim_bomb": "s.sendall(b'\\x00\\x00\\x00\\x05\\xdf\\xff\\xff\\xff\\xff')",
    "before_hello": "s.sendall(frame({'t': 'hb', 'seq': 1}))",
    "bad_field": "s.sendall(frame({'t': 'hello', 'v': 1})); "
                 "s.sendall(frame({'t': 'hb', 'seq': 'one'}))",
    "bad_version": "s.sendall(frame({'t': 'hello', 'v': 99}))",
    "trailing": "s.sendall(struct.pack('>I', 7) + b'\\x81\\xa1t\\xa2hb\\xc0')",
    "no_type": "s.sendall(struct.pack('>I', 1) + b'\\x80')",
}


def test_hostile_workers_are_cut_off_alone(supd, tmp_path):
    kids = []
    for name, send in HOSTILE.items():
        cmd = script(tmp_path, name, f"""
            import msgpack
            def frame(m):
                b = msgpack.packb(m)
                return struct.pack('>I', len(b)) + b
            s = socket.socket(fileno=int(os.environ['AGENTSUP_FD']))
            {send}
            time.sleep(1000)
        """)
        kids.append(f"  - {{worker: {name}, command: {cmd}, restart: temporary}}\n")
    d = supd.start({"a.yaml": "supervisor: root\nintensity: 0\nchildren:\n"
                    f"  - {{worker: bystander, command: {SLEEP}}}\n" + "".join(kids)})
    bystander = d.wait("started", "root/bystander")
    d.wait_count("protocol_error", len(HOSTILE))
    d.wait_count("exited", len(HOSTILE))
    causes = {e.path.split("/")[1]: e.detail for e in d.seen
              if e.kind == "protocol_error"}
    assert set(causes) == set(HOSTILE)
    assert "longer than the limit" in causes["too_long"]
    assert "not a map" in causes["not_a_map"]
    assert "claims more elements" in causes["claim_bomb"]
    assert "before hello" in causes["before_hello"]
    assert '"seq" must be' in causes["bad_field"]
    assert "protocol version 99" in causes["bad_version"]
    assert "bytes after the map" in causes["trailing"]
    assert "no string" in causes["no_type"]
    exits = [e for e in d.seen if e.kind == "exited"]
    assert {e.reason for e in exits} == {"protocol"}
    # the daemon and the bystander are untouched
    assert alive(bystander.pid)
    assert d.proc.poll() is None
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    d.drain_events()
    assert len([e for e in d.seen if e.kind == "started" and e.path == "root/bystander"]) == 1


def test_unknown_type_ignored(supd, tmp_path):
    cmd = script(tmp_path, "future", """
        import msgpack
        a = agentsup.Agent()
        a._send({"t": "telemetry", "x": [1, 2, 3]})
        for i in range(20):
            a.beat(steps=i)
            a.wait(0.05)
        sys.exit(0)
    """)
    d = supd.start({"a.yaml": f"""
        worker: future
        command: {cmd}
        heartbeat: 1s
        restart: transient
        """})
    ev = d.wait("exited", "root/future")
    assert ev.reason == "exit:0"
    assert not [e for e in d.seen if e.kind == "protocol_error"]
    assert any("ignoring message \"telemetry\"" in l for l in d.lines)
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0


def test_drain_obedient_plain_and_stubborn(supd, tmp_path):
    obedient = script(tmp_path, "obedient", """
        with agentsup.Agent() as a:
            a.ready()
            while not a.draining:
                a.beat()
                a.wait(0.1)
            assert a.drain_deadline_ms == 5000
        sys.exit(3)   # any status during a drain is not a failure
    """)
    stubborn = script(tmp_path, "stubborn", """
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        a = agentsup.Agent()
        a.ready()
        while True:
            a.beat()
            a.wait(0.1)   # hears the drain, ignores it
    """)
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: obedient, command: {obedient}, heartbeat: 1s, drain_timeout: 5s,
              start_timeout: 10s}}
          - {{worker: plain, command: {SLEEP}, drain_timeout: 1h}}
          - worker: stubborn
            command: {stubborn}
            heartbeat: 1s
            start_timeout: 10s
            drain_timeout: 300ms
            shutdown: 300ms
        """})
    d.wait("ready", "root/stubborn")  # said hello, so it gets a drain message
    d.signal(signal.SIGUSR1)
    d.wait("drain_started")
    drained = {}
    for _ in range(3):
        ev = d.wait("drained")
        drained[ev.path] = ev
    d.wait("drain_done")
    # a plain worker is stopped at once (its drain_timeout, an hour, is
    # for protocol workers): waited for, the exit would time out
    assert d.exit_code() == 0
    assert drained["root/obedient"].reason == "exit:3"
    assert drained["root/plain"].reason == "signal:SIGTERM"
    assert drained["root/stubborn"].reason == "signal:SIGKILL"
    assert "forced" in drained["root/stubborn"].detail
    d.drain_events()
    assert not [e for e in d.seen if e.kind in ("restarting", "exited")]


def test_second_sigusr1_changes_nothing_and_sigterm_shortens(supd, tmp_path):
    stubborn = script(tmp_path, "stubborn", """
        a = agentsup.Agent()
        a.ready()
        while True:
            a.beat()
            a.wait(0.1)
    """)
    d = supd.start({"a.yaml": f"""
        worker: slowpoke
        command: {stubborn}
        start_timeout: 10s
        drain_timeout: 60s
        """})
    d.wait("ready", "root/slowpoke")
    d.signal(signal.SIGUSR1)
    d.wait("drain_started")
    d.signal(signal.SIGUSR1)
    d.signal(signal.SIGTERM)
    ev = d.wait("drained", "root/slowpoke")
    assert ev.reason == "signal:SIGTERM"
    assert d.exit_code() == 0
    d.drain_events()
    assert len([e for e in d.seen if e.kind == "drain_started"]) == 1


def test_python_client_standalone_is_a_noop(tmp_path):
    p = tmp_path / "alone.py"
    p.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {CLIENT!r})
        import agentsup
        with agentsup.Agent() as a:
            assert not a.supervised and a.fileno() == -1
            a.ready(); a.beat(steps=1, status="x")
            t = time.monotonic(); a.wait(0.05)
            assert time.monotonic() - t >= 0.05
            assert not a.draining
        print("ok")
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSUP_")}
    r = subprocess.run([PY, str(p)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_c_example_agent_runs_supervised_and_standalone(supd):
    agent = os.path.join(os.environ.get("AGENTSUP_BUILD", "build"), "example_agent")
    d = supd.start({"a.yaml": f"""
        worker: c
        command: [{agent}, --step-ms, "20", --ready-ms, "50"]
        heartbeat: 300ms
        start_timeout: 5s
        drain_timeout: 5s
        """})
    d.wait("ready", "root/c")
    time.sleep(1.0)  # several heartbeat periods: no hang may fire
    d.signal(signal.SIGUSR1)
    ev = d.wait("drained", "root/c")
    assert ev.reason == "exit:0"
    assert d.exit_code() == 0
    assert not [e for e in d.seen if e.kind == "hang"]
    # standalone: no AGENTSUP_FD, still runs its loop (killed after a bit)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSUP_")}
    p = subprocess.Popen([agent, "--step-ms", "10"], env=env,
                         stderr=subprocess.PIPE, text=True)
    try:
        p.wait(timeout=0.3)
        raise AssertionError("standalone agent exited early")
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def test_a_reload_shortening_the_heartbeat_does_not_hang_a_running_worker(supd):
    """A running worker beats at the interval it was welcomed with; a
    reload that shortens the heartbeat (or turns it off) reaches it at its
    next start. It was judged by the new timeout at once and killed as hung
    (found in an audit: the deadline read the new spec). bench_worker beats
    once a second, as it was told at its start."""
    worker = json.dumps([os.path.join(BUILD, "bench_worker"), "beat", "1", "1"])
    conf = """
        worker: steady
        command: {cmd}
        heartbeat: {hb}
        heartbeat_timeout: {timeout}
        """
    d = supd.start({"a.yaml": conf.format(cmd=worker, hb="1s", timeout="1500ms")})
    pid = d.wait("started", "root/steady").pid

    def node():
        return {n["path"]: n for n in d.ctl_json("status")}["root/steady"]

    wait_until(lambda: node()["beats"] >= 1, what="a first beat")
    supd.write({"a.yaml": conf.format(cmd=worker, hb="100ms", timeout="300ms")})
    d.ctl("reload")
    seen = node()["beats"]
    # the deadline armed before the reload fires within 1.5 s of a beat
    wait_until(lambda: node()["beats"] >= seen + 3 or node()["pid"] != pid,
               what="three beats after the reload")
    n = node()
    assert (n["pid"], n["incarnation"], d.count("hang")) == (pid, 0, 0)


def test_the_largest_checkpoint_is_restored(supd, tmp_path):
    """checkpoint.max allows 16 MiB; stored and acknowledged, it came back
    in a welcome a little over 16 MiB, which both clients refused as too
    long: no restart could ever read it."""
    out = tmp_path / "restored"
    cmd = script(tmp_path, "big", f"""
        a = agentsup.Agent(welcome_timeout=10)
        r = a.restored
        if a.incarnation == 0:
            a.checkpoint(b"x" * (16 << 20))
            while a.checkpoint_acked < 1:
                a.wait(0.05)
            sys.exit(1)
        with open({str(out)!r}, "w") as f:
            f.write(f"{{r.checkpoint_seq}} {{len(r.checkpoint or b'')}}\\n")
        sys.exit(0)
    """)
    d = supd.start({"a.yaml": f"""
        worker: big
        command: {cmd}
        restart: transient
        backoff: none
        checkpoint: {{max: 16777216}}
        """})
    d.wait("exited", "root/big")
    wait_until(lambda: out.exists() and out.read_text().endswith("\n"),
               what="the restored checkpoint")
    assert out.read_text().split() == ["1", str(16 << 20)]


QUIET_N = 3000  # checkpoints: about 425 filled the socket and the queue
QUIET = {
    # the Python client as a synchronous agent uses it: never wait()
    "client": """
        a = agentsup.Agent()
        for i in range(QUIET_N):
            time.sleep(.002)
            a.beat(steps=i)
            a.checkpoint(b"step %d" % i)
        before = a.checkpoint_acked  # read only as it sent
        end = time.monotonic() + 20
        while a.checkpoint_acked < QUIET_N and time.monotonic() < end:
            a.wait(0.05)
        acks = [before, a.checkpoint_acked]
    """,
    # frames by hand, nothing read until the end: the daemon alone
    "raw": """
        import msgpack, select
        def frame(m):
            b = msgpack.packb(m, use_bin_type=True)
            return struct.pack('>I', len(b)) + b
        s = socket.socket(fileno=int(os.environ['AGENTSUP_FD']))
        s.sendall(frame({'t': 'hello', 'v': 1}))
        for i in range(1, QUIET_N + 1):
            time.sleep(.002)
            s.sendall(frame({'t': 'hb', 'seq': i, 'progress': {'steps': i}}))
            s.sendall(frame({'t': 'checkpoint', 'seq': i, 'data': b'step %d' % i}))
        reader, acks = agentsup.FrameReader(), []
        end = time.monotonic() + 20
        while (not acks or acks[-1] < QUIET_N) and time.monotonic() < end:
            if select.select([s], [], [], 1)[0]:
                data = s.recv(65536)
                if not data:
                    break
                acks += [m['seq'] for m in reader.feed(data, 1 << 20)
                         if m['t'] == 'checkpoint_ok']
    """,
}


@pytest.mark.parametrize("how", sorted(QUIET))
def test_a_worker_that_never_reads_is_not_cut_off_for_acks(supd, tmp_path, how):
    """A synchronous agent that beats and checkpoints but never reads (a
    blocking LLM call, no wait()) was cut off as a protocol error after
    about 425 checkpoints: every checkpoint_ok filled its socket, then the
    daemon's queue. The daemon keeps one ack queued (the newest says all the
    older ones do), and the client reads what came as it sends."""
    out = tmp_path / "acks.json"
    cmd = script(tmp_path, "quiet", f"QUIET_N = {QUIET_N}\n"
                 + textwrap.dedent(QUIET[how]) + f"""
open({str(out)!r}, "w").write(json.dumps(acks))
""")
    d = supd.start({"a.yaml": f"""
        worker: quiet
        command: {cmd}
        heartbeat: 5s
        restart: temporary
        """})
    ev = d.wait("exited", "root/quiet", timeout=120)
    assert d.count("protocol_error") == 0, [e.detail for e in d.seen
                                            if e.kind == "protocol_error"]
    assert ev.reason == "exit:0"
    acks = json.loads(out.read_text())
    if how == "client":
        before, after = acks
        assert before > QUIET_N // 2  # it followed the acks as it went
        assert after == QUIET_N
    else:
        assert acks[-1] == QUIET_N  # the newest arrives
        assert acks == sorted(set(acks))
        assert len(acks) < QUIET_N  # merged while waiting in the queue
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0


def test_welcome_last_reason_is_empty_until_a_failure(supd, tmp_path):
    """welcome's last_reason is the last failure's reason, "" if none
    (docs/protocol.md): a first start said "-", so a client's
    `if agent.restored.last_reason:` was true on every fresh start; status
    has nil for a node that never stopped."""
    out = tmp_path / "restored"
    cmd = script(tmp_path, "w", f"""
        a = agentsup.Agent()
        r = a.restored
        with open({str(out)!r}, "a") as f:
            f.write(json.dumps([a.incarnation, r.restarts, r.last_reason]) + "\\n")
        if a.incarnation == 0:
            sys.exit(1)
        a.ready()
        a.wait(1000)
    """)
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: w, command: {cmd}, backoff: none}}
          - {{worker: idle, command: [sleep, "1000"]}}
    """})
    d.wait("started", "root/w", restarts=1)
    wait_until(lambda: out.exists() and len(out.read_text().splitlines()) == 2,
               what="two welcomes")
    assert [json.loads(l) for l in out.read_text().splitlines()] == [
        [0, 0, ""], [1, 1, "exit:1"]]
    nodes = {n["path"]: n for n in d.ctl_json("status")}
    assert nodes["root/idle"]["last_reason"] is None
    assert nodes["root/w"]["last_reason"] == "exit:1"
    assert " last " not in [l for l in d.ctl("status").stdout.splitlines()
                            if "idle" in l][0]


def test_python_client_refuses_what_agentsupd_would(supd, tmp_path):
    """The auditor's three calls cost the worker its life (a protocol
    error, counted as a failure); the client now refuses them itself,
    and the edges agentsupd accepts still reach it without one."""
    cmd = script(tmp_path, "careful", """
        a = agentsup.Agent()
        a.restored
        for call in (lambda: a.beat(cost=float("nan")), lambda: a.beat(steps=-1),
                     lambda: a.exit_reason("rate-limited", retry_after=30)):
            try:
                call()
            except ValueError:
                pass
        a.beat(steps=2**64 - 1, tokens=0, cost=0, state="edge")
        a.result(b"r" * (64 * 1024))
        a.exit_reason("done", detail="edges sent")
        sys.exit(0)
    """)
    d = supd.start({"a.yaml": f"""
        worker: careful
        command: {cmd}
        restart: temporary
        """})
    ev = d.wait("exited", "root/careful")
    assert ev.reason == "exit:0" and "declared done" in (ev.detail or ""), ev
    assert not [e for e in d.seen if e.kind == "protocol_error"]
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0


def test_a_message_cut_by_the_workers_end_is_said(supd, tmp_path):
    """A worker that ended while sending a frame (a checkpoint's first
    bytes out, the process killed) lost that message without a word:
    whoever looked for the checkpoint found nothing to say why."""
    cmd = script(tmp_path, "cut", """
        s = socket.socket(fileno=int(os.environ['AGENTSUP_FD']))
        hello = b'\\x82\\xa1t\\xa5hello\\xa1v\\x01'
        s.sendall(struct.pack('>I', len(hello)) + hello)
        s.sendall(struct.pack('>I', 100) + b'\\x82\\xa1t\\xaacheckp')
        sys.exit(0)
    """)
    d = supd.start({"a.yaml": f"""
        worker: cut
        command: {cmd}
        restart: temporary
        """})
    d.wait("exited", "root/cut")
    wait_until(lambda: any("closed 14 bytes into a message" in l
                           for l in d.lines), what="the cut said")
    assert not [e for e in d.seen if e.kind == "protocol_error"]
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
