"""env_file: a worker's environment read from files at each of its starts,
as systemd's EnvironmentFile= and docker's --env-file: an API key kept out
of the config and rotated by editing its file and restarting the worker."""
import json
import os
import signal
import subprocess
import threading

import pytest

from conftest import AGENTSUPD, TIMEOUT, sh, wait_until


def env_worker(out, names):
    """A worker that writes the variables it was given, as JSON, to out."""
    fields = ", ".join(f'"{n}": os.environ.get("{n}")' for n in names)
    return json.dumps(["/usr/bin/python3", "-c",
                       f"import json, os, time; "
                       f"json.dump({{{fields}}}, open('{out}.tmp', 'w')); "
                       f"os.rename('{out}.tmp', '{out}'); time.sleep(300)"])


def read_when_written(path):
    wait_until(lambda: path.exists(), what=f"{path} written")
    got = json.loads(path.read_text())
    path.unlink()
    return got


def test_files_layered_and_read_again_at_each_start(supd):
    work = supd.tmp / "work"
    work.mkdir()
    (work / ".env").write_text(
        "# the provider's key\n"
        "export API_KEY=sk-first#1\n"
        "MODEL = 'small'\n"
        "SHARED=from-file\n"
        "GREETING=\"a \\\"quoted\\\" line\"\n")
    (work / "override.env").write_text("MODEL=large\n")
    out = supd.tmp / "env.json"
    d = supd.start({"w.yaml": f"""
        worker: agent
        directory: {work}
        env_file: [.env, -missing.env, override.env]
        environment: {{SHARED: from-config}}
        command: {env_worker(out, ["API_KEY", "MODEL", "SHARED", "GREETING", "HOME"])}
        """}, env={"HOME": "/from/agentsupd", "MODEL": "tiny"})
    d.wait("started", "root/agent")
    assert read_when_written(out) == {
        "API_KEY": "sk-first#1",      # a # is the value's
        "MODEL": "large",             # the later file over the earlier,
        "SHARED": "from-config",      # environment: over the files,
        "GREETING": 'a "quoted" line',
        "HOME": "/from/agentsupd"}    # agentsupd's own for the rest
    # rotated: the next start reads it again, no reload
    (work / ".env").write_text("API_KEY=sk-second\n")
    d.ctl("restart", "agent", check=0)
    d.wait("started", "root/agent")
    got = read_when_written(out)
    assert got["API_KEY"] == "sk-second" and got["MODEL"] == "large", got


def test_a_file_that_cannot_be_read_fails_the_start_and_says_which(supd):
    """No such file, a FIFO (never opened blocking: the loop goes on), a
    line that is not KEY=VALUE: the start fails like any failure, through
    its backoff, its event naming the file; once the file is right, the
    next retry starts it."""
    env = supd.tmp / "agent.env"
    fifo = supd.tmp / "fifo.env"
    os.mkfifo(fifo)
    out = supd.tmp / "env.json"
    d = supd.start({"w.yaml": f"""
        supervisor: root
        intensity: 1000
        children:
          - worker: agent
            env_file: {env}
            backoff: {{initial: 50ms, max: 200ms}}
            command: {env_worker(out, ["API_KEY"])}
          - worker: piped
            env_file: {fifo}
            backoff: {{initial: 50ms, max: 200ms}}
            command: [sleep, '300']
          - {{worker: idle, command: [sleep, '300']}}
        """})
    d.wait("started", "root/idle")
    d.wait_detail("exited", f"cannot start: env_file {env}: No such file")
    d.wait_detail("exited", f"cannot start: env_file {fifo}: not a regular file")
    assert d.ctl("status", "idle").returncode == 0  # the loop never waited
    env.write_text("API_KEY=one\nnot a line\n")
    d.wait_detail("exited", f"env_file {env}: line 2: no '='")
    env.write_text("API_KEY=two\n")
    d.wait("started", "root/agent")
    assert read_when_written(out) == {"API_KEY": "two"}
    assert d.count("started", "root/piped") == 0


