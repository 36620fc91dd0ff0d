"""The Python client (tools/python/agentsup) against a fake agentsupd on a
socketpair: the worker is a real subprocess with AGENTSUP_FD set, the test
plays the daemon, decoding every frame independently of the client. Waits
are on frames and lines with deadlines, never on sleeps."""
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import time

import msgpack
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.join(os.environ.get("AGENTSUP_SRC", os.path.join(HERE, "..", "..")),
                     "tools", "python")
sys.path.insert(0, PYDIR)
import agentsup  # noqa: E402

DEADLINE = 20.0
CHILD_FD = 47  # a fixed, unusual number: easy to look for in a child


def pack(msg):
    body = msgpack.packb(msg, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


class Fake:
    """The daemon's end of one worker's channel."""

    def __init__(self, body=None, env=None, bufsize=None, argv=None):
        self.sock, theirs = socket.socketpair()
        if bufsize:
            for s in (self.sock, theirs):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, bufsize)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, bufsize)
        os.dup2(theirs.fileno(), CHILD_FD)
        theirs.close()
        if argv is None:
            script = f"import sys\nsys.path.insert(0, {PYDIR!r})\n" + textwrap.dedent(body)
            argv = [sys.executable, "-c", script]
        e = dict(os.environ, AGENTSUP_FD=str(CHILD_FD), AGENTSUP_NAME="w1",
                 AGENTSUP_HEARTBEAT_MS="3000")
        e.update(env or {})
        self.proc = subprocess.Popen(argv, env=e,
                                     pass_fds=(CHILD_FD,), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        os.close(CHILD_FD)
        self.buf = b""
        self.out = b""

    def frame(self, timeout=DEADLINE):
        """The next frame the worker sent, decoded here; None at EOF."""
        end = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack_from(">I", self.buf)
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    msg = msgpack.unpackb(body, raw=False)
                    agentsup.check_fields(msg)  # the protocol's field types
                    return msg
            left = end - time.monotonic()
            assert left > 0, "no frame from the worker in time"
            r, _, _ = select.select([self.sock], [], [], left)
            data = self.sock.recv(1 << 16) if r else b""
            if r and not data:
                return None
            self.buf += data

    def expect(self, t):
        msg = self.frame()
        assert msg is not None and msg["t"] == t, msg
        return msg

    def send(self, msg):
        try:
            self.sock.sendall(pack(msg))
        except BrokenPipeError:
            raise AssertionError("worker gone: " +
                                 self.proc.communicate(timeout=DEADLINE)[1].decode())

    def line(self):
        """The worker's next stdout line (it flushes each). Read from the
        descriptor: a buffered readline would hide lines from select."""
        end = time.monotonic() + DEADLINE
        while b"\n" not in self.out:
            left = end - time.monotonic()
            assert left > 0, "no line from the worker in time"
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            data = os.read(self.proc.stdout.fileno(), 4096) if r else b""
            assert data or not r, "worker closed stdout: " + self.proc.communicate()[1].decode()
            self.out += data
        line, self.out = self.out.split(b"\n", 1)
        return line.decode()

    def finish(self):
        _, err = self.proc.communicate(timeout=DEADLINE)
        self.sock.close()
        assert self.proc.returncode == 0, err


def test_threads_beat_concurrently():
    """Issue 10, item 11: beats from many threads never interleave frames."""
    f = Fake("""
        import threading, agentsup
        a = agentsup.Agent()
        def run():
            for i in range(500):
                a.beat(steps=i, status="x" * (i % 50))
        ts = [threading.Thread(target=run) for _ in range(8)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        a.flush(10)
    """)
    f.expect("hello")
    seqs = [f.expect("hb")["seq"] for _ in range(4000)]
    assert sorted(seqs) == list(range(1, 4001))
    assert f.frame() is None
    f.finish()


def test_full_buffer_is_flushed_later():
    """Issue 10, item 11: with agentsupd not reading, frames wait and are
    all sent, in order, once it reads again; the worker never blocks."""
    f = Fake("""
        import agentsup
        a = agentsup.Agent()
        n = 0
        while n < 3000 or not a.want_write():
            n += 1
            a.beat(steps=n, status="padding " * 4)
        print(n, flush=True)
        a.flush(10)
        print("flushed", flush=True)
    """, bufsize=4096)
    n = int(f.line())  # written while nobody read
    f.expect("hello")
    for i in range(1, n + 1):
        assert f.expect("hb")["seq"] == i
    assert f.line() == "flushed"
    f.finish()


def test_sends_read_what_came():
    """A worker that only beats and checkpoints (a blocking LLM call, no
    wait()) reads what came as it sends: checkpoint_acked follows the acks,
    a drain is seen, and the acks never fill its socket (the fake's sends
    would block, as agentsupd's queue overflowed)."""
    f = Fake("""
        import time, agentsup
        a = agentsup.Agent()
        for i in range(3000):
            a.beat(steps=i)
            a.checkpoint(b"step %d" % i)
        end = time.monotonic() + 10
        while ((a.checkpoint_acked < 3000 or a.drain_deadline_ms is None)
               and time.monotonic() < end):
            a.beat()
            time.sleep(0.001)
        print(a.checkpoint_acked, a.drain_deadline_ms, flush=True)
    """, bufsize=4096)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1})
    for i in range(1, 3001):
        f.expect("hb")
        assert f.expect("checkpoint")["seq"] == i
        f.send({"t": "checkpoint_ok", "seq": i})
    f.send({"t": "drain", "deadline_ms": 500})
    assert f.line() == "3000 500"
    f.finish()


