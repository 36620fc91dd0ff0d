"""agentsupctl and the control socket: commands, the JSON shape, stop/start
semantics, followers, and clients that misbehave."""
import json
import os
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import time

import msgpack
import pytest

from conftest import AGENTSUPCTL, AGENTSUPD, TIMEOUT, alive, sh, wait_until

SLEEP = sh("exec sleep 1000")
CRASH_ONCE = sh('[ "$AGENTSUP_INCARNATION" = 0 ] && exit 1; exec sleep 1000')

TREE = {
    "root.yaml": f"""
    supervisor: root
    intensity: 10
    children:
      - {{worker: alpha, command: {SLEEP}}}
      - supervisor: team
        strategy: one_for_all
        intensity: 5
        children:
          - {{worker: beta, command: {SLEEP}}}
          - {{worker: gamma, command: {SLEEP}}}
      - {{worker: delta, command: {SLEEP}, restart: temporary}}
    """
}


def frame(msg):
    body = msgpack.packb(msg)
    return struct.pack(">I", len(body)) + body


def read_frame(s, timeout=TIMEOUT):
    s.settimeout(timeout)
    hdr = b""
    while len(hdr) < 4:
        chunk = s.recv(4 - len(hdr))
        if not chunk:
            return None
        hdr += chunk
    (n,) = struct.unpack(">I", hdr)
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            return None
        body += chunk
    return msgpack.unpackb(body, raw=False)


def connect(d):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(d.socket)
    return s


def started(d):
    d.wait("started", "root/delta")
    return d


def by_path(nodes):
    return {n["path"]: n for n in nodes}


def test_status_json_shape_and_tree(supd):
    d = started(supd.start(TREE))
    nodes = d.ctl_json("status")
    assert [n["path"] for n in nodes] == [
        "root", "root/alpha", "root/team", "root/team/beta",
        "root/team/gamma", "root/delta"]
    for n in nodes:
        for key in ("name", "path", "kind", "state", "pid", "restarts"):
            assert key in n, key
        assert n["state"] == "running"
    nodes = by_path(nodes)
    assert nodes["root/team"]["kind"] == "supervisor"
    assert nodes["root/team"]["pid"] is None
    assert nodes["root/team"]["strategy"] == "one_for_all"
    assert alive(nodes["root/alpha"]["pid"])
    text = d.ctl("status", check=0).stdout
    lines = text.splitlines()
    assert lines[0].startswith("root ")
    assert lines[2].startswith("|-- team ")
    assert lines[3].startswith("|   |-- beta ")
    assert lines[4].startswith("|   `-- gamma ")
    assert lines[5].startswith("`-- delta ")
    assert "\033[" not in text  # no colour off a terminal
    sub = d.ctl_json("status", "team")
    assert [n["name"] for n in sub] == ["team", "beta", "gamma"]


def test_unknown_name_fails(supd):
    d = started(supd.start(TREE))
    for cmd in (["status", "nope"], ["stop", "nope"], ["start", "nope"],
                ["restart", "nope"], ["drain", "nope"]):
        r = d.ctl(*cmd)
        assert r.returncode == 1
        assert "no such worker or supervisor: nope" in r.stderr


def test_usage_errors(supd):
    d = started(supd.start(TREE))
    assert d.ctl("stop").returncode == 64
    assert d.ctl("frobnicate").returncode == 64
    assert d.ctl("reload", "extra").returncode == 64
    r = subprocess.run([AGENTSUPCTL, "--socket", "/nonexistent/sock", "status"],
                       capture_output=True, text=True)
    assert r.returncode == 69
    assert "cannot reach agentsupd" in r.stderr


def test_stop_stays_stopped_until_started(supd):
    d = started(supd.start(TREE))
    old = by_path(d.ctl_json("status"))["root/team/beta"]["pid"]
    d.ctl("stop", "beta", check=0)
    d.wait("exited", "root/team/beta")
    beta = by_path(d.ctl_json("status"))["root/team/beta"]
    assert beta["state"] == "stopped" and beta["held"] is True
    # a sibling's failure restarts the group, but not the stopped one
    os.kill(by_path(d.ctl_json("status"))["root/team/gamma"]["pid"], signal.SIGKILL)
    d.wait("restarting", "root/team/gamma")
    d.wait("started", "root/team/gamma")
    assert by_path(d.ctl_json("status"))["root/team/beta"]["state"] == "stopped"
    d.ctl("start", "beta", check=0)
    ev = d.wait("started", "root/team/beta")
    assert ev.pid != old
    beta = by_path(d.ctl_json("status"))["root/team/beta"]
    assert beta["state"] == "running" and beta["held"] is False


