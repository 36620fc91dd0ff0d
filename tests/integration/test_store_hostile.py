"""The state store under hostile conditions a hostile tester found
unhandled: its WAL removed or cut short under a running agentsupd, its
lock file removed, a small disk filled by the WAL alone, a version or a
row no agentsupd writes."""
import os
import signal
import sqlite3

import pytest

from conftest import wait_until
from test_dynamic import pool
from test_store import acked, start, streamer_conf, welcomed


def killed(d):
    d.kill()
    for p in list(d.pids):
        wait_until(lambda: not d.runs(p), what="workers die with agentsupd")


def test_a_wal_removed_under_agentsupd_keeps_what_was_acknowledged(supd):
    """Only agentsup.db-wal removed: commits went on into the unlinked
    WAL, acks kept coming, nothing was said, and after a SIGKILL the
    next start handed back an older checkpoint than the last acknowledged
    (seq 0 once). Now the next commit sees it: what the unlinked WAL holds
    is checkpointed into the database, a store_error says so, and nothing
    more is acknowledged."""
    tmp = supd.tmp
    state = tmp / "state"
    conf = streamer_conf(tmp, state, ["w0"])
    d = start(supd, tmp, conf, 0)
    wait_until(lambda: acked(tmp, "w0") > 5, what="acks")
    os.unlink(state / "agentsup.db-wal")
    first = d.wait("store_error")
    assert "agentsup.db-wal was removed or replaced: what was stored is " \
        "kept" in first.detail, first.detail
    d.wait("store_error")  # the next write fails too: no ack after it
    before = acked(tmp, "w0")
    d.wait("store_error")
    assert acked(tmp, "w0") == before
    killed(d)
    last = acked(tmp, "w0")
    start(supd, tmp, conf, 1)
    wait_until(lambda: welcomed(tmp, "w0", 1) is not None, what="welcome")
    seq, _ = welcomed(tmp, "w0", 1)
    assert seq >= last, f"acknowledged checkpoint {last} lost: handed {seq}"


def test_a_wal_cut_short_in_place_is_said_and_spoils_nothing_more(supd):
    """agentsup.db-wal truncated in place: acks went on into a WAL whose
    start was gone, and SQLite's next checkpoint copied its zeros over the
    database's first page: the next start refused the whole store ("file
    is not a database"), every task and dead letter lost. What the WAL
    held is gone with it (its frames were cut away); now the next commit
    sees the WAL shorter than it left it: a store_error, no more acks, no
    checkpoint of the zeros, and the next start takes the store."""
    tmp = supd.tmp
    state = tmp / "state"
    conf = streamer_conf(tmp, state, ["w0"])
    d = start(supd, tmp, conf, 0)
    wait_until(lambda: acked(tmp, "w0") > 5, what="acks")
    os.truncate(state / "agentsup.db-wal", 0)
    first = d.wait("store_error")
    assert "agentsup.db-wal was cut short in place" in first.detail, \
        first.detail
    d.wait("store_error")
    before = acked(tmp, "w0")
    d.wait("store_error")
    assert acked(tmp, "w0") == before
    d.signal(signal.SIGTERM)  # an orderly close checkpoints nothing
    assert d.exit_code() == 0
    d = start(supd, tmp, conf, 1)
    wait_until(lambda: welcomed(tmp, "w0", 1) is not None, what="welcome")
    d.wait("started", "root/w0")


def test_a_removed_lock_file_lets_no_second_agentsupd_in(supd):
    """The exclusion was a flock on state_dir/lock alone: that file removed
    (a clean-up of a "stale" lock), a second agentsupd on the same
    state_dir started beside the live one and resumed its running task:
    it ran twice. The database file itself is locked too now."""
    runs = supd.tmp / "runs"
    template = ('template:\n  command: ["/bin/sh", "-c", '
                '"echo $AGENTSUP_NAME $$ >> %s; exec sleep 3600"]\n' % runs)
    supd.write({"a.yaml": pool(template=template)})
    (supd.dir / "00-settings.yaml").write_text(
        f"agentsupd:\n  events_file: {supd.events}\n"
        f"  state_dir: {supd.tmp / 'state'}\n")
    d = supd.start()
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "job", check=0)
    wait_until(lambda: runs.exists() and "job" in runs.read_text(),
               what="the task running")
    os.unlink(supd.tmp / "state" / "lock")
    second = supd.start(socket_path=str(supd.tmp / "ctl2.sock"))
    assert second.exit_code() == 73
    second.drain_events()
    assert any("in use by another live agentsupd" in l
               for l in second.lines), second.lines
    assert runs.read_text().count("job") == 1
    assert d.proc.poll() is None  # the first goes on


def test_the_wal_alone_does_not_fill_a_small_state_disk_for_good(small_fs,
                                                                 supd):
    """A 256 KiB file system holding only the store, one worker keeping
    checkpoints of 0.5 KiB: the WAL (checkpointed by SQLite only at 1,000
    pages) filled it after about 40 acks, and every write failed from then
    on, though the live data was a few KiB; a restart exited 73. The WAL
    is now kept to an eighth of the file system (and a write that finds
    the disk full checkpoints and truncates it)."""
    tmp = supd.tmp
    d = start(supd, tmp, streamer_conf(tmp, small_fs / "state", ["w0"]), 0)
    wait_until(lambda: acked(tmp, "w0") > 400,
               what="ten times the acks that filled it")
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    assert not any("store_error" in l for l in d.lines)


def test_a_store_version_no_agentsupd_writes_is_said_as_such(supd):
    """A negative user_version (another tool's) was refused as
    "agentsup.db: not an error"."""
    state = supd.tmp / "state"
    state.mkdir(mode=0o700)
    db = sqlite3.connect(str(state / "agentsup.db"))
    db.execute("PRAGMA user_version = -1")
    db.close()
    supd.write({"a.yaml": "worker: w\ncommand: [sleep, '60']\n"})
    (supd.dir / "00-settings.yaml").write_text(
        f"agentsupd:\n  events_file: {supd.events}\n  state_dir: {state}\n")
    d = supd.start()
    assert d.exit_code() == 73
    d.drain_events()
    assert any("has store version -1, which no agentsupd writes" in l
               for l in d.lines), d.lines


def ran_once(supd, state):
    """agentsupd started on state as store, root/w up, then stopped."""
    (supd.dir / "00-settings.yaml").write_text(
        f"agentsupd:\n  events_file: {supd.events}\n  state_dir: {state}\n")
    d = supd.start()
    d.wait("started", "root/w")
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0


@pytest.mark.parametrize("table", ["holds", "nodes", "checkpoints"])
def test_a_row_without_a_path_is_skipped(supd, table):
    """A table rebuilt by hand without its NOT NULL key, holding a row
    whose path is NULL: agentsupd died of SIGSEGV at start (a holds row;
    UBSan: a null pointer to strcmp). Such a row is nobody's."""
    state = supd.tmp / "state"
    supd.write({"a.yaml": "worker: w\ncommand: [sleep, '60']\n"})
    ran_once(supd, state)
    db = sqlite3.connect(str(state / "agentsup.db"), isolation_level=None)
    cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
    db.executescript(f"DROP TABLE {table}; CREATE TABLE {table} "
                     f"({', '.join(cols)});")
    db.execute(f"INSERT INTO {table} (path) VALUES (NULL)")
    db.close()
    supd.events = supd.tmp / "events-2.jsonl"
    ran_once(supd, state)
