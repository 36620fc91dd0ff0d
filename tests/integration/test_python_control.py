"""agentsup.control, the Python side of the control socket, against a real
agentsupd: an orchestrator written in Python spawns tasks, waits for their
records and reads events and output without shelling out to agentsupctl."""
import errno
import os
import signal
import socket
import sys
import textwrap
import threading
import time

import pytest

from conftest import (TIMEOUT, alive, catches, flapper_team, ignores, sh,
                      wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.join(os.environ.get("AGENTSUP_SRC", os.path.join(HERE, "..", "..")),
                     "tools", "python")
sys.path.insert(0, PYDIR)
from agentsup.control import Control, ControlError, default_socket  # noqa: E402

PY = "/usr/bin/python3"

TREE = textwrap.dedent(f"""\
    supervisor: root
    children:
      - supervisor: pool
        intensity: 50
        template:
          command: ["/bin/sh", "-c", "echo \\"task $1 $TAG\\"; sleep ${{DELAY:-0}}; exit ${{CODE:-0}}", "task"]
          backoff: none
          restart: temporary
      - supervisor: team
        children:
          - worker: talker
            command: {sh('echo hello from talker; exec sleep 300')}
      - {{worker: idle, command: [sleep, '300']}}
    """)


def start(supd):
    d = supd.start({"a.yaml": TREE})
    d.wait("started", "root/idle")
    return d


def test_status_commands_and_refusals(supd):
    d = start(supd)
    with Control(d.socket) as ctl:
        nodes = {n["path"]: n for n in ctl.status()}
        assert nodes["root/team/talker"]["state"] == "running"
        assert [n["name"] for n in ctl.status("team")] == ["team", "talker"]
        assert ctl.stop("talker") == "root/team/talker"
        d.wait("exited", "root/team/talker")
        assert ctl.status("talker")[0]["held"] is True
        assert ctl.start("talker") == "root/team/talker"
        d.wait("started", "root/team/talker")
        with pytest.raises(ControlError, match="no such worker"):
            ctl.restart("nobody")
        # the connection goes on after a refusal
        assert ctl.status("idle")[0]["state"] == "running"


def test_spawn_wait_and_dead_letters(supd):
    d = start(supd)
    with Control(d.socket) as ctl:
        rec = ctl.spawn("pool", key="k1", args=["one"], env={"TAG": "x"})
        assert rec["created"] is True and rec["name"] == "pool/k1"
        again = ctl.spawn("pool", key="k1", args=["one"])
        assert again["created"] is False
        done = ctl.wait("pool/k1", timeout=30)
        assert done["state"] == "done", done
        assert done["tail"] == "task one x\n", done
        bad = ctl.spawn("pool", key="k2", env={"CODE": "3"})
        assert bad["created"] is True
        rec = ctl.wait("k2", timeout=30)  # a bare key, unique
        assert rec["state"] == "dead" and rec["reasons"], rec
        assert [r["name"] for r in ctl.dead()] == ["pool/k2"]
        ctl.drop("pool/k2")
        assert ctl.dead() == []
        with pytest.raises(ControlError, match="no such"):
            ctl.drop("pool/k2")


def test_wait_times_out(supd):
    d = start(supd)
    ctl = Control(d.socket)
    ctl.spawn("pool", key="slow", env={"DELAY": "300"})
    # it said "agentsupd did not answer in time", as if agentsupd were
    # stuck: it is the task that has not ended
    with pytest.raises(TimeoutError, match="^wait pool/slow: the task had "
                       "not ended within 0.2s$"):
        ctl.wait("pool/slow", timeout=0.2)
    # the next request is on a new connection: a late answer cannot be
    # taken for its; polling with short waits works (it was closed for good)
    assert [n["path"] for n in ctl.status("pool")] == ["root/pool", "root/pool/slow"]
    with pytest.raises(TimeoutError):
        ctl.wait("pool/slow", timeout=0.2)
    ctl.close()
    with pytest.raises(ConnectionError, match="closed"):
        ctl.status()
    with Control(d.socket) as other:
        other.stop("pool/slow")
        assert other.wait("pool/slow", timeout=30)["state"] == "cancelled"


def test_a_control_outlives_its_connection(supd):
    """agentsupd closes a connection idle for a minute, and a restarted
    agentsupd has none of the old ones: a Control held by a long-lived
    service raised BrokenPipeError at its next call for good (found in a
    trial). It connects again; a closed Control stays closed."""
    d = start(supd)
    ctl = Control(d.socket)
    assert ctl.status("idle")[0]["state"] == "running"
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    supd.events = supd.tmp / "events-1.jsonl"  # the next one's own
    d = start(supd)
    assert ctl.status("idle")[0]["state"] == "running"
    with pytest.raises(TypeError, match="list of str"):
        ctl.spawn("pool", key="s", args="12")  # not ["1", "2"]
    ctl.close()
    with pytest.raises(ConnectionError, match="closed"):
        ctl.status()


def test_events_and_logs_of_a_subtree(supd):
    d = start(supd)
    with Control(d.socket) as ctl:
        paths = {e["path"] for e in ctl.events("team")}
        assert paths <= {"root/team", "root/team/talker"} and \
            "root/team/talker" in paths
        # (its line is read once agentsupd's loop gets to its pipe)
        wait_until(lambda: "hello from talker\n" in ctl.logs("talker"),
                   what="talker's line")
        assert ctl.logs("team") == {"talker": "hello from talker\n"}
        assert ctl.logs()["talker"] == "hello from talker\n"
    follower = Control(d.socket)
    lines = follower.follow_logs("pool")  # the follow starts here
    with Control(d.socket) as ctl:
        ctl.spawn("pool", key="f1", args=["followed"],
                  env={"TAG": "y", "DELAY": "300"})
        # written before the first next(): followed all the same (it was
        # a tail line when the request waited for next())
        wait_until(lambda: "task followed y" in
                   str(ctl.logs("pool").get("pool:f1", "")),
                   what="the task's line")
        with pytest.raises(ControlError, match="no such"):
            ctl.events("nobody")  # refused by the call itself
    line = next(lines)
    assert line == {"name": "pool:f1", "stream": "stdout",
                    "line": "task followed y"}, line
    follower.close()
    events = Control(d.socket)
    it = events.events("pool", follow=True)
    with Control(d.socket) as ctl:
        ctl.spawn("pool", key="f2")
    kinds = []
    for e in it:
        assert e["path"].startswith("root/pool"), e
        kinds.append((e["kind"], e["path"]))
        if ("task_done", "root/pool/f2") in kinds:
            break
    assert ("spawned", "root/pool/f2") in kinds
    events.close()


def test_an_untrusted_private_directory_is_refused(tmp_path, monkeypatch):
    """The default socket under ${TMPDIR}/agentsupd-UID is believed only
    when that directory is this user's and closed to others."""
    monkeypatch.delenv("AGENTSUP_SOCKET", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    if os.geteuid() == 0:
        assert default_socket() == "/run/agentsupd.sock"
        path = str(tmp_path / "agentsupd-0" / "agentsupd.sock")
    else:
        path = default_socket()
    d = os.path.dirname(path)
    os.mkdir(d)
    os.chmod(d, 0o777)
    with pytest.raises(ConnectionError, match="not a private directory"):
        Control(path)
    os.chmod(d, 0o700)
    # private, and nobody listens: a ConnectionError, as documented (it
    # was a FileNotFoundError, which `except ConnectionError` missed)
    with pytest.raises(ConnectionError, match="No such file"):
        Control(path)


def test_a_stale_socket_is_refused_naming_it(tmp_path):
    """The socket a SIGKILLed agentsupd left behind refuses connections:
    Control said only "[Errno 111] Connection refused", not where (as
    agentsupctl does, and as Control does when there is no socket)."""
    path = str(tmp_path / "stale.sock")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)  # bound, never listening: as one left by a dead daemon
        with pytest.raises(ConnectionRefusedError) as e:
            Control(path)
    assert str(e.value) == f"{path}: Connection refused"
    assert e.value.errno == errno.ECONNREFUSED


def test_the_timeout_bounds_a_whole_answer(tmp_path):
    """Control(timeout=T) bounded each recv, not the answer: a server
    dribbling its answer a byte at a time, or sending other frames first,
    held a call for as long as it liked (found by a hostile tester)."""
    import msgpack
    import struct
    import threading

    path = str(tmp_path / "fake.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    stop = threading.Event()

    def serve():
        c, _ = srv.accept()
        c.recv(1 << 16)  # the request
        body = msgpack.packb({"t": "res", "id": 1, "ok": True,
                              "result": "x" * 200}, use_bin_type=True)
        data = struct.pack(">I", len(body)) + body
        for i in range(len(data)):  # ~20 s in all, a byte each 0.1 s
            if stop.wait(0.1):
                break
            try:
                c.sendall(data[i:i + 1])
            except OSError:
                break
        c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    ctl = Control(path, timeout=1.0)
    with pytest.raises(TimeoutError):
        ctl.status()
    stop.set()
    t.join(TIMEOUT)
    srv.close()


def test_a_control_in_a_process_with_many_descriptors(supd):
    """Its check that the connection is still there used select(), which
    refuses a descriptor past 1023: a service holding over a thousand
    descriptors got ValueError on every request (found by a second
    reader)."""
    import resource
    d = start(supd)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE,
                       (max(soft, 4096), max(hard, 4096)))
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
    try:
        with Control(d.socket) as ctl:
            assert ctl._sock.fileno() >= 1024
            for _ in range(2):  # the second checks the connection
                assert any(n["path"] == "root" for n in ctl.status())
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_look_the_wait_s_end_cuts_short_is_the_wait_timing_out(supd):
    """A status look of stop(wait=) that the wait's own end cut short (a
    loaded host; here agentsupd held stopped) said "no answer about slow
    within 2s", as if agentsupd hung: it is the wait timing out, with what
    slow was at the last look, as agentsupctl --wait says it."""
    told = supd.tmp / "told"
    d = supd.start({"a.yaml": f"""
        worker: slow
        command: {sh(f"trap 'touch {told}; sleep 5; exit 0' TERM; while :; do sleep 0.05; done")}
        shutdown: 10s
        """})
    pid = d.wait("started", "root/slow").pid
    wait_until(lambda: catches(pid, signal.SIGTERM), what="its TERM trap")
    got = []

    def stop():
        with Control(d.socket) as ctl:
            try:
                ctl.stop("slow", wait=2)
            except TimeoutError as e:
                got.append(str(e))
    t = threading.Thread(target=stop)
    t.start()
    wait_until(told.exists, what="the stop under way")
    d.signal(signal.SIGSTOP)
    try:
        t.join(TIMEOUT)
    finally:
        d.signal(signal.SIGCONT)
    assert got and got[0].startswith("stop: slow is still "), got
    assert "no answer" not in got[0], got


def test_stop_wait_of_a_node_a_reload_removed(supd, monkeypatch):
    """stop(wait=) of a node a reload removed that is still stopping waits
    until it is gone, as agentsupctl's --wait; it was refused at once."""
    deaf_cmd = sh("trap '' TERM; exec sleep 300")
    keep = f"{{worker: keep, command: {sh('exec sleep 300')}}}"
    deaf = f"{{worker: deaf, command: {deaf_cmd}, shutdown: 60s}}"
    d = supd.start({"a.yaml": f"supervisor: root\nchildren:\n  - {keep}\n"
                              f"  - {deaf}\n"})
    pid = d.wait("started", "root/deaf").pid
    wait_until(lambda: ignores(pid, signal.SIGTERM), what="its TERM ignored")
    supd.write({"a.yaml": f"supervisor: root\nchildren:\n  - {keep}\n"})
    d.ctl("reload", check=0)
    with Control(d.socket) as ctl:
        with pytest.raises(TimeoutError, match="stopping, removed by a reload"):
            ctl.stop("deaf", wait=2)
        assert alive(pid)
        looked, sleep, got = threading.Event(), time.sleep, []

        def pause(s):  # between two looks at deaf: it has looked
            if threading.current_thread().name == "stopper":
                looked.set()
            sleep(s)
        monkeypatch.setattr(time, "sleep", pause)
        t = threading.Thread(name="stopper", target=lambda: got.append(
            ctl.stop("deaf", wait=TIMEOUT)))
        t.start()
        assert looked.wait(TIMEOUT)
        d.ctl("signal", "root/deaf", "KILL", check=0)  # hurry its shutdown
        t.join(TIMEOUT)
        assert got == ["deaf"] and not alive(pid)


def test_commands_that_wait_until_carried_out(supd):
    """stop/restart/start/drain with wait=: as agentsupctl's --wait."""
    slow = sh("trap 'sleep 1; exit 0' TERM; while :; do sleep 0.05; done")
    d = supd.start({"a.yaml": f"""
        supervisor: root
        intensity: 20
        children:
          - supervisor: team
            children:
              - {{worker: a, command: {slow}, shutdown: 10s}}
              - {{worker: b, command: {sh("exec sleep 300")}}}
          - {{worker: broken, command: {sh("exit 1")}, start_timeout: 5s,
              backoff: {{initial: 10s}}}}
          - supervisor: pool
            template:
              command: {sh("sleep $DELAY")}
        """})
    old = {n: d.wait("started", f"root/team/{n}").pid for n in ("a", "b")}
    with Control(d.socket) as ctl:
        assert ctl.restart("team", wait=TIMEOUT) == "root/team"
        now = {n["name"]: n for n in ctl.status("team")}
        for n in ("a", "b"):
            assert now[n]["state"] == "running"
            assert now[n]["pid"] != old[n]
        ctl.stop("a", wait=TIMEOUT)
        assert [n["state"] for n in ctl.status("a")] == ["stopped"]
        ctl.start("a", wait=TIMEOUT)
        a = ctl.status("a")[0]["pid"]
        wait_until(lambda: catches(a, signal.SIGTERM), what="a's trap")
        with pytest.raises(TimeoutError):
            ctl.stop("a", wait=0.2)  # it takes a second
        ctl.drain("team", wait=TIMEOUT)
        assert ctl.status("team")[0]["state"] == "stopped"
        d.wait("backoff", "root/broken")
        ctl.stop("broken", wait=TIMEOUT)
        # (backoff, or stopped for the moment its failure waits for its
        # supervisor's start to end)
        with pytest.raises(ControlError, match="broken did not come up: "
                                               "[a-z]+, last exit:1"):
            ctl.start("broken", wait=TIMEOUT)
        with pytest.raises(ValueError):
            ctl.drain(wait=-1)  # the whole tree's takes a wait too
        ctl.spawn("pool", key="w1", env={"DELAY": "300"})
        d.wait("started", "root/pool/w1")
        ctl.stop("pool/w1", wait=TIMEOUT)  # ended, its node gone: done
        for bad in (-5, float("nan"), "1", True, float("inf"), 1e20):
            with pytest.raises(ValueError):
                ctl.stop("b", wait=bad)  # type: ignore[arg-type]
        assert ctl.start("team", wait=TIMEOUT) == "root/team"  # runs: done
        # an agentsupd that does not answer: wait bounds the call (on a
        # connection with no timeout of its own, nothing else could)
        patient = Control(d.socket, timeout=None)
        got = []

        def stop_b():
            try:
                patient.stop("b", wait=1)
            except BaseException as e:
                got.append(e)
        d.proc.send_signal(signal.SIGSTOP)
        try:
            t = threading.Thread(target=stop_b, daemon=True)
            t.start()
            t.join(TIMEOUT)
            assert not t.is_alive(), "wait=1 did not bound the call"
        finally:
            d.proc.send_signal(signal.SIGCONT)
        assert len(got) == 1 and isinstance(got[0], TimeoutError), got
        assert "no answer about b within 1" in str(got[0]), got
        patient.close()


def test_wait_asks_again_while_the_supervisor_is_busy(supd, tmp_path):
    """As agentsupctl's --wait: a start refused for a moment (its
    supervisor busy restarting a sibling still stopping: held here until
    a file exists) is asked again until taken; without wait it is refused
    at once, with ControlError.again set."""
    release = tmp_path / "release"
    from test_opwait import held_stop
    slow = held_stop(release)
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: slow, command: {slow}, shutdown: 60s}}
          - {{worker: b, command: {sh("exec sleep 300")}}}
        """})
    slow_pid = d.wait("started", "root/slow").pid
    d.wait("started", "root/b")
    wait_until(lambda: catches(slow_pid, signal.SIGTERM), what="slow's trap")
    with Control(d.socket) as ctl:
        ctl.stop("b", wait=TIMEOUT)
        ctl.restart("slow")  # root busy until the release
        with pytest.raises(ControlError, match="busy") as e:
            ctl.start("b")
        assert e.value.again
        with pytest.raises(TimeoutError, match="not free"):
            ctl.start("b", wait=2)  # refused all that time (root busy)
        threading.Timer(0.3, release.touch).start()
        assert ctl.start("b", wait=TIMEOUT) == "root/b"
        assert [n["state"] for n in ctl.status("b")] == ["running"]
        with pytest.raises(ControlError) as e:
            ctl.start("nosuch", wait=TIMEOUT)
        assert not e.value.again


def test_a_wait_on_a_starting_supervisor_does_not_wait_for_a_flapper(
        supd, tmp_path):
    """start(wait=) of a supervisor still starting, whose child then fails
    its start each time (no backoff: always starting or stopping): done
    once the supervisor is up; it timed out waiting for that child."""
    go = tmp_path / "go"
    d = supd.start(flapper_team(go))
    d.wait("started", "root/team/gate")
    got = []
    with Control(d.socket) as ctl:
        assert ctl.status("team")[0]["state"] == "starting"
        t = threading.Thread(target=lambda: got.append(
            ctl.start("team", wait=60)), daemon=True)
        t.start()
        d.wait("command", "root/team")
        go.touch()
        t.join(90)
    assert got == ["root/team"]

def test_text_that_is_not_utf8(supd, tmp_path):
    """One worker's Latin-1 status (the C client sends what it is given)
    made every status, events and dead answer unreadable to Control
    (ProtocolError): it reads U+FFFD for it now, as agentsupctl --json
    shows it. And a task's argument of bytes that are not UTF-8 reaches
    it as those bytes (os.fsdecode'd, or bytes), as from agentsupctl."""
    raw = tmp_path / "latin1.py"
    raw.write_text(textwrap.dedent("""
        import os, socket, struct, time, msgpack
        s = socket.socket(fileno=int(os.environ["AGENTSUP_FD"]))
        def send(m, fix=b""):
            b = msgpack.packb(m, use_bin_type=True)
            if fix:
                b = b.replace(b"XXXX", fix)
            s.sendall(struct.pack(">I", len(b)) + b)
        send({"t": "hello", "v": 1})
        send({"t": "hb", "seq": 1, "status": "XXXX"}, b"caf\\xe9")
        time.sleep(300)
    """))
    out = tmp_path / "argv"
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: latin, command: [{PY!r}, {str(raw)!r}]}}
          - supervisor: pool
            template:
              command: ["/bin/sh", "-c", 'printf %s "$1" | od -An -tx1 > {out}', "task"]
              restart: temporary
        """})
    d.wait("started", "root/latin")
    with Control(d.socket) as ctl:
        wait_until(lambda: ctl.status("latin")[0]["status"] == "caf\ufffd",
                   what="the status read")
        assert ctl.events("root")  # readable
        ctl.spawn("pool", key="k1", args=[b"\xff" + os.fsdecode(b"\xfe")
                                          .encode("utf-8", "surrogateescape")])
        assert ctl.wait("pool/k1", timeout=TIMEOUT)["state"] == "done"
        assert out.read_text().split() == ["ff", "fe"]
        ctl.spawn("pool", key="k2", args=[os.fsdecode(b"\xfd")])
        assert ctl.wait("pool/k2", timeout=TIMEOUT)["args"] == ["\ufffd"]
        assert out.read_text().split() == ["fd"]


def test_start_wait_of_a_worker_that_exits_at_once(supd):
    """As agentsupctl's --wait: a worker must have run a second to be up;
    one that exits before did not come up."""
    from test_opwait import AT_ONCE_TREE
    d = supd.start({"a.yaml": AT_ONCE_TREE})
    d.wait("started", "root/loops")
    with Control(d.socket) as ctl:
        ctl.stop("loops", wait=TIMEOUT)
        with pytest.raises(ControlError, match="loops did not come up: .*exit:3"):
            ctl.start("loops", wait=TIMEOUT)
        ctl.restart("good", wait=TIMEOUT)
        assert ctl.status("good")[0]["uptime_ms"] >= 1000


def test_drain_of_the_whole_tree_waits_for_the_exit(supd, tmp_path):
    """drain(wait=) of the whole tree (agentsupctl drain --wait): returns
    once agentsupd, its tree down, says it exits 0 (it then exits as soon
    as its followers hang up), as a pod's preStop hook needs; it was a
    ValueError ("wait needs a name")."""
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: w, command: {sh("trap 'sleep 0.3; exit 0' TERM; "
                                       "while :; do sleep 0.05; done")}}}
        """})
    d.wait("started", "root/w")
    follower = Control(d.socket)
    events = follower.events(follow=True)
    with Control(d.socket) as ctl:
        assert ctl.drain(wait=TIMEOUT) == "draining the whole tree"
    # a follower told agentsupd exits hangs up at once (agentsupd waits up
    # to a second for its followers: it waited that second for each
    # program that let the exception go and lived on)
    with pytest.raises(ConnectionError, match="exited"):
        for _ in events:
            pass
    assert follower._sock.fileno() == -1
    d.drain_events()
    assert d.count("drain_done", "root") == 1  # said before the answer
    assert d.exit_code() == 0


