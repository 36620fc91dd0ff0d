"""Integration harness: the real agentsupd on a private config directory.

Each test writes its own supervisor.d/, starts the daemon, and waits for the
events it prints (one line each on stderr) with a deadline: no fixed sleeps.
Every test ends by checking that no worker outlived the daemon.
"""
import contextlib
import json
import os
import queue
import select
import signal
import sqlite3
import subprocess
import textwrap
import threading
import time

import pytest

AGENTSUPD = os.environ.get("AGENTSUPD", "build/agentsupd")
BUILD = os.environ.get("AGENTSUP_BUILD", "build")
AGENTSUPCTL = os.environ.get("AGENTSUPCTL", os.path.join(BUILD, "agentsupctl"))
SRC = os.environ.get("AGENTSUP_SRC", os.getcwd())
# Generous: sanitizer builds and a busy CI machine are slow.
TIMEOUT = float(os.environ.get("AGENTSUP_TEST_TIMEOUT", "20"))

def pytest_configure(config):
    config.addinivalue_line(
        "markers", "packaging: builds and checks what ships (the .deb, the "
        "image's build stage, the unit's prefixes) with its own build, never "
        "the build under test: run once, not again under ASan")


class Event(dict):
    def __getattr__(self, k):
        return self.get(k)


class Daemon:
    def __init__(self, confdir, events_file, extra_env=None, socket_path=None,
                 argv_prefix=()):
        self.confdir = confdir
        self.pid_namespace = "--pid" in argv_prefix
        self.socket = socket_path or str(confdir.parent / "ctl.sock")
        self.events_file = events_file
        self.events = queue.Queue()
        self.seen = []
        self.lines = []
        self.pids = set()
        self.starts = {}  # pid: its start time, to tell it from a reuse
        self.cursor = 0
        # its own events only: an earlier agentsupd's in the same file
        # (a restart in a test) matched a wait before this one listened
        try:
            st = os.stat(events_file)
            self.start_pos = (st.st_ino, st.st_size)
        except FileNotFoundError:
            self.start_pos = (None, 0)
        env = dict(os.environ, NO_COLOR="1")
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [*argv_prefix, AGENTSUPD, "-c", str(confdir), "--socket", self.socket],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.quiet = 0  # the reader's looks that found the pipe empty
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        # Each stderr line wakes us; its event is already in the JSON file.
        # Worker output may be any bytes: undecodable ones are replaced.
        pos = self.start_pos
        fd, part = self.proc.stderr.fileno(), b""
        while True:
            if not select.select([fd], [], [], 0.02)[0]:
                self.quiet += 1  # all that came is read (exit_code)
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            *whole, part = (part + chunk).split(b"\n")
            for line in whole:
                self.lines.append(line.decode(errors="replace"))
            pos = self._take_json(pos)
        if part:
            self.lines.append(part.decode(errors="replace"))
        self._take_json(pos)
        self.events.put(None)

    def _take_json(self, pos):
        """Read new lines from the events file; pos is (inode, offset), and
        a new inode (logrotate moved the file away) starts again at 0."""
        ino, off = pos
        try:
            with open(self.events_file) as f:
                st = os.fstat(f.fileno())
                if st.st_ino != ino:
                    ino, off = st.st_ino, 0
                f.seek(off)
                while True:
                    line = f.readline()
                    if not line.endswith("\n"):
                        return ino, off
                    off += len(line.encode())
                    ev = Event(json.loads(line))
                    if ev.kind == "started":
                        self.pids.add(ev.pid)
                        self.starts[ev.pid] = start_time(ev.pid)
                    self.events.put(ev)
        except FileNotFoundError:
            return ino, off

    def wait(self, kind, path=None, timeout=TIMEOUT, **match):
        """The first matching event after the one the last wait returned
        (events read meanwhile are kept, so none is missed)."""
        def matches(ev):
            return (ev.seq > self.cursor and ev.kind == kind
                    and (path is None or ev.path == path)
                    and all(ev.get(k) == v for k, v in match.items()))

        for ev in self.seen:
            if matches(ev):
                self.cursor = ev.seq
                return ev
        deadline = time.monotonic() + timeout
        while True:
            ev = self._next(deadline, f"{kind} {path or ''} {match}")
            if matches(ev):
                self.cursor = ev.seq
                return ev

    def _next(self, deadline, what):
        """Read one more event into seen, or fail once the deadline passes."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} in time; log:\n"
                                     + "\n".join(self.lines[-40:]))
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if ev is None:
                self.events.put(None)
                raise AssertionError(f"agentsupd exited waiting for {what}; log:\n"
                                     + "\n".join(self.lines[-40:]))
            self.seen.append(ev)
            return ev

    def _catch_up(self):
        """Every event read so far into seen; once agentsupd has exited,
        every event it wrote. count() saw only what an earlier wait had
        taken, so a "never happened" count after it could not fail."""
        if self.proc.poll() is not None:
            self.drain_events()
            return
        while True:
            try:
                ev = self.events.get_nowait()
            except queue.Empty:
                return
            if ev is None:
                self.events.put(None)
                return
            self.seen.append(ev)

    def count(self, kind, path=None):
        self._catch_up()
        return sum(1 for e in self.seen
                   if e.kind == kind and (path is None or e.path == path))

    def wait_count(self, kind, n, path=None, timeout=TIMEOUT):
        """Until n events of this kind have been seen in all (in any order)."""
        deadline = time.monotonic() + timeout
        while (have := self.count(kind, path)) < n:
            # counted once: a second count (it catches up) could take the
            # last one and leave _next waiting for one more for ever
            self._next(deadline, f"{n} {kind} (have {have})")

    def wait_detail(self, kind, part, n=1, timeout=TIMEOUT):
        """Until n events of this kind whose detail holds part have been
        seen in all (in any order)."""
        def have():
            return sum(1 for e in self.seen
                       if e.kind == kind and part in (e.detail or ""))
        deadline = time.monotonic() + timeout
        while have() < n:
            self._next(deadline, f"{n} {kind} saying {part!r} (have {have()})")

    def collect(self, until_kind, until_path=None, timeout=TIMEOUT):
        """Every event up to and including the one named."""
        start = self.cursor
        last = self.wait(until_kind, until_path, timeout=timeout)
        return sorted((e for e in self.seen if start < e.seq <= last.seq),
                      key=lambda e: e.seq)

    def ctl(self, *args, check=None):
        """Run agentsupctl against this daemon; returns CompletedProcess."""
        r = subprocess.run([AGENTSUPCTL, "--socket", self.socket, *args],
                           capture_output=True, text=True, timeout=TIMEOUT)
        # its own sanitizers, whatever the test expects of its exit
        assert not any(s in r.stderr for s in SANITIZER_SAYS), r.stderr
        if check is not None:
            assert r.returncode == check, (r.returncode, r.stdout, r.stderr)
        return r

    def ctl_json(self, *args):
        r = self.ctl("--json", *args, check=0)
        return json.loads(r.stdout)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def exit_code(self, timeout=TIMEOUT):
        """agentsupd's exit status, once it has exited and its last lines
        are read: the pipe at its end (a descendant left behind may hold
        it open) or found empty twice since (the first look may have
        begun before the exit)."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("agentsupd did not exit; log:\n" + "\n".join(self.lines[-40:]))
        looks, end = self.quiet, time.monotonic() + TIMEOUT
        # not an assertion: a descendant left behind that keeps writing
        # to the pipe is some tests' subject
        while (self.reader.is_alive() and self.quiet < looks + 2 and
               time.monotonic() < end):
            time.sleep(0.01)
        return code

    def drain_events(self):
        """Everything left once the daemon has exited."""
        self.reader.join(timeout=TIMEOUT)
        while True:
            try:
                ev = self.events.get_nowait()
            except queue.Empty:
                return
            if ev is not None:
                self.seen.append(ev)
            else:
                self.events.put(None)
                return

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def runs(self, pid):
        """pid is still the worker this agentsupd started, not a process
        that got its number since: pid_max is 32768 on the CI machine, and
        a parallel run wraps it within minutes, so a worker's number could
        be another test's agentsupd by the end (which the check that no
        worker outlived this one then SIGKILLed)."""
        st = self.starts.get(pid)
        return st is not None and alive(pid) and start_time(pid) == st


