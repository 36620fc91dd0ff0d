"""Users and limits (DESIGN §13), and workers that do not steer the
supervisor: control requests from inside a worker's process tree are
refused unless its `control:` grants them."""
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

from conftest import AGENTSUPCTL, AGENTSUPD, TIMEOUT, sh, wait_until

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def written(path):
    wait_until(lambda: path.exists() and path.read_text().endswith("\n"),
               what=str(path))
    return path.read_text().split()


@root_only
def test_user_group_umask_and_limits(supd, tmp_path):
    out = tmp_path / "out"
    # stdout is opened before the switch: a root-only directory is fine
    supd.start({"a.yaml": f"""
        worker: w
        command: {sh("echo $(id -u) $(id -g) $(umask) $(ulimit -n) $(ulimit -c); exec sleep 1e5")}
        user: nobody
        group: nogroup
        umask: "027"
        limits: {{nofile: 123, core: 0, nproc: 4096}}
        stdout: {out}
        """}).wait("started", "root/w")
    uid, gid, umask, nofile, core = written(out)
    assert (uid, gid) == ("65534", "65534")
    assert umask == "0027" and nofile == "123" and core == "0"


@root_only
def test_a_worker_of_another_user_gets_its_home_user_and_shell(supd, tmp_path):
    """As systemd's User= does: HOME, USER, LOGNAME and SHELL are the
    user's, not agentsupd's (a worker of `agent` handed HOME=/root could
    not write its caches); the worker's own `environment:` still wins, and
    a worker that switches no user keeps agentsupd's."""
    outs = {w: tmp_path / w for w in ("w", "own", "same")}
    show = sh('echo "$HOME $USER $LOGNAME $SHELL"; exec sleep 1e5')
    d = supd.start({"a.yaml": f"""
        worker: w
        command: {show}
        user: nobody
        stdout: {outs["w"]}
        ---
        worker: own
        command: {show}
        user: nobody
        environment: {{HOME: /tmp}}
        stdout: {outs["own"]}
        ---
        worker: same
        command: {show}
        stdout: {outs["same"]}
        """}, env={"HOME": "/root", "USER": "root", "LOGNAME": "root",
                   "SHELL": "/bin/bash"})
    d.wait("started", "root/same")
    assert written(outs["w"]) == ["/nonexistent", "nobody", "nobody",
                                  "/usr/sbin/nologin"]
    assert written(outs["own"]) == ["/tmp", "nobody", "nobody",
                                    "/usr/sbin/nologin"]
    assert written(outs["same"]) == ["/root", "root", "root", "/bin/bash"]


@root_only
def test_a_worker_of_another_user_dies_with_agentsupd(supd, tmp_path):
    pidfile = tmp_path / "pid"
    d = supd.start({"a.yaml": f"""
        worker: w
        command: {sh("echo $$; exec sleep 1e5")}
        user: nobody
        stdout: {pidfile}
        """, "00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                 "  contain: none\n"})
    d.wait("started", "root/w")
    pid = int(written(pidfile)[0])
    d.kill()  # SIGKILL, no containment: PDEATHSIG, armed after the switch
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
               open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z",
               what="the worker to die")


def test_unknown_user_is_a_config_error(supd):
    supd.write({"a.yaml": "worker: w\ncommand: [sleep, '1']\nuser: no-such-user-x\n"})
    r = subprocess.run([AGENTSUPD, "--check", "-c", str(supd.dir)],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 78
    assert 'no such user "no-such-user-x"' in r.stderr


@root_only
def test_non_root_agentsupd_refuses_to_switch_users():
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv")
    d = tempfile.mkdtemp()
    try:
        os.chmod(d, 0o755)
        with open(os.path.join(d, "a.yaml"), "w") as f:
            f.write("worker: w\ncommand: [sleep, '1']\nuser: root\n")
        os.chmod(os.path.join(d, "a.yaml"), 0o644)
        r = subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup",
                            "--clear-groups", AGENTSUPD, "-c", d],
                           capture_output=True, text=True, timeout=TIMEOUT)
        assert r.returncode == 78, r.stderr
        assert "cannot switch to another user" in r.stderr
        assert "worker w: user:" in r.stderr
    finally:
        shutil.rmtree(d)


