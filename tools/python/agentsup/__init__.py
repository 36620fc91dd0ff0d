"""agentsup: the worker's side of the agentsup protocol, for Python agents.

    import agentsup

    with agentsup.Agent(on_nudge=print) as agent:   # a no-op when unsupervised
        state = load(agent.restored.checkpoint)     # None on a first start
        agent.ready()                               # needed with start_timeout
        while not agent.draining:
            with agent.busy(60):                    # a long LLM or tool call
                step()
            agent.beat(steps=n, tokens=t, cost=c, state="thinking")
            agent.checkpoint(dump(state))
            agent.wait(agent.beat_interval)         # returns early on a drain
        agent.exit_reason("done")

or, in asyncio, ``async with agentsup.AsyncAgent() as agent:`` with the same
calls (``await agent.wait(...)``, ``await agent.exit_reason(...)``).
``agentsup.control.Control`` is the other side: a running agentsupd
steered from Python, as agentsupctl does.

The channel is the socket at AGENTSUP_FD; frames are a 4-byte big-endian
length and one msgpack map with a string "t" (docs/protocol.md). Once
connected, the channel is close-on-exec and AGENTSUP_FD leaves os.environ,
so nothing the worker runs can speak for it. Nothing here starts a thread or
blocks longer than the timeout it is given; every call may come from any
thread (a frame is always sent whole). msgpack is imported only when
supervised. When supervised, SIGUSR1 dumps every thread's stack to stderr
(faulthandler): agentsupd sends it to a hung worker before stopping it.
"""
from __future__ import annotations

import collections
import dataclasses
import decimal
import errno
import faulthandler
import math
import numbers
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import weakref
from typing import Any, Callable, Deque, Dict, Iterable, List, Mapping, NamedTuple, Optional, Union

from ._reader import FrameReader, ProtocolError, check_fields, field_error, spawn_args, spawn_env

__all__ = [
    "Agent", "AsyncAgent", "FrameReader", "Nudge", "ProtocolError", "Restored",
    "Spawned", "MAX_FRAME", "PROTOCOL_VERSION", "DECLARED_REASONS", "RESULT_MAX",
    "TEXT_MAX", "check_fields",
]

PROTOCOL_VERSION = 1
MAX_FRAME = 64 * 1024  # the daemon's default limit on a frame's body
DECLARED_REASONS = ("done", "transient", "rate_limited", "permanent", "budget")
RESULT_MAX = 64 * 1024  # the daemon's limit on a result's data
TEXT_MAX = 4096  # a status or detail is sent cut to this (agentsupd keeps less)
_UINT_MAX = (1 << 64) - 1  # the widest msgpack unsigned integer
_HEADER = struct.Struct(">I")
# frames from agentsupd: it is trusted, this is sanity; a welcome carries a
# checkpoint of up to 16 MiB (checkpoint.max) and its own fields
_MAX_IN = (16 << 20) + (64 << 10)
_MAX_OUT = 1 << 20  # queued output, beyond one frame


class Restored(NamedTuple):
    """What agentsupd handed back at this start (from welcome)."""
    checkpoint: Optional[bytes]  # the last stored checkpoint, or None
    checkpoint_seq: int
    restarts: int  # consecutive failures before this start
    last_reason: str  # the last one's reason, "" if none


class Nudge(NamedTuple):
    """agentsupd saw no progress (reason "stall") or a loop ("loop")."""
    reason: str
    idle_ms: Optional[int] = None
    state: Optional[str] = None
    period: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class Spawned:
    """The answer to a spawn."""
    ok: bool
    name: Optional[str] = None
    created: Optional[bool] = None
    error: Optional[str] = None
    count: Optional[int] = None


_UNSUPERVISED = Restored(None, 0, 0, "")


class _Busy:
    """What agent.busy() returns: usable as a plain call or a `with`, whose
    end is a beat: the long call is over, and the next busy() counts
    (agentsupd ignores an extend before the next beat)."""

    def __init__(self, end: Callable[[], Any]) -> None:
        self._end = end

    def __enter__(self) -> "_Busy":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._end()


# This process's channel, once an Agent took it (AGENTSUP_FD then leaves the
# environment): a second Agent() would be unsupervised without a word, and
# the worker taken for hung. A forked child gets a generation of its own.
_claimed_by: Optional[int] = None  # the pid whose Agent took the channel
_fork_gen = 0
_claim_lock = threading.Lock()  # two threads' Agent(): one gets it


