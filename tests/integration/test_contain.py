"""Containment (DESIGN §13, issue 15): a worker's processes end with it --
on its restart, its stop, agentsupd's SIGTERM and agentsupd's SIGKILL --
including those that setsid, double-fork or drop privileges, found by a
marker in their environment. Also the termination record."""
import fcntl
import json
import re
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
import uuid

import pytest

import conftest
from conftest import (AGENTSUPCTL, AGENTSUPD, SRC, TIMEOUT, Daemon, alive, sh,
                      wait_until)

CGROOT = "/sys/fs/cgroup/unified"


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.startswith("cgroup2 "):
                return pre.split()[4]
    return None


def writable_cgroup():
    m = cgroup2_mount()
    return m is not None and os.access(m, os.W_OK) and os.path.exists(
        os.path.join(m, "cgroup.kill")) is not None and os.geteuid() == 0


needs_cgroup = pytest.mark.skipif(not writable_cgroup(),
                                  reason="needs a writable cgroup v2 (root)")


def marked(mark, incarnation=None):
    """Live pids whose environment carries MARK=mark (and, if given, the
    worker incarnation that started them)."""
    want = f"CONTAIN_MARK={mark}".encode()
    inc = (f"AGENTSUP_INCARNATION={incarnation}".encode()
           if incarnation is not None else None)
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if want in env and (inc is None or inc in env) and alive(int(p)):
            out.append(int(p))
    return out


def settled(mark, incarnation):
    """The four long-lived descendants of one incarnation (all `sleep`),
    leaving out the subshells that fork them and exit at their own pace."""
    def comm(pid):
        try:
            with open(f"/proc/{pid}/comm") as f:
                return f.read().strip()
        except OSError:
            return None
    return [p for p in marked(mark, incarnation) if comm(p) == "sleep"]


def hostile(tmp_path, mark):
    """A worker leaving a setsid'd, a double-forked and a privilege-dropped
    descendant behind, then running on."""
    up = tmp_path / f"up-{mark}"
    return up, sh(f"""
        setsid sleep 1e5 &
        ( ( sleep 1e5 & ) & )
        setpriv --reuid nobody --regid nogroup --clear-groups sleep 1e5 &
        echo $AGENTSUP_INCARNATION >> {up}
        exec sleep 1e5
    """)


def start(supd, mark, tmp_path, settings="", extra=""):
    up, cmd = hostile(tmp_path, mark)
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    + settings,
                "a.yaml": f"worker: w\ncommand: {cmd}\n"
                          f"environment: {{CONTAIN_MARK: '{mark}'}}\n" + extra},
               settings=False)
    d = supd.start()
    d.wait("started", "root/w")
    wait_until(lambda: up.exists() and up.read_text().strip(), what="worker up")
    wait_until(lambda: len(settled(mark, 0)) == 4, what="the descendants")
    return d, up


def gone(mark, incarnation=None):
    try:
        wait_until(lambda: not marked(mark, incarnation), what="descendants gone")
    except AssertionError:
        for p in marked(mark, incarnation):
            os.kill(p, signal.SIGKILL)
        raise


@needs_cgroup
def test_restart_kills_the_old_descendants(supd, tmp_path):
    mark = uuid.uuid4().hex
    d, up = start(supd, mark, tmp_path)
    d.ctl("restart", "w", check=0)
    d.wait("started", "root/w")
    wait_until(lambda: len(settled(mark, 1)) == 4, what="the new descendants")
    new = settled(mark, 1)
    gone(mark, 0)
    assert all(alive(p) for p in new)  # the new ones are left alone


@needs_cgroup
def test_stop_kills_every_descendant(supd, tmp_path):
    mark = uuid.uuid4().hex
    d, _ = start(supd, mark, tmp_path)
    d.ctl("stop", "w", check=0)
    d.wait("exited", "root/w")
    gone(mark)


@needs_cgroup
def test_sigterm_of_agentsupd_kills_every_descendant(supd, tmp_path):
    mark = uuid.uuid4().hex
    d, _ = start(supd, mark, tmp_path)
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    gone(mark)
    assert not [n for n in os.listdir(cgroup2_mount())
                if n == f"agentsup.{d.proc.pid}"]


@needs_cgroup
def test_sigkill_of_agentsupd_kills_every_descendant(supd, tmp_path):
    mark = uuid.uuid4().hex
    d, _ = start(supd, mark, tmp_path)
    d.kill()  # SIGKILL: agentsupd does nothing more; its guard does
    gone(mark)
    wait_until(lambda: not os.path.exists(
        os.path.join(cgroup2_mount(), f"agentsup.{d.proc.pid}")),
        what="the cgroups removed")


