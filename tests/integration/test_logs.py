"""Output capture: prefixed lines on agentsupd's stderr, `agentsupctl logs`,
log_dir files with rotation, following, and a flood that must not grow the
daemon or stall its loop."""
import json
import os
import re
import signal
import subprocess
import sys
import threading

import pytest

from conftest import (AGENTSUPCTL, AGENTSUPD, SRC, TIMEOUT, sh, wait_until)

PY = sys.executable if sys.executable.startswith("/usr/bin/") else "/usr/bin/python3"


def settings(supd, **extra):
    text = f"agentsupd:\n  events_file: {supd.events}\n"
    for k, v in extra.items():
        text += f"  {k}: {v}\n"
    supd.dir.mkdir(exist_ok=True)
    (supd.dir / "00-settings.yaml").write_text(text)


def start(supd, files, **extra):
    settings(supd, **extra)
    for name, text in files.items():
        (supd.dir / name).write_text(text)
    return supd.start()


def has_line(d, text):
    return any(text == l for l in d.lines)


def has_line_of(d, name, text):
    """NAME's line TEXT on agentsupd's stderr, NAME padded to the widest
    name of the moment: a worker's first line read after a longer name's
    spawn has it padded ("job       | S 1")."""
    return any(l.startswith(name + " ")
               and l[len(name):].lstrip(" ") == f"| {text}" for l in d.lines)


def test_log_stderr_false_keeps_lines_off_agentsupds_stderr(supd):
    """Under systemd every captured line went to journald as well as to
    log_dir: two flooding agents wrote 8 GB of agentsupd's stderr in 40 s
    (found by an SRE's trial). `log_stderr: false` keeps them to the ring
    (logs) and log_dir; agentsupd's own lines and events still come."""
    logs = supd.tmp / "logs"
    logs.mkdir()
    d = start(supd, {"w.yaml": f"""
worker: talker
command: {sh('for i in 1 2 3; do echo "said $i"; done; exec sleep 60')}
"""}, log_dir=logs, log_stderr="false")
    d.wait("started", "root/talker")
    wait_until(lambda: (logs / "talker.log").exists() and
               "said 3" in (logs / "talker.log").read_text(),
               what="the lines in log_dir")
    assert d.ctl("logs", "talker", check=0).stdout == "said 1\nsaid 2\nsaid 3\n"
    d.ctl("restart", "talker", check=0)
    d.wait("started", "root/talker")  # agentsupd's own lines still come
    assert not any("said" in l for l in d.lines), d.lines


def test_lines_prefixed_in_logs_and_files(supd):
    logs = supd.tmp / "logs"
    logs.mkdir()
    trigger = supd.tmp / "trigger"
    # two pipes are read in either order: the last lines wait for a trigger
    cmd0 = sh(f'''
    for i in 1 2 3; do echo "out $i"; echo "err $i" >&2; done
    while [ ! -e {trigger} ]; do sleep 0.02; done
    printf 'bell\\007\\n'
    echo done
    exec sleep 60
''')
    d = start(supd, {"talker.yaml": f"""
worker: talker
command: {cmd0}
"""}, log_dir=logs)
    d.wait("started", "root/talker")
    wait_until(lambda: has_line(d, "talker | out 3") and has_line(d, "talker ! err 3"),
               what="the first lines")
    assert has_line(d, "talker | out 1") and has_line(d, "talker ! err 1")
    trigger.touch()
    wait_until(lambda: has_line(d, "talker | done"), what="the last line")
    assert has_line(d, "talker | bell\\x07")
    r = d.ctl("logs", "talker", "-n", "2", check=0)
    assert r.stdout == "bell\\x07\ndone\n"
    # --json: one JSON string (it printed the raw text)
    r = d.ctl("--json", "logs", "talker", "-n", "2", check=0)
    assert json.loads(r.stdout) == "bell\\x07\ndone\n"
    everything = d.ctl("logs", "talker", "-n", "0", check=0).stdout.splitlines()
    assert sorted(everything[:6]) == ["err 1", "err 2", "err 3", "out 1", "out 2", "out 3"]
    assert everything[6:] == ["bell\\x07", "done"]
    # the file holds the worker's own bytes, both streams
    text = (logs / "talker.log").read_text()
    assert "out 2\n" in text and "err 2\n" in text and text.endswith("bell\a\ndone\n")