def test_a_beat_behind_a_big_checkpoint_pushes_it_out():
    """A checkpoint of MiBs (checkpoint.max allows 16) goes out as the
    socket takes it; beats that came after it (a beat thread while the
    main one is in a long call) found over 1 MiB queued and returned
    False without sending any of it, though agentsupd read at once: the
    checkpoint never left and the worker was stopped as hung. Each send
    first sends what the socket takes, as the C client's does."""
    f = Fake("""
        import time, agentsup
        a = agentsup.Agent()
        a.checkpoint(b"x" * (2 << 20))
        print("queued", a.want_write(), flush=True)
        end = time.monotonic() + 60  # a bound, not a check: the fake's is
        while not a.beat(status="alive") and time.monotonic() < end:
            time.sleep(0.001)
        a.flush(10)
        print("beat", flush=True)
    """, bufsize=4096)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1, "max_frame": 4 << 20,
            "checkpoint_max": 3 << 20})
    assert f.line() == "queued True"
    assert len(f.expect("checkpoint")["data"]) == 2 << 20
    assert f.expect("hb")["status"] == "alive"
    assert f.line() == "beat"
    f.finish()


def test_the_end_of_a_with_block_sends_the_last_checkpoint_whole():
    """A worker's last act, a checkpoint larger than the socket takes at
    once (250 KiB of the default 256 KiB checkpoint.max), then the end of
    its `with agentsup.Agent()`: close() sent only what the socket took
    then, the daemon read the frame cut off, and the next start resumed
    from an older checkpoint, or none. close() waits for the queue (up to
    its timeout), as AsyncAgent's does."""
    f = Fake("""
        import agentsup
        with agentsup.Agent() as a:
            a.checkpoint(b"x" * (250 << 10))
            print("queued", a.want_write(), flush=True)
        print("closed", flush=True)
    """, bufsize=4096)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1, "max_frame": 300 << 10,
            "checkpoint_max": 256 << 10})
    assert f.line() == "queued True"
    assert len(f.expect("checkpoint")["data"]) == 250 << 10
    assert f.line() == "closed"
    f.finish()
    # the wait reads, so callbacks run in close(): one that raises (here
    # before the checkpoint is out) does not leave the channel open
    f = Fake("""
        import os, select, agentsup
        def stop(agent):
            raise SystemExit("drained")
        a = agentsup.Agent(on_drain=stop)
        a.checkpoint(b"x" * (250 << 10))
        print("queued", flush=True)
        fd = a.fileno()
        select.select([fd], [], [], 20)  # the drain came, unread
        try:
            a.close()
        except SystemExit as e:
            print(e, a.supervised, a.fileno(), flush=True)
        try:
            os.fstat(fd)
        except OSError:
            print("closed", flush=True)
    """, bufsize=4096)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1, "max_frame": 300 << 10,
            "checkpoint_max": 256 << 10})
    assert f.line() == "queued"
    f.send({"t": "drain", "deadline_ms": 100})
    assert f.line() == "drained False -1"
    assert f.line() == "closed"
    f.finish()


def test_frames_read_with_one_whose_callback_raised_are_handled():
    """on_nudge raised (the worker's logging broke) while the drain that
    came in the same read waited behind it: the drain was dropped, and
    the worker, told nothing, was stopped at its drain_timeout. The
    callback's exception still reaches the caller, once every frame read
    is handled."""
    f = Fake("""
        import agentsup
        def bad(nudge):
            raise RuntimeError("on_nudge: " + nudge.reason)
        a = agentsup.Agent(on_nudge=bad)
        a.restored
        print("welcomed", flush=True)
        try:
            a.wait(30)
            print("no exception", flush=True)
        except RuntimeError as e:
            print(e, flush=True)
        print(a.draining, a.drain_deadline_ms, a.checkpoint_acked, flush=True)
    """)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1})
    assert f.line() == "welcomed"
    f.sock.sendall(pack({"t": "nudge", "reason": "stall", "idle_ms": 5})
                   + pack({"t": "checkpoint_ok", "seq": 3})
                   + pack({"t": "drain", "deadline_ms": 700}))
    assert f.line() == "on_nudge: stall"
    assert f.line() == "True 700 3"
    f.finish()


def test_a_flush_while_another_thread_waits_sends_the_output():
    """The main thread waits (agent.wait, polling for input) while another
    stores a checkpoint larger than the socket takes at once and flushes:
    the waiting thread polled for input only and nobody woke it, so the
    flush timed out, the checkpoint unsent, though agentsupd was reading.
    Queued output wakes the thread in poll(), which polls for output too."""
    f = Fake("""
        import select, threading, agentsup
        a = agentsup.Agent()
        a.restored
        polling = threading.Event()
        real_poll = select.poll
        class Poll:  # says when the waiting thread blocks in poll()
            def __init__(self):
                self.p = real_poll()
            def register(self, *args):
                self.p.register(*args)
            def poll(self, ms):
                ready = self.p.poll(0)
                if ready or threading.current_thread() is not waiter:
                    return ready or self.p.poll(ms)
                polling.set()  # it blocks, for input only
                return self.p.poll(ms)
        select.poll = Poll
        waiter = threading.Thread(target=a.wait, args=(60,))
        waiter.start()
        polling.wait()
        a.checkpoint(b"x" * (200 << 10))
        print("queued", a.want_write(), flush=True)
        print("flushed", a.flush(30), flush=True)
        waiter.join()  # until the drain
    """, bufsize=4096)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1, "max_frame": 1 << 20,
            "checkpoint_max": 1 << 20})
    assert f.line() == "queued True"
    assert len(f.expect("checkpoint")["data"]) == 200 << 10
    assert f.line() == "flushed True"
    f.send({"t": "drain", "deadline_ms": 1000})
    f.finish()