def bad_config(supd, text):
    supd.write({"a.yaml": text}, settings=False)
    r = subprocess.run([AGENTSUPD, "--check", "-c", str(supd.dir)],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 78
    return r.stderr


def test_bad_values_are_refused(supd):
    w = "worker: w\ncommand: [sleep, '1']\n"
    assert "umask: want an octal mode" in bad_config(supd, w + "umask: 999\n")
    assert "limits: unknown limit" in bad_config(supd, w + "limits: {files: 1}\n")
    assert "limits: nofile: want a count" in bad_config(supd, w + "limits: {nofile: 1k}\n")
    assert "max_memory: want a size" in bad_config(supd, w + "max_memory: lots\n")
    assert 'control: unknown command "kill"' in bad_config(supd, w + "control: [kill]\n")
    assert "contain: unknown value" in bad_config(
        supd, w + "---\nagentsupd:\n  contain: maybe\n")


# --- workers do not steer the supervisor ----------------------------------

def ctl_from_worker(supd, tmp_path, grant, commands, socket=True):
    """Worker `w` runs agentsupctl COMMAND for each command, writing each
    exit status and output; `sib` is its sibling. Without socket, the
    worker's agentsupctl finds the daemon by AGENTSUP_SOCKET alone."""
    res = tmp_path / "res"
    sock = f"--socket {supd.tmp / 'ctl.sock'}" if socket else ""
    lines = "; ".join(
        f"{AGENTSUPCTL} {sock} {c} >> {tmp_path}/out.{i} 2>&1; "
        f"echo $? >> {res}" for i, c in enumerate(commands))
    d = supd.start({"a.yaml": f"""
        worker: sib
        command: [sleep, "1e5"]
        ---
        worker: w
        command: {sh(f"sleep 0.2; {lines}; exec sleep 1e5")}
        {grant}
        """})
    d.wait("started", "root/w")
    wait_until(lambda: res.exists() and len(res.read_text().split()) == len(commands),
               what="agentsupctl runs")
    codes = [int(c) for c in res.read_text().split()]
    outs = [(tmp_path / f"out.{i}").read_text() for i in range(len(commands))]
    return d, codes, outs


def test_a_worker_cannot_stop_a_sibling_or_shut_down(supd, tmp_path):
    d, codes, outs = ctl_from_worker(supd, tmp_path, "", ["stop sib", "shutdown", "status"])
    assert codes[0] != 0 and "refused" in outs[0] and "root/w" in outs[0]
    assert codes[1] != 0 and "refused" in outs[1]
    assert codes[2] != 0 and "refused" in outs[2]  # nothing granted
    nodes = {n["path"]: n for n in d.ctl_json("status")}
    assert nodes["root/sib"]["state"] == "running"
    assert d.count("exited") == 0 and d.count("shutdown") == 0
    assert d.proc.poll() is None
    d.ctl("stop", "sib", check=0)  # the operator still can


def test_a_worker_granted_status_can_run_status_only(supd, tmp_path):
    d, codes, outs = ctl_from_worker(supd, tmp_path, "control: [status]",
                                     ["status", "stop sib"])
    assert codes[0] == 0 and "sib" in outs[0]
    assert codes[1] != 0 and "refused" in outs[1]
    assert "control: [stop]" in outs[1]


def test_a_granted_workers_agentsupctl_finds_the_daemon(supd, tmp_path):
    """A worker granted control gets AGENTSUP_SOCKET: with agentsupd on a
    socket of its own, the worker's agentsupctl looked for the default one
    (exit 69). One granted nothing gets none."""
    d, codes, outs = ctl_from_worker(supd, tmp_path, "control: [status]",
                                     ["status"], socket=False)
    assert codes == [0] and "sib" in outs[0], outs


def test_a_worker_granted_all_can_stop_a_sibling(supd, tmp_path):
    d, codes, outs = ctl_from_worker(supd, tmp_path, "control: all", ["stop sib"])
    assert codes == [0], outs
    d.wait("exited", "root/sib")


def test_a_setsid_descendant_is_still_the_worker(supd, tmp_path):
    if not os.access("/sys/fs/cgroup/unified", os.W_OK) and not os.access(
            "/sys/fs/cgroup", os.W_OK):
        pytest.skip("a cgroup tells an orphan apart")
    # setsid'd and orphaned (reparented to agentsupd): only its cgroup says
    d, codes, outs = ctl_from_worker(
        supd, tmp_path, "",
        ["status"])
    assert codes[0] != 0
    res = tmp_path / "res2"
    sock = supd.tmp / "ctl.sock"
    d.ctl("stop", "w", check=0)
    (supd.dir / "b.yaml").write_text(f"""worker: orphaner
command: {sh(f"( setsid sh -c 'sleep 0.3; {AGENTSUPCTL} --socket {sock} shutdown > {tmp_path}/o2 2>&1; echo $? > {res}' & ) ; exec sleep 1e5")}
""")
    d.ctl("reload", check=0)
    wait_until(lambda: res.exists() and res.read_text().strip(), what="orphan's agentsupctl")
    assert res.read_text().strip() != "0"
    assert "refused" in (tmp_path / "o2").read_text()
    assert d.proc.poll() is None


def test_a_worker_cannot_signal_the_daemon_to_stop_reload_or_drain(supd, tmp_path):
    """The control socket refused `shutdown`, but `kill -TERM $PPID` from
    the same worker stopped the whole tree, exit 0 (not restarted by
    systemd's Restart=on-failure). Signals from inside a worker's tree are
    refused as its control requests are; the operator's still act."""
    done = tmp_path / "done"
    # $PPID is agentsupd unless the worker is in a PID namespace (0 there:
    # the daemon is out of its reach, and kill 0 would be its own group)
    d = supd.start({"a.yaml": f"""
        worker: sib
        command: [sleep, "1e5"]
        ---
        worker: w
        command: {sh(f'if [ $PPID -gt 1 ]; then kill -TERM $PPID; kill -HUP $PPID; kill -USR1 $PPID; fi; echo $PPID > {done}; exec sleep 1e5')}
        """})
    d.wait("started", "root/w")
    ppid = int(written(done)[0])
    if ppid <= 1:
        pytest.skip("the worker runs in a PID namespace: agentsupd is out of its reach")
    for sig in ("SIGTERM", "SIGHUP", "SIGUSR1"):
        wait_until(lambda: any(f"ignored {sig} from" in l and "root/w" in l
                               for l in d.lines), what=f"{sig} ignored")
    assert d.proc.poll() is None
    assert (d.count("shutdown"), d.count("drain_started"),
            d.count("reload_applied")) == (0, 0, 0)
    nodes = {n["path"]: n for n in d.ctl_json("status")}
    assert nodes["root/sib"]["state"] == "running"
    d.signal(signal.SIGTERM)  # the operator's
    d.wait("shutdown", "root")
    assert d.exit_code() == 0


def test_a_worker_granted_shutdown_may_stop_the_daemon_by_signal(supd, tmp_path):
    d = supd.start({"a.yaml": f"""
        worker: w
        control: [shutdown]
        command: {sh('if [ $PPID -gt 1 ]; then kill -TERM $PPID; fi; exec sleep 1e5')}
        """})
    d.wait("started", "root/w")
    if not any("PID namespace" in l for l in d.lines):
        d.wait("shutdown", "root")
        assert d.exit_code() == 0


@root_only
def test_contain_cgroup_refuses_to_start_without_a_cgroup():
    """A non-root agentsupd cannot make cgroups here: `contain: cgroup`
    says so and exits 73; `contain: auto` runs without them."""
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv")
    d = tempfile.mkdtemp()
    try:
        os.chmod(d, 0o777)
        conf = os.path.join(d, "conf")
        os.mkdir(conf)
        os.chmod(conf, 0o755)
        for mode, want in (("cgroup", 73), ("auto", None)):
            with open(os.path.join(conf, "a.yaml"), "w") as f:
                f.write(f"worker: w\ncommand: [sleep, '1e5']\n---\n"
                        f"agentsupd:\n  contain: {mode}\n")
            os.chmod(os.path.join(conf, "a.yaml"), 0o644)
            p = subprocess.Popen(
                ["setpriv", "--reuid", "nobody", "--regid", "nogroup",
                 "--clear-groups", AGENTSUPD, "-c", conf,
                 "--socket", os.path.join(d, f"{mode}.sock")],
                stderr=subprocess.PIPE, text=True)
            if want is not None:
                assert p.wait(timeout=TIMEOUT) == want
                err = p.stderr.read()
                assert "contain: cgroup: no writable cgroup v2" in err, err
                continue
            lines = [p.stderr.readline()]
            while "started" not in lines[-1] and lines[-1]:
                lines.append(p.stderr.readline())
            assert "containment: no writable cgroup v2" in lines[0], lines
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=TIMEOUT) == 0
            p.stderr.close()
    finally:
        shutil.rmtree(d)