def test_a_wait_of_no_time_looks(supd):
    """wait(timeout=0), a poll: the record of a task that has ended, and
    TimeoutError at once for one that has not (it raised TimeoutError
    even for an ended task: no time was left for agentsupd's answer)."""
    d = start(supd)
    with Control(d.socket) as ctl:
        ctl.spawn("pool", key="quick")
        assert ctl.wait("pool/quick", timeout=30)["state"] == "done"
        rec = ctl.wait("pool/quick", timeout=0)
        assert rec["state"] == "done" and rec["name"] == "pool/quick", rec
        ctl.spawn("pool", key="slow", env={"DELAY": "300"})
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="^wait pool/slow: the task "
                           "had not ended \\(it is (running|pending)\\)$"):
            ctl.wait("pool/slow", timeout=0)
        assert time.monotonic() - t0 < TIMEOUT / 4  # at once, not a wait
        # the same connection goes on: no answer of it is left to come
        assert ctl.wait("quick", timeout=0)["state"] == "done"
        ctl.stop("pool/slow")
        assert ctl.wait("pool/slow", timeout=30)["state"] == "cancelled"
        assert ctl.wait("pool/slow", timeout=0)["state"] == "cancelled"


def read_frames(s, n):
    """n answers read off a raw control connection, in order."""
    import struct
    import msgpack
    out, buf = [], b""
    s.settimeout(TIMEOUT)
    while len(out) < n:
        buf += s.recv(1 << 16)
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
            size = struct.unpack(">I", buf[:4])[0]
            out.append(msgpack.unpackb(buf[4:4 + size], raw=False))
            buf = buf[4 + size:]
    assert len(out) == n, out  # no more than asked for came at once
    return out


