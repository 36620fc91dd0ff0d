"""Checkpoints and the state store (DESIGN §11): no acknowledged checkpoint
is ever lost across SIGKILLs of agentsupd, an unusable store stops the start
with exit 73, a store that fails at run time is an event while supervision
goes on, the poison guard, and `keep`."""
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest

from conftest import SRC, TIMEOUT, store_locked, wait_until
from test_resume_tasks import settings

PYCLIENT = os.path.join(os.environ.get("AGENTSUP_SRC", os.getcwd()), "tools", "python")

# A worker streaming checkpoints "SEQ:padding"; every checkpoint_ok it hears
# is appended (fsync'd) to NAME.acks, and what welcome handed it to
# NAME.welcome.RUN (RUN read from the file `run`).
STREAMER = textwrap.dedent("""
    import os, select, sys, time
    sys.path.insert(0, {pyclient!r})
    import agentsup
    d, name = sys.argv[1], sys.argv[2]
    def append(path, line):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(fd, line.encode())
        os.fsync(fd)
        os.close(fd)
    with agentsup.Agent() as a:
        r = a.restored
        run = open(os.path.join(d, "run")).read().strip()
        ck = r.checkpoint or b""
        append(os.path.join(d, name + ".welcome." + run),
               "%d %s\\n" % (r.checkpoint_seq, ck.split(b":")[0].decode() or "-"))
        acked = a.checkpoint_acked
        while not a.draining:  # a stop's drain ends it at once
            seq = a.checkpoint(b"%d:" % (a.checkpoint_acked + 1) + os.urandom(512))
            end = time.monotonic() + 0.2
            while a.checkpoint_acked < seq and time.monotonic() < end:
                select.select([a], [], [], 0.02)
                a.process()
            if a.checkpoint_acked > acked:
                acked = a.checkpoint_acked
                append(os.path.join(d, name + ".acks"), "%d\\n" % acked)
""")


def write_streamer(tmp):
    path = tmp / "streamer.py"
    path.write_text(STREAMER.format(pyclient=PYCLIENT))
    return path


def streamer_conf(tmp, state, names, extra=""):
    w = write_streamer(tmp)
    docs = [f"agentsupd:\n  events_file: {tmp / 'events.jsonl'}\n  state_dir: {state}\n"]
    for n in names:
        docs.append(textwrap.dedent(f"""\
            worker: {n}
            command: [{sys.executable}, {w}, {tmp}, {n}]
            backoff: none
            """) + extra)
    return "---\n".join(docs)


def acked(tmp, name):
    try:
        lines = (tmp / (name + ".acks")).read_text().split()
    except FileNotFoundError:
        return 0
    return max(int(x) for x in lines) if lines else 0


def welcomed(tmp, name, run):
    try:
        line = (tmp / f"{name}.welcome.{run}").read_text().splitlines()[0]
    except (FileNotFoundError, IndexError):
        return None
    seq, head = line.split()
    return int(seq), head


def start(supd, tmp, conf, run):
    (tmp / "run").write_text(str(run))
    supd.dir.mkdir(exist_ok=True)
    (supd.dir / "a.yaml").write_text(conf)
    return supd.start()


def test_no_acknowledged_checkpoint_is_lost(supd):
    tmp = supd.tmp
    names = [f"w{i}" for i in range(4)]
    conf = streamer_conf(tmp, tmp / "state", names)
    rng = random.Random(os.environ.get("AGENTSUP_TEST_SEED", "12"))
    for run in range(4):
        floor = {n: acked(tmp, n) for n in names}
        d = start(supd, tmp, conf, run)
        for n in names:
            wait_until(lambda: welcomed(tmp, n, run) is not None,
                       what=f"{n}'s welcome in run {run}")
            seq, head = welcomed(tmp, n, run)
            # every checkpoint_ok it ever received is there (or a newer one)
            assert seq >= floor[n], (n, run, seq, floor[n])
            assert head == (str(seq) if seq else "-")
        # stream a while, then SIGKILL agentsupd at a random moment
        wait_until(lambda: all(acked(tmp, n) > floor[n] for n in names),
                   what="new acks in every worker")
        time.sleep(rng.uniform(0.05, 0.6))  # a random moment: no condition
        d.kill()
        for p in list(d.pids):
            wait_until(lambda: not d.runs(p), what="workers die with agentsupd")
    assert all(acked(tmp, n) > 0 for n in names)


def test_unusable_store_exits_73(supd, tmp_path):
    afile = tmp_path / "plain"
    afile.write_text("x")
    supd.write({"a.yaml": f"agentsupd:\n  state_dir: {afile}/state\n---\n"
                "worker: w\ncommand: [sleep, '100']\n"}, settings=False)
    d = supd.start()
    assert d.exit_code() == 73
    d.drain_events()
    assert any("state store" in l and "cannot create" in l for l in d.lines), d.lines

    state = tmp_path / "bad"
    state.mkdir()
    (state / "agentsup.db").write_bytes(b"this is not a database at all" * 100)
    supd.write({"a.yaml": f"agentsupd:\n  state_dir: {state}\n---\n"
                "worker: w\ncommand: [sleep, '100']\n"}, settings=False)
    d = supd.start()
    assert d.exit_code() == 73
    d.drain_events()
    assert any("state store" in l and "not a database" in l for l in d.lines), d.lines