def test_a_reload_to_an_unknown_user_is_refused(supd):
    d = supd.start({"a.yaml": "worker: w\ncommand: [sleep, '1e5']\n"})
    first = d.wait("started", "root/w")
    (supd.dir / "a.yaml").write_text(
        "worker: w\ncommand: [sleep, '1e5']\nuser: no-such-user-y\n")
    r = d.ctl("reload")
    assert r.returncode != 0 and 'no such user "no-such-user-y"' in r.stderr
    ev = d.wait("reload_refused")
    assert "worker w: user:" in ev.detail
    nodes = {n["path"]: n for n in d.ctl_json("status")}
    assert nodes["root/w"]["pid"] == first.pid  # untouched


def a_user_with_supplementary_groups():
    import grp
    import pwd
    for g in grp.getgrall():
        for name in g.gr_mem:
            try:
                pw = pwd.getpwnam(name)
            except KeyError:
                continue
            if pw.pw_gid != g.gr_gid:
                return pw
    return None


@root_only
def test_a_numeric_user_gets_its_supplementary_groups(supd, tmp_path):
    """`user: "101"` looked the groups up by the digits, found no user of
    that name, and the worker had its primary group only."""
    pw = a_user_with_supplementary_groups()
    if pw is None:
        pytest.skip("no user here belongs to a group besides its own")
    by_name, by_id = tmp_path / "by-name", tmp_path / "by-id"
    cmd = sh("id -G; exec sleep 1e5")
    supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: a, command: {cmd}, user: {pw.pw_name}, stdout: {by_name}}}
          - {{worker: b, command: {cmd}, user: "{pw.pw_uid}", stdout: {by_id}}}
        """}).wait("started", "root/b")
    named, numeric = written(by_name), written(by_id)
    assert len(named) > 1  # its own group and another
    assert sorted(numeric) == sorted(named)


def test_a_templates_unknown_user_is_a_config_error(supd):
    """Only workers were checked: a pool's template with an unknown user
    passed --check and a start, and the first spawn's task failed as
    ENOENT, was dead-lettered and the pool gave up."""
    supd.write({"a.yaml": "supervisor: pool\ntemplate:\n  command: [sleep, '1']\n"
                          "  user: no-such-user-x\n"})
    r = subprocess.run([AGENTSUPD, "--check", "-c", str(supd.dir)],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 78, r.stderr
    assert 'template: user: no such user "no-such-user-x"' in r.stderr