def test_a_callback_may_wait_for_what_it_sent():
    """A callback runs in the thread reading the channel; a wait there
    (on_nudge spawning a helper, on_drain flushing its last checkpoint)
    waited for that thread, itself, to read: the spawn always timed out,
    the flush returned False at its deadline, nothing sent meanwhile."""
    f = Fake("""
        import agentsup
        def on_nudge(a):
            print("spawned", agent.spawn("pool", key="help", timeout=30).ok,
                  flush=True)
        def on_drain(a):
            a.checkpoint(b"s" * (200 << 10))
            print("flushed", a.flush(30), flush=True)
        agent = agentsup.Agent(on_nudge=on_nudge, on_drain=on_drain)
        agent.restored
        print("waiting", flush=True)
        agent.wait(60)
        print("drained", agent.draining, flush=True)
    """, bufsize=4096)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1, "max_frame": 1 << 20,
            "checkpoint_max": 1 << 20})
    assert f.line() == "waiting"
    f.send({"t": "nudge", "reason": "stall", "idle_ms": 5})
    assert f.expect("spawn")["key"] == "help"
    f.send({"t": "spawned", "ok": True, "name": "pool/help", "created": True})
    assert f.line() == "spawned True"
    f.send({"t": "drain", "deadline_ms": 30000})
    assert len(f.expect("checkpoint")["data"]) == 200 << 10
    assert f.line() == "flushed True"
    assert f.line() == "drained True"
    f.finish()


def test_checkpoint_acked_moves_under_the_lock():
    """Two threads may each handle a batch of frames they read (after the
    read lock is released): checkpoint_acked's read-modify-write is under
    the client's lock, so a thread handling an older ack cannot write it
    over a newer one that another thread set in between."""
    f = Fake("""
        import select, agentsup

        class Watched(agentsup.Agent):
            unlocked = 0

            @property
            def checkpoint_acked(self):
                return self.__dict__.get("_acked", 0)

            @checkpoint_acked.setter
            def checkpoint_acked(self, v):
                lock = self.__dict__.get("_lock")
                if lock is not None and not lock.locked():
                    Watched.unlocked += 1
                self.__dict__["_acked"] = v

        a = Watched()
        for i in range(3):
            a.checkpoint(b"step %d" % i)
        while a.checkpoint_acked < 3:
            select.select([a.fileno()], [], [], 5)
            a.process()
        print(a.checkpoint_acked, Watched.unlocked, flush=True)
    """)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1})
    for i in range(1, 4):
        assert f.expect("checkpoint")["seq"] == i
        f.send({"t": "checkpoint_ok", "seq": i})
    assert f.line() == "3 0"
    f.finish()


def test_channel_not_inherited():
    """Issue 10, item 10: a sub-process cannot speak for the worker."""
    f = Fake(f"""
        import os, sys, subprocess, agentsup
        a = agentsup.Agent()
        print(os.environ.get("AGENTSUP_FD", "unset"), flush=True)
        os.system("test -e /proc/self/fd/{CHILD_FD} && echo LEAKED || echo closed")
        sys.stdout.flush()
        out = subprocess.run([sys.executable, "-c",
            "import sys; sys.path.insert(0, {PYDIR!r}); import agentsup; "
            "print(agentsup.Agent().supervised)"], capture_output=True, text=True)
        print(out.stdout.strip(), flush=True)
        a.beat(steps=1)
    """)
    f.expect("hello")
    assert f.line() == "unset"
    assert f.line() == "closed"
    assert f.line() == "False"
    assert f.expect("hb")["progress"] == {"steps": 1}
    f.finish()


def test_one_agent_a_process_and_none_in_its_forks():
    """Found in a trial: a second Agent() in the worker's process (a helper
    module's) was unsupervised without a word, and the worker then taken
    for hung; a multiprocessing (fork) child beating through its parent's
    Agent mixed frames into the channel and got the worker stopped for a
    protocol error; back-to-back `with agent.busy()` blocks sent two
    extends with no beat between, and agentsupd ignores the second."""
    f = Fake("""
        import os, agentsup
        a = agentsup.Agent()
        try:
            agentsup.Agent()
            print("second: made", flush=True)
        except RuntimeError:
            print("second: RuntimeError", flush=True)
        pid = os.fork()
        if pid == 0:
            try:
                a.beat(steps=9)
                os._exit(3)
            except RuntimeError:
                os._exit(0)
        print("child:", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
        with a.busy(5):
            pass
        with a.busy(6):
            pass
        a.beat(steps=1)
    """)
    f.expect("hello")
    assert f.line() == "second: RuntimeError"
    assert f.line() == "child: 0"
    assert f.expect("extend")["ms"] == 5000
    assert "progress" not in f.expect("hb")
    assert f.expect("extend")["ms"] == 6000
    assert "progress" not in f.expect("hb")
    assert f.expect("hb")["progress"] == {"steps": 1}
    assert f.frame() is None
    f.finish()


def test_a_fork_reading_the_agent_sends_none_of_the_workers_frames():
    """A multiprocessing (fork) child that only looked at its parent's
    Agent (`agent.draining`, as a pool task checks whether to stop) was
    refused with RuntimeError, but only after process() had sent the
    frames the worker had queued, its copy of them: agentsupd got them
    twice (a frame cut in two, had the socket taken half: a protocol
    error, and the worker stopped). The owner is checked first."""
    f = Fake("""
        import os, select, agentsup
        a = agentsup.Agent()
        n = 0
        while not a.want_write():
            n += 1
            a.beat(steps=n, status="padding " * 4)
        print(n, flush=True)
        pid = os.fork()
        if pid == 0:
            select.select([], [a.fileno()], [], 20)  # the fake reads
            for look in (lambda: a.draining, lambda: a.flush(1)):
                try:
                    look()
                    os._exit(3)
                except RuntimeError:
                    pass
            os._exit(0)
        print("child:", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]),
              flush=True)
        a.flush(10)
    """, bufsize=4096)
    n = int(f.line())
    f.expect("hello")
    for i in range(1, n + 1):
        assert f.expect("hb")["seq"] == i
    assert f.line() == "child: 0"
    assert f.frame() is None
    f.finish()


def test_a_fork_before_the_agent_is_made_gets_none():
    """A worker that forks first (a preforking server, a pool made at
    import) and makes an Agent in each process: the child still had
    AGENTSUP_FD, so both said hello on one channel and agentsupd stopped
    the worker for a protocol error (found by a second reader)."""
    f = Fake("""
        import os, agentsup
        pid = os.fork()
        a = agentsup.Agent()
        if pid == 0:
            os._exit(0 if not a.supervised else 3)
        print("child:", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]),
              a.supervised, flush=True)
        a.beat(steps=1)
    """)
    assert f.expect("hello")["pid"] == f.proc.pid
    assert f.line() == "child: 0 True"
    assert f.expect("hb")["progress"] == {"steps": 1}
    assert f.frame() is None
    f.finish()


