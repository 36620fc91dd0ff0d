"""Upgrades and downgrades: a state_dir written by an earlier build is
opened (migrated) by this one, one written by a later build is refused
with a clear error and left as it was, and what an older agentsupd says
to a newer agentsupctl is told as such."""
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap

import pytest

import conftest
from conftest import wait_until
from test_ledger_store import frame, frames

PYCLIENT = os.path.join(os.environ.get("AGENTSUP_SRC", os.getcwd()), "tools", "python")

# A task that writes what its welcome handed it to OUT/KEY, then runs
# until drained.
TASK = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {pyclient!r})
    import agentsup
    out, key = sys.argv[1], sys.argv[2]
    with agentsup.Agent() as a:
        r = a.restored
        with open(os.path.join(out, key + ".tmp"), "w") as f:
            f.write("%d %s" % (r.checkpoint_seq, (r.checkpoint or b"-").decode()))
        os.rename(os.path.join(out, key + ".tmp"), os.path.join(out, key))
        while not a.draining:
            a.wait(1.0)
""")

# The tasks table as the first build with a task ledger (1581a93) made it:
# no checkpoint_seq, no tail, and no user_version.
TASKS_V0 = ("CREATE TABLE tasks (sup TEXT NOT NULL, key TEXT NOT NULL, args BLOB,"
            " env BLOB, attempts INTEGER NOT NULL, state INTEGER NOT NULL,"
            " reasons TEXT, result BLOB, accepted_ms INTEGER NOT NULL,"
            " ended_ms INTEGER NOT NULL, replays INTEGER NOT NULL,"
            " PRIMARY KEY (sup, key)) WITHOUT ROWID")
CKPT_V0 = ("CREATE TABLE checkpoints (path TEXT NOT NULL, seq INTEGER NOT NULL,"
           " data BLOB NOT NULL, PRIMARY KEY (path, seq)) WITHOUT ROWID")


# A pool whose tasks exit with their argument; a failure is a dead letter.
DEAD_POOL = """\
supervisor: top
children:
  - supervisor: pool
    intensity: 1000
    template:
      command: [/bin/sh, -c, 'exit $1', task]
      restart: temporary
      backoff: none
  - worker: solo
    command: [sleep, '1000']
    shutdown: brutal_kill
