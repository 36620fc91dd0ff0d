"""sd_notify both ways, with programs written for systemd and left unchanged
(Debian's python3-sdnotify and python3-systemd), and agentsupd itself run
under a NOTIFY_SOCKET of the test's, as systemd would run it."""
import json
import os
import signal
import socket
import textwrap
import time

import pytest

from conftest import TIMEOUT, sh, wait_until

PY = "/usr/bin/python3"


def program(tmp_path, name, body):
    """A plain Python program (no agentsup module): its command."""
    p = tmp_path / f"{name}.py"
    p.write_text("import os, sys, time\n" + textwrap.dedent(body))
    return json.dumps([PY, str(p)])


def node(d, path):
    return {n["path"]: n for n in d.ctl_json("status")}[path]


def test_sdnotify_ready_and_status(supd, tmp_path):
    cmd = program(tmp_path, "sdn", """
        import sdnotify
        n = sdnotify.SystemdNotifier()
        n.notify("STATUS=warming up")
        time.sleep(0.2)
        n.notify("READY=1")
        n.notify("STATUS=serving 3 clients")
        time.sleep(1000)
    """)
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - worker: sdn
            command: {cmd}
            start_timeout: 10s
            notify: systemd
          - {{worker: after, command: {sh("exec sleep 1000")}}}
        """})
    ready = d.wait("ready", "root/sdn")
    # start order waits for the readiness systemd's way too
    assert d.wait("started", "root/after").seq > ready.seq
    wait_until(lambda: node(d, "root/sdn").get("status") == "serving 3 clients",
               what="STATUS= in agentsupctl status")
    assert "serving 3 clients" in d.ctl("status", check=0).stdout


def test_systemd_watchdog_keeps_alive_then_hang(supd, tmp_path):
    silent = tmp_path / "silent"
    cmd = program(tmp_path, "wd", f"""
        from systemd import daemon
        if os.environ.get("WATCHDOG_USEC") != "1000000":
            sys.exit(3)
        daemon.notify("READY=1")
        # pings for 2.5 heartbeat timeouts: alive all along
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            daemon.notify("WATCHDOG=1")
            time.sleep(0.1)
        # marked before the last ping: the hang, a timeout after it,
        # comes after the mark, however slowly this runs
        open({str(silent)!r}, "w").close()
        daemon.notify("WATCHDOG=1")
        time.sleep(1000)  # then silence: hung
    """)
    d = supd.start({"a.yaml": f"""
        worker: wd
        command: {cmd}
        restart: temporary
        heartbeat: 300ms
        heartbeat_timeout: 1s
        start_timeout: 10s
        notify: systemd
        """})
    d.wait("ready", "root/wd")
    d.wait("hang", "root/wd")
    # a hang declared while it pinged would have killed it (SIGUSR1) before
    # it could fall silent
    assert silent.exists()
    assert d.wait("exited", "root/wd").reason == "hang"


def start_trig(supd, cmd):
    """agentsupd over one temporary `notify: systemd` worker, root/trig."""
    return supd.start({"a.yaml": f"""
        worker: trig
        command: {cmd}
        restart: temporary
        start_timeout: 10s
        notify: systemd
        """})


def test_watchdog_trigger_is_a_hang(supd, tmp_path):
    cmd = program(tmp_path, "trig", """
        from systemd import daemon
        daemon.notify("READY=1")
        time.sleep(0.2)
        daemon.notify("WATCHDOG=trigger")
        time.sleep(1000)
    """)
    d = start_trig(supd, cmd)
    d.wait("ready", "root/trig")
    assert d.wait("hang", "root/trig").detail == "WATCHDOG=trigger"
    assert d.wait("exited", "root/trig").reason == "hang"


def test_repeated_watchdog_trigger_is_one_hang(supd, tmp_path):
    """Each datagram read before the exit emitted another hang event (and
    ran the hooks again) for one failure."""
    cmd = program(tmp_path, "trig", """
        import signal
        from systemd import daemon
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # the stack dump
        daemon.notify("READY=1")
        for _ in range(30):
            daemon.notify("WATCHDOG=trigger")
        time.sleep(1000)
    """)
    d = start_trig(supd, cmd)
    assert d.wait("exited", "root/trig").reason == "hang"
    assert d.count("hang", "root/trig") == 1


# the attacker, as nobody: ready itself (the victim starts after it), then a
# child of it joins the victim's process group (allowed: every worker is in
# agentsupd's session) and speaks for it
FORGER = """
import os, socket, time
addr = "\\0" + os.environ["NOTIFY_SOCKET"][1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1", addr)
victim = None
while victim is None:
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and b"victim" + b"-marker" in open(f"/proc/{p}/cmdline", "rb").read():
                victim = int(p)
        except OSError:
            pass
    time.sleep(0.05)
if os.fork() == 0:
    os.setpgid(0, os.getpgid(victim))
    s.sendto(b"READY=1\\nSTATUS=forged\\nWATCHDOG=trigger", addr)
    os._exit(0)
time.sleep(1000)
"""


def test_another_users_process_in_the_group_cannot_speak_for_it(supd):
    """It could: the victim was made ready, shown "forged", and killed as
    hung by a process of nobody."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a worker as another user")
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - worker: forger
            command: {json.dumps([PY, "-c", FORGER])}
            user: nobody
            start_timeout: 60s
            notify: systemd
          - worker: victim
            command: [{PY}, -c, "import time; time.sleep(1000)", victim-marker]
            start_timeout: 60s
            notify: systemd
        """})
    d.wait("ready", "root/forger")
    d.wait("started", "root/victim")
    # the first datagram nobody's is logged: the forgery, refused
    wait_until(lambda: any("not a notify worker's" in l for l in d.lines),
               what="the forged datagram dropped")
    assert d.count("ready", "root/victim") == 0
    assert d.count("hang", "root/victim") == 0
    assert node(d, "root/victim").get("status") != "forged"


def test_forked_child_in_the_group_speaks_for_the_worker(supd, tmp_path):
    cmd = program(tmp_path, "fork", """
        import sdnotify
        if os.fork() == 0:
            # a descendant, same process group, another pid
            sdnotify.SystemdNotifier().notify("READY=1")
        time.sleep(1000)
    """)
    d = supd.start({"a.yaml": f"""
        worker: fork
        command: {cmd}
        start_timeout: 10s
        notify: systemd
        """})
    started = d.wait("started", "root/fork")
    assert d.wait("ready", "root/fork").pid == started.pid


def test_extend_timeout_pushes_the_start_deadline(supd, tmp_path):
    extended = tmp_path / "extended"
    go = tmp_path / "go"
    cmd = program(tmp_path, "slow", f"""
        from systemd import daemon
        daemon.notify("EXTEND_TIMEOUT_USEC=600000000")
        open({str(extended)!r}, "w").close()
        while not os.path.exists({str(go)!r}):  # the test says when
            time.sleep(0.02)
        daemon.notify("READY=1")
        time.sleep(1000)
    """)
    d = supd.start({"a.yaml": f"""
        worker: slow
        command: {cmd}
        start_timeout: 3s
        notify: systemd
        """})
    started = d.wait("started", "root/slow")
    t0 = time.monotonic()
    wait_until(extended.exists, what="the extension sent")
    # past its start_timeout (by the test's clock, from after its start:
    # the subject, no event marks it), then a question the daemon answers
    # after its own timer for that deadline is due: a deadline not pushed
    # would have fired by then
    wait_until(lambda: time.monotonic() > t0 + 3 + 1,
               what="the first deadline to pass")
    st = node(d, "root/slow")
    assert (st["state"], st["pid"], st["restarts"]) == \
        ("starting", started.pid, 0), st
    assert d.count("start_timeout", "root/slow") == 0
    go.touch()
    ready = d.wait("ready", "root/slow")
    assert d.count("start_timeout", "root/slow") == 0
    assert ready.restarts == 0


def test_stopping_then_sigterm_is_an_expected_exit(supd, tmp_path):
    go = tmp_path / "go"
    cmd = program(tmp_path, "bye", f"""
        import signal
        from systemd import daemon
        daemon.notify("READY=1")
        while not os.path.exists({str(go)!r}):  # until its ready is seen
            time.sleep(0.02)
        daemon.notify("STOPPING=1")
        os.kill(os.getpid(), signal.SIGTERM)
    """)
    d = supd.start({"a.yaml": f"""
        worker: bye
        command: {cmd}
        restart: transient
        start_timeout: 10s
        notify: systemd
        """})
    d.wait("ready", "root/bye")
    go.touch()
    assert d.wait("exited", "root/bye").reason == "signal:SIGTERM"
    # announced: a transient worker is not restarted
    assert node(d, "root/bye")["state"] == "stopped"
    assert d.count("restarting", "root/bye") == 0


def test_plain_workers_get_no_notify_socket(supd, tmp_path):
    out = tmp_path / "env"
    d = supd.start({"a.yaml": f"""
        worker: plain
        command: {sh(f'echo "${{NOTIFY_SOCKET-unset}}" > {out}.tmp && mv {out}.tmp {out}; exec sleep 1000')}
        """}, env={"NOTIFY_SOCKET": "@agentsup-test-nobody",
                   "WATCHDOG_USEC": "5000000"})
    d.wait("started", "root/plain")
    wait_until(out.exists, what="the worker's environment")
    assert out.read_text().strip() == "unset"


# --- up: agentsupd under a NOTIFY_SOCKET of ours ---------------------------

class Systemd:
    """The systemd side: a datagram socket, messages read with deadlines."""

    def __init__(self, tmp_path, abstract):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"agentsup-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = str(tmp_path / "notify.sock")
            self.sock.bind(self.address)
        self.got = []

    def next(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no datagram in time; got {self.got}")
        self.sock.settimeout(left)
        try:
            msg = self.sock.recv(4096).decode()
        except socket.timeout:
            raise AssertionError(f"no datagram in time; got {self.got}")
        self.got.append(msg)
        return dict(line.split("=", 1) for line in msg.split("\n") if line)

    def wait(self, key, value="1", timeout=TIMEOUT):
        """The next message setting key=value (others are kept in got)."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.next(deadline)
            if m.get(key) == value:
                return m