@needs_cgroup
def test_a_guard_killed_alone_is_started_again(supd, tmp_path):
    """kill -9 of the guard alone (the OOM killer's pick, an operator's
    mistake): agentsupd reaped it as any orphan and said nothing, and a
    SIGKILL of agentsupd later left its workers' descendants running and
    its cgroups behind; found by an SRE's trial."""
    mark = uuid.uuid4().hex
    d, _ = start(supd, mark, tmp_path)
    m = [re.search(r"a guard \(pid (\d+)\)", l) for l in d.lines]
    old = int([x for x in m if x][0].group(1))
    os.kill(old, signal.SIGKILL)
    said = re.compile(rf"the guard \(pid {old}\) ended \(signal 9\): "
                      r"another started \(pid (\d+)\)")
    wait_until(lambda: any(said.search(l) for l in d.lines),
               what="a new guard")
    new = int([said.search(l) for l in d.lines if said.search(l)][0].group(1))
    wait_until(lambda: os.path.basename(os.readlink(f"/proc/{new}/exe"))
               == "agentsup-guard", what="the new guard exec'd")
    d.ctl("status", check=0)
    d.kill()  # SIGKILL: the new guard does what the old one would have
    gone(mark)
    wait_until(lambda: not os.path.exists(
        os.path.join(cgroup2_mount(), f"agentsup.{d.proc.pid}")),
        what="the cgroups removed")


@needs_cgroup
def test_a_crash_loop_leaks_nothing(supd, tmp_path):
    """The issue's case: 32 setsid'd sleepers leaked in 5 s."""
    mark = uuid.uuid4().hex
    supd.write({"a.yaml": f"""
        supervisor: top
        intensity: 100
        period: 1s
        children:
          - worker: w
            command: {sh("setsid sleep 1e5 & sleep 0.05; exit 1")}
            environment: {{CONTAIN_MARK: '{mark}'}}
            backoff: none
        """})
    d = supd.start()
    d.wait_count("exited", 5, "top/w")
    d.ctl("stop", "w", check=0)
    d.wait("exited", "top/w", detail="stopped")
    gone(mark)


@needs_cgroup
def test_cgroups_of_an_agentsupd_that_is_gone_are_removed(supd, tmp_path):
    """kill -9 of agentsupd and its guard together left agentsup.<pid>/ and
    its workers' empty cgroups for good; the next agentsupd removes those
    of an agentsupd that is gone, and leaves a live one's alone (its lock
    held, as agentsupd and then its guard hold theirs, whatever its pid).
    In a cgroup of the test's own: an agentsupd of a test running beside
    it would take the stale one first."""
    cg = os.path.join(cgroup2_mount(), f"agentsup-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(cg)
    p = subprocess.Popen(["true"])  # a pid no process has once reaped
    p.wait()
    stale = os.path.join(cg, f"agentsup.{p.pid}")
    live = os.path.join(cg, f"agentsup.{p.pid}.2")
    dirs = [stale, os.path.join(stale, "root:w@1"),
            live, os.path.join(live, "root:w@1")]
    for x in dirs:
        os.mkdir(x)
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        d, _ = _start_in_cgroup(supd, cg)
        assert not os.path.exists(stale)
        assert os.path.exists(dirs[3])
        assert any(f"removed {stale}, left by an agentsupd that is gone" in l
                   for l in d.lines), d.lines
        d.signal(signal.SIGTERM)
        assert d.exit_code() == 0
    finally:
        os.close(fd)
        _rmdir_tree(cg)


@needs_cgroup
def test_contain_none_makes_no_cgroup(supd, tmp_path):
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    "  contain: none\n",
                "a.yaml": f"worker: w\ncommand: {sh('exec sleep 1e5')}\n"},
               settings=False)
    d = supd.start()
    d.wait("started", "root/w")
    m = cgroup2_mount()
    assert m is None or not os.path.exists(os.path.join(m, f"agentsup.{d.proc.pid}"))
    assert any("process groups and PDEATHSIG only" in l for l in d.lines)


@needs_cgroup
def test_max_memory_stops_the_worker_with_reason_memory(supd, tmp_path):
    hog = json.dumps(["/usr/bin/python3", "-c",
                      "import time; b = bytearray(96 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1e5)"])
    supd.write({"a.yaml": f"worker: hog\ncommand: {hog}\nmax_memory: 32M\n"
                          "shutdown: 1s\n"})
    d = supd.start()
    ev = d.wait("memory", "root/hog")
    assert ev.reason == "memory" and "max_memory" in ev.detail
    ex = d.wait("exited", "root/hog")
    assert ex.reason == "memory"
    d.wait("started", "root/hog")  # a failure like any other: restarted


@needs_cgroup
def test_max_memory_set_by_a_reload_applies_to_the_running_worker(supd, tmp_path):
    """A reload that gives a running worker a max_memory (or changes it)
    applies to it at once: the limit was copied at its spawn, so a worker
    started without one was never watched (found in an audit)."""
    ready = tmp_path / "ready"
    hog = json.dumps(["/usr/bin/python3", "-c",
                      "import time; b = bytearray(96 << 20); b[::4096] = b'x' * len(b[::4096]); "
                      f"open({str(ready)!r}, 'w').close(); time.sleep(1e5)"])
    conf = f"worker: hog\ncommand: {hog}\nshutdown: 1s\n"
    supd.write({"a.yaml": conf})
    d = supd.start()
    pid = d.wait("started", "root/hog").pid
    wait_until(ready.exists, what="the worker's 96 MiB")
    supd.write({"a.yaml": conf + "max_memory: 32M\n"})
    d.ctl("reload", check=0)
    ev = d.wait("memory", "root/hog")
    assert ev.pid == pid and "max_memory 33554432" in ev.detail