def test_restart_subtree_in_order(supd):
    d = started(supd.start(TREE))
    d.ctl("restart", "team", check=0)
    evs = d.collect("started", "root/team/gamma")
    order = [(e.kind, e.path) for e in evs if e.kind in ("exited", "started")]
    assert order == [("exited", "root/team/gamma"), ("exited", "root/team/beta"),
                     ("started", "root/team/beta"), ("started", "root/team/gamma")]
    # an operator's restart does not count toward intensity
    assert by_path(d.ctl_json("status"))["root/team"]["window_restarts"] == 0


def test_restart_worker_and_stop_supervisor(supd):
    d = started(supd.start(TREE))
    old = by_path(d.ctl_json("status"))["root/alpha"]["pid"]
    d.ctl("restart", "alpha", check=0)
    assert d.wait("started", "root/alpha").pid != old
    d.ctl("stop", "team", check=0)
    d.wait("stopped", "root/team")
    nodes = by_path(d.ctl_json("status"))
    assert nodes["root/team"]["state"] == "stopped"
    assert nodes["root/team/beta"]["state"] == "stopped"
    d.ctl("start", "team", check=0)
    d.wait("started", "root/team/gamma")
    assert by_path(d.ctl_json("status"))["root/team"]["state"] == "running"


def test_drain_one_subtree(supd):
    d = started(supd.start(TREE))
    d.ctl("drain", "team", check=0)
    d.wait_count("drained", 2)
    nodes = by_path(d.ctl_json("status"))
    assert nodes["root/team"]["state"] == "stopped"
    assert nodes["root/alpha"]["state"] == "running"
    assert d.proc.poll() is None


def test_events_follow(supd):
    d = started(supd.start(TREE))
    f = subprocess.Popen([AGENTSUPCTL, "--socket", d.socket, "events", "--follow", "--json"],
                         stdout=subprocess.PIPE, text=True)
    try:
        # the history first: the starts that already happened
        seen = []
        while not any(e["kind"] == "started" and e["path"] == "root/delta" for e in seen):
            seen.append(json.loads(f.stdout.readline()))
        d.ctl("restart", "alpha", check=0)
        while True:
            e = json.loads(f.stdout.readline())
            if e["kind"] == "started" and e["path"] == "root/alpha":
                break
        assert set(e) >= {"seq", "time_ms", "kind", "path", "pid", "reason", "restarts"}
    finally:
        f.send_signal(signal.SIGINT)
        assert f.wait(timeout=TIMEOUT) == 0
    text = d.ctl("events", check=0).stdout
    assert "root/alpha" in text and "started" in text


def test_shutdown_command(supd):
    d = started(supd.start(TREE))
    d.ctl("shutdown", check=0)
    assert d.exit_code() == 0


