"""agentsupd where the kernel or a seccomp profile refuses unshare(2) and
close_range(2) — a default Docker container on a kernel before 5.9. A spawn
shares the daemon's descriptor table only where the child can take its own
copy (probed once at start); elsewhere workers start as before."""
import os
import shutil
import signal
import time

import pytest

import conftest
from conftest import BUILD, Daemon, sh, stat_fields, wait_until

NOSHARE = os.path.abspath(os.path.join(BUILD, "noshare"))


@pytest.mark.skipif(not os.path.exists(NOSHARE), reason="noshare not built")
@pytest.mark.parametrize("contain", ["auto", "none"])
def test_workers_start_where_unshare_is_refused(supd, contain):
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    f"  contain: {contain}\n",
                "a.yaml": f"""
supervisor: root
children:
  - {{worker: a, command: {sh("exec sleep 1000")}}}
  - {{worker: b, command: {sh("exec sleep 1000")}}}
"""}, settings=False)
    d = Daemon(supd.dir, supd.events, argv_prefix=(NOSHARE,))
    supd.started.append(d)
    for name in ("a", "b"):
        ev = d.wait("started", f"root/{name}")
        assert os.path.exists(f"/proc/{ev.pid}")
    # running, not failing to set up (exit 126) and restarting
    d.ctl("restart", "a", check=0)
    d.wait("started", "root/a")
    assert not [e for e in d.seen if e.kind == "exited"
                and "setting up" in (e.get("detail") or "")]
    assert d.proc.poll() is None


def cpu_seconds(pid):
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ns_init(daemon_pid):
    """The child of agentsupd that is the 1 of its own PID namespace."""
    with open(f"/proc/{daemon_pid}/task/{daemon_pid}/children") as f:
        kids = [int(x) for x in f.read().split()]
    for k in kids:
        try:
            with open(f"/proc/{k}/status") as f:
                ns = [l.split()[1:] for l in f if l.startswith("NSpid:")][0]
        except (OSError, IndexError):
            continue
        if len(ns) > 1 and ns[-1] == "1":
            return k
    return None


@pytest.mark.skipif(not os.path.exists(NOSHARE) or os.geteuid() != 0,
                    reason="noshare not built, or not root (PID namespaces)")
def test_pidns_init_lost_where_nothing_is_closed_for_it(supd, tmp_path,
                                                        monkeypatch):
    """The hardest case for the workers' pidfds: close_range refused and no
    agentsup-guard helper, so a new PID namespace's init is a fork of
    agentsupd, made while the old namespace's workers are being reaped, and
    holding copies of their pidfds. Their epoll entries must go with their
    sessions: before, they stayed readable for the init's life, pointing at
    freed sessions, and the loop spun at full CPU; and that init kept every
    descriptor agentsupd had."""
    lone = tmp_path / "bin"  # agentsupd without its helper beside it
    lone.mkdir()
    shutil.copy(conftest.AGENTSUPD, lone / "agentsupd")
    monkeypatch.setattr(conftest, "AGENTSUPD", str(lone / "agentsupd"))
    kids = "".join(f"  - {{worker: w{i}, command: {sh('exec sleep 1000')}}}\n"
                   for i in range(8))
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    "  contain: pidns\n",
                "a.yaml": "supervisor: root\nintensity: 100\nchildren:\n" + kids},
               settings=False)
    d = Daemon(supd.dir, supd.events, argv_prefix=(NOSHARE,))
    supd.started.append(d)
    for i in range(8):
        d.wait("started", f"root/w{i}")
    wait_until(lambda: ns_init(d.proc.pid), what="the namespace's init")
    init = ns_init(d.proc.pid)
    os.kill(init, signal.SIGKILL)
    d.wait("containment_lost")
    back = set()
    while len(back) < 8:
        back.add(d.wait("started").path)
    wait_until(lambda: ns_init(d.proc.pid) not in (None, init),
               what="the new init")
    new = ns_init(d.proc.pid)
    fds = os.listdir(f"/proc/{new}/fd")
    assert len(fds) <= 5, fds  # stdio and its pipe, nothing of ours
    time.sleep(0.5)
    c0 = cpu_seconds(d.proc.pid)
    time.sleep(1.5)
    assert cpu_seconds(d.proc.pid) - c0 < 0.3  # idle, not spinning
    assert d.proc.poll() is None


@pytest.mark.skipif(not os.path.exists(NOSHARE), reason="noshare not built")
def test_workers_without_pidfds_are_all_reaped(supd):
    """Where no pidfd can be had (clone3 ENOSYS, CLONE_PIDFD refused), every
    SIGCHLD sweeps: 40 workers killed at once, their signals coalesced,
    are each restarted."""
    kids = "".join(f"  - {{worker: w{i}, command: {sh('exec sleep 1000')}, "
                   "backoff: none}\n" for i in range(40))
    supd.write({"a.yaml": "supervisor: root\nintensity: 1000\nchildren:\n"
                          + kids})
    d = Daemon(supd.dir, supd.events, argv_prefix=(NOSHARE, "--no-pidfd"))
    supd.started.append(d)
    old = {f"root/w{i}": d.wait("started", f"root/w{i}").pid
           for i in range(40)}
    assert any("no pidfd" in l for l in d.lines)
    for pid in old.values():
        os.kill(pid, signal.SIGKILL)
    new = {}
    while len(new) < len(old):
        e = d.wait("started")
        new[e.path] = e.pid
    assert not [p for p in old if new[p] == old[p]]
    assert d.proc.poll() is None


@pytest.mark.skipif(not os.path.exists(NOSHARE) or os.geteuid() != 0,
                    reason="noshare not built, or not root (cgroups)")
@pytest.mark.parametrize("refused", ["--no-pidfd", "--clone3-eperm"])
def test_cgroups_where_clone3_is_refused(supd, refused):
    """The cgroup probe at start is a child born in the probe cgroup
    (clone3); where clone3 is refused (ENOSYS, or EPERM as older Docker
    profiles answer it) it is a child that moves itself there, and
    containment is the same: each worker in a cgroup of its own, under
    agentsupd's."""
    from test_contain import cgroup2_mount, _cgroup_of
    if cgroup2_mount() is None or not os.access(cgroup2_mount(), os.W_OK):
        pytest.skip("needs a writable cgroup v2")
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    "  contain: cgroup\n",
                "a.yaml": f"""
supervisor: root
children:
  - {{worker: a, command: {sh("exec sleep 1000")}}}
"""}, settings=False)
    d = Daemon(supd.dir, supd.events, argv_prefix=(NOSHARE, refused))
    supd.started.append(d)
    pid = d.wait("started", "root/a").pid
    assert any("containment: a cgroup per worker" in l for l in d.lines), \
        d.lines
    own = _cgroup_of(pid)
    assert os.path.basename(os.path.dirname(own)) == f"agentsup.{d.proc.pid}", own
    assert d.proc.poll() is None