def fake_agentsupd(path, answer):
    """A control socket at path served in a thread, for as many clients as
    come until the socket returned is closed: each connection's request
    (a dict) read, answer(req)'s frames (dicts) sent, then it is held
    until the client hangs up."""
    import msgpack
    import socket
    import struct

    def frame(msg):
        body = msgpack.packb(msg)
        return struct.pack(">I", len(body)) + body

    def request(c):
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
            more = c.recv(65536)
            if not more:
                return None
            buf += more
        return msgpack.unpackb(buf[4:], raw=False)

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            with c:
                c.settimeout(TIMEOUT)
                try:
                    req = request(c)
                    if req is not None:
                        c.sendall(b"".join(frame(f) for f in answer(req)))
                        c.recv(1)  # until it hangs up
                except OSError:
                    pass

    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    os.chmod(path, 0o600)
    srv.listen(8)
    threading.Thread(target=serve, daemon=True).start()
    return srv


def stat_fields(pid):
    """/proc/PID/stat after the command's ")": [state, ppid, ...]."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def start_time(pid):
    """When pid started (clock ticks since boot), None once it is gone."""
    try:
        return stat_fields(pid)[19]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def alive(pid):
    """True if pid runs and is not a zombie."""
    try:
        return stat_fields(pid)[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or going
        return False


def catches(pid, sig, mask="SigCgt"):
    """True once pid has a handler for sig (a shell's trap is set a moment
    after it starts: a stop before then kills it at once)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(mask + ":"):
                    return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except (FileNotFoundError, ProcessLookupError):
        pass
    return False