"""


def pool_conf(supd, state):
    task = supd.tmp / "task.py"
    task.write_text(TASK.format(pyclient=PYCLIENT))
    return {"a.yaml": f"agentsupd:\n  events_file: {supd.events}\n  state_dir: {state}\n---\n"
            "supervisor: top\nchildren:\n  - supervisor: pool\n    template:\n"
            f"      command: [{sys.executable}, {task}, {supd.tmp}]\n"
            "      shutdown: 1s\n"
            "  - worker: solo\n    command: [sleep, '1000']\n    shutdown: brutal_kill\n"}


def user_version(db_path):
    db = sqlite3.connect(str(db_path))
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def dump(db_path):
    db = sqlite3.connect(str(db_path))
    try:
        return list(db.iterdump()), db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def test_a_store_of_an_earlier_build_is_migrated_and_resumed(supd):
    """A state_dir of the first build with a task ledger: its running task
    is resumed with its checkpoint, its dead letter listed, and the store
    is marked as this build's."""
    state = supd.tmp / "state"
    state.mkdir(mode=0o700)
    db = sqlite3.connect(str(state / "agentsup.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(TASKS_V0)
    db.execute(CKPT_V0)
    db.execute("INSERT INTO tasks VALUES ('pool', 'k1', ?, NULL, 0, 1, NULL, NULL,"
               " 1700000000000, 0, 0)", (b"k1\0",))
    db.execute("INSERT INTO tasks VALUES ('pool', 'bad', ?, NULL, 1, 3,"
               " 'exit:3 (declared permanent: no)', NULL, 1700000000000,"
               " 1700000001000, 0)", (b"bad\0",))
    db.execute("INSERT INTO checkpoints VALUES ('top/pool/k1', 7, ?)", (b"seven",))
    db.commit()
    db.close()
    supd.write(pool_conf(supd, state), settings=False)
    d = supd.start()
    d.wait("started", "top/pool/k1")
    wait_until(lambda: (supd.tmp / "k1").exists(), what="the resumed task's welcome")
    assert (supd.tmp / "k1").read_text() == "7 seven"
    dead = d.ctl_json("dead")
    assert [r["key"] for r in dead] == ["bad"], dead
    assert dead[0]["reasons"] == ["exit:3 (declared permanent: no)"]
    # the newest read in the order of indexes made at this open
    assert d.ctl_json("dead", "-n", "1") == dead
    assert [r["key"] for r in d.ctl_json("tasks", "-n", "2")] == ["bad", "k1"]
    assert [r["key"] for r in d.ctl_json("tasks", "--state", "dead", "-n",
                                         "1")] == ["bad"]
    assert user_version(state / "agentsup.db") == 1
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0


def test_a_store_made_by_hand_with_its_state_as_text(supd):
    """A tasks table made by hand with state declared TEXT (3 stored as
    '3'): the whole listing compared the state as a number without the
    column's affinity and found no dead letter, where dead -n found it."""
    state = supd.tmp / "state"
    state.mkdir(mode=0o700)
    db = sqlite3.connect(str(state / "agentsup.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(TASKS_V0.replace("state INTEGER", "state TEXT"))
    db.execute(CKPT_V0)
    db.execute("INSERT INTO tasks VALUES ('pool', 'bad', NULL, NULL, 1, 3,"
               " 'exit:1', NULL, 1700000000000, 1700000001000, 0)")
    db.commit()
    db.close()
    supd.write(pool_conf(supd, state), settings=False)
    d = supd.start()
    d.wait("started", "top/solo")
    for args in (("dead",), ("dead", "-n", "1"), ("tasks", "--state", "dead"),
                 ("tasks", "--state", "dead", "-n", "1")):
        assert [r["key"] for r in d.ctl_json(*args)] == ["bad"], args
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0


@pytest.fixture
def mid_fs(tmp_path):
    """A 1 MiB tmpfs, unmounted after the daemons (ask for it before
    supd)."""
    mnt = conftest._tmpfs(tmp_path, "mid", "1m")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


def test_a_store_without_room_for_the_indexes_is_used_without(mid_fs, supd):
    """The listings' indexes are made when a store of an earlier build
    (which has none) is opened; on a file system with no room for them,
    agentsupd exited 73 where the earlier build started. They are only a
    speed-up: it starts, says so, and lists the same without them."""
    state = mid_fs / "state"
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    f"  state_dir: {state}\n",
                "a.yaml": DEAD_POOL}, settings=False)
    d = supd.start()
    d.wait("started", "top/solo")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(d.socket)
    n, buf = 400, b""
    s.sendall(b"".join(frame({"t": "req", "id": i, "cmd": "spawn",
                              "args": ["pool", {"key": f"k{i:04}-{'x' * 50}",
                                                "args": ["1"]}]})
                       for i in range(n)))
    for _ in range(n):
        m, buf = frames(s, buf)
        assert m is not None and m["ok"], m
    s.close()
    d.wait_count("dead_lettered", n)
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    db = sqlite3.connect(str(state / "agentsup.db"))  # as an earlier build's
    db.execute("DROP INDEX tasks_by_end")
    db.execute("DROP INDEX tasks_by_accepted")
    db.close()
    with open(mid_fs / "filler", "wb") as f:  # 72 KiB left: too few for them
        while os.statvfs(mid_fs).f_bavail * os.statvfs(mid_fs).f_frsize > 72 << 10:
            f.write(b"\0" * 4096)
            f.flush()
    supd.events = supd.tmp / "events-1.jsonl"
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    f"  state_dir: {state}\n"}, settings=False)
    d = supd.start()
    d.wait("started", "top/solo")
    assert any("the indexes of their listings cannot be made" in l
               for l in d.lines), d.lines
    dead = d.ctl_json("dead")
    assert len(dead) == n
    assert d.ctl_json("dead", "-n", "3") == dead[-3:]
    tasks = d.ctl_json("tasks", "pool")
    assert d.ctl_json("tasks", "pool", "--state", "dead", "-n", "2") == tasks[-2:]
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0


def test_a_store_of_a_later_build_is_refused_and_left_alone(supd):
    """A downgrade: the store a later agentsupd wrote (a higher
    user_version) stops the start with exit 73 and says why, and nothing
    in it is touched."""
    state = supd.tmp / "state"
    supd.write(pool_conf(supd, state), settings=False)
    d = supd.start()
    d.wait("started", "top/solo")
    d.ctl("spawn", "pool", "--key", "k1", "--", "k1", check=0)
    d.wait("started", "top/pool/k1")
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    assert user_version(state / "agentsup.db") == 1  # this build's

    db = sqlite3.connect(str(state / "agentsup.db"))
    db.execute("PRAGMA user_version = 99")
    db.close()
    before = dump(state / "agentsup.db")
    d = supd.start()
    assert d.exit_code() == 73
    d.drain_events()
    assert any("written by a later agentsupd (store version 99" in l for l in d.lines), \
        d.lines
    assert dump(state / "agentsup.db") == before