def _claim() -> None:
    global _claimed_by
    _claimed_by = os.getpid()


def _after_fork() -> None:
    """A forked child is a program of its own, unsupervised, whether the
    worker made its Agent before the fork or not yet: the channel stays the
    worker's (an Agent() in each would say hello twice on it, and the
    worker would be stopped for a protocol error)."""
    global _fork_gen, _claimed_by
    _fork_gen += 1
    _claimed_by = None
    os.environ.pop("AGENTSUP_FD", None)


os.register_at_fork(after_in_child=_after_fork)


class Agent:
    """One worker's connection to agentsupd (or a no-op when standalone).
    Every call that sends also handles what agentsupd has already sent
    (acks, a drain, a nudge), never waiting for it: callbacks may run from
    it, and a bad frame raises ProtocolError there."""

    def __init__(self, lang: str = "python",
                 on_drain: Optional[Callable[["Agent"], None]] = None,
                 on_nudge: Optional[Callable[[Nudge], None]] = None,
                 on_spawned: Optional[Callable[[Spawned], None]] = None,
                 dump_stacks_on_usr1: bool = True,
                 welcome_timeout: float = 5.0) -> None:
        self.on_drain = on_drain
        self.on_nudge = on_nudge
        self.on_spawned = on_spawned
        self.welcome_timeout = welcome_timeout
        env = os.environ
        self.name = env.get("AGENTSUP_NAME", "")
        self.path = env.get("AGENTSUP_PATH", "")
        self.incarnation = _env_int("AGENTSUP_INCARNATION")
        self.heartbeat_ms = _env_int("AGENTSUP_HEARTBEAT_MS")
        self.timeout_ms = 0
        self.welcomed = False
        self.drain_deadline_ms: Optional[int] = None
        self.checkpoint_acked = 0
        self.nudges: Deque[Nudge] = collections.deque(maxlen=64)
        self.spawned: Deque[Spawned] = collections.deque(maxlen=64)
        self._restored = _UNSUPERVISED
        self._draining = False
        self._seq = 0
        self._ckpt_seq = 0
        self._max_send = MAX_FRAME
        # the largest checkpoint agentsupd takes (welcome; 0: off; None
        # until it says, or from an agentsupd that does not say)
        self.checkpoint_max: Optional[int] = None
        self._spawns = 0  # spawns sent; answers come in that order
        self._answers = 0
        self._waiting: Dict[int, Optional[Spawned]] = {}
        self._lock = threading.Lock()  # output, counters
        self._rlock = threading.Lock()  # input
        # waiters of other threads: told when frames were handled; one of
        # them reads the socket at a time, woken through a pipe when another
        # thread's process() handled what it waited for
        self._cond = threading.Condition()
        self._poller: Optional[int] = None  # the polling thread's ident
        self._wake_r = self._wake_w = -1  # made with the channel
        self._finalizer: Optional[weakref.finalize] = None
        self._reader = FrameReader()
        # each send after hello also reads what already came (acks): a
        # worker that only beats and checkpoints sees checkpoint_acked move
        # and never lets agentsupd's frames fill its socket (AsyncAgent's
        # loop reads); the constructor itself reads nothing, raises nothing
        self._read_on_send = False
        self._out = bytearray()
        self._sock: Optional[socket.socket] = None
        self._packb: Optional[Callable[..., bytes]] = None
        self._gen = _fork_gen
        self._closed = False
        if env.get("AGENTSUP_FD", "").isdigit():
            _import_msgpack()  # before the channel is taken: none is lost
        with _claim_lock:  # taken whole, before the hello
            fd = env.get("AGENTSUP_FD")
            if fd is None and _claimed_by == os.getpid():
                raise RuntimeError(
                    "agentsup: an Agent of this process already took its "
                    "channel to agentsupd: use that one (a second Agent "
                    "would not be supervised, and the worker would be taken "
                    "for hung)")
            if fd is None or not fd.isdigit():
                return
            env.pop("AGENTSUP_FD", None)  # nothing we run may speak for us
            _claim()
        import msgpack  # type: ignore[import]  # only when supervised

        self._packb = msgpack.packb
        try:
            sock = socket.socket(fileno=int(fd))
        except OSError as e:
            self._unusable(fd, e)
            return
        try:
            _check_channel(sock)
            os.set_inheritable(sock.fileno(), False)
            sock.setblocking(False)
            self._sock = sock
            self._send({"t": "hello", "v": PROTOCOL_VERSION, "pid": os.getpid(), "lang": lang})
        except OSError as e:
            sock.detach()  # not ours to close
            self._sock = None
            self._unusable(fd, e)
            return
        self._read_on_send = True
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # collected without close(), it releases what it holds all the same;
        # at interpreter exit the OS does, under any thread still using it
        self._finalizer = weakref.finalize(self, _release, sock, self._wake_r, self._wake_w)
        self._finalizer.atexit = False
        if dump_stacks_on_usr1:
            faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)

    @staticmethod
    def _unusable(fd: str, e: OSError) -> None:
        """AGENTSUP_FD names no socket we can use (closed by a wrapper that
        closes descriptors, as sudo does): said once, on the stderr that
        agentsupd captures, since the worker runs unsupervised and may be
        taken for hung; a later Agent() is unsupervised too, not told that
        this one took a channel."""
        global _claimed_by
        _claimed_by = None
        sys.stderr.write(f"agentsup: AGENTSUP_FD={fd} is not a usable "
                         f"socket ({e.strerror or e}): running unsupervised\n")

    # -- context manager -------------------------------------------------
    def __enter__(self) -> "Agent":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- state -------------------------------------------------------------
    @property
    def supervised(self) -> bool:
        return self._sock is not None

    @property
    def draining(self) -> bool:
        """True once agentsupd has asked this worker to finish and exit."""
        if not self._draining and self._sock is not None:
            self.process()
        return self._draining

    @property
    def beat_interval(self) -> float:
        """Seconds between beats: a third of the expected interval."""
        return self.heartbeat_ms / 3000.0 if self.heartbeat_ms else 1.0

    @property
    def restored(self) -> Restored:
        """The restored checkpoint and restart facts; waits for welcome (up
        to welcome_timeout) the first time."""
        if self._sock is not None and not self.welcomed:
            self._wait_for(lambda: self.welcomed, self.welcome_timeout)
        return self._restored

    def fileno(self) -> int:
        """The descriptor to select/poll on, or -1 when unsupervised."""
        return self._sock.fileno() if self._sock is not None else -1

    def want_write(self) -> bool:
        """True while frames wait for the socket (poll it for writing)."""
        return bool(self._out)

    # -- messages ----------------------------------------------------------
    def ready(self) -> bool:
        """Report readiness (a worker with start_timeout must)."""
        return self._send({"t": "ready"}) is not None

    def beat(self, steps: Optional[int] = None, tokens: Optional[int] = None,
             cost: Optional[float] = None, state: Optional[str] = None,
             status: Optional[str] = None) -> bool:
        """One heartbeat with whatever progress is known. Never blocks.
        False if it could not even be queued (agentsupd not reading, or
        the Agent closed).
        ValueError, supervised or not and before anything is sent, for
        what agentsupd would stop the worker for: steps or tokens below 0
        or past 2^64 - 1, a cost that is NaN, infinite or below 0;
        TypeError for steps or tokens that are not int, a cost that is not
        a number, a state or status that is not str (nothing is coerced).
        A status is sent cut to TEXT_MAX bytes (agentsupd keeps less)."""
        msg: Dict[str, Any] = {"t": "hb"}
        progress = _progress(steps, tokens, cost, state)
        if progress:
            msg["progress"] = progress
        if status is not None:
            msg["status"] = _cut_text("status", status)
        if self._closed:  # not queued; a beat thread at exit is no error
            return False
        if self._sock is None:
            return True
        try:
            return self._send(msg, seq="_seq") is not None
        except ValueError:
            if self._closed:  # closed by another thread meanwhile
                return False
            raise

    def busy(self, seconds: float) -> _Busy:
        """A long call ahead: push the heartbeat deadline out once (at most
        the worker's extend_max) until the next beat. `with agent.busy(30):`
        beats at the end of its block, so the next busy() counts; a plain
        `agent.busy(30)` lasts until the next beat() (a second one before
        it is ignored by agentsupd). Below 0 is 0; ValueError for NaN,
        TypeError for what is not a number."""
        self._send({"t": "extend", "ms": _ms("seconds", seconds)})
        return _Busy(self.beat)

    def checkpoint(self, data: bytes) -> int:
        """Store a checkpoint; returns its sequence number (numbers go on
        from the restored one: the first waits for welcome, up to
        welcome_timeout, as `restored` does; welcome also raises the frame
        limit to checkpoint.max). checkpoint_acked follows agentsupd's
        acks, read by this call and the next ones too: an ack of seq N
        acknowledges every seq up to N. ValueError for data over the
        worker's checkpoint.max (`checkpoint_max`, from welcome) or with
        `checkpoint: none`: agentsupd would stop the worker for it. Raises
        BlockingIOError when more
        than 1 MiB waits to be sent (agentsupd is not reading, or this
        agent sends faster than it can: checkpoints of hundreds of KiB back
        to back); the checkpoint is not taken, so try again later."""
        data = _bytes_like("checkpoint data", data)
        self._check_open()
        if self._sock is None:
            self._ckpt_seq += 1
            return self._ckpt_seq
        if not self.welcomed:
            self._wait_for(lambda: self.welcomed, self.welcome_timeout)
        # agentsupd would stop the worker for these (a protocol error)
        if self.checkpoint_max == 0:
            raise ValueError("checkpoints are off for this worker (checkpoint: none)")
        if self.checkpoint_max is not None and len(data) > self.checkpoint_max:
            raise ValueError(f"checkpoint of {len(data)} bytes is over this "
                             f"worker's checkpoint.max, {self.checkpoint_max}")
        if self._send({"t": "checkpoint", "data": data}, seq="_ckpt_seq") is None:
            raise BlockingIOError("agentsupd is not reading: checkpoint not queued")
        return self._ckpt_seq

    def result(self, data: Union[bytes, str]) -> None:
        """A task's result (at most RESULT_MAX, 64 KiB; a str counted in
        UTF-8), sent before exiting 0. The first message waits for
        welcome, up to welcome_timeout, as `checkpoint` does: welcome
        raises the frame limit to fit it. ValueError for a larger one,
        TypeError for one neither bytes-like nor str, supervised or not
        and before anything is sent (agentsupd would stop the worker)."""
        data = _result_data(data)
        if self._sock is not None and not self.welcomed:
            self._wait_for(lambda: self.welcomed, self.welcome_timeout)
        if self._send({"t": "result", "data": data}) is None:
            raise BlockingIOError("agentsupd is not reading: result not queued")

    def exit_reason(self, reason: str, retry_after: Optional[float] = None,
                    detail: Optional[str] = None, timeout: float = 1.0) -> None:
        """Declare why the worker is about to exit (one of DECLARED_REASONS;
        retry_after in seconds for rate_limited, below 0 is 0), and wait up
        to timeout for it to be sent. Holds for an exit within 5 s.
        ValueError for another reason (agentsupd would stop the worker for
        it: a protocol error) or a NaN retry_after, TypeError for a reason
        that is not a str; supervised or not, before anything is sent. A
        detail is sent cut to TEXT_MAX bytes (agentsupd keeps less)."""
        msg: Dict[str, Any] = {"t": "exit", "reason": _declared(reason)}
        if retry_after is not None:
            msg["retry_after_ms"] = _ms("retry_after", retry_after)
        if detail is not None:
            msg["detail"] = _cut_text("detail", detail)
        if self._send(msg) is None:
            raise BlockingIOError("agentsupd is not reading: exit reason not queued")
        self.flush(timeout)

    def spawn(self, sup: str, key: Optional[str] = None, args: Iterable[Union[str, bytes]] = (),
              env: Optional[Mapping[str, str]] = None,
              timeout: Optional[float] = 5.0) -> Optional[Spawned]:
        """Ask for a dynamic child of supervisor sup (this worker must be in
        its spawn_from). Waits up to timeout for the answer (TimeoutError),
        or with timeout=None returns at once (the answer goes to on_spawned
        and agent.spawned). None when unsupervised. An answer that comes
        after its caller stopped waiting goes to on_spawned and
        agent.spawned, never to another spawn; one the caller got does
        not."""
        argv = spawn_args(args)  # checked supervised or not
        envs = spawn_env(env)
        self._check_open()
        if self._sock is None:
            return None
        ticket = self._ask_spawn(sup, key, argv, envs, wait=timeout is not None)
        if timeout is None:
            return None
        try:
            self._wait_for(lambda: self._waiting.get(ticket) is not None, timeout)
        finally:
            answer = self._take_answer(ticket)
        if answer is None:
            raise TimeoutError(f"no answer to spawn {sup} within {timeout}s")
        return answer

    # -- the loop ------------------------------------------------------------
    def process(self) -> None:
        """Handle whatever agentsupd sent and send what is queued. Never
        blocks. ConnectionError once agentsupd is gone, ProtocolError on a
        bad frame."""
        if self._sock is None:
            return
        self._check_owner()  # before the flush: a fork's copy of the queue
        self._flush()
        self._take_input(wait_turn=True)

    def wait(self, timeout: float) -> None:
        """Sleep up to timeout seconds; return early if a drain arrives.
        A timeout already past returns at once, supervised or not."""
        if self._sock is None:
            time.sleep(max(0.0, timeout))
            return
        self._wait_for(lambda: self._draining, timeout)

    def flush(self, timeout: float) -> bool:
        """Wait up to timeout until every queued frame is sent."""
        if self._sock is None:
            return True
        return self._wait_for(lambda: not self._out, timeout)

    def close(self, timeout: float = 1.0) -> None:
        """Send what is queued (up to timeout, as AsyncAgent.close: a last
        checkpoint larger than the socket takes at once was cut off at
        the end of a `with` block, and lost), then close the channel.
        What would send after it raises ValueError, as a closed file's
        write: a checkpoint taken then would be lost without a word. A
        callback's exception (the wait reads frames) comes out of it, the
        channel closed all the same."""
        self._closed = True
        try:
            if self._sock is not None and self._gen == _fork_gen:
                self._flush()  # a fork's copy is only closed
                self.flush(timeout)
        except (OSError, ProtocolError):
            pass
        finally:
            self._sock = None
            self._wake_r = self._wake_w = -1
            if self._finalizer is not None:
                self._finalizer()  # once: a second close() finds it dead

    # -- internals -------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("agentsup: the Agent is closed")

    def _ask_spawn(self, sup: str, key: Optional[str], argv: List[str],
                   env: Dict[str, str], wait: bool) -> int:
        """Queue a spawn (its arguments and environment as spawn_args and
        spawn_env made them); with wait, its number, for _take_answer (the
        sync and asyncio spawns share it)."""
        msg: Dict[str, Any] = {"t": "spawn", "sup": str(sup)}
        if key is not None:
            msg["key"] = str(key)
        if argv:
            msg["args"] = argv
        if env:
            msg["env"] = env
        sent = self._send(msg, ticket=wait)
        if sent is None:
            raise BlockingIOError("agentsupd is not reading: spawn not queued")
        return sent

    def _take_answer(self, ticket: int) -> Optional[Spawned]:
        """The caller of spawn ticket stops waiting: its answer if it came,
        even at the deadline; one read later goes to spawned (the lock
        orders this with _on_spawned)."""
        with self._lock:
            return self._waiting.pop(ticket, None)

    def _handled(self) -> None:
        """Frames were handled: every waiter looks again, the one in
        select() too."""
        with self._cond:
            self._cond.notify_all()
            self._wake_reader()

    def _wake_reader(self) -> None:
        """The thread in poll() looks again: frames were handled, or
        output was queued that the socket did not take (it polled for
        input only, and another thread's flush() or close() waited on it
        in vain)."""
        if self._poller is not None:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass  # full: it will wake anyway

    def _wait_for(self, done: Callable[[], bool], timeout: float) -> bool:
        """Until done() or timeout: one waiting thread reads the socket,
        the others sleep until frames were handled (by anyone). A wait
        from a callback of the reading thread (on_drain flushing a
        checkpoint, on_nudge spawning) reads too: it waited for itself,
        and a spawn there always timed out."""
        if self._sock is not None:
            self._check_owner()  # a fork would poll, flush, read the worker's
        me = threading.get_ident()
        end = time.monotonic() + timeout
        while True:
            with self._cond:
                while True:
                    if done():
                        return True
                    left = end - time.monotonic()
                    if left <= 0 or self._sock is None:
                        return False
                    nested = self._poller == me  # in a callback of its read
                    if self._poller is None or nested:
                        self._poller = me  # this thread reads
                        break
                    self._cond.wait(left)
            try:
                sock = self._sock
                if sock is None:
                    return False
                # poll, not select(): a descriptor past 1023 is fine
                p = select.poll()
                p.register(sock, select.POLLIN | (select.POLLOUT
                                                  if self._out else 0))
                p.register(self._wake_r, select.POLLIN)
                ready = dict(p.poll(left * 1000))
                if ready.get(self._wake_r):
                    try:
                        while os.read(self._wake_r, 64):
                            pass
                    except BlockingIOError:
                        pass
                if ready.get(sock.fileno()):
                    self.process()
            finally:
                if not nested:  # the outer wait goes on reading
                    with self._cond:
                        self._poller = None
                        self._cond.notify_all()

    def _send(self, msg: Dict[str, Any], seq: Optional[str] = None,
              ticket: bool = False) -> Optional[int]:
        """Queue one frame whole and send what the socket takes. seq names
        a counter to number it with; with ticket, a spawn's number is
        returned (else 0). None when it could not be queued."""
        self._check_open()
        if self._sock is None:
            return 0
        self._check_owner()
        assert self._packb is not None
        with self._lock:
            n = getattr(self, seq) + 1 if seq else 0
            if seq:
                msg["seq"] = n
            why = field_error(msg)  # never sent: agentsupd would stop us for it
            if why:
                raise TypeError(why)
            # a str of os.fsdecode()'d bytes goes as those bytes
            body: bytes = self._packb(msg, use_bin_type=True,
                                      unicode_errors="surrogateescape")
            if len(body) > self._max_send:
                raise ValueError(f"frame of {len(body)} bytes is over {self._max_send}")
            result = self._queue_locked(msg, body, seq, n, ticket)
        if self._out:
            self._wake_reader()
        self._read_sent()
        return result

    def _queue_locked(self, msg: Dict[str, Any], body: bytes, seq: Optional[str],
                      n: int, ticket: bool) -> Optional[int]:
        """_send's frame into the output and out as far as the socket
        takes it (under _lock); None when the output is still full once
        what the socket takes now has gone (as agentsup_agent_send
        flushes first: a queue agentsupd is reading is not full)."""
        self._flush_locked()
        if self._out and len(self._out) + len(body) > _MAX_OUT:
            return None  # agentsupd is not reading: nothing sent in part
        self._out += _HEADER.pack(len(body))
        self._out += body
        if seq:
            setattr(self, seq, n)
        result = 0
        if msg["t"] == "spawn":
            self._spawns += 1
            if ticket:
                self._waiting[self._spawns] = None
                result = self._spawns
        self._flush_locked()
        return result

    def _check_owner(self) -> None:
        """The channel is the worker's process's: a fork of it (a
        multiprocessing child) writing or reading there would mix its
        frames with the worker's, and agentsupd stops the worker."""
        if self._gen != _fork_gen:
            raise RuntimeError(
                "agentsup: this Agent belongs to the worker, and this process "
                "is a fork of it: a child must not use its channel (make no "
                "Agent in the child, or exec a program)")

    def _take_input(self, wait_turn: bool) -> None:
        """Read and handle what agentsupd sent, as far as it already came:
        never waits for the socket; for another thread reading, only with
        wait_turn. Frames read before an end or an error are handled
        first."""
        msgs: List[Dict[str, Any]] = []
        if self._sock is not None:
            self._check_owner()
        if self._sock is None or not self._rlock.acquire(blocking=wait_turn):
            return
        try:
            self._recv_into(self._sock, msgs)
        finally:
            self._rlock.release()
            self._handle_all(msgs)

    def _handle_all(self, msgs: List[Dict[str, Any]]) -> None:
        """Every frame read is handled, callbacks without a lock held,
        even past one whose callback raised (a drain read with a nudge
        whose on_nudge failed was lost: the worker never drained); the
        first exception is raised once all are."""
        error: Optional[BaseException] = None
        for msg in msgs:
            try:
                self._handle(msg)
            except BaseException as e:  # on_drain may exit: SystemExit
                error = error or e
        if msgs:
            self._handled()
        if error is not None:
            raise error

    def _recv_into(self, sock: socket.socket, msgs: List[Dict[str, Any]]) -> None:
        """The frames waiting on sock, appended to msgs (under _rlock)."""
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                raise ConnectionError(f"agentsupd channel: {e}") from e
            if not data:
                raise ConnectionError("agentsupd closed the channel")
            for msg in self._reader.feed(data, _MAX_IN):
                # answers are numbered as read, in order: a thread
                # handling its batch later must not take another's
                if msg.get("t") == "spawned":
                    with self._lock:
                        self._answers += 1
                        msg["_answer"] = self._answers
                msgs.append(msg)

    def _read_sent(self) -> None:
        """After a send: what came meanwhile (acks, a drain, a nudge), if
        no other thread is reading it. An end of the channel is left to the
        next send or process() to report."""
        if not self._read_on_send:
            return
        try:
            self._take_input(wait_turn=False)
        except ConnectionError:
            pass

    def _flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        assert self._sock is not None
        while self._out:
            try:
                n = self._sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                raise ConnectionError(f"agentsupd channel: {e}") from e
            del self._out[:n]

    def _handle(self, msg: Dict[str, Any]) -> None:
        check_fields(msg)
        t = msg["t"]
        if t == "welcome":
            self._on_welcome(msg)
        elif t == "drain":
            self._draining = True
            self.drain_deadline_ms = msg.get("deadline_ms")
            if self.on_drain is not None:
                self.on_drain(self)
        elif t == "nudge":
            nudge = Nudge(msg["reason"], msg.get("idle_ms"), msg.get("state"), msg.get("period"))
            self.nudges.append(nudge)
            if self.on_nudge is not None:
                self.on_nudge(nudge)
        elif t == "checkpoint_ok":
            # two threads may handle the batches they read at once: the
            # read and the write of the maximum under one lock
            with self._lock:
                self.checkpoint_acked = max(self.checkpoint_acked, msg["seq"])
        elif t == "spawned":
            self._on_spawned(msg)
        # other types: a newer daemon; ignored, as the protocol says

    def _on_welcome(self, msg: Dict[str, Any]) -> None:
        self.name = msg.get("name", self.name)
        self.path = msg.get("path", self.path)
        self.incarnation = msg.get("incarnation", self.incarnation)
        self.heartbeat_ms = msg.get("heartbeat_ms", self.heartbeat_ms)
        self.timeout_ms = msg.get("timeout_ms", 0)
        self._max_send = msg.get("max_frame", self._max_send)
        self.checkpoint_max = msg.get("checkpoint_max")
        ck = msg.get("checkpoint")
        self._restored = Restored(None if ck is None else bytes(ck), msg.get("checkpoint_seq", 0),
                                  msg.get("restarts", 0), msg.get("last_reason", ""))
        with self._lock:
            self._ckpt_seq = max(self._ckpt_seq, self._restored.checkpoint_seq)
        self.welcomed = True

    def _on_spawned(self, msg: Dict[str, Any]) -> None:
        answer = Spawned(msg["ok"], msg.get("name"), msg.get("created"), msg.get("error"),
                         msg.get("count"))
        with self._lock:
            n = msg.get("_answer", 0)
            if n in self._waiting:
                self._waiting[n] = answer
                return  # the caller waiting on it gets it
        self.spawned.append(answer)
        if self.on_spawned is not None:
            self.on_spawned(answer)