def test_two_threads_making_an_agent_get_one():
    """Two threads calling Agent() at once both took the channel (the
    claim came after the slow import and hello): two hellos, and the
    worker was stopped for a protocol error (found by a second reader)."""
    f = Fake("""
        import threading, agentsup
        out, gate = [], threading.Barrier(2)
        def make():
            gate.wait()
            try:
                out.append(agentsup.Agent().supervised)
            except RuntimeError:
                out.append("RuntimeError")
        ts = [threading.Thread(target=make) for _ in range(2)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        print(sorted(map(str, out)), flush=True)
    """)
    f.expect("hello")
    assert f.line() == "['RuntimeError', 'True']"
    assert f.frame() is None
    f.finish()


def test_part2_sync_api():
    f = Fake("""
        import agentsup
        nudges = []
        a = agentsup.Agent(on_nudge=nudges.append)
        r = a.restored
        print(r.checkpoint, r.checkpoint_seq, r.restarts, r.last_reason, flush=True)
        a.ready()
        with a.busy(30):
            pass
        print(a.checkpoint(b"\\x00state-8"), flush=True)
        child = a.spawn("pool", key="job-1", args=["--x", "1"], env={"M": "s"})
        print(child.ok, child.name, child.created, flush=True)
        a.result("42")
        a.wait(20)  # until the drain
        print(nudges[0].reason, nudges[0].idle_ms, a.checkpoint_acked, a.drain_deadline_ms,
              flush=True)
        a.exit_reason("rate_limited", retry_after=2.5, detail="429")
    """)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1, "name": "w1", "path": "root/w1", "incarnation": 3,
            "heartbeat_ms": 3000, "timeout_ms": 9000, "restarts": 2,
            "last_reason": "exit:1", "checkpoint": b"state-7", "checkpoint_seq": 7})
    assert f.line() == "b'state-7' 7 2 exit:1"
    f.expect("ready")
    assert f.expect("extend")["ms"] == 30000
    assert f.expect("hb") == {"t": "hb", "seq": 1}  # the with's end
    ck = f.expect("checkpoint")
    assert (ck["seq"], ck["data"]) == (8, b"\x00state-8")
    assert f.line() == "8"
    f.send({"t": "nudge", "reason": "stall", "idle_ms": 16000})
    f.send({"t": "checkpoint_ok", "seq": 8})
    sp = f.expect("spawn")
    assert sp == {"t": "spawn", "sup": "pool", "key": "job-1", "args": ["--x", "1"],
                  "env": {"M": "s"}}
    f.send({"t": "spawned", "ok": True, "name": "pool/job-1", "created": True})
    assert f.line() == "True pool/job-1 True"
    assert f.expect("result")["data"] == "42"
    f.send({"t": "drain", "deadline_ms": 5000})
    assert f.line() == "stall 16000 8 5000"
    assert f.expect("exit") == {"t": "exit", "reason": "rate_limited",
                                "retry_after_ms": 2500, "detail": "429"}
    f.finish()


def test_checkpoint_before_welcome_waits_for_it():
    """A checkpoint stored before anything read the welcome goes on from
    the restored number, and may be as large as welcome allows (it raises
    the frame limit to checkpoint.max), not only 64 KiB."""
    f = Fake("""
        import agentsup
        a = agentsup.Agent()
        a.ready()
        print(a.checkpoint(b"x" * 200000), flush=True)
    """)
    f.expect("hello")
    f.expect("ready")  # the checkpoint now waits for the welcome
    f.send({"t": "welcome", "v": 1, "name": "w1", "path": "root/w1",
            "checkpoint": b"state-3", "checkpoint_seq": 3,
            "max_frame": 300000})
    ck = f.expect("checkpoint")
    assert (ck["seq"], len(ck["data"])) == (4, 200000)
    assert f.line() == "4"
    f.finish()


def test_a_checkpoint_over_checkpoint_max_is_refused_before_it_is_sent():
    """welcome says the worker's checkpoint.max: a larger checkpoint was
    sent, and agentsupd stopped the worker for it (a protocol error) on
    every restart, until its supervisor gave up. And with checkpoint: none
    (checkpoint_max 0) any checkpoint is refused."""
    f = Fake("""
        import agentsup
        a = agentsup.Agent()
        print(a.checkpoint(b"x" * 1024), a.checkpoint_max, flush=True)
        try:
            a.checkpoint(b"x" * 1025)
        except ValueError as e:
            print("refused", e, flush=True)
    """)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1, "checkpoint_max": 1024})
    assert f.expect("checkpoint")["seq"] == 1
    assert f.line() == "1 1024"
    assert f.line().startswith("refused checkpoint of 1025 bytes is over")
    f.finish()
    f = Fake("""
        import agentsup
        a = agentsup.Agent()
        try:
            a.checkpoint(b"x")
        except ValueError as e:
            print("refused", e, flush=True)
    """)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1, "checkpoint_max": 0})
    assert f.line() == "refused checkpoints are off for this worker (checkpoint: none)"
    f.finish()


