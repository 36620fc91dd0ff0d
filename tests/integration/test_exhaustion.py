"""Spawn failures and resource exhaustion (issue 11): a tree survives a
5-second exhaustion of process slots or of descriptors (from its first
failed spawn to its last, as the events' times say) and recovers by itself
when it ends. A failed spawn (EAGAIN, EMFILE...) goes through backoff and
counts for no intensity, so agentsupd never exits 75 for it."""
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
from datetime import datetime

import pytest

from conftest import AGENTSUPCTL, TIMEOUT, Daemon, sh, wait_until

NOBODY = 65534
HOLD = 5.0  # seconds of failed spawns (the events' times) while exhausted

TREE = f"""
supervisor: root
intensity: 50
period: 10s
children:
  - worker: steady
    command: {sh("exec sleep 1000")}
  - worker: flaky
    command: {sh("sleep 0.2; exit 1")}
    backoff: {{initial: 100ms, max: 1s}}
"""


@pytest.fixture
def shared_dir():
    """A directory agentsupd can use as nobody (pytest's tmp is root's)."""
    d = tempfile.mkdtemp(prefix="agentsup-exhaust-")
    os.chmod(d, 0o755)
    os.chown(d, NOBODY, NOBODY)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write_tree(base):
    confdir = os.path.join(base, "supervisor.d")
    os.mkdir(confdir)
    events = os.path.join(base, "events.jsonl")
    with open(os.path.join(confdir, "00-settings.yaml"), "w") as f:
        f.write(f"agentsupd:\n  events_file: {events}\n")
    with open(os.path.join(confdir, "a.yaml"), "w") as f:
        f.write(textwrap.dedent(TREE))
    for p in (base, confdir):
        os.chown(p, NOBODY, NOBODY)
    from pathlib import Path
    return Path(confdir), Path(events)


def spawn_failures(d):
    return [e for e in d.seen
            if e.kind == "exited" and e.path == "root/flaky"
            and e.reason == "spawn"]


def exhausted(d):
    """Once the resource is gone: flaky's running process ends (exit 1),
    its next spawn fails, and so do the ones after it, through its backoff,
    until they span HOLD seconds (the daemon's own times: a slow host takes
    longer, never less)."""
    d.count("exited")  # every event read so far: the waits start after them
    d.cursor = d.seen[-1].seq
    for _ in range(5):  # the one running (its end perhaps not read yet),
        e = d.wait("exited", "root/flaky")  # then its spawn
        if e.reason == "spawn":
            break
    else:
        raise AssertionError("no spawn failed: " + repr(
            [(e.kind, e.reason, e.detail) for e in d.seen[-12:]]))
    assert "cannot start" in e.detail, e
    first = when(e)
    while when(e) - first < HOLD:
        e = d.wait("exited", "root/flaky")
        assert e.reason == "spawn", e


def when(e):
    return datetime.fromisoformat(e.time.replace("Z", "+00:00")).timestamp()


def finish(d):
    if d.proc.poll() is None:
        d.signal(signal.SIGTERM)
        assert d.exit_code() == 0
    for p in d.pids:
        if d.runs(p):
            os.kill(p, signal.SIGKILL)


def recovered(d, since, prefix=()):
    """flaky started again after `since` (an event seq), steady running."""
    while True:
        e = d.wait("started", "root/flaky")
        if e.seq > since:
            break
    assert d.proc.poll() is None, "agentsupd exited"
    r = subprocess.run([*prefix, AGENTSUPCTL, "--socket", d.socket, "status"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r  # every node as it should be


NPROC = 64


def as_nobody(nproc):
    return ("prlimit", f"--nproc={nproc}", "setpriv", f"--reuid={NOBODY}",
            f"--regid={NOBODY}", "--clear-groups", "--")


def test_process_slots_exhausted_for_5s(shared_dir):
    """agentsupd runs as nobody (root is exempt from RLIMIT_NPROC); for
    5 s of failed spawns its RLIMIT_NPROC is lowered to 1, so every fork
    it makes fails with EAGAIN exactly as when another process of its uid
    holds every slot (the kernel's check is the same: the uid's processes
    against the forker's limit). A helper that forks to fill the slots would race the
    daemon for each one a dying worker frees; this does not."""
    confdir, events = write_tree(shared_dir)
    d = Daemon(confdir, events, socket_path=os.path.join(shared_dir, "s"),
               argv_prefix=as_nobody(NPROC))
    try:
        d.wait("started", "root/steady")
        d.wait("started", "root/flaky")
        pid = d.proc.pid
        # as nobody: a process's limits are changed by its own uid
        subprocess.run([*as_nobody(NPROC), "prlimit", f"--pid={pid}",
                        f"--nproc=1:{NPROC}"], check=True)
        exhausted(d)
        subprocess.run([*as_nobody(NPROC), "prlimit", f"--pid={pid}",
                        f"--nproc={NPROC}:{NPROC}"], check=True)
        recovered(d, d.seen[-1].seq, as_nobody(NPROC))
        assert d.count("gave_up") == 0
    finally:
        finish(d)


def lowest_free_fd(pid):
    used = {int(x) for x in os.listdir(f"/proc/{pid}/fd")}
    n = 0
    while n in used:
        n += 1
    return n


def test_descriptors_exhausted_for_5s(shared_dir):
    """agentsupd with RLIMIT_NOFILE 64. First, a crowd of control clients
    cannot take the descriptors restarts need (the control server keeps a
    reserve). Then its descriptor limit is lowered to exactly what it holds
    for 5 s of failed spawns (as if something had taken the rest) and
    raised again."""
    confdir, events = write_tree(shared_dir)
    d = Daemon(confdir, events, socket_path=os.path.join(shared_dir, "s"),
               argv_prefix=("prlimit", "--nofile=64"))
    import socket
    try:
        d.wait("started", "root/steady")
        d.wait("started", "root/flaky")
        base = len(os.listdir(f"/proc/{d.proc.pid}/fd"))
        crowd = []
        for _ in range(100):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(d.socket)
            crowd.append(c)
        before = d.count("started", "root/flaky")
        d.wait_count("started", before + 3, "root/flaky")
        assert not spawn_failures(d)
        for c in crowd:
            c.close()
        pid = d.proc.pid
        wait_until(lambda: len(os.listdir(f"/proc/{pid}/fd")) <= base + 1,
                   what="the crowd's descriptors closed")
        # now nothing is left: every new descriptor is EMFILE
        limit = lowest_free_fd(pid)
        subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={limit}:64"],
                       check=True)
        exhausted(d)
        subprocess.run(["prlimit", f"--pid={pid}", "--nofile=64:64"],
                       check=True)
        recovered(d, d.seen[-1].seq)
        assert d.count("gave_up") == 0
    finally:
        finish(d)