# hb's progress as agentsupd takes it (wire_fields.c): a counter out of
# range or a cost not a finite number >= 0 would be a protocol error.
def _progress(steps: Optional[int], tokens: Optional[int], cost: Optional[float],
              state: Optional[str]) -> Dict[str, Any]:
    progress: Dict[str, Any] = {}
    if steps is not None:
        progress["steps"] = _count("steps", steps)
    if tokens is not None:
        progress["tokens"] = _count("tokens", tokens)
    if cost is not None:
        progress["cost"] = _cost(cost)
    if state is not None:
        progress["state"] = _text("state", state)
    return progress


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    n = int(value)
    if not 0 <= n <= _UINT_MAX:
        raise ValueError(f"{name} must be from 0 to 2^64 - 1, not {n}")
    return n


def _number(name: str, value: Any) -> float:
    """A real number as a float: not a str of one (float("10") would pass),
    nor a bool."""
    if isinstance(value, bool) or \
            not isinstance(value, (numbers.Real, decimal.Decimal)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    return float(value)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return str(value)  # a subclass's str() is what is sent


# A status or a detail is free text agentsupd cuts (at 256 and 128 bytes):
# one of 64 KiB (a whole traceback as exit_reason's detail) made a frame
# over its limit, a ValueError supervised only, and the declaration was
# lost in the worker's error path. Sent cut, before a UTF-8 character.
def _cut_text(name: str, value: Any) -> str:
    text = _text(name, value)
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) <= TEXT_MAX:
        return text
    n = TEXT_MAX
    while n > 0 and raw[n] & 0xC0 == 0x80:
        n -= 1
    return raw[:n].decode("utf-8", "surrogateescape")


