"""A reload never stops supervision (issue 10 item 1): the config is read
and parsed off the event loop, only the diff is applied on it; the `reload`
request is answered once the reload is applied or refused; requests made
while a parse runs coalesce into one more parse, which sees the files as
they are then; a client gone before its answer harms nobody."""
import os
import signal
import socket
import struct
import subprocess
import textwrap

import msgpack
import pytest

from conftest import AGENTSUPCTL, TIMEOUT, catches, sh, wait_until

SLEEP = sh("exec sleep 1000")


def frame(msg):
    body = msgpack.packb(msg)
    return struct.pack(">I", len(body)) + body


def read_frame(s, timeout=TIMEOUT):
    s.settimeout(timeout)
    buf = b""
    while len(buf) < 4:
        chunk = s.recv(4 - len(buf))
        assert chunk, "the daemon closed the connection"
        buf += chunk
    (n,) = struct.unpack(">I", buf)
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        assert chunk, "the daemon closed the connection"
        body += chunk
    return msgpack.unpackb(body, raw=False)


def connect(d):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(d.socket)
    return s


def request(s, rid, cmd):
    s.sendall(frame({"t": "req", "id": rid, "cmd": cmd}))


def answer(s, rid):
    """The last frame of the answer to request rid (lists come in parts)."""
    while True:
        m = read_frame(s)
        if m.get("t") == "res" and m["id"] == rid and not m.get("more"):
            return m


def big_config(d, files=2, workers=1250, nenv=24):
    """A config that takes a while to parse (~1.4 MB in files under the
    1 MiB cap); the tests add a file that refuses it, so nothing of it is
    ever started."""
    pad = "x" * 12
    env = ", ".join(f"V{k:02d}: '{pad}'" for k in range(nenv))
    for f in range(files):
        parts = [f"supervisor: big{f}\nstrategy: one_for_one\nchildren:\n"]
        for i in range(workers):
            parts.append(f"  - worker: w{i:05d}\n    command: [sleep, '1']\n"
                         f"    environment: {{{env}}}\n")
        (d.dir / f"5{f}-big.yaml").write_text("".join(parts))


def test_status_answers_while_a_reload_parses(supd):
    d = supd.start({"a.yaml": f"worker: idle\ncommand: {SLEEP}\n"})
    d.wait("started", "root/idle")
    big_config(supd)
    (supd.dir / "99-bad.yaml").write_text("worker: zz\ncommand: x\nbogus: 1\n")
    a, b = connect(d), connect(d)
    request(a, 1, "reload")
    # while the reload is being parsed, status keeps answering: count the
    # round trips made before the reload's answer arrives
    trips, rid = 0, 100
    a.settimeout(0)
    reload_answer = None
    while reload_answer is None:
        request(b, rid, "status")
        assert answer(b, rid)["ok"]
        trips += 1
        rid += 1
        try:
            reload_answer = read_frame(a, timeout=0.001)
        except (socket.timeout, BlockingIOError):
            pass
    assert reload_answer["id"] == 1 and reload_answer["ok"] is False
    assert "bogus" in reload_answer["error"]
    assert trips >= 3, f"only {trips} status answers during the parse"
    d.wait("reload_refused")
    a.close()
    b.close()


def test_reloads_asked_while_parsing_coalesce_and_see_the_new_files(supd):
    d = supd.start({"a.yaml": f"worker: idle\ncommand: {SLEEP}\n"})
    d.wait("started", "root/idle")
    big_config(supd)
    (supd.dir / "99-bad.yaml").write_text("worker: zz\ncommand: x\nfirst: 1\n")
    a, b, gone = connect(d), connect(d), connect(d)
    request(a, 1, "reload")
    # asked while the first parse runs: one parse after it, for both, and
    # it reads the files as they are when it starts
    request(gone, 2, "reload")
    gone.close()
    (supd.dir / "99-bad.yaml").write_text("worker: zz\ncommand: x\nsecond: 1\n")
    request(b, 3, "reload")
    first, second = answer(a, 1), answer(b, 3)
    assert first["ok"] is False and second["ok"] is False
    assert "second" in second["error"], second
    # the daemon serves on, and applies a good config
    (supd.dir / "99-bad.yaml").unlink()
    (supd.dir / "50-big.yaml").unlink()
    (supd.dir / "51-big.yaml").unlink()  # 1,250 workers not to start
    (supd.dir / "b.yaml").write_text(f"worker: extra\ncommand: {SLEEP}\n")
    request(a, 4, "reload")
    ok = answer(a, 4)
    assert ok["ok"] is True and "root/extra" in ok["result"], ok
    d.wait("started", "root/extra")
    a.close()
    b.close()


def test_sighup_reloads_off_the_loop_too(supd):
    d = supd.start({"a.yaml": f"worker: idle\ncommand: {SLEEP}\n"})
    d.wait("started", "root/idle")
    (supd.dir / "b.yaml").write_text(f"worker: extra\ncommand: {SLEEP}\n")
    d.signal(signal.SIGHUP)
    ev = d.wait("reload_applied")
    assert "root/extra" in ev.detail
    d.wait("started", "root/extra")


def slow_sibling(gate):
    """A worker that, told to stop, stops only once gate exists."""
    return sh(f"""
        trap 'while [ ! -e {gate} ]; do sleep 0.05; done; exit 0' TERM
        sleep 1000 & wait; wait""")