def test_an_empty_store_file_is_said(supd, tmp_path):
    """A 0-byte agentsup.db (truncated by a tool or a failing disk) opens
    as an empty store: agentsupd starts, and says what was lost; a fresh
    state_dir says nothing."""
    for empty in (False, True):
        state = tmp_path / f"state{int(empty)}"
        state.mkdir()
        if empty:
            (state / "agentsup.db").write_bytes(b"")
        supd.write({"a.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                    f"  state_dir: {state}\n---\nworker: w\ncommand: [sleep, '100']\n"},
                   settings=False)
        d = supd.start()
        d.wait("started", "root/w")
        d.signal(signal.SIGTERM)
        assert d.exit_code() == 0
        d.drain_events()
        said = [l for l in d.lines if "was empty (0 bytes)" in l]
        assert bool(said) == empty, d.lines


def test_store_in_use_by_a_live_daemon_exits_73(supd, tmp_path):
    state = tmp_path / "state"
    supd.write({"a.yaml": f"agentsupd:\n  events_file: {supd.events}\n  state_dir: {state}\n"
                "---\nworker: w\ncommand: [sleep, '100']\n"}, settings=False)
    first = supd.start()
    first.wait("started", "root/w")
    second = supd.start(socket_path=str(tmp_path / "other.sock"))
    assert second.exit_code() == 73
    second.drain_events()
    assert any("in use by another live agentsupd" in l for l in second.lines), second.lines
    assert first.proc.poll() is None  # the first goes on


def test_a_reload_says_what_waits_for_the_next_start(supd):
    """A reload that moved state_dir (to a larger disk, say) answered
    `added [] ... updated []` and nothing more, while the store stayed
    where it was until a restart; the control socket was said only in
    agentsupd's log: the answer (and its event) now say both; found by an
    SRE's trial."""
    tmp = supd.tmp
    settings = (f"agentsupd:\n  events_file: {supd.events}\n"
                f"  state_dir: {tmp / 'state'}\n")
    supd.write({"00-settings.yaml": settings,
                "a.yaml": "worker: w\ncommand: [sleep, '300']\n"},
               settings=False)
    d = supd.start()
    d.wait("started", "root/w")
    (supd.dir / "00-settings.yaml").write_text(
        settings.replace("/state", "/moved")
        + f"  socket: {tmp / 'other.sock'}\n")
    r = d.ctl("reload", check=0)
    assert f"the state store stays at {tmp / 'state'} until a restart" \
        in r.stdout, r.stdout
    assert f"the control socket stays at {d.socket} until a restart" \
        in r.stdout, r.stdout
    assert "until a restart" in d.wait("reload_applied").detail
    assert not (tmp / "moved").exists()


def test_store_error_at_run_time_is_an_event(supd):
    """Another process holds the database's write lock: commits fail, the
    daemon says store_error and acks nothing it could not commit, while a
    crashing worker is still restarted; once the lock is gone acks resume."""
    tmp = supd.tmp
    state = tmp / "state"
    conf = streamer_conf(tmp, state, ["w0"]) + textwrap.dedent("""\
        ---
        supervisor: crashers
        intensity: 1000
        ---
        worker: crasher
        parent: crashers
        command: [/bin/sh, -c, "sleep 0.3; exit 1"]
        backoff: none
        """)
    d = start(supd, tmp, conf, 0)
    wait_until(lambda: acked(tmp, "w0") > 2, what="acks")
    with store_locked(state / "agentsup.db"):
        d.wait("store_error", "root/w0")
        held = acked(tmp, "w0")
        # status says the newest checkpoint kept, i.e. committed: it said
        # the newest received (751 while 138 was the last acked)
        db = sqlite3.connect(f"file:{state / 'agentsup.db'}?mode=ro", uri=True)
        kept = db.execute("SELECT max(seq) FROM checkpoints "
                          "WHERE path='root/w0'").fetchone()[0]
        db.close()
        assert d.ctl_json("status", "w0")[0]["checkpoint_seq"] == kept
        before = d.count("started", "root/crashers/crasher")
        d.wait_count("started", before + 2, "root/crashers/crasher")  # supervision goes on
    wait_until(lambda: acked(tmp, "w0") > held, what="acks after the lock")
    d.kill()
    db = sqlite3.connect(str(state / "agentsup.db"))
    stored = db.execute("SELECT max(seq) FROM checkpoints WHERE path='root/w0'").fetchone()[0]
    assert stored >= acked(tmp, "w0")


def test_failed_sweeps_are_said_once_a_minute(supd):
    """The spend and circuits are written every second: with the store
    unwritable (a full disk), a store_error a second crowded the other
    events out of the 256 kept (found by an SRE's trial). The first of a
    streak is said, then once a minute with the count; its end is logged."""
    tmp = supd.tmp
    state = tmp / "state"
    spender = tmp / "spender.py"
    spender.write_text(textwrap.dedent(f"""\
        import sys, time
        sys.path.insert(0, {str(Path(SRC) / 'tools' / 'python')!r})
        import agentsup
        with agentsup.Agent() as a:
            n = 0
            while True:
                n += 1
                a.beat(tokens=n)
                a.wait(0.1)
        """))
    supd.write({"a.yaml": textwrap.dedent(f"""\
        agentsupd:
          events_file: {supd.events}
          state_dir: {state}
        ---
        supervisor: root
        intensity: 1000
        children:
          - {{worker: spender, command: [{sys.executable}, {spender}]}}
          - {{worker: ticker, command: [/bin/sh, -c, "sleep 1; exit 1"],
              backoff: none}}
        """)}, settings=False)
    d = supd.start()
    d.wait("started", "root/ticker")
    with store_locked(state / "agentsup.db"):
        d.wait_detail("store_error", "spend and circuits not written")
        # four more seconds of sweeps, each failing
        d.wait_count("started", d.count("started", "root/ticker") + 4,
                     "root/ticker")
    wait_until(lambda: any("written again" in l for l in d.lines),
               what="the streak's end logged")
    said = [e for e in d.seen if e.kind == "store_error"
            and "spend and circuits" in (e.detail or "")]
    assert len(said) == 1, said


POISONED = textwrap.dedent("""
    import os, select, sys
    sys.path.insert(0, {pyclient!r})
    import agentsup
    log = sys.argv[1]
    with agentsup.Agent() as a:
        r = a.restored
        with open(log, "a") as f:
            f.write("%d\\n" % r.checkpoint_seq)
        if r.checkpoint is not None:
            sys.exit(3)  # the checkpoint makes it crash
        if r.restarts == 0:  # first run: two checkpoints, then a crash
            a.checkpoint(b"one")
            s = a.checkpoint(b"two")
            while a.checkpoint_acked < s:
                select.select([a], [], [], 1)
                a.process()
            sys.exit(1)
    """)


@pytest.mark.parametrize("with_store", [False, True])
def test_poison_guard(supd, with_store):
    tmp = supd.tmp
    w = tmp / "poisoned.py"
    w.write_text(POISONED.format(pyclient=PYCLIENT))
    log = tmp / "handed"
    store = f"  state_dir: {tmp / 'state'}\n" if with_store else ""
    supd.write({"a.yaml": f"agentsupd:\n  events_file: {supd.events}\n{store}---\n"
                "supervisor: s\nintensity: 1000\n---\n"
                f"worker: p\nparent: s\ncommand: [{sys.executable}, {w}, {log}]\n"
                "restart: transient\nbackoff: none\n"
                "checkpoint: {keep: 2, poison_after: 2}\n"}, settings=False)
    d = supd.start()
    d.wait("checkpoint_discarded", "s/p")
    d.wait_count("checkpoint_discarded", 2, "s/p")
    d.wait("exited", "s/p", reason="exit:0")
    handed = [int(x) for x in log.read_text().split()]
    assert handed == [0, 2, 2, 1, 1, 0]


def test_keep_and_limits(supd):
    tmp = supd.tmp
    w = tmp / "keeper.py"
    w.write_text(textwrap.dedent(f"""
        import select, sys
        sys.path.insert(0, {PYCLIENT!r})
        import agentsup
        with agentsup.Agent() as a:
            for i in range(5):
                s = a.checkpoint(b"x%d" % i)
            while a.checkpoint_acked < s:
                select.select([a], [], [], 1)
                a.process()
            a.checkpoint_max = None  # as a client that does not check
            a.checkpoint(b"y" * 3000)  # over checkpoint.max: a protocol error
            select.select([a], [], [], 10)
            a.process()
        """))
    state = tmp / "state"
    supd.write({"a.yaml": f"agentsupd:\n  events_file: {supd.events}\n  state_dir: {state}\n---\n"
                f"worker: k\ncommand: [{sys.executable}, {w}]\n"
                "restart: temporary\n"
                "checkpoint: {max: 2048, keep: 3}\n"}, settings=False)
    d = supd.start()
    d.wait("protocol_error", "root/k")
    d.wait("exited", "root/k")
    st = d.ctl_json("status")
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    db = sqlite3.connect(str(state / "agentsup.db"))
    rows = db.execute("SELECT seq, data FROM checkpoints WHERE path='root/k' ORDER BY seq").fetchall()
    assert rows == [(3, b"x2"), (4, b"x3"), (5, b"x4")]
    node = [n for n in _nodes(st) if n["path"] == "root/k"][0]
    assert node["checkpoint_seq"] == 5


def _nodes(st):
    if isinstance(st, dict):
        st = st.get("nodes", st.get("tree", []))
    return st


def agents_conf(supd, state):
    build = os.environ.get("AGENTSUP_BUILD", "build")
    demo = os.path.join(os.environ.get("AGENTSUP_SRC", os.getcwd()), "tools", "agents",
                        "demo_agent.py")
    return {"a.yaml": f"agentsupd:\n  events_file: {supd.events}\n  state_dir: {state}\n---\n"
            "supervisor: s\nintensity: 1000\nchildren:\n"
            f"  - worker: c\n    command: [{os.path.abspath(os.path.join(build, 'example_agent'))},"
            " --step-ms, '20', --crash, '0.05', --ready-ms, '0']\n    backoff: none\n"
            f"  - worker: py\n    command: [{sys.executable}, {demo}, --role, py, --step, '0.02',"
            " --crash-every, '10', --warmup, '0']\n    backoff: none\n"}


def test_a_full_state_disk_at_start_says_so(tiny_fs, supd):
    """A state_dir on a full file system stopped the start with only
    SQLite's "disk I/O error" (found by an SRE's trial): exit 73 as
    before, and the message says the file system is full."""
    (tiny_fs / "state").mkdir()
    subprocess.run(["dd", "if=/dev/zero", f"of={tiny_fs / 'filler'}",
                    "bs=4096"], capture_output=True)  # until ENOSPC
    supd.write({"a.yaml": f"agentsupd:\n  state_dir: {tiny_fs / 'state'}\n"
                "---\nworker: w\ncommand: [sleep, '100']\n"},
               settings=False)
    d = supd.start()
    assert d.exit_code() == 73
    d.drain_events()
    assert any("state store" in l and "its file system is full" in l
               for l in d.lines), d.lines


def test_example_agents_resume_after_a_crash_and_a_daemon_restart(supd):
    """The worked examples (tools/agents/) against the real daemon: each
    resumes from its checkpoint after its own crash, and after agentsupd
    itself was stopped and started again on the same state_dir."""
    state = supd.tmp / "state"
    supd.write(agents_conf(supd, state), settings=False)

    def resumed(d, who):
        # worker output comes captured, prefixed by its name ("c  ! c: ...")
        return [l for l in d.lines if (who + ": resuming at step") in l]

    d = supd.start()
    wait_until(lambda: resumed(d, "c") and resumed(d, "py"), what="resumes after crashes")
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    d = supd.start()
    wait_until(lambda: resumed(d, "c") and resumed(d, "py"), what="resumes after a restart")
    # the first start of the new daemon already resumed: no crash needed
    first = [l for l in d.lines if "resuming at step" in l or "started" in l]
    assert any("resuming" in l for l in first[:6]), first[:6]


def circuit_conf(supd, state, open_):
    return {"a.yaml": f"agentsupd:\n  events_file: {supd.events}\n  state_dir: {state}\n---\n"
            "supervisor: s\nintensity: 1000\nchildren:\n"
            "  - worker: flaky\n    command: [/bin/sh, -c, 'sleep 0.2; exit 1']\n"
            f"    backoff: none\n    circuit: {{failures: 3, window: 1m, open: {open_}, open_max: 5h}}\n"
            "  - worker: steady\n    command: [sleep, '100']\n"}


def stored_circuit(state):
    """flaky's row once the store has it open: (open_ms, probe_wall_ms)."""
    db = sqlite3.connect(str(state / "agentsup.db"))
    try:
        row = db.execute("SELECT circuit, open_ms, probe_wall_ms FROM nodes "
                         "WHERE path='s/flaky'").fetchone()
    except sqlite3.OperationalError:  # the table is not there yet
        row = None
    finally:
        db.close()
    return row[1:] if row and row[0] == 1 else None


def open_then_sigkill(supd, state, open_):
    """Start, let flaky's circuit open and reach the store, SIGKILL."""
    supd.write(circuit_conf(supd, state, open_), settings=False)
    d = supd.start()
    d.wait("quarantined", "s/flaky")
    wait_until(lambda: stored_circuit(state) is not None, what="the open circuit stored")
    saved = stored_circuit(state)
    d.kill()
    for p in list(d.pids):
        wait_until(lambda: not d.runs(p), what="workers die with agentsupd")
    supd.events.unlink()  # count the next run's events only
    return saved


def test_open_circuit_is_restored_open_for_its_time_left(supd):
    """A circuit open when agentsupd was SIGKILLed stays open after the
    restart for the time it had left (its deadline is stored as wall-clock
    time): the worker is quarantined, not started, and probed only when the
    deadline comes.

    Only a restart before the deadline can find it open: a host too slow
    for an open time (its restart came after the deadline, or too close to
    tell) is tried again with a longer one, never failed for it."""
    for n, open_s in enumerate((8, 25, 55)):
        state = supd.tmp / f"state{n}"
        open_ms, deadline = open_then_sigkill(supd, state, f"{open_s}s")
        assert open_ms == open_s * 1000
        d = supd.start()
        d.wait("started", "s/steady")
        r = d.ctl("--json", "status")
        assert r.returncode in (0, 3), r
        if time.time() * 1000 < deadline:
            break  # restored before its deadline, for sure
        d.kill()
        for p in list(d.pids):
            wait_until(lambda: not d.runs(p), what="workers die with agentsupd")
    else:
        raise AssertionError("even 55 s passed before the restart was up")
    flaky = [n for n in json.loads(r.stdout) if n["name"] == "flaky"][0]
    assert flaky["state"] == "quarantined" and flaky["circuit"] == "open", flaky
    assert abs(flaky["probe_at_ms"] - deadline) < 1000, (flaky, deadline)
    assert any("s/flaky: circuit still open, probe in" in l for l in d.lines), d.lines
    p = d.wait("probing", "s/flaky", timeout=TIMEOUT + open_s)
    assert not [e for e in d.seen if e.kind == "started" and
                e.path == "s/flaky" and e.seq < p.seq]  # none before it
    d.wait("started", "s/flaky")
    when = datetime.fromisoformat(p.time.replace("Z", "+00:00")).timestamp() * 1000
    assert when >= deadline - 20, (p.time, deadline)
    # the failed probe reopens it for twice as long, as always
    e = d.wait("quarantined", "s/flaky")
    assert f"{2 * open_s}s" in (e.detail or ""), e.detail


def test_circuit_whose_time_passed_is_restored_half_open(supd):
    """A circuit whose open time passed while agentsupd was down is
    half-open at the next start: the first start is the probe, and one more
    failure quarantines it again (for twice as long) instead of needing
    `failures` of them."""
    state = supd.tmp / "state"
    open_ms, deadline = open_then_sigkill(supd, state, "1s")
    wait_until(lambda: time.time() * 1000 > deadline, what="the open time to pass")
    d = supd.start()
    d.wait("started", "s/flaky")
    e = d.wait("quarantined", "s/flaky")
    assert d.count("started", "s/flaky") == 1  # quarantined after one failure
    assert d.count("probing", "s/flaky") == 0
    assert "2s" in (e.detail or ""), e.detail


@pytest.mark.parametrize("with_store", [False, True])
def test_a_large_checkpoint_comes_back_whole(supd, with_store):
    """A checkpoint near the default checkpoint.max (256 KiB), over the
    daemon's max_frame (64 KiB): accepted, and handed back whole."""
    tmp = supd.tmp
    w = tmp / "big.py"
    out = tmp / "got"
    w.write_text(textwrap.dedent(f"""
        import hashlib, os, select, sys
        sys.path.insert(0, {PYCLIENT!r})
        import agentsup
        with agentsup.Agent() as a:
            r = a.restored
            if r.checkpoint is not None:
                open({str(out)!r}, "w").write(
                    "%d %s" % (len(r.checkpoint), hashlib.sha256(r.checkpoint).hexdigest()))
                sys.exit(0)
            data = bytes(range(256)) * 1000
            open({str(out)!r} + ".sent", "w").write(hashlib.sha256(data).hexdigest())
            s = a.checkpoint(data)
            while a.checkpoint_acked < s:
                select.select([a], [], [], 1)
                a.process()
            sys.exit(1)
        """))
    store = f"  state_dir: {tmp / 'state'}\n" if with_store else ""
    supd.write({"a.yaml": f"agentsupd:\n  events_file: {supd.events}\n{store}---\n"
                f"worker: big\ncommand: [{sys.executable}, {w}]\n"
                "restart: transient\nbackoff: none\n"}, settings=False)
    d = supd.start()
    d.wait("exited", "root/big", reason="exit:0")
    n, digest = out.read_text().split()
    assert int(n) == 256000
    assert digest == (tmp / "got.sent").read_text()


@pytest.mark.parametrize("value,message", [
    ("{keep: 0}", "checkpoint.keep: want a whole number from 1 to 16"),
    ("{max: 99999999}", "checkpoint.max: want a whole number from 1 to 16777216"),
    ("{poison: 1}", 'checkpoint: unknown key "poison"'),
    ("[1]", "checkpoint: want none or a mapping of max, keep, poison_after"),
])
def test_checkpoint_key_errors(supd, value, message):
    supd.write({"a.yaml": f"worker: w\ncommand: [sleep, '1']\ncheckpoint: {value}\n"})
    d = supd.start()
    assert d.exit_code() == 78
    d.drain_events()
    assert any(message in l for l in d.lines), d.lines


def test_a_store_removed_under_agentsupd_is_said_and_acks_stop(supd):
    """agentsup.db removed while agentsupd runs (an operator's rm, a
    tmpfiles cleaner): SQLite went on committing into the unlinked file, so
    checkpoint_ok kept coming for writes the next start could not find, and
    nothing was said (found in an audit). Now every commit checks the file
    is still the one opened: a store_error says so, and no write is
    acknowledged any more."""
    tmp = supd.tmp
    state = tmp / "state"
    d = start(supd, tmp, streamer_conf(tmp, state, ["w0"]), 0)
    wait_until(lambda: acked(tmp, "w0") > 2, what="acks")
    for f in ("agentsup.db", "agentsup.db-wal", "agentsup.db-shm"):
        try:
            os.unlink(state / f)
        except FileNotFoundError:
            pass
    first = d.wait("store_error")
    assert "removed or replaced" in first.detail, first.detail
    d.wait("store_error")  # the streamer's next writes (any ack sent
    before = acked(tmp, "w0")  # before the first error has arrived by now)
    d.wait("store_error")
    assert acked(tmp, "w0") == before


def test_a_store_emptied_in_place_is_said_and_acks_stop(supd):
    """agentsup.db truncated (or overwritten) in place: same file, same
    inode, so the check above passed; SQLite went on committing and acks
    kept coming, and the next start refused the damaged file: every one of
    them lost (found in an audit). The file must still begin as a
    database."""
    tmp = supd.tmp
    state = tmp / "state"
    d = start(supd, tmp, streamer_conf(tmp, state, ["w0"]), 0)
    wait_until(lambda: acked(tmp, "w0") > 2, what="acks")
    os.truncate(state / "agentsup.db", 0)
    first = d.wait("store_error")
    assert "emptied or overwritten" in first.detail, first.detail
    d.wait("store_error")
    before = acked(tmp, "w0")
    d.wait("store_error")
    assert acked(tmp, "w0") == before


DECLARER = textwrap.dedent("""
    import select, sys
    sys.path.insert(0, {pyclient!r})
    import agentsup
    with agentsup.Agent() as a:
        r = a.restored
        with open(sys.argv[1], "a") as f:
            f.write("%d\\n" % r.checkpoint_seq)
        if r.checkpoint is None:
            s = a.checkpoint(b"good")
            while a.checkpoint_acked < s:
                select.select([a], [], [], 1)
                a.process()
        a.exit_reason(sys.argv[2], retry_after=0.01)
        a.flush(2)
    sys.exit(1)
    """)


def test_poison_guard_trusts_declared_exits(supd):
    """A worker handed its checkpoint that then exits 1 declaring
    rate_limited (a 429) or done is not poisoned by it: the guard counts
    failures the worker did not explain (it discarded a good checkpoint
    after poison_after such exits)."""
    w = supd.tmp / "declarer.py"
    w.write_text(DECLARER.format(pyclient=PYCLIENT))
    conf = "supervisor: root\nintensity: 1000\nchildren:\n"
    for kind in ("rate_limited", "done"):
        conf += (f"  - worker: {kind}\n"
                 f"    command: [{sys.executable}, {w}, "
                 f"{supd.tmp / kind}, {kind}]\n"
                 "    restart: permanent\n    backoff: none\n"
                 "    checkpoint: {poison_after: 2}\n")
    d = supd.start({"a.yaml": conf})
    for kind in ("rate_limited", "done"):
        # five Python starts in a row: under ASan on a slow host each took
        # 5 s to its declared exit, past the harness's one TIMEOUT
        d.wait_count("started", 5, f"root/{kind}", timeout=4 * TIMEOUT)
        d.ctl("stop", kind, check=0)
    assert d.count("checkpoint_discarded") == 0
    for kind in ("rate_limited", "done"):
        handed = [int(x) for x in (supd.tmp / kind).read_text().split()]
        assert handed[:4] == [0, 1, 1, 1], (kind, handed)


HUGE_SEQ = textwrap.dedent("""
    import select, sys, time
    sys.path.insert(0, {pyclient!r})
    import agentsup
    with agentsup.Agent() as a:
        r = a.restored
        with open(sys.argv[1], "a") as f:
            f.write("%d %r\\n" % (r.checkpoint_seq, r.checkpoint))
        if r.checkpoint is None:
            s = a.checkpoint(b"one")
            while a.checkpoint_acked < s:
                select.select([a], [], [], 1)
                a.process()
            a._ckpt_seq = 2**63 - 1  # the next is 2^63: past SQLite's
            a.checkpoint(b"big")
            a.flush(2)
        a.wait(1000)  # until told to drain: the test's end is quick
    """)


def test_a_checkpoint_seq_past_2_63_is_refused(supd):
    """A seq the store cannot hold as a signed INTEGER is a protocol error,
    not acknowledged (it was, and its write deleted every stored row of
    the worker, the one acknowledged before it too)."""
    w = supd.tmp / "huge.py"
    w.write_text(HUGE_SEQ.format(pyclient=PYCLIENT))
    log = supd.tmp / "handed"
    state = supd.tmp / "state"
    supd.write({"a.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                f"  state_dir: {state}\n---\n"
                f"worker: w\ncommand: [{sys.executable}, {w}, {log}]\n"
                "backoff: none\n"}, settings=False)
    d = supd.start()
    d.wait_count("started", 2, "root/w")  # cut off, restarted
    wait_until(lambda: len(log.read_text().splitlines()) == 2,
               what="the second run's welcome")
    assert log.read_text().splitlines()[1] == "1 b'one'"


SPENDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {pyclient!r})
    import agentsup
    with agentsup.Agent() as a:
        a.beat(tokens=900)
        while not a.draining:
            a.wait(1)
    """)


def stored_tokens(state, path):
    try:
        db = sqlite3.connect(f"file:{state}/agentsup.db?mode=ro", uri=True)
        row = db.execute("SELECT spend FROM nodes WHERE path=?",
                         (path,)).fetchone()
        db.close()
    except sqlite3.Error:
        return None
    return None if row is None else int.from_bytes(row[0][:8], "little")


def test_a_reset_of_a_running_worker_is_stored(supd):
    """`reset` clears a running worker's spend in the store too: after a
    SIGKILL of agentsupd the cleared spend did not come back (the row added
    the running incarnation's last report again)."""
    w = supd.tmp / "spender.py"
    w.write_text(SPENDER.format(pyclient=PYCLIENT))
    state = supd.tmp / "state"
    conf = (f"agentsupd:\n  events_file: {supd.events}\n"
            f"  state_dir: {state}\n---\n"
            f"worker: w\ncommand: [{sys.executable}, {w}]\n"
            "budget: {tokens: 1000}\n")
    supd.write({"a.yaml": conf}, settings=False)
    d = supd.start()
    d.wait("budget_warning", "root/w")
    wait_until(lambda: stored_tokens(state, "root/w") == 900,
               what="the spend stored")
    d.ctl("reset", "w", check=0)
    wait_until(lambda: stored_tokens(state, "root/w") == 0,
               what="the reset stored")
    d.kill()
    supd.events = supd.tmp / "events-1.jsonl"
    supd.write({"a.yaml": conf.replace("events.jsonl", "events-1.jsonl")},
               settings=False)
    d = supd.start()
    d.wait("started", "root/w")
    node = [n for n in d.ctl_json("status") if n["path"] == "root/w"][0]
    assert node["budget"]["spend"]["tokens"] < 900, node


# Checkpoint "one" acked; at go2 "two" sent (not awaited); at go3 exit 1.
# Each run writes what welcome handed it to runN.
HANDBACK = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {pyclient!r})
    import agentsup
    d = sys.argv[1]
    def until(name):
        while not os.path.exists(os.path.join(d, name)):
            a.wait(0.02)
    with agentsup.Agent() as a:
        r = a.restored
        n = len([f for f in os.listdir(d) if f.startswith("run")])
        # whole when seen: the test reads it once it exists
        with open(os.path.join(d, ".run%d" % n), "w") as f:
            f.write("%d %s" % (r.checkpoint_seq,
                               (r.checkpoint or b"-").decode()))
        os.rename(os.path.join(d, ".run%d" % n), os.path.join(d, "run%d" % n))
        if n > 0:
            a.wait(300)
            sys.exit(0)
        a.checkpoint(b"one")
        while a.checkpoint_acked < 1:
            a.wait(0.02)
        open(os.path.join(d, "acked1"), "w").close()
        until("go2")
        a.checkpoint(b"two")
        a.flush(5)
        open(os.path.join(d, "sent2"), "w").close()
        until("go3")
        sys.exit(1)
    """)


@pytest.mark.parametrize("failed", [True, False])
def test_a_checkpoint_not_committed_is_never_handed(supd, failed):
    """Welcome handed the newest checkpoint taken, committed or not: one
    whose write failed (a store_error, no ack) was handed to the next run
    while the store held the one before (a SIGKILL then, and the run after
    would be handed that older one). Now the newest committed is handed:
    after the write failed (failed), or while it is still in flight (the
    worker exits at once, its restart says hello under the lock)."""
    tmp = supd.tmp
    w = tmp / "handback.py"
    w.write_text(HANDBACK.format(pyclient=PYCLIENT))
    runs = tmp / "runs"
    runs.mkdir()
    supd.write({"a.yaml": f"""\
        agentsupd:
          events_file: {supd.events}
          state_dir: {tmp / 'state'}
        ---
        worker: w
        command: [{sys.executable}, {w}, {runs}]
        backoff: none
        """}, settings=False)
    d = supd.start()
    wait_until(lambda: (runs / "acked1").exists(), what="checkpoint 1 acked")
    with store_locked(tmp / "state" / "agentsup.db"):
        (runs / "go2").write_text("")
        wait_until(lambda: (runs / "sent2").exists(), what="checkpoint 2 sent")
        if failed:
            d.wait("store_error", "root/w")
            # status says the newest kept, not the one that failed
            node = [n for n in d.ctl_json("status") if n["path"] == "root/w"][0]
            assert node["checkpoint_seq"] == 1, node
        (runs / "go3").write_text("")
        wait_until(lambda: (runs / "run1").exists(), what="the second run")
        handed = (runs / "run1").read_text()
    assert handed == "1 one", f"handed {handed!r}: never committed"


def held_conf(supd, n):
    supd.events = supd.tmp / f"events-{n}.jsonl"
    supd.write({**settings(supd), "a.yaml": textwrap.dedent("""\
        supervisor: root
        children:
          - {worker: idle, command: [sleep, '300']}
          - {worker: flaky, command: [sleep, '300']}
          - supervisor: team
            children:
              - {worker: member, command: [sleep, '300']}
        """)}, settings=False)


def stored_holds(supd):
    db = sqlite3.connect(f"file:{supd.tmp / 'state' / 'agentsup.db'}?mode=ro",
                         uri=True)
    try:
        return {r[0] for r in db.execute("SELECT path FROM holds")}
    finally:
        db.close()


def states(d):
    return {n["path"]: (n["state"], n["held"]) for n in d.ctl_json("status")}


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_node_stopped_by_command_stays_stopped_across_a_restart(supd, how):
    """An operator stopped a flaky agent; agentsupd restarted (a deploy,
    a crash) and the agent ran again, spending money (found by an SRE's
    trial). With a state store the operator's stop, of a worker or a
    supervisor, lasts until `start`, as agentsupctl(1) says."""
    held_conf(supd, 0)
    d = supd.start()
    d.wait("started", "root/team/member")
    d.ctl("stop", "flaky", check=0)
    d.ctl("stop", "team", check=0)
    d.wait("exited", "root/team/member")
    wait_until(lambda: stored_holds(supd) == {"root/flaky", "root/team"},
               what="the holds stored")
    if how == "SIGKILL":
        d.kill()
        for p in list(d.pids):
            wait_until(lambda: not d.runs(p), what="workers die with agentsupd")
    else:
        d.signal(signal.SIGTERM)
        assert d.exit_code() == 0
    held_conf(supd, 1)
    d = supd.start()
    d.wait("started", "root/idle")
    st = states(d)
    assert st["root/flaky"] == ("stopped", True), st
    assert st["root/team"] == ("stopped", True), st
    assert st["root/team/member"][0] == "stopped", st
    assert d.count("started", "root/flaky") == 0
    d.ctl("start", "flaky", check=0)
    d.ctl("start", "team", check=0)
    d.wait("started", "root/team/member")
    wait_until(lambda: stored_holds(supd) == set(), what="the holds gone")
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    held_conf(supd, 2)
    d = supd.start()
    d.wait("started", "root/flaky")
    d.wait("started", "root/team/member")


def test_a_stalled_disk_is_said(supd, tmp_path):
    """A state disk that stalls (fsfreeze here; a hung NFS server, a dying
    device) fails no write: nothing was said until the store's queue of
    8,192 writes filled, minutes at ordinary checkpoint rates, while no
    checkpoint was acknowledged. Writes that wait 5 s with none done are a
    store_error; once the disk answers, acks go on."""
    if os.geteuid() != 0 or shutil.which("fsfreeze") is None or \
            shutil.which("mkfs.ext4") is None:
        pytest.skip("needs root, fsfreeze and mkfs.ext4")
    img, mnt = tmp_path / "disk.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(img, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], check=True)
    if subprocess.run(["mount", "-o", "loop", str(img), str(mnt)]).returncode:
        pytest.skip("cannot mount a loop device here")
    frozen = False
    try:
        tmp = supd.tmp
        d = start(supd, tmp, streamer_conf(tmp, mnt / "state", ["w0"]), 0)
        wait_until(lambda: acked(tmp, "w0") > 2, what="acks")
        subprocess.run(["fsfreeze", "-f", str(mnt)], check=True)
        frozen = True
        ev = d.wait("store_error", "root")
        assert "committed nothing for" in ev.detail, ev
        held = acked(tmp, "w0")
        subprocess.run(["fsfreeze", "-u", str(mnt)], check=True)
        frozen = False
        wait_until(lambda: acked(tmp, "w0") > held, what="acks after the thaw")
        wait_until(lambda: any("writes are committed again" in l
                               for l in d.lines), what="the end said")
        d.kill()
    finally:
        if frozen:
            subprocess.run(["fsfreeze", "-u", str(mnt)])
        for p in supd.started:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        subprocess.run(["umount", "-l", str(mnt)])
