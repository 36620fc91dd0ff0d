"""`wait` is answered once the task's end is committed: a wait that said
"done" is not undone by a SIGKILL before the write (the restart would read
the task back as running and run it again). The store's writer is held by
another process's write lock while the task ends; a status asked on the
same connection afterwards is answered (the turn that ended the task is
over) while the wait is not; released, the wait has its answer. A wait
asked between the end and its commit waits for the commit too."""
import socket
import textwrap
import threading

from conftest import store_locked

from test_ledger_store import frame, frames, stored_states


def conf(supd):
    end = supd.tmp / "end"
    return textwrap.dedent(f"""\
        agentsupd:
          events_file: {supd.events}
          state_dir: {supd.tmp / 'state'}
        ---
        supervisor: root
        children:
          - supervisor: pool
            template:
              command: ["/bin/sh", "-c", "while [ ! -e {end} ]; do sleep 0.05; done"]
              backoff: none
          - {{worker: idle, command: [sleep, '300']}}
        """)


class Conn:
    """One control connection: requests sent, answers kept by id."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""
        self.answers = {}
        self.next_id = 1

    def send(self, cmd, *args):
        i = self.next_id
        self.next_id += 1
        self.s.sendall(frame({"t": "req", "id": i, "cmd": cmd,
                              "args": list(args)}))
        return i

    def until(self, i):
        """Answers read until the one of request i."""
        while i not in self.answers:
            m, self.buf = frames(self.s, self.buf)
            assert m is not None, "agentsupd closed the connection"
            self.answers[m["id"]] = m
        return self.answers[i]


def waiting(supd, text):
    """agentsupd on the tree text, pool/t running, and a wait on it that
    agentsupd has read (a status after it on the connection answered)."""
    supd.write({"a.yaml": text}, settings=False)
    d = supd.start()
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "t", check=0)
    d.wait("started", "root/pool/t")
    c = Conn(d.socket)
    w = c.send("wait", "pool/t")
    assert c.until(c.send("status"))["ok"]
    return d, c, w


def locked(supd):
    return store_locked(supd.tmp / "state" / "agentsup.db")


def test_wait_answered_once_the_end_is_stored(supd):
    d, early, w1 = waiting(supd, conf(supd))
    with locked(supd):
        (supd.tmp / "end").write_text("")
        d.wait("task_done", "root/pool/t")
        assert early.until(early.send("status"))["ok"]
        assert w1 not in early.answers, \
            f"wait answered before the end was stored: {early.answers[w1]}"
        late = Conn(d.socket)
        w2 = late.send("wait", "pool/t")
        assert late.until(late.send("status"))["ok"]
        assert w2 not in late.answers, \
            f"wait answered before the end was stored: {late.answers[w2]}"
    for c, w in ((early, w1), (late, w2)):
        m = c.until(w)
        assert m["ok"] and m["result"]["state"] == "done", m
        c.s.close()


def test_wait_answered_once_a_failed_end_is_written_again(supd):
    """The end's write fails (the lock held past the busy timeout): the
    wait is not answered "done" then (a SIGKILL would have run the task
    again), but once the retry has written the end."""
    d, c, w = waiting(supd, conf(supd))
    with locked(supd):
        (supd.tmp / "end").write_text("")
        d.wait("task_done", "root/pool/t")
        d.wait_detail("store_error", "pool/t")  # the end's write failed
        assert c.until(c.send("status"))["ok"]
        assert w not in c.answers, \
            f"wait answered though the end's write failed: {c.answers[w]}"
    m = c.until(w)  # the retry wrote it
    assert m["ok"] and m["result"]["state"] == "done", m
    assert stored_states(supd)["t"] == 2
    c.s.close()


def test_wait_on_a_task_replayed_before_its_end_was_stored(supd):
    """A replay between the end and its commit: the wait is answered with
    the replayed run's end, never with a record that is running again."""
    end, end2, ran = supd.tmp / "end", supd.tmp / "end2", supd.tmp / "ran"
    d, c, w = waiting(supd, conf(supd).replace(
        f"while [ ! -e {end} ]; do sleep 0.05; done",
        f"if [ -e {ran} ]; then while [ ! -e {end2} ]; do sleep 0.05; done; "
        f"exit 0; fi; touch {ran}; "
        f"while [ ! -e {end} ]; do sleep 0.05; done"))
    with locked(supd):
        end.write_text("")
        d.wait("task_done", "root/pool/t")
        other = Conn(d.socket)
        r = other.send("replay", "pool/t")
        # read by agentsupd (answered once stored): the status after it
        assert other.until(other.send("status"))["ok"]
    # released within the busy timeout: both writes stored, the replay
    # runs (till end2), answered only now
    assert other.until(r)["ok"], other.answers[r]
    d.wait("started", "root/pool/t")
    assert c.until(c.send("status"))["ok"]
    assert w not in c.answers, f"wait answered mid-replay: {c.answers[w]}"
    end2.write_text("")
    m = c.until(w)
    assert m["ok"] and m["result"]["state"] == "done", m
    assert m["result"]["replays"] == 1, m
    other.s.close()
    c.s.close()


def test_wait_not_answered_by_an_older_write_after_the_end_was_refused(supd):
    """The end's write refused (the store's queue full: the write of the
    task's restart stuck behind the lock, 8,300 pipelined spawns of the
    key queueing barriers), then the older write still in flight succeeds:
    it said the record saved, the wait was answered "done" with the store
    holding the task running, and the retry never wrote the end (found by
    a second reader). A wait answered "done" finds the end in the store.
    (A spawn's own write once served as the older one; its task no longer
    runs before that write is stored.)"""
    fail, ran, end = supd.tmp / "fail", supd.tmp / "ran", supd.tmp / "end"
    supd.write({"a.yaml": conf(supd).replace(
        f"while [ ! -e {end} ]; do sleep 0.05; done",
        f"while [ ! -e {fail} ]; do sleep 0.05; done; "
        f"if [ ! -e {ran} ]; then touch {ran}; exit 1; fi; "
        f"while [ ! -e {end} ]; do sleep 0.05; done")}, settings=False)
    d = supd.start()
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "t", check=0)
    d.wait("started", "root/pool/t")
    with locked(supd):
        fail.write_text("")  # its restart's write waits on the lock
        d.wait("restarting", "root/pool/t")
        d.wait("started", "root/pool/t")
        w = Conn(d.socket)
        wid = w.send("wait", "pool/t")
        flood = Conn(d.socket)
        threading.Thread(target=drain, args=(flood,), daemon=True).start()
        flood.s.sendall(b"".join(
            frame({"t": "req", "id": i + 1, "cmd": "spawn",
                   "args": ["pool", {"key": "t"}]}) for i in range(8300)))
        d.wait_detail("store_error", "queue is full")
        (supd.tmp / "end").write_text("")
        d.wait("task_done", "root/pool/t")
    m = w.until(wid)  # the retry writes the end within 5 s
    assert m["ok"] and m["result"]["state"] == "done", m
    assert stored_states(supd)["t"] == 2, "answered done, stored running"


def drain(conn):
    """Read a connection's answers until it closes (they are not looked at:
    only so that agentsupd is never held by a full socket)."""
    buf = b""
    try:
        while True:
            m, buf = frames(conn.s, buf)
            if m is None:
                return
    except OSError:
        pass