def test_asyncio_api():
    f = Fake("""
        import asyncio, agentsup
        async def main():
            ticks = 0
            async def ticker():
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)
            t = asyncio.ensure_future(ticker())
            async with agentsup.AsyncAgent() as a:
                print(a.restored.checkpoint, a.restored.checkpoint_seq, flush=True)
                a.ready()
                for i in range(100):
                    a.beat(steps=i, cost=0.5)
                print(a.checkpoint(b"c9"), flush=True)
                nudge = await asyncio.wait_for(a.nudges.get(), 20)
                print(nudge.reason, nudge.state, nudge.period, flush=True)
                child = await a.spawn("pool")
                print(child.ok, child.error, child.count, flush=True)
                await a.wait(20)  # returns on the drain
                print(a.draining, a.checkpoint_acked, ticks > 0, flush=True)
                await a.exit_reason("done")
            t.cancel()
        asyncio.run(main())
    """)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1, "checkpoint": b"c8", "checkpoint_seq": 8})
    assert f.line() == "b'c8' 8"
    f.expect("ready")
    assert [f.expect("hb")["progress"]["steps"] for _ in range(100)] == list(range(100))
    assert f.expect("checkpoint")["seq"] == 9
    assert f.line() == "9"
    f.send({"t": "checkpoint_ok", "seq": 9})
    f.send({"t": "nudge", "reason": "loop", "state": "s1", "period": 2})
    assert f.line() == "loop s1 2"
    f.expect("spawn")
    f.send({"t": "spawned", "ok": False, "error": "max_children", "count": 4})
    assert f.line() == "False max_children 4"
    f.send({"t": "drain", "deadline_ms": 1000})
    assert f.line() == "True 9 True"
    assert f.expect("exit")["reason"] == "done"
    f.finish()


def test_async_beats_from_another_thread_are_watched_on_the_loop():
    """A blocking call run in a thread (asyncio.to_thread, an executor)
    that beats: the frames that wait for the socket are watched by the
    loop's own thread (loop.add_writer from another thread is not
    thread-safe: asyncio's selector map is the loop's alone, and uvloop's
    handles are), and all of them are sent, in order."""
    f = Fake("""
        import asyncio, threading, agentsup
        async def main():
            loop = asyncio.get_running_loop()
            me = threading.get_ident()
            off = []
            for name in ("add_writer", "remove_writer"):
                def wrap(*args, _orig=getattr(loop, name), _name=name):
                    if threading.get_ident() != me:
                        off.append(_name)
                    return _orig(*args)
                setattr(loop, name, wrap)
            async with agentsup.AsyncAgent() as a:
                def work():
                    n = 0
                    while n < 2000 or not a._agent.want_write():
                        n += 1
                        a.beat(steps=n, status="padding " * 4)
                    return n
                n = await asyncio.to_thread(work)
                print(n, flush=True)
                assert await a.flush(30)
                print("off the loop:", off, flush=True)
        asyncio.run(main())
    """, bufsize=4096)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1})
    n = int(f.line())  # written while nobody read
    for i in range(1, n + 1):
        assert f.expect("hb")["progress"]["steps"] == i
    assert f.line() == "off the loop: []"
    f.finish()


@pytest.mark.parametrize("field,value", [("restarts", "two"),
                                         ("checkpoint_max", "256k")])
def test_bad_field_from_daemon_is_a_protocol_error(field, value):
    """checkpoint_max was not checked (a string compared with len(data)
    raised TypeError at the first checkpoint)."""
    f = Fake("""
        import agentsup
        a = agentsup.Agent()
        try:
            a.wait(20)
        except agentsup.ProtocolError as e:
            print("refused:", e, flush=True)
    """)
    f.expect("hello")
    f.send({"t": "welcome", field: value})
    assert f.line() == f'refused: welcome: "{field}" has the wrong type'
    f.finish()


@pytest.mark.parametrize("api", ["sync", "async"])
def test_unsupervised_is_a_noop(api):
    body = {
        "sync": """
            import sys, agentsup
            with agentsup.Agent() as a:
                assert not a.supervised and a.fileno() == -1
                a.ready(); a.beat(steps=1); a.busy(1); a.result(b"x")
                assert a.checkpoint(b"x") == 1
                assert a.spawn("pool") is None
                assert a.restored.checkpoint is None
                a.wait(0.01); a.exit_reason("done")
                # a wait to a deadline already past returns, as supervised
                # (time.sleep raised ValueError: only outside agentsupd)
                a.wait(-0.5)
        """,
        "async": """
            import asyncio, sys, agentsup
            async def main():
                async with agentsup.AsyncAgent() as a:
                    assert not a.supervised and a.fileno() == -1
                    a.ready(); a.beat(steps=1); a.checkpoint(b"x")
                    assert await a.spawn("pool") is None
                    await a.wait(0.01); await a.exit_reason("done")
                    await a.wait(-0.5)
            asyncio.run(main())
        """,
    }[api]
    script = f"import sys\nsys.path.insert(0, {PYDIR!r})\n" + textwrap.dedent(body) + \
        "print('msgpack' in sys.modules)\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSUP_")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=DEADLINE)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"  # msgpack never imported


def test_reader_limit_is_per_frame():
    """Issue 9: the limit applies to one frame, not to the bytes buffered;
    a limit lowered while a frame is split refuses that frame."""
    big = [pack({"t": "x", "pad": "a" * 60000, "i": i}) for i in range(3)]
    r = agentsup.FrameReader()
    assert [m["i"] for m in r.feed(b"".join(big), 64 * 1024)] == [0, 1, 2]
    stream = b"".join(big)
    got = []
    for at in range(0, len(stream), 777):  # split anywhere
        got += r.feed(stream[at:at + 777], 64 * 1024)
        assert r.pending < 4 + 64 * 1024
    assert [m["i"] for m in got] == [0, 1, 2] and r.pending == 0
    assert r.feed(big[0][:100], 64 * 1024) == []
    with pytest.raises(agentsup.ProtocolError):
        r.feed(big[0][100:], 1024)
    with pytest.raises(agentsup.ProtocolError):
        agentsup.FrameReader().feed(struct.pack(">I", 0) + b"", 1024)