def test_socket_mode_and_second_daemon_refused(supd):
    d = started(supd.start(TREE))
    assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o600
    r = subprocess.run([AGENTSUPD, "-c", str(supd.dir), "--socket", d.socket],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 78
    assert "another agentsupd is running" in r.stderr
    d.ctl("status", check=0)  # the first is unharmed


def test_stale_socket_replaced(supd, tmp_path):
    sock = tmp_path / "ctl.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(sock))
    s.close()  # a socket file nobody listens on: what a crash leaves
    d = started(supd.start(TREE))
    assert d.socket == str(sock)
    d.ctl("status", check=0)


def test_other_uid_refused(supd):
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    shared = tempfile.mkdtemp(prefix="agentsup-uid-")
    os.chmod(shared, 0o755)
    d = started(supd.start(TREE, socket_path=os.path.join(shared, "ctl.sock")))
    os.chmod(d.socket, 0o666)  # let the connect through to SO_PEERCRED
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        AGENTSUPCTL, "--socket", d.socket, "status"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode != 0
    wait_until(lambda: any("refused a client of uid 65534" in l for l in d.lines),
               what="the refusal in the log")
    d.ctl("status", check=0)


def test_garbage_and_bad_requests(supd):
    d = started(supd.start(TREE))
    s = connect(d)
    s.sendall(frame({"t": "req", "id": 7, "cmd": "bogus"}))
    assert read_frame(s) == {"t": "res", "id": 7, "ok": False, "error": "unknown command"}
    s.sendall(frame({"t": "req", "id": 8, "cmd": "stop", "args": [1]}))
    assert read_frame(s)["error"] == "NAME must be a non-empty string"
    s.sendall(frame({"t": "req", "cmd": "status"}))
    assert "id" in read_frame(s)["error"]
    s.sendall(b"\x00\x00\x00\x05\xdf\xff\xff\xff\xff")  # a claim bomb
    r = read_frame(s)
    assert r["ok"] is False and "claims more" in r["error"]
    assert read_frame(s) is None  # and cut off
    s.close()
    s = connect(d)
    s.sendall(b"\xff\xff\xff\xff")  # 4 GiB frame
    assert "longer than the limit" in read_frame(s)["error"]
    s.close()
    d.ctl("status", check=0)


def test_slow_and_silent_clients_do_not_block(supd):
    d = started(supd.start(TREE))
    slow = connect(d)
    slow.sendall(b"\x00\x00")  # half a header, then nothing
    t0 = time.monotonic()
    nodes = d.ctl_json("status")  # served meanwhile
    assert time.monotonic() - t0 < 5
    assert len(nodes) == 6
    # supervision goes on too
    os.kill(by_path(nodes)["root/alpha"]["pid"], signal.SIGKILL)
    d.wait("restarting", "root/alpha")
    slow.close()


def test_client_that_never_reads_is_dropped(supd):
    d = started(supd.start(TREE))
    s = connect(d)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    req = frame({"t": "req", "id": 1, "cmd": "status", "args": []})
    sent = 0
    s.settimeout(0.2)
    try:  # keep asking, never read: the daemon must cut us off
        for _ in range(100000):
            s.sendall(req)
            sent += 1
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    wait_until(lambda: any("not reading its responses" in l for l in d.lines),
               what="the drop")
    s.close()
    d.ctl("status", check=0)


def test_hundreds_of_connections(supd):
    d = started(supd.start(TREE))
    conns = []
    for _ in range(300):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(d.socket)
        conns.append(c)
    wait_until(lambda: any("refusing more" in l for l in d.lines), what="the limit")
    # a worker failure is still handled while the table is full
    pid = [e.pid for e in d.seen if e.kind == "started" and e.path == "root/alpha"][-1]
    os.kill(pid, signal.SIGKILL)
    d.wait("restarting", "root/alpha")
    for c in conns:
        c.close()
    wait_until(lambda: d.ctl("status").returncode == 0, what="service after")


def test_events_file_reopened_on_sighup(supd):
    d = started(supd.start(TREE))
    rotated = supd.events.with_name("events.jsonl.1")
    os.rename(supd.events, rotated)  # what logrotate does
    d.signal(signal.SIGHUP)
    wait_until(supd.events.exists, what="a new events file")
    d.ctl("restart", "alpha", check=0)
    wait_until(lambda: '"path":"root/alpha"' in supd.events.read_text(),
               what="events in the new file")
    old = [json.loads(l) for l in rotated.read_text().splitlines()]
    new = [json.loads(l) for l in supd.events.read_text().splitlines()]
    assert any(e["kind"] == "started" for e in old)
    assert new[0]["seq"] > old[-1]["seq"]  # one sequence across files


def test_slow_follower_is_dropped(supd):
    """A follower that never reads is cut off at 1 MiB behind; the daemon's
    memory stays bounded and supervision goes on."""
    d = supd.start({"a.yaml": f"""
        supervisor: root
        intensity: 100000
        period: 1s
        children:
          - {{worker: loop, command: {sh('exit 1')}, backoff: none}}
        """})
    d.wait("started", "root/loop")
    s = connect(d)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(frame({"t": "req", "id": 1, "cmd": "events", "args": [True]}))
    # a crash loop makes events fast; the follower reads none of them
    wait_until(lambda: any("a slow follower, too far behind" in l for l in d.lines),
               timeout=120, what="the follower to be dropped")
    s.close()
    d.ctl("stop", "loop", check=0)
    d.ctl("status", check=0)
