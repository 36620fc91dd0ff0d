"""`wait` is answered once the task's end is committed: a wait that said
"done" is not undone by a SIGKILL before the write (the restart would read
the task back as running and run it again). The store's writer is held by
another process's write lock while the task ends; a status asked on the
same connection afterwards is answered (the turn that ended the task is
over) while the wait is not; released, the wait has its answer. A wait
asked between the end and its commit waits for the commit too."""
import socket
import sqlite3
import textwrap

from test_ledger_store import frame, frames


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


def test_wait_answered_once_the_end_is_stored(supd):
    supd.write({"a.yaml": conf(supd)}, settings=False)
    d = supd.start()
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "t", check=0)
    d.wait("started", "root/pool/t")
    early = Conn(d.socket)
    w1 = early.send("wait", "pool/t")
    assert early.until(early.send("status"))["ok"]  # the wait is in
    db = sqlite3.connect(str(supd.tmp / "state" / "agentsup.db"),
                         timeout=5, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    try:
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
    finally:
        db.execute("ROLLBACK")
        db.close()
    for c, w in ((early, w1), (late, w2)):
        m = c.until(w)
        assert m["ok"] and m["result"]["state"] == "done", m
        c.s.close()