def test_log_time_stamps_each_line_of_the_files(supd):
    """log_time: true: NAME.log lines begin with when they were read (the
    files held no time at all: when did the agent say this?); a reload
    turns it off again, and stderr and `logs` never have it."""
    logs = supd.tmp / "logs"
    trigger = supd.tmp / "trigger"
    cmd0 = sh(f'''
    echo first; echo second >&2
    while [ ! -e {trigger} ]; do sleep 0.02; done
    echo third
    exec sleep 60
''')
    files = {"talker.yaml": f"""
worker: talker
command: {cmd0}
"""}
    d = start(supd, files, log_dir=logs, log_time="true")
    d.wait("started", "root/talker")
    wait_until(lambda: (logs / "talker.log").exists() and
               len((logs / "talker.log").read_text().splitlines()) == 2,
               what="two lines in the file")
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
    lines = (logs / "talker.log").read_text().splitlines()
    assert sorted(re.sub(stamp, "", l, 1) for l in lines) == ["first", "second"]
    assert all(re.match(stamp, l) for l in lines), lines
    assert d.ctl("logs", "talker", check=0).stdout in ("first\nsecond\n",
                                                       "second\nfirst\n")
    assert has_line(d, "talker | first")
    settings(supd, log_dir=logs)  # log_time off again
    d.ctl("reload", check=0)
    trigger.touch()
    wait_until(lambda: (logs / "talker.log").read_text().endswith("\nthird\n"),
               what="the third line, as it is")


def test_a_missing_log_dir_is_made(supd):
    """log_dir: /var/log/agentsup, as the docs have it, on a fresh install:
    nothing made it, and every worker's lines went to no file ("log file
    ...: No such file or directory") although a state_dir is made."""
    logs = supd.tmp / "var-log-agentsup"
    d = start(supd, {"talker.yaml": f"""
worker: talker
command: {sh('echo hello; exec sleep 60')}
"""}, log_dir=logs)
    d.wait("started", "root/talker")
    wait_until(lambda: (logs / "talker.log").exists() and
               (logs / "talker.log").read_text() == "hello\n",
               what="talker.log")
    assert os.stat(logs).st_mode & 0o007 == 0  # no other user reads it
    assert not any("No such file" in l for l in d.lines)


def test_logs_refuses_unknown_names(supd):
    d = start(supd, {"w.yaml": f"""
supervisor: team
children:
  - worker: w
    command: {sh('exec sleep 60')}
"""})
    d.wait("started", "team/w")
    r = d.ctl("logs", "nobody")
    assert r.returncode == 1 and "no such worker or supervisor: nobody" in r.stderr
    assert d.ctl("logs", "a", "b").returncode == 64
    # a quiet worker: nothing yet, and that is not an error; nor is a
    # quiet subtree
    assert d.ctl("logs", "w", check=0).stdout == ""
    assert d.ctl("logs", "team", check=0).stdout == ""
    assert d.ctl("logs", check=0).stdout == ""


def test_rotation_at_log_max_keeping_log_keep(supd):
    logs = supd.tmp / "logs"
    logs.mkdir()
    cmd0 = sh('''
    i=0
    while [ $i -lt 100 ]; do
        printf '%098d\\n' $i
        i=$((i + 1))
    done
    echo finished
    exec sleep 60
''')
    d = start(supd, {"chatty.yaml": f"""
worker: chatty
command: {cmd0}
"""}, log_dir=logs, log_max="1KiB", log_keep=2)
    wait_until(lambda: has_line(d, "chatty | finished"), what="the output")
    names = sorted(os.listdir(logs))
    assert names == ["chatty.log", "chatty.log.1", "chatty.log.2"], names
    for n in names:
        assert os.path.getsize(logs / n) <= 1024
    # ten 99-byte lines a file; the newest rotated one just before ours
    assert (logs / "chatty.log.1").read_text() == "".join(
        "%098d\n" % i for i in range(80, 90))
    assert (logs / "chatty.log").read_text() == "".join(
        "%098d\n" % i for i in range(90, 100)) + "finished\n"


def test_a_workers_own_log_max_and_log_keep(supd):
    """log_max and log_keep on a worker (supervisord's per-program
    stdout_logfile_maxbytes/backups) rotate its file, not its neighbour's;
    a reload that takes them away applies to the running worker at once,
    without restarting it."""
    logs = supd.tmp / "logs"
    logs.mkdir()
    trigger = supd.tmp / "trigger"
    lines = '''
    i=0
    while [ $i -lt 50 ]; do
        printf '%098d\\n' $i
        i=$((i + 1))
    done
    echo "$1"
'''
    cmd = sh(f'''
    say() {{ {lines} }}
    say first
    while [ ! -e {trigger} ]; do sleep 0.02; done
    say second
    exec sleep 60
''')
    tree = '''
supervisor: root
children:
  - {{worker: small, command: {cmd}{own}}}
  - {{worker: big, command: {cmd}}}
'''
    d = start(supd, {"a.yaml": tree.format(
        cmd=cmd, own=", log_max: 1KiB, log_keep: 1")},
        log_dir=logs, log_max="1MiB", log_keep=5)
    wait_until(lambda: has_line(d, "small | first")
               and has_line(d, "big   | first"), what="the output")
    names = sorted(os.listdir(logs))
    assert names == ["big.log", "small.log", "small.log.1"], names
    assert os.path.getsize(logs / "small.log.1") == 990
    assert os.path.getsize(logs / "big.log") == 50 * 99 + len("first\n")
    small = d.wait("started", "root/small").pid
    (supd.dir / "a.yaml").write_text(tree.format(cmd=cmd, own=""))
    d.ctl("reload", check=0)
    d.wait("reload_applied")
    trigger.touch()
    wait_until(lambda: has_line(d, "small | second"), what="more output")
    # now the settings' 1MiB: the file grows, nothing more rotates
    assert sorted(os.listdir(logs)) == names
    assert os.path.getsize(logs / "small.log") > 50 * 99
    assert d.count("started", "root/small") == 1, small


