"""Lifecycle: reload as a diff, orphans, and agentsupd as PID 1."""
import os
import shutil
import signal
import subprocess

import pytest

from conftest import AGENTSUPCTL, AGENTSUPD, TIMEOUT, Daemon, alive, sh, wait_until

SLEEP = sh("exec sleep 1000")
SLEEP2 = sh("exec sleep 2000")


def pids(d):
    return {n["path"]: n["pid"] for n in d.ctl_json("status")}


BASE = {
    "10-root.yaml": f"""
    supervisor: root
    intensity: 3
    children:
      - {{worker: keep, command: {SLEEP}}}
      - {{worker: change, command: {SLEEP}}}
      - {{worker: policy, command: {SLEEP}}}
    """,
    "20-extra.yaml": f"""
    worker: extra
    parent: root
    command: {SLEEP}
    """,
}


def test_reload_applies_a_diff(supd):
    d = supd.start(BASE)
    d.wait("started", "root/extra")
    before = pids(d)
    supd.write({
        "10-root.yaml": f"""
        supervisor: root
        intensity: 7
        children:
          - {{worker: keep, command: {SLEEP}}}
          - {{worker: fresh, command: {SLEEP}}}
          - {{worker: change, command: {SLEEP2}}}
          - {{worker: policy, command: {SLEEP}, shutdown: 1s, restart: transient}}
        """})
    (supd.dir / "20-extra.yaml").unlink()
    d.signal(signal.SIGHUP)
    ev = d.wait("reload_applied")
    assert ev.detail == ("added [root/fresh] removed [root/extra] "
                         "restarted [root/change] updated [root, root/policy]")
    d.wait("started", "root/change")
    after = pids(d)
    assert after["root/keep"] == before["root/keep"]
    assert after["root/policy"] == before["root/policy"]
    assert after["root/change"] != before["root/change"]
    assert "root/extra" not in after and not alive(before["root/extra"])
    assert after["root/fresh"] is not None
    status = {n["path"]: n for n in d.ctl_json("status")}
    assert status["root"]["intensity"] == 7
    assert status["root"]["window_restarts"] == 0  # a reload never counts
    assert status["root/policy"]["restart"] == "transient"
    assert [n["name"] for n in d.ctl_json("status")][1:] == [
        "keep", "fresh", "change", "policy"]


def test_reload_of_intensity_only_restarts_nobody(supd):
    d = supd.start(BASE)
    d.wait("started", "root/extra")
    before = pids(d)
    supd.write({"10-root.yaml": BASE["10-root.yaml"].replace("intensity: 3", "intensity: 9")})
    r = d.ctl("reload", check=0)
    assert "updated [root]" in r.stdout and "restarted []" in r.stdout
    assert pids(d) == before
    assert not [e for e in d.seen if e.kind in ("exited", "restarting")]


def test_broken_reload_refused_tree_untouched(supd):
    d = supd.start(BASE)
    d.wait("started", "root/extra")
    before = pids(d)
    supd.write({"30-bad.yaml": "worker: broken\ncommand: x\nrestart: sometimes\n",
                "20-extra.yaml": BASE["20-extra.yaml"].replace("sleep 1000", "sleep 9")})
    d.signal(signal.SIGHUP)
    ev = d.wait("reload_refused")
    assert f"{supd.dir}/30-bad.yaml:3:10: restart: unknown value" in ev.detail
    r = d.ctl("reload")
    assert r.returncode == 1 and "30-bad.yaml:3:10" in r.stderr
    assert pids(d) == before
    (supd.dir / "30-bad.yaml").unlink()
    d.ctl("reload", check=0)
    d.wait("reload_applied")
    d.wait("started", "root/extra")
    after = pids(d)
    assert after["root/extra"] != before["root/extra"]
    assert after["root/keep"] == before["root/keep"]


# A key or a name in a file with a newline and an escape sequence: every
# place that shows a config error to a person shows it escaped (the events
# file already had it as JSON, stderr's event line escaped), so the file
# forges no line of agentsupd's log or of agentsupctl's output, and --check
# prints a command's control characters as $'...'.
HOSTILE_KEY = 'worker: bad\ncommand: x\n"evil\\nFORGED\\e[2J": 1\n'