def test_a_tasks_template_and_its_spawn_env(supd):
    """A pool's tasks read the template's env_file; a spawn's --env is set
    over it."""
    (supd.tmp / "pool.env").write_text("API_KEY=pool-key\nTAG=file\n")
    out = supd.tmp / "task.json"
    d = supd.start({"w.yaml": f"""
        supervisor: root
        children:
          - supervisor: pool
            template:
              env_file: {supd.tmp / 'pool.env'}
              command: {env_worker(out, ["API_KEY", "TAG"])}
          - {{worker: idle, command: [sleep, '300']}}
        """})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "k", "--env", "TAG=spawn", check=0)
    assert read_when_written(out) == {"API_KEY": "pool-key", "TAG": "spawn"}


def test_a_root_only_file_for_a_worker_that_runs_as_another_user(supd):
    """agentsupd reads the file (it may be root's alone, 0600), the worker
    running as nobody gets its values but cannot read the file itself."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a worker as nobody")
    secret = supd.tmp / "secret.env"
    secret.write_text("API_KEY=root-only\n")
    secret.chmod(0o600)
    out = supd.tmp / "out"  # stdout is opened before the switch
    d = supd.start({"w.yaml": f"""
        worker: agent
        user: nobody
        env_file: {secret}
        stdout: {out}
        stderr: {out}
        command: {sh(f'echo "key $API_KEY"; cat {secret}; echo done; exec sleep 300')}
        """})
    d.wait("started", "root/agent")
    wait_until(lambda: out.exists() and "done" in out.read_text(),
               what="the worker's lines")
    lines = out.read_text().splitlines()
    assert lines[0] == "key root-only", lines
    assert "Permission denied" in lines[1], lines


def test_check_warns_of_a_file_it_cannot_read(supd, tmp_path):
    """--check reads the env_files a start would (as its own user: a
    warning, since agentsupd may run as another), so a typo in a path is
    seen before the worker fails to start."""
    (tmp_path / "ok.env").write_text("A=1\n")
    (tmp_path / "bad.env").write_text("A=1\nnot a line\n")
    supd.write({"w.yaml": f"""
        supervisor: root
        children:
          - {{worker: good, env_file: {tmp_path / 'ok.env'}, command: [true]}}
          - {{worker: typo, env_file: {tmp_path / 'nope.env'}, command: [true]}}
          - {{worker: maybe, env_file: '-{tmp_path / 'nope.env'}', command: [true]}}
          - supervisor: pool
            template: {{env_file: {tmp_path / 'bad.env'}, command: [true]}}
          - {{worker: many, instances: 40, env_file: {tmp_path / 'nope.env'},
              command: [true]}}
        """})
    r = subprocess.run([AGENTSUPD, "-c", str(supd.dir), "--check"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    warnings = [l for l in r.stderr.splitlines() if "warning" in l]
    assert len(warnings) == 2, r.stderr
    # the 40 copies of `many` read the file `typo` reads: said once
    assert f"root/typo (and 40 more): env_file {tmp_path / 'nope.env'}: No such file" in warnings[0]
    assert f"root/pool/(template): env_file {tmp_path / 'bad.env'}: line 2" in warnings[1]


def test_check_warns_of_a_directory_or_command_a_start_cannot_use(
        supd, tmp_path):
    """A program whose directory is missing, or whose command is not
    found, fails at every start and spends its supervisor's intensity
    within a second: a folder of lone files went down whole (exit 75)
    right after a reload `--check` had passed (found by an SRE's trial).
    --check warns of both, as a start would look them up."""
    (tmp_path / "run.sh").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "run.sh").chmod(0o755)
    (tmp_path / "data.txt").write_text("")
    supd.write({"w.yaml": f"""
        supervisor: root
        children:
          - {{worker: ok, command: [sleep, '1']}}
          - {{worker: rel, directory: {tmp_path}, command: [./run.sh]}}
          - {{worker: nodir, directory: {tmp_path / 'gone'}, command: [true]}}
          - {{worker: typo, command: [slep, '1']}}
          - {{worker: notexec, command: [{tmp_path / 'data.txt'}]}}
          - {{worker: ownpath, environment: {{PATH: {tmp_path}}},
              command: [run.sh]}}
        """})
    r = subprocess.run([AGENTSUPD, "-c", str(supd.dir), "--check"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    warnings = [l for l in r.stderr.splitlines() if "warning" in l]
    assert len(warnings) == 3, r.stderr
    assert f"root/nodir: directory {tmp_path / 'gone'}: No such file" in \
        warnings[0]
    assert "root/typo: command slep: not found, or not executable in its " \
        "PATH" in warnings[1]
    assert f"root/notexec: command {tmp_path / 'data.txt'}: not found, or " \
        "not executable (its starts" in warnings[2]


def test_many_files_of_many_keys_do_not_stall_the_loop(supd):
    """16 files of 1,024 keys each (the bounds), keys alike but for their
    ends, some set again in a later file: the last of each reaches the
    worker, once, and a start takes no time the loop would miss (the keys
    were told apart pair by pair: 0.4 s a start, the loop stopped)."""
    prefix = "K" * 48
    names = []
    for f in range(16):
        # each file's first 8 keys are named after the file before: in
        # file 1 they set file 0's again
        keys = [f"{prefix}{f - 1:02d}{i:04d}" if f and i < 8 else
                f"{prefix}{f:02d}{i:04d}" for i in range(1024)]
        (supd.tmp / f"f{f}.env").write_text(
            "".join(f"{k}=from{f}\n" for k in keys))
        names.append(f"f{f}.env")
    d = supd.start({"w.yaml": f"""
        supervisor: root
        children:
          - worker: w
            instances: 5
            directory: {supd.tmp}
            env_file: {json.dumps(names)}
            command: [sleep, '300']
        """})
    for i in range(1, 6):
        d.wait("started", f"root/w-{i}")
    pid = d.ctl_json("status", "w-1")[0]["pid"]
    env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    keys = [e.split(b"=", 1)[0] for e in env if e]
    assert len(keys) == len(set(keys))
    got = dict(e.split(b"=", 1) for e in env if e.startswith(b"K"))
    assert len(got) == 16 * 1024 - 8  # file 0's first 8, set again
    assert got[f"{prefix}000000".encode()] == b"from1"
    assert got[f"{prefix}140003".encode()] == b"from15"
    d.ctl("restart", "root", check=0)  # five starts, one after another
    for i in range(1, 6):  # (was 2 s and more: no timed assertion here)
        d.wait("started", f"root/w-{i}")


def test_a_file_sets_no_notify_socket_over_agentsupds(supd):
    """NOTIFY_SOCKET and WATCHDOG_USEC of a file (or of environment:) do
    not shadow the ones agentsupd gives a notify: systemd worker: getenv
    takes the first of two, so only ours is passed."""
    (supd.tmp / "n.env").write_text(
        "NOTIFY_SOCKET=/tmp/elsewhere.sock\nWATCHDOG_USEC=1\nOTHER=x\n")
    d = supd.start({"w.yaml": f"""
        worker: n
        notify: systemd
        heartbeat: 10s
        start_timeout: 60s
        env_file: {supd.tmp / 'n.env'}
        environment: {{WATCHDOG_USEC: '2'}}
        command: [sleep, '300']
        """})
    d.wait("started", "root/n")
    pid = d.ctl_json("status", "n")[0]["pid"]
    env = [e.decode() for e in
           open(f"/proc/{pid}/environ", "rb").read().split(b"\0") if e]
    notify = [e for e in env if e.startswith("NOTIFY_SOCKET=")]
    watchdog = [e for e in env if e.startswith("WATCHDOG_USEC=")]
    assert len(notify) == 1 and notify[0] != "NOTIFY_SOCKET=/tmp/elsewhere.sock", env
    assert watchdog == ["WATCHDOG_USEC=30000000"], env
    assert "OTHER=x" in env


def test_a_worker_cannot_read_roots_files_through_its_own_directory(supd):
    """A worker of `user: nobody` whose `directory` is its own names
    `env_file: -.env.local` (as the docs' example): it made .env.local a
    symlink to a file of root's alone, and got that file in its
    environment at its next start. A directory on the path that another
    may write is now refused, for a worker that switches user."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a worker as nobody")
    secret = supd.tmp / "other.env"
    secret.write_text("SECRET=root-only\n")
    secret.chmod(0o600)
    home = supd.tmp / "agent"
    home.mkdir()
    os.chown(home, 65534, 65534)
    (home / ".env.local").symlink_to(secret)
    out = supd.tmp / "out"
    d = supd.start({"w.yaml": f"""
        supervisor: root
        intensity: 100
        children:
          - worker: agent
            user: nobody
            directory: {home}
            env_file: -.env.local
            stdout: {out}
            backoff: {{initial: 50ms, max: 200ms}}
            command: {sh('echo "secret $SECRET"; exec sleep 300')}
          - {{worker: idle, command: [sleep, '300']}}
        """})
    d.wait("started", "root/idle")
    d.wait_detail("exited", f"env_file {home}/.env.local: {home} may be "
                            "written by others than root")
    assert d.count("started", "root/agent") == 0
    assert not out.exists() or "root-only" not in out.read_text()


def test_a_start_that_fails_at_once_never_holds_the_loop(supd):
    """A worker whose env_file is missing, `backoff: none`, and an
    intensity its failures never reach: the start failed in agentsupd
    before any clone and was retried inside the same pump, for ever;
    `status` had no answer and SIGTERM was never read (found by a hostile
    tester; an exec failure, reported by the child's exit, was fine). Each
    failed start now waits for the next loop turn, as an exit does."""
    supd.write({"w.yaml": f"""
        supervisor: root
        intensity: 100000
        period: 1s
        children:
          - {{worker: idle, command: [sleep, '300']}}
          - {{worker: w, env_file: {supd.tmp / 'missing.env'}, backoff: none,
              command: [sleep, '300']}}
        """})
    d = supd.start()
    d.wait("started", "root/idle")
    d.wait_detail("exited", "cannot start: env_file")
    st = {n["path"]: n for n in d.ctl_json("status")}
    assert st["root/idle"]["state"] == "running"
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0


def test_a_root_symlink_into_the_workers_directory_is_not_followed(supd):
    """The path's directories were checked as written: a symlink made by
    root in a directory of root's (R/etc/app.env) that leads into the
    worker's own directory passed, and the worker (as nobody) then
    replaced its file there by a symlink to a file of root's alone and got
    it at its next start (found by a hostile tester). The path is now
    resolved one component at a time: the directories a symlink leads
    through are checked too, and a symlink of another user's is not
    followed."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a worker as nobody")
    r = supd.tmp / "R"
    for sub in ("etc", "home/agent", "root"):
        (r / sub).mkdir(parents=True)
    for p in (supd.tmp, r, r / "etc", r / "home"):
        p.chmod(0o755)
    (r / "root").chmod(0o700)
    os.chown(r / "home" / "agent", 65534, 65534)
    secret = r / "root" / "secret.env"
    secret.write_text("SECRET=root-only\n")
    secret.chmod(0o600)
    (r / "home" / "agent" / "app.env").symlink_to(secret)  # the worker's swap
    os.lchown(r / "home" / "agent" / "app.env", 65534, 65534)
    (r / "etc" / "app.env").symlink_to(r / "home" / "agent" / "app.env")
    # and a symlink of another user's in a sticky directory of root's
    sticky = supd.tmp / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    (sticky / "b.env").symlink_to(secret)
    os.lchown(sticky / "b.env", 65534, 65534)
    out = supd.tmp / "out"
    d = supd.start({"w.yaml": f"""
        supervisor: root
        intensity: 100
        children:
          - worker: agent
            user: nobody
            env_file: {r / 'etc' / 'app.env'}
            stdout: {out}
            backoff: {{initial: 50ms, max: 200ms}}
            command: {sh('echo "secret $SECRET"; exec sleep 300')}
          - worker: other
            user: nobody
            env_file: {sticky / 'b.env'}
            stdout: {out}
            backoff: {{initial: 50ms, max: 200ms}}
            command: {sh('echo "secret $SECRET"; exec sleep 300')}
          - {{worker: idle, command: [sleep, '300']}}
        """})
    d.wait("started", "root/idle")
    d.wait_detail("exited", f"{r / 'home' / 'agent'} may be written by "
                            "others than root")
    d.wait_detail("exited", f"{sticky / 'b.env'} is a symlink of another "
                            "user's")
    assert d.count("started", "root/agent") == 0
    assert d.count("started", "root/other") == 0
    assert not out.exists() or "root-only" not in out.read_text()


@pytest.mark.parametrize("was", ["missing", "a file"])
def test_a_directory_made_on_the_path_after_the_check_is_not_followed(
        supd, was):
    """The resolver let open() find a directory that was missing when it
    looked (`-/tmp/d/s.env`, d absent): a worker's user that made d a
    symlink to a directory of root's in between got root's file, 1,863
    times in 17,190 starts (found by a second reader). A directory
    missing on the way now makes the file missing. Then d a regular file
    when looked at (not a link: taken for a directory), a symlink to
    root's directory when stat()ed and opened: 37 of 39 starts got root's
    file (a second reader again). The path is now walked by descriptor,
    each directory checked on the descriptor then used. Here root plays
    the worker's user, flipping d (nobody's) as fast as it can."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a worker as nobody")
    sticky = supd.tmp / "sticky"
    sticky.mkdir()
    for p in (supd.tmp, sticky):
        p.chmod(0o755)
    sticky.chmod(0o1777)
    secret = supd.tmp / "rootonly"
    secret.mkdir(mode=0o700)
    (secret / "s.env").write_text("SECRET=root-only\n")
    (secret / "s.env").chmod(0o600)
    out = supd.tmp / "out"
    d = supd.start({"w.yaml": f"""
        supervisor: root
        intensity: 100000
        period: 1s
        children:
          - worker: w
            user: nobody
            backoff: {{initial: 10ms, max: 10ms, jitter: none}}
            env_file: '-{sticky / 'd' / 's.env'}'
            stdout: {out}
            command: {sh('echo "got $SECRET"')}
          - {{worker: idle, command: [sleep, '300']}}
        """})
    d.wait("started", "root/idle")
    link, tmp = sticky / "d", sticky / "d.new"
    stop = threading.Event()

    def flip():
        while not stop.is_set():
            try:  # nobody's from the first instant, as its own would be
                os.symlink(secret, tmp)
                os.lchown(tmp, 65534, 65534)
                os.rename(tmp, link)
                if was == "missing":
                    os.unlink(link)
                    continue
                fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o644)
                os.fchown(fd, 65534, 65534)
                os.close(fd)
                os.rename(tmp, link)
            except OSError:
                pass

    t = threading.Thread(target=flip, daemon=True)
    t.start()
    try:  # 200 tries, each started or refused (a file is never missing)
        before = d.count("exited", "root/w")
        d.wait_count("exited", before + 200, "root/w")
    finally:
        stop.set()
        t.join(TIMEOUT)
    assert not out.exists() or "root-only" not in out.read_text()