@pytest.mark.parametrize("how", ["sighup", "agentsupctl"])
def test_reload_reopens_a_moved_log_file(supd, how):
    """SIGHUP, and `agentsupctl reload` as SIGHUP (docs/operations.md),
    reopen the log files and the events file for logrotate (`reload`
    kept writing into the renamed files)."""
    logs = supd.tmp / "logs"
    logs.mkdir()
    trigger = supd.tmp / "trigger"
    cmd0 = sh(f'''
    echo before
    while [ ! -e {trigger} ]; do sleep 0.02; done
    echo after
    exec sleep 60
''')
    d = start(supd, {"w.yaml": f"""
worker: w
command: {cmd0}
"""}, log_dir=logs)
    wait_until(lambda: has_line(d, "w | before"), what="the first line")
    os.rename(logs / "w.log", logs / "w.log.old")  # logrotate's "create"
    os.rename(supd.events, str(supd.events) + ".old")
    if how == "sighup":
        d.signal(signal.SIGHUP)
    else:
        d.ctl("reload")
    d.wait("reload_applied")
    trigger.touch()
    wait_until(lambda: has_line(d, "w | after"), what="the second line")
    assert (logs / "w.log.old").read_text() == "before\n"
    assert (logs / "w.log").read_text() == "after\n"
    assert "reload_applied" in supd.events.read_text()


def test_a_worker_moved_by_a_reload_runs_once_and_keeps_its_output(supd):
    """A reload moves a worker to another supervisor: its new place starts
    once the old process is down. Both ran at once, sharing the name's
    capture, and the old one's end closed the new one's stdout: its next
    line failed (a Python agent's print raised BrokenPipeError, exit 1,
    counted toward intensity)."""
    stopping, go, later = (supd.tmp / n for n in ("stopping", "go", "later"))
    cmd = sh(f'''
    trap 'touch {stopping}; while [ ! -e {go} ]; do sleep 0.02; done; exit 0' TERM
    echo up
    while [ ! -e {later} ]; do sleep 0.02; done
    echo later
    while :; do sleep 0.02; done
''')
    tree = """
supervisor: top
children:
  - supervisor: x
    children: [{A}]
  - supervisor: y
    children: [{{worker: z, command: [sleep, "1000"]}}{B}]
"""
    a = f"{{worker: a, command: {cmd}, shutdown: 60s}}"
    d = start(supd, {"t.yaml": tree.format(A=a, B="")})
    wait_until(lambda: has_line(d, "a | up"), what="the first line")
    (supd.dir / "t.yaml").write_text(tree.format(A="", B=", " + a))
    d.ctl("reload")
    d.wait("reload_applied")
    wait_until(stopping.exists, what="the old a told to stop")
    nodes = {n["path"]: n for n in d.ctl_json("status")}
    assert nodes["top/y/a"]["state"] == "stopped"
    go.touch()
    d.wait("exited", "top/x/a")
    d.wait("started", "top/y/a")
    later.touch()
    wait_until(lambda: has_line(d, "a | later"), what="the new a's output")
    assert [l for l in d.lines if l == "a | up"] == ["a | up"] * 2
    assert d.count("exited", "top/y/a") == 0
    nodes = {n["path"]: n for n in d.ctl_json("status")}
    assert nodes["top/y"]["window_restarts"] == 0


def test_logs_follow_sees_new_lines(supd):
    trigger = supd.tmp / "trigger"
    cmd0 = sh(f'''
    echo first
    while [ ! -e {trigger} ]; do sleep 0.02; done
    echo second
    exec sleep 60
''')
    d = start(supd, {"w.yaml": f"""
worker: w
command: {cmd0}
"""})
    wait_until(lambda: has_line(d, "w | first"), what="the first line")
    f = subprocess.Popen([AGENTSUPCTL, "--socket", d.socket, "logs", "w",
                          "-f"], stdout=subprocess.PIPE, text=True)
    try:
        assert f.stdout.readline() == "first\n"
        trigger.touch()
        got = []
        reader = threading.Thread(target=lambda: got.append(f.stdout.readline()))
        reader.start()
        reader.join(TIMEOUT)
        assert got == ["second\n"]
    finally:
        f.send_signal(signal.SIGINT)
        assert f.wait(TIMEOUT) == 0