def termlog_daemon(supd, tmp_path, worker):
    log = tmp_path / "termination.json"
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    f"  termination_log: {log}\n",
                "a.yaml": worker}, settings=False)
    return supd.start(), log


def test_termination_log_on_exit_0(supd, tmp_path):
    d, log = termlog_daemon(supd, tmp_path, f"worker: w\ncommand: {sh('exec sleep 1e5')}\n")
    d.wait("started", "root/w")
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    rec = json.loads(log.read_text())
    assert rec["status"] == 0 and rec["reason"] == "shutdown"
    assert rec["node"] == ""
    assert [e["kind"] for e in rec["events"]][:2] == ["started", "shutdown"]



def test_a_reload_moves_the_termination_log(supd, tmp_path):
    """As docs/config.md says: a reload applies a new termination_log (the
    record is written at exit, from the config then), and says nothing of
    it waiting for a restart."""
    d, old = termlog_daemon(supd, tmp_path,
                            f"worker: w\ncommand: {sh('exec sleep 1e5')}\n")
    d.wait("started", "root/w")
    new = tmp_path / "moved.json"
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    f"  termination_log: {new}\n"},
               settings=False)
    r = d.ctl("reload", check=0)
    assert "until a restart" not in r.stdout + r.stderr, r
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    assert json.loads(new.read_text())["reason"] == "shutdown"
    assert not old.exists()

def test_termination_log_on_exit_75_is_bounded(supd, tmp_path):
    long = "x" * 300
    d, log = termlog_daemon(supd, tmp_path, f"""
supervisor: top
intensity: 12
period: 1m
children:
  - worker: flaky
    command: {sh(f'echo {long} >/dev/null; exit 3')}
    backoff: none
""")
    assert d.exit_code() == 75
    text = log.read_text()
    assert len(text.encode()) <= 4096
    rec = json.loads(text)
    assert rec["status"] == 75 and rec["reason"] == "gave_up"
    assert rec["node"] == "top/flaky" and rec["supervisor"] == "top"
    kinds = [e["kind"] for e in rec["events"]]
    assert "gave_up" in kinds and kinds[-1] in ("stopped", "gave_up")
    assert len(kinds) >= 5


# --- the PID namespace (contain: pidns; what `auto` gives a host whose
# cgroup v2 is not writable) ----------------------------------------------

def pidns_permitted():
    if os.geteuid() != 0:
        return False
    try:
        return subprocess.run(["unshare", "--pid", "--fork", "true"],
                              capture_output=True, timeout=TIMEOUT).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_pidns = pytest.mark.skipif(not pidns_permitted(),
                                 reason="needs a PID namespace (root)")
PIDNS = "  contain: pidns\n"


def status_pid(d, path):
    return {n["path"]: n for n in d.ctl_json("status")}[path]["pid"]


def nspids(pid):
    """The pid of pid in each PID namespace it lives in, outermost first."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    return []


def init_pid(d):
    """agentsup-init's pid, from agentsupd's containment line."""
    for line in d.lines:
        m = re.search(r"held by agentsup-init \(pid (\d+)\)", line)
        if m:
            return int(m.group(1))
    raise AssertionError("no PID namespace: " + "\n".join(d.lines[-10:]))


@needs_pidns
def test_pidns_sigkill_of_agentsupd_kills_every_descendant(supd, tmp_path):
    mark = uuid.uuid4().hex
    d, _ = start(supd, mark, tmp_path, settings=PIDNS)
    init = init_pid(d)
    assert not os.path.exists(os.path.join(cgroup2_mount() or "/nonexistent",
                                           f"agentsup.{d.proc.pid}"))
    w = status_pid(d, "root/w")
    assert len(nspids(w)) == len(nspids(os.getpid())) + 1  # one level deeper
    d.kill()  # SIGKILL: the init dies with agentsupd, the kernel does the rest
    gone(mark)
    wait_until(lambda: not alive(init), what="the init gone")


def pgid(pid):
    """pid's process group, or None once it is gone."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


@needs_pidns
def test_pidns_restart_and_stop_end_the_worker_and_its_group(supd, tmp_path):
    """Without a cgroup, a restart ends the process group (the setpriv'd
    descendant too, whose PDEATHSIG was cleared); the setsid'd and
    double-forked ones end with agentsupd at the latest, orderly or not."""
    mark = uuid.uuid4().hex
    d, _ = start(supd, mark, tmp_path, settings=PIDNS)
    old = status_pid(d, "root/w")
    group = [p for p in marked(mark, 0) if os.getpgid(p) == old]
    assert len(group) == 3  # the worker, its double-forked and setpriv'd sleepers
    d.ctl("restart", "w", check=0)
    d.wait("started", "root/w")
    wait_until(lambda: len(settled(mark, 1)) == 4, what="the new descendants")
    wait_until(lambda: not any(alive(p) for p in group), what="the old group")
    new = status_pid(d, "root/w")
    d.ctl("stop", "w", check=0)
    d.wait("exited", "root/w", detail="stopped")
    wait_until(lambda: not alive(new), what="the stopped worker")
    # its group's SIGKILL follows the worker's exit: gone a moment later
    # (asserted at once, 2 runs in 5 failed on a loaded machine)
    wait_until(lambda: not [p for p in marked(mark) if pgid(p) == new],
               what="the stopped worker's group")
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    gone(mark)