def ignores(pid, sig):
    """True once pid ignores sig (a shell's `trap '' TERM`)."""
    return catches(pid, sig, "SigIgn")


@contextlib.contextmanager
def store_locked(path):
    """The state store's write lock held by another process (its writer
    then waits, past its busy timeout fails) until the block ends."""
    db = sqlite3.connect(str(path), timeout=5, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        db.execute("ROLLBACK")
        db.close()


def _tmpfs(tmp_path, name, size):
    """A tmpfs of size mounted at tmp_path/name (the test skipped where it
    cannot be)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    mnt = tmp_path / name
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                       str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    return mnt


@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 KiB tmpfs, unmounted after the daemons (ask for it before
    supd)."""
    mnt = _tmpfs(tmp_path, "tiny", "64k")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


@pytest.fixture
def small_fs(tmp_path):
    """A 256 KiB tmpfs, as tiny_fs."""
    mnt = _tmpfs(tmp_path, "small", "256k")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


def wait_until(pred, timeout=TIMEOUT, what="condition"):
    """For what the kernel does on its own (a process dying): poll briefly."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def supd(tmp_path):
    """Write config files, then start: supd.start({'a.yaml': text})."""
    class Factory:
        dir = tmp_path / "supervisor.d"
        started = []
        tmp = tmp_path

        events = tmp_path / "events.jsonl"

        def write(self, files, settings=True):
            self.dir.mkdir(exist_ok=True)
            if settings:
                (self.dir / "00-settings.yaml").write_text(
                    f"agentsupd:\n  events_file: {self.events}\n")
            for name, text in files.items():
                (self.dir / name).write_text(textwrap.dedent(text))

        def start(self, files=None, env=None, socket_path=None):
            if files:
                self.write(files)
            d = Daemon(self.dir, self.events, env, socket_path)
            self.started.append(d)
            return d

    factory = Factory()
    factory.started = []
    yield factory
    # every daemon stopped before any check: a check failing must not
    # leave the next one running, nor find its workers in pids reused
    for d in factory.started:
        # an orderly end first (as an operator would), SIGKILL if it hangs
        if d.proc.poll() is None:
            d.signal(signal.SIGTERM)
            try:
                d.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                d.kill()
        d.drain_events()
    outlived = [p for d in factory.started for p in outlived_by(d)]
    assert not outlived, f"workers outlived agentsupd: {outlived}"
    reports = [line for d in factory.started for line in sanitizer_report(d)]
    assert not reports, ("a sanitizer spoke in agentsupd's log (agentsupd's "
                         "or a worker's):\n" + "\n".join(reports))


def outlived_by(d):
    """The workers of d, an agentsupd that has exited, still running a
    moment later: SIGKILLed, and returned."""
    if d.pid_namespace:
        # its pids are the namespace's, meaningless here; the kernel
        # kills everything in it when its PID 1 exits
        return []
    try:  # PDEATHSIG and group kills are asynchronous: give them a moment
        wait_until(lambda: not any(d.runs(p) for p in d.pids), timeout=5)
    except AssertionError:
        pass
    leftover = [p for p in d.pids if d.runs(p)]
    for p in leftover:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return leftover


SANITIZER_SAYS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                  "runtime error:", "WARNING: AddressSanitizer")


def sanitizer_report(d):
    """The lines of an ASan, LSan or UBSan report in what agentsupd wrote
    (its stderr, its workers' lines too), with what comes around it: a
    crash or a leak in agentsupd, or in a C worker of the sanitizer build,
    under a test that stops it without looking at how it exited (most do)
    failed nothing before."""
    for i, line in enumerate(d.lines):
        if any(s in line for s in SANITIZER_SAYS):
            return d.lines[max(0, i - 5):i + 60]
    return []


def sh(script):
    """A worker command running a POSIX shell script (YAML flow list)."""
    return json.dumps(["/bin/sh", "-c", textwrap.dedent(script).strip()])


def ready_when(path):
    """A worker command (YAML flow list) for `notify: systemd`: READY=1 once
    path exists, then it runs; its supervisor's start waits that long."""
    return json.dumps(["/usr/bin/python3", "-c", textwrap.dedent(f"""
        import os, time, sdnotify
        while not os.path.exists({str(path)!r}):
            time.sleep(0.02)
        sdnotify.SystemdNotifier().notify("READY=1")
        time.sleep(1000)
        """)])


def waiting_team(go):
    """A tree whose supervisor team starts until go exists (gate not ready
    till then), its first child, bad, failing its first start meanwhile:
    its restart waits for team's start to end."""
    bad = sh('[ "$AGENTSUP_INCARNATION" = 0 ] && exit 1; exec sleep 1000')
    return {"a.yaml": f"""
        supervisor: root
        children:
          - supervisor: team
            children:
              - {{worker: bad, command: {bad}}}
              - {{worker: gate, command: {ready_when(go)}, notify: systemd,
                  start_timeout: 120s}}
        """}


def flapper_team(go):
    """A tree whose supervisor team starts until go exists (gate not ready
    till then), then has a child, flap, that fails its start each time
    with no backoff: never out of starting or stopping for a look."""
    return {"a.yaml": f"""
        supervisor: root
        children:
          - supervisor: team
            intensity: 1000
            period: 1s
            children:
              - {{worker: gate, command: {ready_when(go)}, notify: systemd,
                  start_timeout: 120s}}
              - {{worker: flap, command: {sh("exec sleep 300")},
                  start_timeout: 1s, backoff: none}}
        """}