@pytest.mark.parametrize("abstract", [False, True])
def test_agentsupd_notifies_systemd(supd, tmp_path, abstract):
    sd = Systemd(tmp_path, abstract)
    readied = tmp_path / "readied"
    slow = program(tmp_path, "slow", f"""
        import sdnotify
        time.sleep(0.5)
        open({str(readied)!r}, "w").close()
        sdnotify.SystemdNotifier().notify("READY=1")
        time.sleep(1000)
    """)
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: a, command: {sh("exec sleep 1000")}}}
          - {{worker: b, command: {slow}, notify: systemd, start_timeout: 10s}}
        """}, env={"NOTIFY_SOCKET": sd.address, "WATCHDOG_USEC": "400000"})
    m = sd.wait("READY")
    assert m["STATUS"] == "supervising 2 workers"
    assert readied.exists()  # READY=1 only once the whole tree is up
    # WATCHDOG=1 from the loop, every half interval
    sd.wait("WATCHDOG")
    sd.wait("WATCHDOG")
    d.signal(signal.SIGHUP)
    m = sd.wait("RELOADING")
    assert int(m["MONOTONIC_USEC"]) > 0
    assert sd.wait("READY")["STATUS"] == "supervising 2 workers"
    d.signal(signal.SIGTERM)
    assert sd.wait("STOPPING")["STATUS"].startswith("stopping")
    assert d.exit_code() == 0
    sd.sock.close()


def test_watchdog_pid_of_another_process_means_no_pings(supd, tmp_path):
    """WATCHDOG_PID naming another process: no WATCHDOG=1. A second
    agentsupd beside it, started after it, with the watchdog its own,
    pings three times meanwhile: the window was one pings come in (the
    test sent SIGTERM at READY, before any ping was due, and passed
    against a build that pinged: a test audit found it)."""
    sd = Systemd(tmp_path, False)
    (tmp_path / "own").mkdir()
    own = Systemd(tmp_path / "own", False)
    d = supd.start({"a.yaml": f"""
        worker: a
        command: {sh("exec sleep 1000")}
        """}, env={"NOTIFY_SOCKET": sd.address, "WATCHDOG_USEC": "100000",
                   "WATCHDOG_PID": "1"})
    sd.wait("READY")
    beside = supd.start(env={"NOTIFY_SOCKET": own.address,
                             "WATCHDOG_USEC": "100000"},
                        socket_path=str(tmp_path / "own" / "ctl.sock"))
    own.wait("READY")
    for _ in range(3):
        own.wait("WATCHDOG")
    d.signal(signal.SIGTERM)
    sd.wait("STOPPING")
    # everything up to STOPPING=1 arrived: no WATCHDOG=1 among it
    assert not any("WATCHDOG" in m for m in sd.got), sd.got
    beside.signal(signal.SIGTERM)
    assert beside.exit_code() == 0
    sd.sock.close()
    own.sock.close()


def ready_then_status(sd, status):
    """READY=1, then STATUS= saying status: in READY's own datagram when
    the worker had already failed by then, else in a later one (waiting
    for a later one only missed it in the first case)."""
    if sd.wait("READY").get("STATUS") != status:
        sd.wait("STATUS", status)


def test_a_worker_that_cannot_start_holds_up_no_ready(supd, tmp_path):
    """A worker with start_timeout that fails its start (its provider down)
    waits in its backoff: READY=1 all the same (systemd would otherwise
    fail the whole service at TimeoutStartSec), and STATUS= says that one
    is waiting to restart; "1 worker", not "1 workers"."""
    sd = Systemd(tmp_path, False)
    supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: a, command: {sh("exec sleep 1000")}}}
          - {{worker: b, command: {sh("exit 1")}, notify: systemd, start_timeout: 10s,
              backoff: {{initial: 30s}}}}
        """}, env={"NOTIFY_SOCKET": sd.address})
    ready_then_status(sd, "supervising 1 worker; 1 waiting to restart")
    sd.sock.close()


def test_status_follows_a_waiting_worker_stopped(supd, tmp_path):
    """STATUS= counts the workers down: one waiting out its backoff that
    the operator stops is no longer waiting to restart, though the number
    of workers running did not change."""
    sd = Systemd(tmp_path, False)
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: a, command: {sh("exec sleep 1000")}}}
          - {{worker: b, command: {sh("exit 1")}, backoff: {{initial: 30s}}}}
        """}, env={"NOTIFY_SOCKET": sd.address})
    ready_then_status(sd, "supervising 1 worker; 1 waiting to restart")
    d.ctl("stop", "b", check=0)
    sd.wait("STATUS", "supervising 1 worker")
    sd.sock.close()