@needs_pidns
def test_pidns_pids_status_shows_ours_the_worker_its_own(supd, tmp_path):
    """status and events show agentsupd's pids; the worker's getpid() (and
    so its hello) is its pid in the namespace; both name one process."""
    f = tmp_path / "pid"
    body = (f"import os, sys; sys.path.insert(0, {os.path.join(SRC, 'tools', 'python')!r}); "
            f"import agentsup; a = agentsup.Agent(); a.ready(); "
            f"open({str(f)!r}, 'w').write(str(os.getpid()))\n"
            f"while not a.draining: a.wait(1)")
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    + PIDNS,
                "a.yaml": "worker: w\nstart_timeout: 10s\ncommand: "
                          + json.dumps(["/usr/bin/python3", "-c", body]) + "\n"},
               settings=False)
    d = supd.start()
    ev = d.wait("ready", "root/w")
    wait_until(lambda: f.exists() and f.read_text(), what="the worker's pid")
    inner = int(f.read_text())
    assert status_pid(d, "root/w") == ev.pid
    ns = nspids(ev.pid)
    assert ns[0] == ev.pid and ns[-1] == inner and inner != ev.pid
    assert nspids(init_pid(d))[-1] == 1  # the init is the namespace's 1


@needs_pidns
def test_pidns_init_killed_is_an_event_and_the_workers_come_back(supd, tmp_path):
    mark = uuid.uuid4().hex
    d, _ = start(supd, mark, tmp_path, settings=PIDNS)
    old = init_pid(d)
    os.kill(old, signal.SIGKILL)
    ev = d.wait("containment_lost")
    assert ev.reason == "contain" and f"pid {old}" in ev.detail
    gone(mark, 0)  # the kernel killed the namespace: all of them
    d.wait("started", "root/w")  # in a new namespace
    wait_until(lambda: len(settled(mark, 1)) == 4, what="the new descendants")
    assert any("a new PID namespace" in l for l in d.lines)
    d.kill()
    gone(mark)


@needs_pidns
def test_pidns_a_second_loss_at_once_backs_off_and_recovers(supd, tmp_path):
    """An init lost twice within PIDNS_RETRY_MS: starts fail with EAGAIN
    (the machine's trouble: retried after backoff, not counted), then a new
    namespace; the tree never gives up."""
    f = tmp_path / "pid"
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    + PIDNS,
                "a.yaml": f"worker: w\ncommand: {sh(f'echo $$ > {f}; exec sleep 1e5')}\n"},
               settings=False)
    d = supd.start()
    d.wait("started", "root/w")
    os.kill(init_pid(d), signal.SIGKILL)
    d.wait("containment_lost")
    d.wait("started", "root/w")
    # the event can be read before the log line that names the new init
    # (the events file is read on any stderr line)
    def inits():
        return [int(m.group(1)) for m in
                (re.search(r"a new PID namespace, its init pid (\d+)", l)
                 for l in list(d.lines)) if m]
    wait_until(inits, what="the new init's line")
    second = inits()[-1]
    os.kill(second, signal.SIGKILL)
    d.wait("containment_lost")
    ev = d.wait("exited", "root/w", reason="spawn")
    assert "Resource temporarily unavailable" in ev.detail
    d.wait("started", "root/w")
    assert not [e for e in d.seen if e.kind == "gave_up"]
    assert d.proc.poll() is None


@needs_pidns
def test_pidns_an_orphan_may_not_steer(supd, tmp_path):
    """A setsid'd orphan in the namespace is no worker's by its ancestry,
    but it is inside the tree: refused like a worker."""
    out = tmp_path / "out"
    ctl = os.path.abspath(AGENTSUPCTL)
    cmd = sh(f"setsid sh -c '{ctl} --socket {supd.dir.parent / 'ctl.sock'} "
             f"shutdown > {out} 2>&1; echo rc=$? >> {out}' & exec sleep 1e5")
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    + PIDNS,
                "a.yaml": f"worker: w\ncommand: {cmd}\n"}, settings=False)
    d = supd.start()
    d.wait("started", "root/w")
    wait_until(lambda: out.exists() and "rc=" in out.read_text(), what="the ctl")
    assert "refused" in out.read_text() and "rc=0" not in out.read_text()
    assert d.proc.poll() is None