def test_package_is_typed():
    """py.typed is shipped and the package passes mypy --strict."""
    assert os.path.exists(os.path.join(PYDIR, "agentsup", "py.typed"))
    with open(os.path.join(PYDIR, "pyproject.toml")) as f:
        assert "py.typed" in f.read()
    mypy = shutil.which("mypy")
    if mypy is None:
        pytest.skip("mypy is not installed (tools/lib/setup.sh installs it)")
    out = subprocess.run([mypy, "--strict", "--no-incremental", "--cache-dir=/dev/null",
                          "agentsup"], cwd=PYDIR, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_async_bad_frame_ends_the_channel():
    """A bad frame seen in the loop's callback surfaces in the next await."""
    f = Fake("""
        import asyncio, agentsup
        async def main():
            try:
                async with agentsup.AsyncAgent() as a:
                    await a.wait(20)
            except agentsup.ProtocolError as e:
                print("refused:", e, flush=True)
        asyncio.run(main())
    """)
    f.expect("hello")
    f.send({"t": "nudge", "reason": 7})
    assert f.line() == 'refused: nudge: "reason" has the wrong type'
    f.finish()


def test_async_spawn_late_answer_goes_to_no_other_spawn():
    """Answers went into one queue: the answer to a spawn that had timed
    out was handed to the next spawn."""
    f = Fake("""
        import asyncio, agentsup
        async def main():
            async with agentsup.AsyncAgent() as a:
                try:
                    await a.spawn("pool", key="first", timeout=0.2)
                except asyncio.TimeoutError:
                    print("first: timed out", flush=True)
                r = await a.spawn("pool", key="second", timeout=30)
                print("second:", r.name, flush=True)
        asyncio.run(main())
    """)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1})
    assert f.expect("spawn")["key"] == "first"
    assert f.line() == "first: timed out"
    f.send({"t": "spawned", "ok": True, "name": "pool/first", "created": True})
    assert f.expect("spawn")["key"] == "second"
    f.send({"t": "spawned", "ok": True, "name": "pool/second", "created": True})
    assert f.line() == "second: pool/second"
    f.finish()


def test_async_close_after_the_channel_failed():
    """close() re-raised the channel's error: __aexit__ replaced the block's
    own outcome with a ConnectionError and left the socket open."""
    f = Fake("""
        import asyncio, agentsup
        async def main():
            a = agentsup.AsyncAgent()
            async with a:
                print("in", flush=True)
                try:
                    while True:
                        await a.wait(0.05)
                except ConnectionError:
                    pass  # agentsupd went away
                try:
                    a.beat(steps=1)  # queued, never sent
                except ConnectionError:
                    pass
            print("closed:", a._agent._sock is None, flush=True)
        asyncio.run(main())
    """)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1})
    assert f.line() == "in"
    f.sock.close()
    assert f.line() == "closed: True"
    _, err = f.proc.communicate(timeout=DEADLINE)
    assert f.proc.returncode == 0, err



@pytest.mark.parametrize("api", ["sync", "async"])
def test_unsupervised_agents_hold_no_descriptors(api):
    """Each Agent() made a wake pipe, closed only by close(): 100 agents
    left unclosed outside agentsupd held 200 descriptors."""
    make = {"sync": "agentsup.Agent()", "async": "agentsup.AsyncAgent()"}[api]
    body = f"""
        import gc, os, agentsup
        def fds():
            return len(os.listdir("/proc/self/fd"))
        before = fds()
        for i in range(100):
            {make}
        gc.collect()
        print(fds() - before)
    """
    script = f"import sys\nsys.path.insert(0, {PYDIR!r})\n" + textwrap.dedent(body)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSUP_")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=DEADLINE)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


@pytest.mark.parametrize("api", ["sync", "async"])
def test_dropped_agent_releases_its_descriptors(api):
    """A supervised agent garbage-collected without close() kept its wake
    pipe open for good (and its channel until the socket's own collection,
    with a ResourceWarning)."""
    use = {
        "sync": "a = agentsup.Agent(); a.restored; a.beat(steps=1)",
        "async": "a = agentsup.AsyncAgent(); a.beat(steps=1)",
    }[api]
    f = Fake(f"""
        import gc, os, agentsup
        def fds():
            return len(os.listdir("/proc/self/fd"))
        before = fds()  # the channel's descriptor included
        {use}
        del a
        gc.collect()
        print(before - fds(), os.path.exists("/proc/self/fd/{CHILD_FD}"), flush=True)
    """)
    f.expect("hello")
    if api == "sync":
        f.send({"t": "welcome", "v": 1})
    assert f.expect("hb")["progress"] == {"steps": 1}
    assert f.line() == "1 False"  # the channel closed, nothing else left open
    assert f.frame() is None
    f.finish()


@pytest.mark.parametrize("api", ["sync", "async"])
def test_spawn_answers_go_to_their_caller_or_to_spawned(api):
    """AsyncAgent had no `spawned` (its docstring sends late answers there),
    and each answer it awaited was also stored in the Agent's: an answer
    goes to the caller waiting for it, or, once that caller stopped
    waiting, to spawned; never to both."""
    body = {
        "sync": """
            import agentsup
            a = agentsup.Agent(
                on_spawned=lambda s: print("late", s.name, flush=True))
            print(a.spawn("pool", key="a", timeout=30).name, flush=True)
            try:
                a.spawn("pool", key="b", timeout=0)
            except TimeoutError:
                print("b: timed out", flush=True)
            c = a.spawn("pool", key="c", timeout=30)  # answered after b's
            print(c.name, [s.name for s in a.spawned], flush=True)
        """,
        "async": """
            import asyncio, agentsup
            async def main():
                async with agentsup.AsyncAgent(
                        on_spawned=lambda s: print("late", s.name, flush=True)) as a:
                    print((await a.spawn("pool", key="a", timeout=30)).name, flush=True)
                    try:
                        await a.spawn("pool", key="b", timeout=0)
                    except asyncio.TimeoutError:
                        print("b: timed out", flush=True)
                    c = await a.spawn("pool", key="c", timeout=30)
                    print(c.name, [s.name for s in a.spawned], flush=True)
            asyncio.run(main())
        """,
    }[api]
    f = Fake(body)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1})
    for key in "abc":
        assert f.expect("spawn")["key"] == key
        if key == "b":
            # answered once its caller stopped waiting: sends read what
            # already came, so an answer sent sooner might be taken
            assert f.line() == "b: timed out"
        f.send({"t": "spawned", "ok": True, "name": f"pool/{key}", "created": True})
        if key == "a":
            assert f.line() == "pool/a"
    assert f.line() == "late pool/b"  # on_spawned, AsyncAgent's too
    assert f.line() == "pool/c ['pool/b']"
    f.finish()