def test_config_errors_never_forge_a_line(supd):
    supd.write({"10-bad.yaml": HOSTILE_KEY})
    r = subprocess.run([AGENTSUPD, "--check", "-c", str(supd.dir)],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 78
    assert 'unknown key "evil\\nFORGED\\x1b[2J"' in r.stderr
    assert "\x1b" not in r.stderr
    assert not any(l.startswith("FORGED") for l in r.stderr.splitlines())
    d = supd.start({"10-bad.yaml": f"worker: ok\ncommand: {SLEEP}\n"})
    d.wait("started", "root/ok")
    supd.write({"10-bad.yaml": HOSTILE_KEY})
    r = d.ctl("reload")
    assert r.returncode == 1
    assert 'unknown key "evil\\nFORGED\\x1b[2J"' in r.stderr
    assert "\x1b" not in r.stderr and "\nFORGED" not in r.stderr
    env = {k: v for k, v in os.environ.items() if k != "AGENTSUP_SOCKET"}
    r = subprocess.run([AGENTSUPCTL, "-c", str(supd.dir), "status"],
                       capture_output=True, text=True, timeout=TIMEOUT,
                       env=env)  # errors said, then the default socket
    assert r.returncode == 69, r.stderr  # (the daemon's is the test's)
    assert 'unknown key "evil\\nFORGED\\x1b[2J"' in r.stderr
    assert "\x1b" not in r.stderr
    (supd.dir / "10-bad.yaml").write_text(
        'worker: ok\ncommand: ["/bin/e\\e[2J", "x\\ny", "it\'s"]\n')
    r = subprocess.run([AGENTSUPD, "--check", "-c", str(supd.dir)],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert "worker permanent: $'/bin/e\\x1b[2J' $'x\\ny' 'it'\\''s'\n" \
        in r.stdout


def test_reload_adds_a_subtree_in_position(supd):
    d = supd.start(BASE)
    d.wait("started", "root/extra")
    supd.write({"15-team.yaml": f"""
        supervisor: team
        parent: root
        strategy: one_for_all
        children:
          - {{worker: t1, command: {SLEEP}}}
          - {{worker: t2, command: {SLEEP}}}
        """})
    d.signal(signal.SIGHUP)
    d.wait("reload_applied")
    d.wait("started", "root/team/t2")
    names = [n["path"] for n in d.ctl_json("status")]
    # files in name order: 10-root's children, then 15-team, then 20-extra
    assert names == ["root", "root/keep", "root/change", "root/policy",
                     "root/team", "root/team/t1", "root/team/t2", "root/extra"]


def test_orphans_are_reaped_and_killed_with_their_group(supd, tmp_path):
    pidfile = tmp_path / "orphan"
    # the worker leaves a grandchild behind (double fork) and carries on
    orphaner = sh(f"""
        ( sleep 1000 & echo $! > {pidfile} ) &
        ( true & ) &
        exec sleep 1000
    """)
    d = supd.start({"a.yaml": f"worker: o\ncommand: {orphaner}\n"})
    d.wait("started", "root/o")
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="orphan")
    orphan = int(pidfile.read_text())

    def ppid():
        with open(f"/proc/{orphan}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])

    # adopted by agentsupd, the subreaper, once the subshell that wrote the
    # file has exited (the file can be read before that)
    wait_until(lambda: ppid() == d.proc.pid, what="agentsupd to adopt the orphan")

    def zombies():
        out = []
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open(f"/proc/{p}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if fields[0] == "Z" and int(fields[1]) == d.proc.pid:
                    out.append(int(p))
        return out

    wait_until(lambda: not zombies(), what="zombies to be reaped")
    d.ctl("stop", "o", check=0)
    d.wait("exited", "root/o")
    wait_until(lambda: not alive(orphan), what="the orphan to go with its group")


def _pid1_daemon(supd, files):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare")
    probe = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no PID namespaces here: " + probe.stderr.decode())
    supd.write(files)
    d = Daemon(supd.dir, supd.events, socket_path=str(supd.tmp / "ctl.sock"),
               argv_prefix=["unshare", "--pid", "--fork", "--kill-child"])
    supd.started.append(d)
    return d


def test_pid1_reaps_and_handles_signals(supd, tmp_path):
    marker = tmp_path / "whoami"
    worker = sh(f"""
        echo "$PPID" > {marker}
        for i in 1 2 3 4 5; do ( sleep 0.01 & ) ; done
        exec sleep 1000
    """)
    d = _pid1_daemon(supd, {"a.yaml": f"worker: w\ncommand: {worker}\n"})
    d.wait("started", "root/w")
    wait_until(lambda: marker.exists() and marker.read_text().strip(), what="worker")
    assert marker.read_text().strip() == "1"  # agentsupd is PID 1 in there
    nodes = d.ctl_json("status")
    assert nodes[1]["state"] == "running"
    # the five orphans exited: PID 1 must have reaped them all
    inner = _ns_pid1(d)

    def zombies():
        n = 0
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open(f"/proc/{p}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                n += fields[0] == "Z" and int(fields[1]) == inner
        return n

    wait_until(lambda: zombies() == 0, what="PID 1 to reap")
    os.kill(inner, signal.SIGUSR1)  # a drain works as PID 1 too
    d.wait("drain_done")
    assert d.exit_code() == 0


def test_pid1_sigterm(supd):
    d = _pid1_daemon(supd, {"a.yaml": f"worker: w\ncommand: {SLEEP}\n"})
    d.wait("started", "root/w")
    os.kill(_ns_pid1(d), signal.SIGTERM)
    d.wait("exited", "root/w")
    assert d.exit_code() == 0


def _ns_pid1(d):
    """The host pid of agentsupd inside the namespace (unshare's child)."""
    with open(f"/proc/{d.proc.pid}/task/{d.proc.pid}/children") as f:
        return int(f.read().split()[0])