def ro_cgroup_prefix():
    """agentsupd run where cgroup v2 is mounted read-only (its own mount
    namespace): a container host's view."""
    return ("unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            f'mount -o remount,bind,ro {cgroup2_mount()} && exec "$@"', "sh")


@needs_pidns
@needs_cgroup
def test_auto_takes_the_pid_namespace_without_a_writable_cgroup(supd, tmp_path):
    mark = uuid.uuid4().hex
    up, cmd = hostile(tmp_path, mark)
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n",
                "a.yaml": f"worker: w\ncommand: {cmd}\n"
                          f"environment: {{CONTAIN_MARK: '{mark}'}}\n"},
               settings=False)
    d = Daemon(supd.dir, supd.events, argv_prefix=ro_cgroup_prefix())
    supd.started.append(d)
    d.wait("started", "root/w")
    wait_until(lambda: len(settled(mark, 0)) == 4, what="the descendants")
    init = init_pid(d)
    assert os.path.basename(os.readlink(f"/proc/{init}/exe")) == "agentsup-guard"
    d.kill()
    gone(mark)


@needs_cgroup
def test_the_guard_is_the_small_helper(supd, tmp_path):
    mark = uuid.uuid4().hex
    d, _ = start(supd, mark, tmp_path)
    m = [re.search(r"a guard \(pid (\d+)\)", l) for l in d.lines]
    guard = int([x for x in m if x][0].group(1))
    # forked, then exec'd: a moment later on a busy machine
    wait_until(lambda: os.path.basename(os.readlink(f"/proc/{guard}/exe"))
               == "agentsup-guard", what="the guard exec'd")
    with open(f"/proc/{guard}/maps") as f:
        if "libasan" in f.read():
            return  # the sanitizer build's helper carries the sanitizers
    with open(f"/proc/{guard}/status") as f:
        rss = [int(l.split()[1]) for l in f if l.startswith("VmRSS:")][0]
    assert rss < 1024  # kB: not agentsupd's memory


@needs_cgroup
def test_a_guard_another_user_could_write_is_not_run(supd, tmp_path,
                                                     monkeypatch):
    """An install moved by `cmake --install --prefix P` finds its guard in
    P/libexec beside P/sbin; but agentsupd (root, often) runs what it
    finds there, so a directory another user can write (a binary in
    /tmp/x finding /tmp/libexec) is not trusted: the fork stands in."""
    sbin, libexec = tmp_path / "p" / "sbin", tmp_path / "p" / "libexec"
    sbin.mkdir(parents=True)
    libexec.mkdir()
    build = os.path.abspath(os.environ.get("AGENTSUP_BUILD", "build"))
    exe, guard = sbin / "agentsupd", libexec / "agentsup-guard"
    exe.write_bytes(open(os.environ.get("AGENTSUPD", "build/agentsupd"), "rb").read())
    guard.write_bytes(open(os.path.join(build, "agentsup-guard"), "rb").read())
    exe.chmod(0o755)
    guard.chmod(0o755)
    monkeypatch.setattr(conftest, "AGENTSUPD", str(exe))
    for mode, trusted in ((0o755, True), (0o777, False)):
        libexec.chmod(mode)
        d = supd.start({"a.yaml": "worker: w\ncommand: [sleep, '1e5']\n"})
        d.wait("started", "root/w")
        m = [re.search(r"a guard \(pid (\d+)\)", l) for l in d.lines]
        m = [x for x in m if x]
        if trusted:  # forked, then exec'd: a moment later on a busy machine
            wait_until(lambda: os.readlink(f"/proc/{m[0].group(1)}/exe")
                       == str(guard), what="the guard exec'd")
        else:
            assert sum("no executable agentsup-guard" in l
                       for l in d.lines) == 1, d.lines
            assert not m or os.readlink(
                f"/proc/{m[0].group(1)}/exe") != str(guard)
        d.signal(signal.SIGTERM)
        assert d.exit_code() == 0


@needs_pidns
def test_without_the_helper_a_fork_holds_the_namespace(supd, tmp_path,
                                                       monkeypatch):
    """No agentsup-guard next to agentsupd (nor installed): said once, and
    the fork of agentsupd is the init, as good for SIGKILL."""
    lone = tmp_path / "bin"
    lone.mkdir()
    exe = lone / "agentsupd"
    exe.write_bytes(open(os.environ.get("AGENTSUPD", "build/agentsupd"), "rb").read())
    exe.chmod(0o755)
    libexec = [l for l in open(exe, "rb").read().split(b"\0")
               if l.endswith(b"/libexec")]
    if any(os.path.exists(os.path.join(p.decode(errors="replace"), "agentsup-guard"))
           for p in libexec):
        pytest.skip("agentsup-guard is installed")
    mark = uuid.uuid4().hex
    up, cmd = hostile(tmp_path, mark)
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    + PIDNS,
                "a.yaml": f"worker: w\ncommand: {cmd}\n"
                          f"environment: {{CONTAIN_MARK: '{mark}'}}\n"},
               settings=False)
    monkeypatch.setattr(conftest, "AGENTSUPD", str(exe))
    d = Daemon(supd.dir, supd.events)
    supd.started.append(d)
    d.wait("started", "root/w")
    wait_until(lambda: len(settled(mark, 0)) == 4, what="the descendants")
    assert sum("no executable agentsup-guard" in l for l in d.lines) == 1
    assert os.readlink(f"/proc/{init_pid(d)}/exe") == str(exe)
    d.kill()
    gone(mark)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root (to become nobody) and setpriv")