def group(gate):
    """A one_for_all group: flaky, and slow (slow_sibling) beside it."""
    return textwrap.dedent(f"""\
        supervisor: grp
        strategy: one_for_all
        intensity: 10
        children:
          - worker: flaky
            command: {SLEEP}
            backoff: none
          - worker: slow
            command: {slow_sibling(gate)}
            shutdown: 120s
        """)


def as_child(doc):
    """A document's text as an item of a children: list."""
    first, *rest = doc.splitlines(True)
    return "  - " + first + "".join("    " + line for line in rest)


def restart_held_open(d, grp):
    """flaky killed: the group's restart begins, and stays under way (busy)
    until the test opens slow's gate."""
    started = d.wait("started", f"{grp}/flaky")
    slow_pid = d.wait("started", f"{grp}/slow").pid
    wait_until(lambda: catches(slow_pid, signal.SIGTERM), what="slow's trap")
    os.kill(started.pid, signal.SIGKILL)
    d.wait("restarting", f"{grp}/flaky")


def reload_by_ctl(d):
    return subprocess.Popen([AGENTSUPCTL, "--socket", d.socket, "reload"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def held(d):
    wait_until(lambda: any("reload waits" in l for l in d.lines),
               what="the reload held")


@pytest.mark.parametrize("how", ["ctl", "sighup", "newer_broken"])
def test_a_reload_while_a_restart_is_in_progress_waits_for_it(supd, how):
    """A one_for_all group restarting, a sibling slow to stop: a reload
    asked meanwhile was refused ("a restart is in progress"), and while one
    worker crash-looped every reload was, the one that would fix it among
    them. It is held, and applied once the restart has settled; a newer
    reload replaces it, and a broken newer one answers both at once."""
    gate = supd.tmp / "gate"
    conf = group(gate)
    d = supd.start({"a.yaml": conf})
    restart_held_open(d, "grp")
    supd.write({"a.yaml": conf + f"  - worker: extra\n    command: {SLEEP}\n"})
    if how != "sighup":
        asked = reload_by_ctl(d)
    else:
        d.signal(signal.SIGHUP)
    held(d)
    assert d.count("reload_refused") == 0
    if how != "sighup":
        assert asked.poll() is None  # not answered while held
    if how == "newer_broken":
        supd.write({"a.yaml": conf + "  - worker: extra\n    bogus: 1\n"})
        newer = d.ctl("reload", check=1)
        assert "bogus" in newer.stderr, newer.stderr
        out, err = asked.communicate(timeout=TIMEOUT)
        assert asked.returncode == 1 and "bogus" in err, (out, err)
        gate.touch()
        d.wait("started", "grp/slow")  # the restart went on, nothing held
        assert d.count("reload_applied") == 0
        return
    gate.touch()
    ev = d.wait("reload_applied")
    assert "grp/extra" in ev.detail
    d.wait("started", "grp/extra")
    if how == "ctl":
        out, err = asked.communicate(timeout=TIMEOUT)
        assert asked.returncode == 0, (out, err)
        assert "grp/extra" in out
    assert d.count("reload_refused") == 0


def test_a_reload_held_its_60_s_is_refused_not_disconnected(supd):
    """A reload held 60 s behind a restart that does not settle is refused
    ("for 60 s now", exit 1): its agentsupctl, silent all that time, was
    dropped as an idle client a moment before (exit 69, "agentsupd closed
    the connection"). Takes a minute."""
    gate = supd.tmp / "gate"
    conf = group(gate)
    d = supd.start({"a.yaml": conf})
    restart_held_open(d, "grp")
    supd.write({"a.yaml": conf + f"  - worker: extra\n    command: {SLEEP}\n"})
    asked = reload_by_ctl(d)
    out, err = asked.communicate(timeout=60 + TIMEOUT)
    assert asked.returncode == 1, (out, err)
    assert "a restart is in progress, for 60 s now" in err, err
    d.wait("reload_refused")
    gate.touch()
    d.wait("started", "grp/slow")


def test_a_reload_held_when_the_root_gives_up_is_answered(supd):
    """The root gives up while a reload waits behind a group's restart: the
    exit came from the reaper's turn, before the pump that answers a held
    reload, and its agentsupctl was left with a closed connection (69); it
    is refused, agentsupd exiting (1)."""
    gate, go = supd.tmp / "gate", supd.tmp / "go"
    crash = sh(f"while [ ! -e {go} ]; do sleep 0.05; done; exit 1")
    conf = textwrap.dedent("""\
        supervisor: root
        strategy: one_for_one
        intensity: 1
        period: 60s
        children:
        """) + as_child(group(gate)) + \
        f"  - worker: crash\n    command: {crash}\n    backoff: none\n"
    d = supd.start({"root.yaml": conf})
    restart_held_open(d, "root/grp")
    asked = reload_by_ctl(d)
    held(d)
    go.touch()
    d.wait("gave_up", "root")
    assert asked.poll() is None
    gate.touch()
    out, err = asked.communicate(timeout=TIMEOUT)
    assert asked.returncode == 1, (out, err)
    assert "agentsupd is exiting" in err, err
    assert d.exit_code() == 75