class Follower:
    """agentsupctl logs ... -f, its lines read by a thread (a wait never
    blocks the test past TIMEOUT)."""

    def __init__(self, d, *args):
        self.proc = subprocess.Popen(
            [AGENTSUPCTL, "--socket", d.socket, "logs", *args, "-f"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:  # names unpadded
            self.lines.append(re.sub(r" +([|!]) ", r" \1 ", line.rstrip("\n"), 1))

    def has(self, line):
        wait_until(lambda: line in self.lines, what=f"{line!r} followed")


def test_logs_of_a_subtree_and_of_the_whole_tree(supd):
    """`logs SUP` was refused ("a supervisor: logs are a worker's"): an
    operator had to follow each of fifty agents one by one."""
    trigger = supd.tmp / "trigger"
    talk = lambda out, more: sh(f'''
    {out}
    while [ ! -e {trigger} ]; do sleep 0.02; done
    {more}
    exec sleep 60
''')
    d = start(supd, {"w.yaml": f"""
supervisor: root
children:
  - supervisor: team
    children:
      - worker: a
        command: {talk('echo a1; echo a2', 'echo a3')}
      - worker: b
        command: {talk('echo b1 >&2', 'echo b2 >&2')}
      - supervisor: pool
        template: {{command: {talk('echo "t1 $TAG"', 'echo "t2 $TAG"')}}}
  - worker: solo
    command: {talk('echo s1', 'echo s2')}
"""})
    d.wait("started", "root/solo")
    d.ctl("spawn", "pool", "--key", "k1", "--env", "TAG=x", check=0)
    # agentsupd's stderr pads the names to line up, as `logs` does
    unpad = lambda l: re.sub(r" +([|!]) ", r" \1 ", l, 1)
    unpadded = lambda: {unpad(l) for l in d.lines}
    wait_until(lambda: {"a | a2", "b ! b1", "solo | s1",
                        "pool:k1 | t1 x"} <= unpadded(),
               what="every first line")
    r = d.ctl("logs", "team", check=0)
    assert r.stdout.splitlines() == ["a       | a1", "a       | a2",
                                     "b       | b1", "pool:k1 | t1 x"]
    assert d.ctl("logs", "team", "-n", "1", check=0).stdout.splitlines() == [
        "a       | a2", "b       | b1", "pool:k1 | t1 x"]
    everything = d.ctl("logs", check=0).stdout.splitlines()
    assert everything == r.stdout.splitlines() + ["solo    | s1"]
    assert d.ctl("logs", "root", check=0).stdout.splitlines() == everything
    # a task by the name its lines are shown under, as by its SUP/KEY
    assert d.ctl("logs", "pool:k1", check=0).stdout == "t1 x\n"
    assert d.ctl("logs", "pool/k1", check=0).stdout == "t1 x\n"
    assert json.loads(d.ctl("--json", "logs", "team", check=0).stdout) == [
        {"name": "a", "text": "a1\na2\n"}, {"name": "b", "text": "b1\n"},
        {"name": "pool:k1", "text": "t1 x\n"}]

    f = Follower(d, "team", "-n", "1")
    g = Follower(d)
    try:
        for line in ("a | a2", "b | b1", "pool:k1 | t1 x"):
            f.has(line)
        g.has("solo | s1")
        # a worker a reload adds below team, and a task spawned there now
        (supd.dir / "w.yaml").write_text((supd.dir / "w.yaml").read_text().replace(
            "  - worker: solo", f"""      - worker: c
        command: {talk('echo c1', 'echo c2')}
  - worker: solo"""))
        d.ctl("reload", check=0)
        d.wait("started", "root/team/c")
        d.ctl("spawn", "pool", "--key", "k2", "--env", "TAG=y", check=0)
        d.wait("started", "root/team/pool/k2")
        for line in ("c | c1", "pool:k2 | t1 y"):
            f.has(line)
        trigger.touch()
        for line in ("a | a3", "b ! b2", "c | c2", "pool:k1 | t2 x",
                     "pool:k2 | t2 y"):
            f.has(line)
            g.has(line)
        g.has("solo | s2")
        assert not any(l.startswith("solo") for l in f.lines)
        # team removed by a reload: its follower is told, and let go
        (supd.dir / "w.yaml").write_text(f"""
supervisor: root
children:
  - worker: solo
    command: {talk('echo s1', 'echo s2')}
""")
        d.ctl("reload", check=0)
        try:
            _, err = f.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError("logs team -f still follows a removed team")
        assert f.proc.returncode == 1
        assert "root/team was removed or moved by a reload" in err, err
        assert g.proc.poll() is None  # the whole tree's follower stays
    finally:
        for p in (f.proc, g.proc):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                p.wait(TIMEOUT)
    assert g.proc.returncode == 0
    assert d.proc.poll() is None


def test_a_subtrees_tails_are_bounded_in_one_answer(supd):
    """logs of a supervisor queues its answer at once: with a large
    log_tail, 24 workers with 1 MiB kept each made a 24 MiB answer in
    agentsupd's memory. The workers share 8 MiB, each its newest lines."""
    cmd0 = json.dumps([PY, "-c", "import os, sys, time; "
                       "sys.stdout.write(('x' * 99 + '\\n') * 11000); "
                       "print('END', os.environ['AGENTSUP_NAME'], flush=True); "
                       "time.sleep(60)"])
    names = [f"w{i}" for i in range(24)]
    d = start(supd, {"w.yaml": "supervisor: root\nchildren:\n" + "".join(
        f"  - {{worker: {n}, command: {cmd0}, stdout: capture}}\n"
        for n in names)}, log_tail="1MiB")
    d.wait("started", "root/w23")
    wait_until(lambda: all(d.ctl("logs", n, "-n", "1", check=0).stdout ==
                           f"END {n}\n" for n in names),
               what="every worker's last line")
    assert len(d.ctl("logs", "w0", "-n", "0", check=0).stdout) > 1000000
    r = d.ctl("--json", "logs", "-n", "0", check=0)
    items = json.loads(r.stdout)
    assert [it["name"] for it in items] == names
    total = sum(len(it["text"]) for it in items)
    assert 8000000 < total <= 8 << 20, total
    for it in items:  # each its newest whole lines
        assert it["text"].endswith(f"END {it['name']}\n")
        assert it["text"].startswith("x" * 99 + "\n")


def test_tail_outlives_a_crash(supd):
    cmd0 = sh('''
    echo "about to fail"
    echo "the reason" >&2
    exit 3
''')
    d = start(supd, {"w.yaml": f"""
worker: w
restart: temporary
command: {cmd0}
"""})
    ev = d.wait("exited", "root/w", reason="exit:3")
    # the failure event carries the last lines (read before it is emitted)
    assert sorted(ev.tail.splitlines()) == ["about to fail", "the reason"]
    r = d.ctl("logs", "w", check=0)
    assert sorted(r.stdout.splitlines()) == ["about to fail", "the reason"]


def test_a_last_line_longer_than_the_ring_is_shown_by_its_end(supd):
    """A crash's last line longer than log_tail (a JSON error response) was
    dropped with the lines before it: `logs` printed nothing and the
    exited event had no tail. Now its end is shown after an ellipsis."""
    cmd0 = sh('''
    echo "ERROR: upstream returned 500"
    printf '{"response": "%03000d"}\\n' 0
    exit 1
''')
    d = start(supd, {"w.yaml": f"""
worker: w
restart: temporary
command: {cmd0}
"""}, log_tail="2KiB")
    ev = d.wait("exited", "root/w", reason="exit:1")
    assert ev.tail is not None and ev.tail.startswith("\u2026"), ev
    assert ev.tail.endswith('000"}') or ev.tail.endswith('000"}\n'), ev.tail
    out = d.ctl("logs", "w", check=0).stdout
    assert out.startswith("\u2026") and out.endswith('000"}\n'), out


def test_a_prompt_without_a_newline_is_shown(supd):
    """A worker waiting on a prompt it printed without a newline: `logs`
    (and a hang's tail) did not show it until the process ended."""
    d = start(supd, {"w.yaml": f"""
worker: w
command: {sh("echo starting; printf 'Overwrite config (y/n)? '; exec sleep 1000")}
"""})
    d.wait("started", "root/w")
    wait_until(lambda: "(y/n)? " in d.ctl("logs", "w", check=0).stdout,
               what="the prompt in logs")
    assert d.ctl("logs", "w", check=0).stdout == \
        "starting\nOverwrite config (y/n)? \n"


def test_no_tail_on_a_clean_exit(supd):
    cmd0 = sh('echo "all good"; exit 0')
    d = start(supd, {"w.yaml": f"""
worker: w
restart: temporary
command: {cmd0}
"""})
    ev = d.wait("exited", "root/w", reason="exit:0")
    assert ev.tail is None
    assert d.ctl("logs", "w", check=0).stdout == "all good\n"


def test_every_failure_event_carries_the_tail(supd):
    """Not only exits: a hang, a quarantine, a loop and a spent budget each
    come with the worker's last lines (DESIGN §13)."""
    agent = supd.tmp / "agent.py"
    agent.write_text(f"""
import sys
sys.path.insert(0, {json.dumps(os.path.join(SRC, "tools", "python"))})
import agentsup
print("agent " + sys.argv[1] + " speaking", flush=True)
print("to stderr too", file=sys.stderr, flush=True)
with agentsup.Agent() as a:
    i = 0
    while not a.draining:
        i += 1
        if sys.argv[1] == "loop":
            a.beat(steps=i, state="search('weather')")
        else:
            a.beat(steps=i, tokens=100 * i, state=f"s{{i}}")
        a.wait(0.05)
""")

    def py(mode):
        return json.dumps([PY, str(agent), mode])

    d = start(supd, {"w.yaml": f"""
supervisor: root
intensity: 100
children:
  - worker: mute
    command: {sh('echo "before the hang"; exec sleep 60')}
    heartbeat: 100ms
    heartbeat_timeout: 300ms
    restart: temporary
  - worker: flaky
    command: {sh('echo "flaky run $$"; echo "and why" >&2; exit 1')}
    backoff: none
    circuit: {{failures: 2, window: 10s, open: 10m}}
  - worker: looper
    command: {py("loop")}
    loop: {{repeats: 4}}
    restart: temporary
  - worker: spender
    command: {py("spend")}
    budget: {{tokens: 2000}}
"""})
    def first(kind, path):  # the workers fail in any order
        d.cursor = 0
        return d.wait(kind, path)

    hang = first("hang", "root/mute")
    assert hang.tail == "before the hang\n", hang
    q = first("quarantined", "root/flaky")
    lines = sorted(q.tail.splitlines())
    assert lines[0] == "and why" and lines[-1].startswith("flaky run "), q
    lp = first("looping", "root/looper")
    assert "agent loop speaking" in lp.tail.splitlines(), lp
    assert "to stderr too" in lp.tail.splitlines(), lp
    ex = first("exhausted", "root/spender")
    assert "agent spend speaking" in ex.tail.splitlines(), ex
    # events that are not failures carry none
    assert first("started", "root/flaky").tail is None
    assert first("budget_warning", "root/spender").tail is None
    # and the control socket's events (agentsupctl events --json) carry it
    evs = [json.loads(l) for l in
           d.ctl("--json", "events", check=0).stdout.splitlines()]
    h = [e for e in evs if e["kind"] == "hang" and e["path"] == "root/mute"]
    assert h and h[0]["tail"] == "before the hang\n", h
    assert all("tail" not in e for e in evs if e["kind"] == "started")


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_flood_is_bounded_and_never_stalls_the_loop(tmp_path):
    """A worker printing as fast as it can for seconds, and agentsupd's
    stderr a pipe that nobody reads: memory stays flat, status answers."""
    conf = tmp_path / "supervisor.d"
    conf.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    sock = str(tmp_path / "ctl.sock")
    (conf / "00-settings.yaml").write_text(
        f"agentsupd:\n  log_dir: {logs}\n  log_max: 1MiB\n  log_keep: 2\n")
    (conf / "flood.yaml").write_text(f"""
worker: flood
command: {sh('exec yes "$(printf %090d 7)"')}
---
worker: calm
command: {sh('exec sleep 60')}
""")
    d = subprocess.Popen([AGENTSUPD, "-c", str(conf), "--socket", sock],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)  # never read: it fills
    try:
        def ctl(*args):
            return subprocess.run([AGENTSUPCTL, "--socket", sock, *args],
                                  capture_output=True, text=True,
                                  timeout=TIMEOUT)

        wait_until(lambda: os.path.exists(logs / "flood.log.1"),
                   what="the flood to rotate a file")
        # fixed buffers: 32 MiB more of flood cost nothing more (counted
        # in the log's rotations, 1 MiB each, not in seconds: a slow host
        # moves fewer bytes a second)
        before = vm_rss_kib(d.pid)
        inodes = []  # flood.log's, the first seen from now on

        def rotated():
            assert d.poll() is None
            try:
                ino = os.stat(logs / "flood.log").st_ino
            except FileNotFoundError:  # between its rename and the new one
                return False
            if not inodes or ino != inodes[-1]:
                inodes.append(ino)
            return len(inodes) > 32
        wait_until(rotated, timeout=4 * TIMEOUT, what="32 MiB more of flood")
        after = vm_rss_kib(d.pid)
        assert after - before < 4 * 1024, (before, after)
        # and the loop still serves the control socket: each answer comes
        # (a stalled loop never answers; how fast it answers is a speed
        # goal, tools/bench's, not this test's)
        for _ in range(20):
            r = ctl("status")
            assert r.returncode == 0, r.stderr
            assert "flood" in r.stdout
        names = os.listdir(logs)
        assert set(names) <= {"flood.log", "flood.log.1", "flood.log.2"}
        for n in names:
            try:  # the flood goes on: a file may be rotated away meanwhile
                assert os.path.getsize(logs / n) <= 1 << 20
            except FileNotFoundError:
                pass
        assert ctl("logs", "flood", "-n", "1").stdout == "%090d\n" % 7
    finally:
        d.stderr.close()  # the daemon's own log lines now fail, not block
        d.send_signal(signal.SIGTERM)
        try:
            d.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            d.kill()
            d.wait()
            raise


def test_one_key_in_two_pools_and_a_worker_of_that_name_keep_apart(supd):
    """Output was kept by the bare name: the second pool's task `job` took
    the first one's capture and closed its pipes (it died of SIGPIPE, again
    and again, until dead-lettered), `logs` mixed them, and all three wrote
    one job.log."""
    logs = supd.tmp / "logs"
    logs.mkdir()
    talk = '["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo \\"$TAG $i\\"; sleep 0.02; done"]'
    d = start(supd, {"a.yaml": f"""
supervisor: root
children:
  - supervisor: poolA
    template: {{command: {talk}, backoff: none}}
  - supervisor: poolB
    template: {{command: {talk}, backoff: none}}
  - worker: job
    command: {talk}
    environment: {{TAG: S}}
"""}, log_dir=logs)
    d.wait("started", "root/job")
    d.ctl("spawn", "poolA", "--key", "job", "--env", "TAG=A", check=0)
    d.wait("started", "root/poolA/job")
    d.ctl("spawn", "poolB", "--key", "job", "--env", "TAG=B", check=0)
    d.wait("started", "root/poolB/job")

    def lines(name):
        return d.ctl("logs", name, "-n", "0", check=0).stdout.split()[::2]

    wait_until(lambda: all(len(lines(n)) >= 10 for n in
                           ("poolA/job", "poolB/job", "job")),
               what="ten lines from each")
    assert set(lines("poolA/job")) == {"A"}
    assert set(lines("poolB/job")) == {"B"}
    assert set(lines("job")) == {"S"}
    assert d.count("exited") == 0
    for f, tag in (("poolA:job.log", "A"), ("poolB:job.log", "B"),
                   ("job.log", "S")):
        assert {l.split()[0] for l in (logs / f).read_text().splitlines()} == {tag}
    assert has_line(d, "poolA:job | A 1") and has_line_of(d, "job", "S 1")


# numbered lines of 80 zeros, ten at a time, about 45 kB/s: a fork a line
# (a subshell and a sleep) wrote too little in 20 s on a loaded host
FULL_LINES = sh('z=$(printf %080d 0); i=0; while :; do i=$((i+1)); '
                'echo "line $i $z"; [ $((i % 10)) -ne 0 ] || sleep 0.02; done')

def test_a_full_disk_tears_no_line_and_writing_resumes(tiny_fs, supd):
    """A write cut short by a full disk left half a line, the file was not
    written again until SIGHUP, and then the next line was glued to the
    half one."""
    filler = tiny_fs / "filler"
    filler.write_bytes(b"\0" * 40000)
    cmd = FULL_LINES
    d = start(supd, {"w.yaml": f"worker: w\ncommand: {cmd}\n"},
              log_dir=tiny_fs, log_max="1MiB")
    wait_until(lambda: any("writing its log file" in l for l in d.lines),
               what="the disk to fill")
    log = tiny_fs / "w.log"
    full = log.read_bytes()
    assert full.endswith(b"\n")
    filler.unlink()
    wait_until(lambda: any("is written again" in l for l in d.lines),
               what="writing to resume without a SIGHUP")
    wait_until(lambda: log.stat().st_size > len(full) + 1000,
               what="new lines")
    text = log.read_bytes()
    lines = text[:text.rindex(b"\n")].split(b"\n")
    assert all(re.fullmatch(rb"line \d+ 0{80}", l) for l in lines), \
        [l for l in lines if not re.fullmatch(rb"line \d+ 0{80}", l)][:3]


def test_a_full_disk_after_a_copytruncate_pads_nothing(tiny_fs, supd):
    """The write taken back was measured from the size agentsupd believed:
    after logrotate's copytruncate emptied the file, the truncate to it
    grew the file with zeros instead."""
    cmd = FULL_LINES
    d = start(supd, {"w.yaml": f"worker: w\ncommand: {cmd}\n"},
              log_dir=tiny_fs, log_max="1MiB")
    log = tiny_fs / "w.log"
    wait_until(lambda: log.exists() and log.stat().st_size > 30000,
               what="30 kB of log")
    os.truncate(log, 0)  # copytruncate's second half
    (tiny_fs / "filler").write_bytes(b"x" * 50000)
    wait_until(lambda: any("writing its log file" in l for l in d.lines),
               what="the disk to fill")
    text = log.read_bytes()
    assert b"\0" not in text
    assert text == b"" or text.endswith(b"\n")


def test_a_follower_too_far_behind_is_told_why(supd):
    """logs -f that stops reading is cut off at 1 MiB behind: it said
    "agentsupd closed the connection" and exited 69, as if agentsupd could
    not be reached. It is told why, and exits 1."""
    trigger = supd.tmp / "trigger"
    cmd0 = sh(f'''
    echo first
    while [ ! -e {trigger} ]; do sleep 0.02; done
    seq 1 250000
    exec sleep 60
''')
    d = start(supd, {"w.yaml": f"""
worker: w
command: {cmd0}
"""})
    wait_until(lambda: has_line(d, "w | first"), what="the first line")
    f = subprocess.Popen([AGENTSUPCTL, "--socket", d.socket, "logs", "w",
                          "-f"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert f.stdout.readline() == "first\n"
        f.send_signal(signal.SIGSTOP)
        trigger.touch()
        wait_until(lambda: any("a slow follower, too far behind" in l
                               for l in d.lines), what="the follower cut off")
    finally:
        f.send_signal(signal.SIGCONT)
    out, err = f.communicate(timeout=TIMEOUT)
    assert f.returncode == 1, err
    assert "fell too far behind" in err and "closed the connection" not in err
    assert out.startswith("1\n2\n")
    assert d.proc.poll() is None


def test_a_follower_of_the_whole_tree_outlives_a_rename_of_the_root(supd):
    """`logs -f` (no NAME: the whole tree) followed the root's path: a
    reload that renamed the root (the tree kept, its workers running) told
    it "root was removed or moved by a reload" and let it go."""
    trigger = supd.tmp / "trigger"
    talk = lambda a, b: sh(f'''
    echo {a}
    while [ ! -e {trigger} ]; do sleep 0.02; done
    echo {b}
    exec sleep 60
''')
    tree = """
supervisor: {root}
children:
  - worker: a
    command: {a}
"""
    d = start(supd, {"w.yaml": tree.format(root="root", a=talk("a1", "a2"))})
    d.wait("started", "root/a")
    g = Follower(d)
    try:
        g.has("a | a1")
        (supd.dir / "w.yaml").write_text(tree.format(root="top",
                                                     a=talk("a1", "a2")))
        d.ctl("reload", check=0)
        wait_until(lambda: d.ctl("status", check=0).stdout.startswith("top"),
                   what="the root renamed")
        trigger.touch()
        g.has("a | a2")
        assert g.proc.poll() is None, g.proc.stderr.read()
    finally:
        if g.proc.poll() is None:
            g.proc.send_signal(signal.SIGINT)
        _, err = g.proc.communicate(timeout=TIMEOUT)
    assert g.proc.returncode == 0, err
    assert "removed or moved" not in err, err


def test_a_follower_of_a_worker_a_reload_removes_is_told(supd):
    """logs -f of a worker that a reload removes stayed connected, silent,
    for ever (followers are matched by name)."""
    d = start(supd, {"w.yaml": f"""
supervisor: team
children:
  - worker: w
    command: {sh('echo first; exec sleep 60')}
  - worker: stay
    command: {sh('exec sleep 60')}
"""})
    d.wait("started", "team/w")
    f = subprocess.Popen([AGENTSUPCTL, "--socket", d.socket, "logs", "w",
                          "-f"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert f.stdout.readline() == "first\n"
    (supd.dir / "w.yaml").write_text(f"""
supervisor: team
children:
  - worker: stay
    command: {sh('exec sleep 60')}
""")
    d.ctl("reload", check=0)
    try:
        out, err = f.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        f.kill()
        f.communicate()
        raise AssertionError("logs -f still follows a removed worker")
    assert f.returncode == 1, err
    assert "w was removed by a reload" in err, err
    assert d.proc.poll() is None


def test_logs_of_a_worker_whose_output_is_not_captured_says_where_it_goes(supd):
    """stdout: null or a file: logs printed nothing and exited 0, as for a
    quiet worker. It still exits 0 (the ring is empty, not an error), and
    says on stderr where the output goes."""
    out = supd.tmp / "w.err"
    d = start(supd, {"w.yaml": f"""
supervisor: team
children:
  - worker: w
    command: {sh('echo hidden; echo hidden >&2; exec sleep 60')}
    stdout: "null"
    stderr: {out}
  - worker: half
    command: {sh('echo shown >&2; exec sleep 60')}
    stdout: "null"
  - worker: all
    command: {sh('echo shown; exec sleep 60')}
"""})
    d.wait("started", "team/all")
    wait_until(lambda: out.exists() and out.read_text() == "hidden\n",
               what="the file")
    r = d.ctl("logs", "w", check=0)
    assert r.stdout == ""
    assert "w: stdout is not captured: discarded (stdout: null)" in r.stderr
    assert f"stderr is not captured: it goes to the file {out}" in r.stderr
    wait_until(lambda: d.ctl("logs", "half").stdout == "shown\n",
               what="half's line")
    r = d.ctl("logs", "half", check=0)
    assert "stdout is not captured" in r.stderr and "stderr" not in r.stderr
    wait_until(lambda: d.ctl("logs", "all").stdout == "shown\n",
               what="all's line")
    assert d.ctl("logs", "all", check=0).stderr == ""