def old_daemon(path):
    """A control socket answering as every agentsupd answers a command it
    does not know (Part I's knows no logs, reset, spawn, dead...): in a
    thread, for as many clients as come, until the socket is closed."""
    from conftest import fake_agentsupd
    return fake_agentsupd(path, lambda req: [
        {"t": "res", "id": req["id"], "ok": False, "error": "unknown command"}])


def test_a_command_an_older_agentsupd_does_not_know_says_so(tmp_path):
    """After a package upgrade the running agentsupd is the old build (the
    upgrade does not restart it): a command it does not know is said to be
    the daemon's, not agentsupctl's, with what to do."""
    import subprocess
    from conftest import AGENTSUPCTL, TIMEOUT

    sock = str(tmp_path / "old.sock")
    srv = old_daemon(sock)
    try:
        for args in (["logs", "w"], ["reset", "w"], ["dead"], ["spawn", "pool"]):
            r = subprocess.run([AGENTSUPCTL, "--socket", sock, *args],
                               capture_output=True, text=True, timeout=TIMEOUT)
            assert r.returncode == 1, (args, r)
            assert (f"agentsupctl: {args[0]}: this agentsupd does not know the command:"
                    " it runs an older build than this agentsupctl; restart agentsupd"
                    in r.stderr), (args, r.stderr)
        # --json keeps the daemon's own answer
        r = subprocess.run([AGENTSUPCTL, "--socket", sock, "--json", "dead"],
                           capture_output=True, text=True, timeout=TIMEOUT)
        assert r.stdout.strip() == '{"ok":false,"error":"unknown command"}', r.stdout
    finally:
        srv.close()


def test_an_option_an_older_agentsupd_does_not_take_says_so(tmp_path):
    """An option added to a command since (dead -n, wait --timeout 0,
    tasks -n) sends an argument the running older build refuses: it said
    "agentsupctl: too many arguments", to a command line agentsupctl had
    just taken, as if the user had typed one too many."""
    import subprocess
    from conftest import AGENTSUPCTL, TIMEOUT, fake_agentsupd

    sock = str(tmp_path / "old.sock")
    srv = fake_agentsupd(sock, lambda req: [
        {"t": "res", "id": req["id"], "ok": False,
         "error": "too many arguments"}])
    try:
        for args in (["dead", "-n", "3"], ["wait", "k", "--timeout", "0"],
                     ["tasks", "-n", "2"]):
            r = subprocess.run([AGENTSUPCTL, "--socket", sock, *args],
                               capture_output=True, text=True, timeout=TIMEOUT)
            assert r.returncode == 1, (args, r)
            assert (f"agentsupctl: {args[0]}: this agentsupd does not know the "
                    "command's arguments as this agentsupctl sends them (an "
                    "option added since): it runs an older build than this "
                    "agentsupctl; restart agentsupd" in r.stderr), (args, r.stderr)
        sys.path.insert(0, PYCLIENT)
        from agentsup.control import Control, ControlError
        with Control(sock) as c:
            try:
                c.dead(newest=3)
            except ControlError as e:
                assert str(e).startswith(
                    "dead: too many arguments: agentsupd runs an older build "
                    "than this client"), e
            else:
                raise AssertionError("dead(newest=3) taken")
    finally:
        srv.close()


def test_a_part_one_duration_over_the_cap_says_so(tmp_path):
    """Part I took any duration that fit in 64 bits; this build caps them
    at 100 years, and a config that was accepted says why it no longer is
    (it said "bad duration ... (want e.g. 500ms, 10s, 2m, 1h)" of
    "1000000h", which is written just as that asks)."""
    import subprocess
    from conftest import AGENTSUPD, TIMEOUT

    d = tmp_path / "supervisor.d"
    d.mkdir()
    (d / "a.yaml").write_text("supervisor: s\nperiod: 1000000h\nchildren:\n"
                              "  - {worker: w, command: /bin/true, heartbeat: 9999999999s}\n")
    r = subprocess.run([AGENTSUPD, "--check", "-c", str(d)], capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert r.returncode == 78
    assert 'a.yaml:2:9: period: "1000000h" is longer than 100 years, the longest duration' \
        in r.stderr, r.stderr
    assert 'heartbeat: "9999999999s" is longer than 100 years' in r.stderr, r.stderr
    assert "bad duration" not in r.stderr