def test_contain_pidns_refuses_to_start_without_the_privilege():
    d = tempfile.mkdtemp()  # not under pytest's 0700 tree: nobody reads it
    try:
        os.chmod(d, 0o777)
        conf = os.path.join(d, "conf")
        os.mkdir(conf)
        os.chmod(conf, 0o755)
        with open(os.path.join(conf, "a.yaml"), "w") as f:
            f.write("worker: w\ncommand: [sleep, '1e5']\n---\n"
                    "agentsupd:\n  contain: pidns\n")
        os.chmod(os.path.join(conf, "a.yaml"), 0o644)
        p = subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup",
                            "--clear-groups", conftest.AGENTSUPD, "-c", conf,
                            "--socket", os.path.join(d, "s.sock")],
                           capture_output=True, text=True, timeout=TIMEOUT)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    assert p.returncode == 73, p.stderr
    assert "contain: pidns: no PID namespace (Operation not permitted)" in p.stderr


@needs_pidns
@needs_cgroup
def test_two_pid1_agentsupd_in_one_cgroup_keep_apart(supd, tmp_path):
    """Both are PID 1 of their namespace: both took agentsup.1 under the
    same cgroup, and the first to exit killed the other's workers (and
    removed its cgroups: every restart of the other then failed)."""
    from conftest import Daemon
    prefix = ["unshare", "--pid", "--fork", "--kill-child"]
    tree = ("agentsupd:\n  contain: cgroup\n  events_file: {ev}\n---\n"
            "worker: w\ncommand: [sleep, '1000']\n")
    supd.write({"a.yaml": tree.format(ev=supd.events)}, settings=False)
    a = Daemon(supd.dir, supd.events, socket_path=str(tmp_path / "a.sock"),
               argv_prefix=prefix)
    supd.started.append(a)
    bdir = tmp_path / "b" / "supervisor.d"
    bdir.mkdir(parents=True)
    bev = tmp_path / "b" / "events.jsonl"
    (bdir / "a.yaml").write_text(tree.format(ev=bev))
    b = Daemon(bdir, bev, socket_path=str(tmp_path / "b.sock"),
               argv_prefix=prefix)
    supd.started.append(b)
    wa = a.wait("started", "root/w").pid
    wb = b.wait("started", "root/w").pid
    def pid1(d):  # the daemon, PID 1 in its namespace: unshare's child
        with open(f"/proc/{d.proc.pid}/task/{d.proc.pid}/children") as f:
            return int(f.read().split()[0])

    os.kill(pid1(b), signal.SIGTERM)
    assert b.exit_code() == 0
    assert a.proc.poll() is None
    st = a.ctl_json("status")
    assert st[1]["state"] == "running" and st[1]["pid"] == wa, (st, wb)
    assert a.count("exited", "root/w") == 0
    os.kill(pid1(a), signal.SIGTERM)  # unshare itself ignores it
    assert a.exit_code() == 0


def _rmdir(path):
    """Remove an empty cgroup; whether it is still there."""
    try:
        os.rmdir(path)
        return False
    except OSError:
        return True


@needs_cgroup
def test_a_group_sigkill_at_start_spares_the_guard(supd, tmp_path):
    """The guard left agentsupd's process group only once it ran, after
    its exec: a SIGKILL of the group in that moment (a service manager
    stopping a unit as it starts) took it too, and the cgroups stayed. It
    is out of the group when the fork returns. The window is widened here
    by a guard helper that waits before it execs the real one."""
    from conftest import Daemon
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shutil.copy(AGENTSUPD, bindir / "agentsupd")
    real = os.path.join(os.path.dirname(AGENTSUPD), "agentsup-guard")
    slow = bindir / "agentsup-guard"
    slow.write_text(f"#!/bin/sh\n/bin/sleep 1\nexec {real} \"$@\"\n")
    slow.chmod(0o755)
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    "  contain: cgroup\n",
                "a.yaml": "worker: w\ncommand: [sleep, '1e5']\n"},
               settings=False)
    # the copy, beside the slow helper, run as the leader of its group
    d = Daemon(supd.dir, supd.events,
               argv_prefix=["/bin/sh", "-c",
                            f'shift; exec setsid {bindir}/agentsupd "$@"',
                            "sh"])
    wait_until(lambda: any("containment:" in l for l in d.lines),
               what="the guard started")
    os.killpg(d.proc.pid, signal.SIGKILL)  # the helper still sleeps
    d.proc.wait()
    top = os.path.join(cgroup2_mount(), f"agentsup.{d.proc.pid}")
    try:
        wait_until(lambda: not os.path.exists(top), what="the cgroups removed")
    finally:  # what a failure left: the worker, the cgroups
        if os.path.exists(top):
            with open(os.path.join(top, "cgroup.kill"), "w") as f:
                f.write("1")
            wait_until(lambda: all(not os.path.isdir(os.path.join(top, c))
                                   or not _rmdir(os.path.join(top, c))
                                   for c in os.listdir(top)),
                       what="the leftovers removed")
            os.rmdir(top)


