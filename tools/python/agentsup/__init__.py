"""agentsup: the worker's side of the agentsup protocol, for Python agents.

    import agentsup

    with agentsup.Agent() as agent:      # hello; a no-op when unsupervised
        agent.ready()                    # needed when the worker has start_timeout
        while not agent.draining:
            step()
            agent.beat(steps=n, tokens=t, cost=c, state="thinking", status="...")
            agent.wait(agent.beat_interval)   # returns early on a drain

The channel is the socket at AGENTSUP_FD; frames are a 4-byte big-endian
length and one msgpack map with a string "t" (docs/protocol.md). Nothing
here starts a thread or blocks longer than the timeout it is given. When the
process is supervised, SIGUSR1 dumps every thread's stack to stderr
(faulthandler): agentsupd sends it to a hung worker before stopping it.
"""
import faulthandler
import os
import select
import signal
import socket
import struct
import time

import msgpack

__all__ = ["Agent", "ProtocolError", "PROTOCOL_VERSION", "MAX_FRAME"]

PROTOCOL_VERSION = 1
MAX_FRAME = 64 * 1024
_HEADER = struct.Struct(">I")
_MAX_OUT = 8192


class ProtocolError(Exception):
    """agentsupd sent something this client cannot read."""


def _frame(msg):
    body = msgpack.packb(msg, use_bin_type=True)
    if len(body) > MAX_FRAME:
        raise ValueError(f"frame of {len(body)} bytes is over {MAX_FRAME}")
    return _HEADER.pack(len(body)) + body


class Agent:
    """One worker's connection to agentsupd (or a no-op when standalone)."""

    def __init__(self, lang="python", on_drain=None, dump_stacks_on_usr1=True):
        self.on_drain = on_drain
        self.name = os.environ.get("AGENTSUP_NAME", "")
        self.path = os.environ.get("AGENTSUP_PATH", "")
        self.incarnation = int(os.environ.get("AGENTSUP_INCARNATION", "0") or 0)
        self.heartbeat_ms = int(os.environ.get("AGENTSUP_HEARTBEAT_MS", "0") or 0)
        self.timeout_ms = 0
        self.welcomed = False
        self.drain_deadline_ms = None
        self._draining = False
        self._seq = 0
        self._in = b""
        self._out = b""
        self._sock = None
        fd = os.environ.get("AGENTSUP_FD")
        if fd is None or not fd.isdigit():
            return
        try:
            self._sock = socket.socket(fileno=int(fd))
        except OSError:
            return  # not a socket we can use: run as if unsupervised
        self._sock.setblocking(False)
        if dump_stacks_on_usr1:
            faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)
        self._send({"t": "hello", "v": PROTOCOL_VERSION, "pid": os.getpid(), "lang": lang})

    # -- context manager -------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- state -------------------------------------------------------------
    @property
    def supervised(self):
        return self._sock is not None

    @property
    def draining(self):
        """True once agentsupd has asked this worker to finish and exit."""
        if not self._draining and self._sock is not None:
            self.process()
        return self._draining

    @property
    def beat_interval(self):
        """Seconds between beats: a third of the expected interval."""
        return self.heartbeat_ms / 3000.0 if self.heartbeat_ms else 1.0

    def fileno(self):
        """The descriptor to select/poll on, or -1 when unsupervised."""
        return self._sock.fileno() if self._sock is not None else -1

    # -- messages ----------------------------------------------------------
    def ready(self):
        """Report readiness (a worker with start_timeout must)."""
        self._send({"t": "ready"})

    def beat(self, steps=None, tokens=None, cost=None, state=None, status=None):
        """One heartbeat with whatever progress is known. Never blocks."""
        if self._sock is None:
            return
        self._seq += 1
        msg = {"t": "hb", "seq": self._seq}
        progress = {}
        if steps is not None:
            progress["steps"] = int(steps)
        if tokens is not None:
            progress["tokens"] = int(tokens)
        if cost is not None:
            progress["cost"] = float(cost)
        if state is not None:
            progress["state"] = str(state)
        if progress:
            msg["progress"] = progress
        if status is not None:
            msg["status"] = str(status)
        self._send(msg)

    def process(self):
        """Handle whatever agentsupd sent (welcome, drain). Never blocks."""
        if self._sock is None:
            return
        self._flush()
        while True:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                raise ConnectionError(f"agentsupd channel: {e}") from e
            if not data:
                raise ConnectionError("agentsupd closed the channel")
            self._in += data
            if len(self._in) > _HEADER.size + MAX_FRAME:
                raise ProtocolError("frame over the limit")
            self._decode()

    def wait(self, timeout):
        """Sleep up to timeout seconds; return early if a drain arrives."""
        if self._sock is None:
            time.sleep(timeout)
            return
        end = time.monotonic() + timeout
        while not self._draining:
            left = end - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([self._sock], [], [], left)
            if r:
                self.process()

    def close(self):
        if self._sock is not None:
            try:
                self._flush()
            except OSError:
                pass
            self._sock.close()
            self._sock = None

    # -- internals -------------------------------------------------------
    def _send(self, msg):
        if self._sock is None:
            return
        data = _frame(msg)
        if len(self._out) + len(data) > _MAX_OUT:
            return  # agentsupd is not reading: drop, never block the agent
        self._out += data
        self._flush()

    def _flush(self):
        while self._out:
            try:
                n = self._sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                return
            self._out = self._out[n:]

    def _decode(self):
        while len(self._in) >= _HEADER.size:
            (n,) = _HEADER.unpack_from(self._in)
            if n > MAX_FRAME:
                raise ProtocolError(f"frame of {n} bytes is over the limit")
            if len(self._in) < _HEADER.size + n:
                return
            body = self._in[_HEADER.size:_HEADER.size + n]
            self._in = self._in[_HEADER.size + n:]
            try:
                msg = msgpack.unpackb(body, raw=False, strict_map_key=False)
            except Exception as e:
                raise ProtocolError(f"bad frame: {e}") from e
            if not isinstance(msg, dict) or not isinstance(msg.get("t"), str):
                raise ProtocolError("frame is not a map with a string t")
            self._handle(msg)

    def _handle(self, msg):
        t = msg["t"]
        if t == "welcome":
            self.welcomed = True
            self.name = msg.get("name", self.name)
            self.path = msg.get("path", self.path)
            self.incarnation = msg.get("incarnation", self.incarnation)
            self.heartbeat_ms = msg.get("heartbeat_ms", self.heartbeat_ms)
            self.timeout_ms = msg.get("timeout_ms", 0)
        elif t == "drain":
            self._draining = True
            self.drain_deadline_ms = msg.get("deadline_ms")
            if self.on_drain is not None:
                self.on_drain(self)
        # other types: a newer daemon; ignored, as the protocol says