def _bytes_like(name: str, value: Any) -> bytes:
    if isinstance(value, str):
        raise TypeError(f"{name} must be bytes, not str: encode it "
                        "(text.encode())")
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    return bytes(value)


def _cost(value: Any) -> float:
    x = _number("cost", value)
    if not (math.isfinite(x) and x >= 0):
        raise ValueError(f"cost must be a finite number >= 0, not {x}")
    return x


# Seconds as the ms of extend and retry_after_ms, which agentsupd caps
# itself: below 0 is 0, past 2^64 - 1 ms (inf too) is that; NaN means nothing.
def _ms(name: str, seconds: float) -> int:
    ms = _number(name, seconds) * 1000
    if math.isnan(ms):
        raise ValueError(f"{name} is NaN")
    return 0 if ms <= 0 else _UINT_MAX if ms >= _UINT_MAX else int(ms)


# An exit reason agentsupd does not know is a protocol error; the one sent
# is the plain string (a str subclass's str() may differ).
def _declared(reason: str) -> str:
    if not isinstance(reason, str):
        raise TypeError(f"reason must be a str, not {type(reason).__name__}")
    if reason not in DECLARED_REASONS:
        raise ValueError(f"reason must be one of {', '.join(DECLARED_REASONS)}, not {reason!r}")
    return DECLARED_REASONS[DECLARED_REASONS.index(reason)]