@needs_cgroup
def test_a_sigkill_of_agentsupds_process_group_spares_the_guard(supd, tmp_path):
    """The guard was in agentsupd's process group: `kill -9 -PGID` (a shell
    killing a job, a service manager its group) took it too, and nothing
    killed the worker's cgroup: a setsid'd descendant lived on, and the
    cgroups stayed."""
    from conftest import Daemon
    mark = uuid.uuid4().hex
    up, cmd = hostile(tmp_path, mark)
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    "  contain: cgroup\n",
                "a.yaml": f"worker: w\ncommand: {cmd}\n"
                          f"environment: {{CONTAIN_MARK: '{mark}'}}\n"},
               settings=False)
    # setsid(1) execs agentsupd as the leader of a session and group
    d = Daemon(supd.dir, supd.events, argv_prefix=["setsid"])
    supd.started.append(d)
    d.wait("started", "root/w")
    wait_until(lambda: len(settled(mark, 0)) == 4, what="the descendants")
    top = os.path.join(cgroup2_mount(), f"agentsup.{d.proc.pid}")
    assert os.path.isdir(top)
    os.killpg(d.proc.pid, signal.SIGKILL)
    d.proc.wait()
    gone(mark)
    wait_until(lambda: not os.path.exists(top), what="the cgroups removed")


def _cgroup_of(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        return [line.strip()[3:] for line in f if line.startswith("0::")][0]


def _rmdir_tree(path):
    """A test cgroup and what is left under it, deepest first."""
    for root, dirs, _ in os.walk(path, topdown=False):
        for d in dirs:
            try:
                os.rmdir(os.path.join(root, d))
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def _start_in_cgroup(supd, cg, first=None):
    """agentsupd started inside the cgroup cg (a delegated unit's, as
    systemd's Delegate=yes gives it), after the process `first` if any."""
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    "  contain: cgroup\n",
                "a.yaml": "worker: w\ncommand: [sleep, '1e5']\n"},
               settings=False)
    procs = os.path.join(cg, "cgroup.procs")
    d = Daemon(supd.dir, supd.events,
               argv_prefix=["/bin/sh", "-c",
                            f'echo $$ > {procs} && exec "$@"', "sh"])
    supd.started.append(d)
    return d, d.wait("started", "root/w")