def test_spawn_answer_read_at_the_deadline_is_not_lost():
    """An answer another thread's process() handled just as the caller's
    wait ran out was neither returned (TimeoutError) nor kept in spawned.
    The race is forced by a wait that reads the answer, then says the
    deadline passed."""
    f = Fake("""
        import agentsup
        a = agentsup.Agent()
        wait_for = a._wait_for
        def read_then_time_out(done, timeout):
            wait_for(done, timeout)  # the answer is read and handled
            return False             # as the deadline passes
        a._wait_for = read_then_time_out
        try:
            print(a.spawn("pool", key="k", timeout=30).name, flush=True)
        except TimeoutError:
            print("timed out", [s.name for s in a.spawned], flush=True)
    """)
    f.expect("hello")
    assert f.expect("spawn")["key"] == "k"
    f.send({"t": "spawned", "ok": True, "name": "pool/k", "created": True})
    assert f.line() == "pool/k"
    f.finish()


# Values agentsupd refuses as protocol errors (it then kills the worker,
# reason protocol): each call is refused here, before anything is sent.
REFUSED_CALLS = [
    'a.beat(cost=float("nan"))', 'a.beat(cost=float("inf"))', "a.beat(cost=-0.5)",
    "a.beat(steps=-1)", "a.beat(tokens=-1)", "a.beat(steps=2**64)",
    'a.exit_reason("rate-limited", retry_after=30)', 'a.exit_reason("")',
    'a.result(b"x" * (64 * 1024 + 1))', 'a.result("\\u00e9" * 32769)', "a.result(42)",
    # of another type: coerced and sent before (steps=1.5 as 1, tokens="10"
    # as 10, status=b"x" as "b'x'", args="12" as ["1", "2"], checkpoint(5)
    # as 5 zero bytes; a trial)
    "a.beat(steps=1.5)", 'a.beat(tokens="10")', 'a.beat(cost="1")', "a.beat(steps=True)",
    'a.beat(status=b"x")', "a.beat(state=3)", 'a.checkpoint("text")', "a.checkpoint(5)",
    'a.busy("10")', 'a.spawn("pool", args="12")',
    'a.exit_reason("transient", detail=b"x")',
    # str() of them was sent: 1 as "1", b"x" as "b'x'"; a name with "="
    # set another variable
    'a.spawn("pool", args=[1])', 'a.spawn("pool", env={"A": 1})',
    'a.spawn("pool", env={"A=B": "c"})', 'a.spawn("pool", env={"": "c"})',
]
REFUSED_AS = "ValueError " * 10 + "TypeError " * 14 + "ValueError " * 2


@pytest.mark.parametrize("api", ["sync", "async"])
def test_values_the_daemon_refuses_raise_before_sending(api):
    """beat(cost=nan), beat(steps=-1), exit_reason("rate-limited") and a
    result over 64 KiB were sent, and agentsupd killed the worker for a
    protocol error; the edges it accepts still go through."""
    calls = "".join(f"    out.append(await refused(lambda: {c}))\n" for c in REFUSED_CALLS)
    body = {
        "sync": "a = agentsup.Agent()\na.restored  # welcome: the frame limit\n",
        "async": "a = agentsup.AsyncAgent()\nawait a.__aenter__()\n",
    }[api]
    f = Fake("import asyncio, inspect, agentsup\n"
             "async def refused(call):\n"
             "    try:\n"
             "        r = call()\n"
             "        if inspect.isawaitable(r):\n"
             "            await r\n"
             "    except (ValueError, TypeError) as e:\n"
             "        return type(e).__name__\n"
             "    return 'sent'\n"
             "async def main():\n"
             + textwrap.indent(body, "    ") +
             "    out = []\n" + calls +
             "    print(*out, flush=True)\n"
             "    a.beat(steps=0, tokens=2**64 - 1, cost=0)\n"
             '    a.result("\\u00e9" * 32768)  # 64 KiB in UTF-8\n'
             '    r = a.exit_reason("rate_limited", retry_after=30)\n'
             "    if inspect.isawaitable(r):\n"
             "        await r\n"
             "asyncio.run(main())\n")
    f.expect("hello")
    f.send({"t": "welcome", "v": 1, "max_frame": 300000})
    assert f.line() == REFUSED_AS.strip()
    assert f.expect("hb")["progress"] == {"steps": 0, "tokens": 2**64 - 1, "cost": 0.0}
    assert len(f.expect("result")["data"].encode()) == 64 * 1024
    assert f.expect("exit") == {"t": "exit", "reason": "rate_limited", "retry_after_ms": 30000}
    assert f.frame() is None
    f.finish()