# A result is binary or a string of at most RESULT_MAX bytes (a string's
# in UTF-8): anything else is a protocol error.
def _result_data(data: Union[bytes, str]) -> Union[bytes, str]:
    if isinstance(data, str):
        n = len(data.encode())
    elif isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        n = len(data)
    else:
        raise TypeError(f"result must be bytes or str, not {type(data).__name__}")
    if n > RESULT_MAX:
        raise ValueError(f"result of {n} bytes is over {RESULT_MAX}")
    return data


# What a supervised Agent holds, released by close() or by its finalizer
# when it is collected without one: no lock taken, it may run within the
# garbage collector of any thread.
def _release(sock: socket.socket, wake_r: int, wake_w: int) -> None:
    sock.close()
    os.close(wake_r)
    os.close(wake_w)


def _check_channel(sock: socket.socket) -> None:
    """agentsupd's end of a socketpair is an unnamed Unix stream socket.
    AGENTSUP_FD inherited by a program the worker ran before it took its
    channel (the descriptor closed there, its number reused) named the
    program's own connection: hello went to an HTTP server."""
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM \
            or sock.getpeername():
        raise OSError(errno.ENOTSOCK, "a socket of another kind or with "
                      "an address, not agentsupd's socketpair")


def _import_msgpack() -> None:
    """msgpack, needed only when supervised: a worker run by another
    Python than the one it was tried with (`python3` found in PATH a
    pyenv's, not Debian's) failed with a bare "No module named 'msgpack'",
    its channel taken, so that a second Agent() said one had already
    taken it."""
    try:
        __import__("msgpack")
    except ImportError as e:
        raise ModuleNotFoundError(
            f"agentsup: this worker is supervised, but {sys.executable} "
            f"cannot import msgpack ({e}): install it for that Python "
            "(Debian: apt install python3-msgpack), or name a Python that "
            "has it in the worker's command", name="msgpack") from e


def _env_int(name: str) -> int:
    v = os.environ.get(name, "")
    return int(v) if v.isdigit() else 0


from ._async import AsyncAgent  # noqa: E402  (it builds on Agent)