@needs_cgroup
def test_a_delegated_cgroup_holds_no_process_so_controllers_go_down(supd):
    """Under systemd's Delegate=yes agentsupd is alone in its unit's cgroup
    and made agentsup.<pid>/ in it beside itself: the cgroup then held a
    process, so no controller (memory, for max_memory) could be enabled for
    the workers' cgroups below (cgroup v2's no-internal-process rule:
    EBUSY). agentsupd moves into a leaf of its own first."""
    cg = os.path.join(cgroup2_mount(), f"agentsup-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(cg)
    try:
        d, w = _start_in_cgroup(supd, cg)
        rel = cg[len(cgroup2_mount()):]
        assert _cgroup_of(d.proc.pid) == rel + "/agentsupd"
        assert _cgroup_of(w.pid).startswith(rel + f"/agentsup.{d.proc.pid}/")
        with open(os.path.join(cg, "cgroup.procs")) as f:
            assert f.read() == ""
        controllers = open(os.path.join(cg, "cgroup.controllers")).read().split()
        if controllers:  # a domain controller to hand down, if the host has one
            with open(os.path.join(cg, "cgroup.subtree_control"), "w") as f:
                f.write("+" + controllers[0])
        d.signal(signal.SIGTERM)
        assert d.exit_code() == 0
        assert not os.path.exists(os.path.join(cg, f"agentsup.{d.proc.pid}"))
    finally:
        _rmdir_tree(cg)


@needs_cgroup
def test_a_shared_cgroup_is_left_as_it_is(supd):
    """In a cgroup shared with other processes (a shell's session scope)
    agentsupd moves nowhere: it is not its own to arrange."""
    cg = os.path.join(cgroup2_mount(), f"agentsup-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(cg)
    other = subprocess.Popen(["/bin/sh", "-c",
                              f'echo $$ > {cg}/cgroup.procs && exec sleep 1e5'])
    try:
        wait_until(lambda: _cgroup_of(other.pid) == cg[len(cgroup2_mount()):],
                   what="the other process in the cgroup")
        d, _ = _start_in_cgroup(supd, cg)
        assert _cgroup_of(d.proc.pid) == cg[len(cgroup2_mount()):]
        assert not os.path.exists(os.path.join(cg, "agentsupd"))
        d.signal(signal.SIGTERM)
        assert d.exit_code() == 0
    finally:
        other.kill()
        other.wait()
        _rmdir_tree(cg)


@needs_cgroup
def test_a_worker_that_nests_cgroups_leaks_none(supd, tmp_path):
    """A worker making a cgroup of its own below its one (a sandbox does,
    nsjail with cgroup v2) with a process in it: each restart left that
    cgroup, and its parent, for good; agentsupd's exit waited 6 s on them
    and left agentsup.<pid>/ behind. Now removed deepest first, and a
    cgroup its worker nested in is not taken again."""
    mark = uuid.uuid4().hex
    nest = tmp_path / "nest.sh"
    nest.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        cg={cgroup2_mount()}$(sed -n 's/^0:://p' /proc/self/cgroup)
        mkdir -p "$cg/inner"
        sh -c 'echo $$ > '"$cg"'/inner/cgroup.procs && exec sleep 1e5' &
        while [ -z "$(cat "$cg/inner/cgroup.procs")" ]; do sleep 0.01; done
        echo $AGENTSUP_INCARNATION >> {tmp_path}/up
        [ "$AGENTSUP_INCARNATION" -ge 3 ] && exec sleep 1e5
        exit 1
    """))
    nest.chmod(0o755)
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n",
                "a.yaml": f"""
        supervisor: t
        intensity: 100
        period: 1s
        children:
          - worker: nest
            command: [{str(nest)!r}]
            environment: {{CONTAIN_MARK: '{mark}'}}
            backoff: none
        """}, settings=False)
    d = supd.start()
    d.wait_count("started", 4, "t/nest")
    wait_until(lambda: (tmp_path / "up").read_text().split()[-1:] == ["3"],
               what="the fourth run")
    top = os.path.join(cgroup2_mount(), f"agentsup.{d.proc.pid}")

    def inner():
        return [r for r, _, _ in os.walk(top) if r.endswith("/inner")]
    # the running worker's; the three before removed with their parents
    wait_until(lambda: len(inner()) == 1, what="the old cgroups removed")
    assert len([c for c in os.listdir(top) if c.startswith("t:nest@")]) == 1
    d.proc.send_signal(signal.SIGTERM)
    assert d.exit_code() == 0
    gone(mark)
    try:
        wait_until(lambda: not os.path.exists(top),
                   what="agentsup.<pid>/ removed")
    finally:
        _rmdir_tree(top)


@needs_cgroup
def test_max_memory_counts_the_cgroups_a_worker_nests(supd, tmp_path):
    """Without the memory controller max_memory sums the RSS of the
    processes in the worker's cgroup: a child moved to a cgroup of the
    worker's own below it (a sandbox's) was not counted, and held 131 MB
    under a 50 MiB limit for ever. The cgroups below count too."""
    nest = tmp_path / "nesthog.sh"
    nest.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        cg={cgroup2_mount()}$(sed -n 's/^0:://p' /proc/self/cgroup)
        mkdir -p "$cg/inner"
        sh -c 'echo $$ > '"$cg"'/inner/cgroup.procs && exec /usr/bin/python3 -c "
        import time; b = bytearray(96 << 20); b[::4096] = b\\"x\\" * len(b[::4096]); time.sleep(1e5)"' &
        exec sleep 1e5
    """))
    nest.chmod(0o755)
    supd.write({"a.yaml": f"worker: hog\ncommand: [{str(nest)!r}]\n"
                          "max_memory: 32M\nshutdown: 1s\n"})
    d = supd.start()
    ev = d.wait("memory", "root/hog")
    assert ev.reason == "memory" and "max_memory" in ev.detail
    d.wait("exited", "root/hog")


@needs_cgroup
def test_a_cgroup_its_worker_nested_in_is_not_taken_again(supd, tmp_path):
    """An empty cgroup is kept for its worker's next start; one whose
    worker made a cgroup below it (empty by then) is removed with it and
    the next start gets a fresh one: a worker may have enabled controllers
    for its children there, after which the cgroup takes no process."""
    nest = tmp_path / "nest2.sh"
    nest.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        cg={cgroup2_mount()}$(sed -n 's/^0:://p' /proc/self/cgroup)
        [ "$AGENTSUP_INCARNATION" -ge 1 ] && mkdir "$cg/inner"
        basename "$cg" >> {tmp_path}/cgroups
        [ "$AGENTSUP_INCARNATION" -ge 3 ] && exec sleep 1e5
        exit 1
    """))
    nest.chmod(0o755)
    supd.write({"a.yaml": f"""
        supervisor: t
        intensity: 100
        period: 1s
        children:
          - {{worker: nest, command: [{str(nest)!r}], backoff: none}}
        """})
    d = supd.start()
    cgroups = tmp_path / "cgroups"
    wait_until(lambda: cgroups.exists() and len(cgroups.read_text().split()) == 4,
               what="four runs")
    names = cgroups.read_text().split()
    # the first run made none below: its cgroup was taken again; each run
    # after it nested one, so the next got a fresh cgroup
    assert names[0] == names[1], names
    assert len(set(names[1:])) == 3, names
    top = os.path.join(cgroup2_mount(), f"agentsup.{d.proc.pid}")
    assert sorted(c for c in os.listdir(top) if c.startswith("t:nest@")) \
        == [names[3]]