def test_one_connections_waits_keep_no_other_out(supd):
    """A client that sends many waits at once (a raw asyncio client, a
    bug) has 16 at most under way; the rest are refused, and every other
    client can still wait (one connection's 128 refused every other wait,
    "too many waits at once", until it hung up)."""
    import struct
    import msgpack
    d = start(supd)
    with Control(d.socket) as ctl:
        ctl.spawn("pool", key="slow", env={"DELAY": "300"})
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(d.socket)
            for i in range(1, 201):
                b = msgpack.packb({"t": "req", "id": i, "cmd": "wait",
                                   "args": ["pool/slow"]}, use_bin_type=True)
                s.sendall(struct.pack(">I", len(b)) + b)
            refused = read_frames(s, 200 - 16)
            for f in refused:
                assert f["ok"] is False and "on this connection (16 at " \
                    "most)" in f["error"], f
            assert [f["id"] for f in refused] == list(range(17, 201))
            # another connection's wait is taken: its status asked after it
            # is answered first (a refusal would come before it), then the
            # wait, once the task ends
            with socket.socket(socket.AF_UNIX) as o:
                o.connect(d.socket)
                for i, cmd, args in ((1, "wait", ["pool/slow"]),
                                     (2, "status", [])):
                    b = msgpack.packb({"t": "req", "id": i, "cmd": cmd,
                                       "args": args}, use_bin_type=True)
                    o.sendall(struct.pack(">I", len(b)) + b)
                first = read_frames(o, 1)[0]
                assert first["id"] == 2 and first["ok"], first
                ctl.stop("pool/slow")
                last = read_frames(o, 1)[0]
                assert last["id"] == 1 and last["ok"], last
                assert last["result"]["state"] == "cancelled", last
            assert ctl.wait("pool/slow", timeout=30)["state"] == "cancelled"
            # the 16 taken are answered too
            got = read_frames(s, 16)
            assert all(f["ok"] and f["result"]["state"] == "cancelled"
                       for f in got), got
            assert sorted(f["id"] for f in got) == list(range(1, 17))