def test_a_long_status_or_detail_is_sent_cut():
    """agentsupd keeps 256 bytes of a status and 128 of a detail; a
    worker that declared `exit_reason("permanent", detail=traceback)` with
    a long traceback got a ValueError (a frame over 64 KiB) instead, in
    its error path, and its exit was restarted as a plain failure; a
    long status made beat() raise supervised only. Both are sent cut to
    TEXT_MAX bytes, before a UTF-8 character."""
    f = Fake("""
        import agentsup
        a = agentsup.Agent()
        a.restored
        a.beat(status="\u00e9" * 40000)
        a.exit_reason("permanent", detail="x" + "\u00e9" * 40000)
    """)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1})
    assert f.expect("hb")["status"] == "\u00e9" * (agentsup.TEXT_MAX // 2)
    assert f.expect("exit")["detail"] == \
        "x" + "\u00e9" * ((agentsup.TEXT_MAX - 1) // 2)
    f.finish()


def test_values_the_daemon_refuses_raise_unsupervised_too():
    """A mistake shows where the worker is written and tried, outside
    agentsupd, not only once it is supervised."""
    body = "import agentsup\na = agentsup.Agent()\nout = []\n" + "".join(
        f"try:\n    {c}\n    out.append('sent')\n"
        f"except (ValueError, TypeError) as e:\n    out.append(type(e).__name__)\n"
        for c in REFUSED_CALLS) + "print(*out)\n"
    script = f"import sys\nsys.path.insert(0, {PYDIR!r})\n" + body
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSUP_")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=DEADLINE)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == REFUSED_AS.strip()


def test_an_agent_in_a_process_with_many_descriptors():
    """A service holding over a thousand descriptors: the Agent's waits
    used select(), which refuses a descriptor past 1023 (ValueError on
    every spawn or wait; found by a second reader)."""
    f = Fake("""
        import os, resource
        import agentsup
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (max(soft, 4096), max(hard, 4096)))
        held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
        a = agentsup.Agent()
        assert a._wake_r >= 1024, a._wake_r
        print(a.spawn("pool", key="a", timeout=30).name, flush=True)
    """)
    f.expect("hello")
    f.send({"t": "welcome", "v": 1})
    assert f.expect("spawn")["key"] == "a"
    f.send({"t": "spawned", "ok": True, "name": "pool/a", "created": True})
    assert f.line() == "pool/a"
    f.finish()


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_closed_agent_refuses_what_would_send(api):
    """After close(), beat() answered True and checkpoint() a sequence
    number, though nothing was sent: a checkpoint lost without a word.
    Now ValueError, as a closed file's write, supervised or not."""
    calls = ['a.checkpoint(b"x")', 'a.ready()',
             'a.result(b"x")', 'a.spawn("pool")', 'a.exit_reason("done")']
    body = {
        "sync": "a = agentsup.Agent()\na.close()\na.close()\n",
        "async": "a = agentsup.AsyncAgent()\nawait a.close()\n",
    }[api]
    script = (f"import sys\nsys.path.insert(0, {PYDIR!r})\n"
              "import asyncio, inspect, agentsup\n"
              "async def main():\n" + textwrap.indent(body, "    ") +
              "    out = []\n" +
              "".join(f"    try:\n        r = {c}\n"
                      "        if inspect.isawaitable(r):\n            await r\n"
                      "        out.append('sent')\n"
                      "    except ValueError as e:\n        out.append(str(e))\n"
                      for c in calls) +
              "    print(*sorted(set(out)), sep='|')\n"
              "asyncio.run(main())\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSUP_")}
    out = subprocess.run([sys.executable, "-c", script], env=env,
                         capture_output=True, text=True, timeout=DEADLINE)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "agentsup: the Agent is closed", out.stdout
    # a beat is no loss: False (not queued), not an error for a beating
    # thread that outlives the close at exit
    out = subprocess.run([sys.executable, "-c", script.replace(
        "    out = []\n", "    out = [str(a.beat(steps=1))]\n")], env=env,
        capture_output=True, text=True, timeout=DEADLINE)
    assert out.stdout.strip() == "False|agentsup: the Agent is closed", out


def test_an_unusable_agentsup_fd_is_said():
    """AGENTSUP_FD naming no socket (a wrapper such as sudo closed it):
    the worker ran unsupervised without a word (and would be taken for
    hung), and a second Agent() said the first had taken its channel."""
    script = (f"import sys\nsys.path.insert(0, {PYDIR!r})\n"
              "import agentsup\n"
              "a = agentsup.Agent()\n"
              "b = agentsup.Agent()\n"
              "print(a.supervised, b.supervised)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSUP_")}
    with open(os.devnull, "rb") as null:
        env["AGENTSUP_FD"] = str(null.fileno())
        out = subprocess.run([sys.executable, "-c", script], env=env,
                             capture_output=True, text=True,
                             timeout=DEADLINE, pass_fds=(null.fileno(),))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False False"
    assert f"AGENTSUP_FD={env['AGENTSUP_FD']} is not a usable socket" \
        in out.stderr, out.stderr
    assert "running unsupervised" in out.stderr, out.stderr


def test_an_agentsup_fd_naming_another_socket_is_not_used():
    """A program the worker ran before it made its Agent inherits
    AGENTSUP_FD, not the descriptor (subprocess closes it): its number,
    reused for the program's own connection, was taken for the channel,
    and hello went to that server. Only an unnamed Unix stream socket,
    as agentsupd's socketpair, is used; the connection is left open."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        script = (f"import os, socket, sys\nsys.path.insert(0, {PYDIR!r})\n"
                  "s = socket.create_connection(sys.argv[1:3])\n"
                  f"os.dup2(s.fileno(), {CHILD_FD})\n"
                  "import agentsup\n"
                  "a = agentsup.Agent()\n"
                  f"os.fstat({CHILD_FD})\n"
                  "print(a.supervised, flush=True)\n"
                  "s.shutdown(socket.SHUT_WR)\n")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AGENTSUP_")}
        env["AGENTSUP_FD"] = str(CHILD_FD)
        host, port = srv.getsockname()
        out = subprocess.run([sys.executable, "-c", script, host, str(port)],
                             env=env, capture_output=True, text=True,
                             timeout=DEADLINE)
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(DEADLINE)
            assert conn.recv(100) == b""  # nothing before the shutdown
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    assert f"AGENTSUP_FD={CHILD_FD} is not a usable socket" in out.stderr


def test_msgpack_missing_is_said_and_takes_no_channel():
    """A worker run by a Python without msgpack (`python3` in PATH a
    pyenv's): Agent() raised a bare "No module named 'msgpack'" and had
    already taken the channel, so a second Agent() (msgpack then found)
    said one had taken it. The error names the interpreter; nothing is
    taken until msgpack is there."""
    f = Fake("""
        import os, sys
        sys.modules["msgpack"] = None  # not installed for this Python
        import agentsup
        try:
            agentsup.Agent()
        except ModuleNotFoundError as e:
            print(e.name, sys.executable in str(e),
                  "python3-msgpack" in str(e), "AGENTSUP_FD" in os.environ,
                  flush=True)
        del sys.modules["msgpack"]
        a = agentsup.Agent()
        print(a.supervised, flush=True)
    """)
    assert f.line() == "msgpack True True True"
    f.expect("hello")
    assert f.line() == "True"
    f.finish()
