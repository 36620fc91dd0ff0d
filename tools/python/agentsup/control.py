"""agentsup.control: steer a running agentsupd from Python, as agentsupctl
does (docs/protocol.md, "Control socket"): the tree's status, start, stop,
restart, drain and reset of a node, reload, tasks spawned and waited for,
dead letters, events and workers' output.

    from agentsup.control import Control, ControlError

    with Control() as ctl:                       # the default socket
        rec = ctl.spawn("research", key="q-42", args=["--topic", "tides"])
        rec = ctl.wait("research/q-42", timeout=600)   # once it has ended
        ctl.restart("research", wait=120)   # once its workers are new and up
        if rec["state"] != "done":
            print(rec["reasons"], rec["tail"])
        for ev in ctl.events("research", follow=True):  # until closed
            print(ev["kind"], ev["path"])

The socket is the one agentsupctl finds: the argument, else
AGENTSUP_SOCKET, else /run/agentsupd.sock for root,
$XDG_RUNTIME_DIR/agentsupd.sock, or the private ${TMPDIR:-/tmp}/agentsupd-UID
directory (its owner and mode checked). A server that is neither root nor
this user is not believed (SO_PEERCRED). One request at a time on one
connection (agentsupd answers in order): a Control is not for several
threads at once. A refusal raises ControlError with agentsupd's message;
a lost connection ConnectionError; a wait past its timeout TimeoutError.
The next call after a connection ended (a wait that timed out, a follow
given up, agentsupd closing an idle one or restarting) connects again; only
close() ends a Control.
"""
from __future__ import annotations

import os
import select
import socket
import stat
import struct
import time
from typing import (Any, Dict, Iterable, Iterator, List, Mapping,
                    Optional, Tuple, Union)

from ._reader import FrameReader, ProtocolError, spawn_args, spawn_env

__all__ = ["Control", "ControlError", "default_socket"]

MAX_ANSWER = 16 << 20  # what agentsupd may answer in one frame
_HEADER = struct.Struct(">I")
_UCRED = struct.Struct("3i")  # pid, uid, gid


_RELOAD_HOLD = 60.0  # AGENTSUP_RELOAD_HOLD_MS: a busy tree holds a reload
_WAIT_MAX = 7 * 24 * 3600  # as agentsupctl's --timeout (168h)


class ControlError(Exception):
    """agentsupd refused the request; the message says why. again: it
    would take it a moment later (a supervisor busy with a restart, a
    node still stopping). removed: the node was removed by a reload and is
    still stopping."""

    def __init__(self, message: str, again: bool = False,
                 removed: bool = False) -> None:
        super().__init__(message)
        self.again = again
        self.removed = removed


def default_socket() -> str:
    """Where agentsupd listens unless told otherwise (as agentsupctl finds
    it): AGENTSUP_SOCKET, else the default path for this user."""
    env = os.environ.get("AGENTSUP_SOCKET")
    if env:
        return env
    if os.geteuid() == 0:
        return "/run/agentsupd.sock"
    rt = os.environ.get("XDG_RUNTIME_DIR", "")
    if rt.startswith("/"):
        return os.path.join(rt, "agentsupd.sock")
    return os.path.join(_private_dir(), "agentsupd.sock")


def _private_dir() -> str:
    tmp = os.environ.get("TMPDIR", "")
    if not tmp.startswith("/"):
        tmp = "/tmp"
    return os.path.join(tmp, f"agentsupd-{os.geteuid()}")


def _check_private_dir(path: str) -> None:
    """A socket in the shared /tmp could be anyone's: its directory must be
    this user's own, closed to others (as agentsupd made it)."""
    d = _private_dir()
    if os.path.dirname(path) != d:
        return
    try:
        st = os.lstat(d)
    except FileNotFoundError:
        return  # connect says no agentsupd runs there
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or \
            st.st_mode & 0o077:
        raise ConnectionError(
            f"{d} is not a private directory of this user: not trusting "
            "the socket in it")


def _wait_seconds(cmd: str, wait: Any) -> float:
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or \
            not 0 <= wait <= _WAIT_MAX:
        raise ValueError(f"{cmd}: wait must be a number of seconds from "
                         f"0 to {_WAIT_MAX} (a week), not {wait!r}")
    return float(wait)


_ROLLING_STEP = 90.0  # a rolling restart's wait for each, without wait


def _all_if_zero(newest: Any) -> Any:
    """newest=0 is all (None: not sent), as agentsupctl's -n 0; anything
    else is sent as it is (what is not a count refused by agentsupd)."""
    return None if type(newest) is int and newest == 0 else newest


def _rolling_copy_of(n: Dict[str, Any], name: str) -> bool:
    """n is a copy of NAME: by name, or by its supervisor's path + name."""
    of = n.get("instance_of")
    if not isinstance(of, str):
        return False
    path = str(n.get("path", ""))
    return of == name or ("/" in path and
                          name == path.rsplit("/", 1)[0] + "/" + of)


def _rolling_targets(nodes: List[Dict[str, Any]], name: str) -> List[str]:
    """From the whole tree's status: the paths of the supervisor NAME's
    children, or of the copies of NAME, that are up, a pool's tasks left
    out (src/ctl/rolling.c)."""
    up = ("running", "starting")
    if not name:
        raise ControlError("restart --rolling: NAME is empty")
    copies = [n for n in nodes if _rolling_copy_of(n, name)]
    at = [i for i, n in enumerate(nodes)
          if name in (n.get("name"), n.get("path"))]
    if at and copies:
        raise ControlError(f"restart --rolling: {name} names both a "
                           f"supervisor and the copies of a worker of "
                           f"`instances:` (their paths too): rename one of "
                           f"them to roll it")
    if not at and not copies:
        raise ControlError(f"no such worker or supervisor: {name}")
    if at:
        n = nodes[at[0]]
        if n.get("kind") != "supervisor":
            raise ControlError(f"restart --rolling: {name} is a worker: "
                               f"name a supervisor, or a worker of "
                               f"`instances:` by its own name")
        depth, copies = n.get("depth", 0), []
        for c in nodes[at[0] + 1:]:
            if c.get("depth", 0) <= depth:
                break
            if c.get("depth") == depth + 1:
                copies.append(c)
    return [str(n["path"]) for n in copies
            if n.get("state") in up and not n.get("key")]


class Control:
    """A connection to agentsupd's control socket."""

    def __init__(self, socket_path: Optional[str] = None,
                 timeout: Optional[float] = 30.0) -> None:
        """Connect (ConnectionError when no trusted agentsupd answers
        there); timeout bounds each answer, whole (all its frames, however
        slowly they come), but wait's and a follow's."""
        self.path = socket_path or default_socket()
        self.timeout = timeout
        self._id = 0
        self._closed = False
        self._drained: Optional["Control"] = None  # _drain_all's follower
        self._sock = self._connect()

    def _connect(self) -> socket.socket:
        """A fresh connection, its reader's state with it."""
        self._reader = FrameReader()
        self._frames: List[Dict[str, Any]] = []
        _check_private_dir(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
            except OSError as e:  # no socket there, not ours to reach...
                # a refusal keeps its class (ConnectionRefusedError: a
                # stale socket left by a killed agentsupd), and says where
                cls = type(e) if isinstance(e, ConnectionError) \
                    else ConnectionError
                err = cls(f"{self.path}: {e.strerror or e}")
                err.errno = e.errno
                raise err from e
            self._check_peer(sock)
        except BaseException:
            sock.close()
            raise
        return sock

    def _usable(self) -> socket.socket:
        """The connection for the next request: a new one when the last
        was given up (a wait that timed out, a follow ended) or agentsupd
        closed it (a connection idle for a minute is closed: a Control
        held by a long-lived service reconnects)."""
        if self._closed:
            raise ConnectionError(f"{self.path}: this Control is closed")
        if self._sock.fileno() >= 0 and not self._frames and \
                not self._peer_gone():
            return self._sock
        self._sock.close()
        self._sock = self._connect()
        return self._sock

    def _peer_gone(self) -> bool:
        """Between requests nothing is due from agentsupd: a readable
        socket is its close (or the rest of an answer given up on)."""
        p = select.poll()  # not select(): a descriptor past 1023 is fine
        p.register(self._sock, select.POLLIN)
        return bool(p.poll(0))

    def _check_peer(self, sock: socket.socket) -> None:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                              _UCRED.size)
        _, uid, _ = _UCRED.unpack(raw)
        if uid not in (0, os.geteuid()):
            raise ConnectionError(
                f"{self.path} is served by uid {uid}, neither root nor "
                "this user: not trusting it")

    def close(self) -> None:
        self._closed = True
        self._sock.close()
        if self._drained is not None:
            self._drained.close()

    def __enter__(self) -> "Control":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- frames -----------------------------------------------------------

    def _send(self, cmd: str, args: List[Any]) -> int:
        import msgpack  # type: ignore[import]

        sock = self._usable()
        self._id += 1
        body = msgpack.packb({"t": "req", "id": self._id, "cmd": cmd,
                              "args": args}, use_bin_type=True,
                             unicode_errors="surrogateescape")
        try:
            sock.sendall(_HEADER.pack(len(body)) + body)
        except (BrokenPipeError, ConnectionResetError) as e:
            # closed on us: it may have said why first (no room for us)
            try:
                f = self._next(time.monotonic() + 1.0)
            except (ConnectionError, TimeoutError, ProtocolError):
                raise ConnectionError(f"{self.path}: {e}") from e
            if f.get("t") == "res" and not f.get("ok"):
                raise ControlError(str(f.get("error", "refused"))) from e
            raise ConnectionError(f"{self.path}: {e}") from e
        return self._id

    def _next(self, deadline: Optional[float]) -> Dict[str, Any]:
        """The next frame, by deadline (time.monotonic(); None: no
        deadline) however the bytes dribble in; ConnectionError once
        agentsupd closed it."""
        while not self._frames:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("agentsupd did not answer in time")
            self._sock.settimeout(left)
            try:
                data = self._sock.recv(1 << 16)
            except socket.timeout:
                raise TimeoutError("agentsupd did not answer in time")
            if not data:
                raise ConnectionError("agentsupd closed the connection")
            self._frames.extend(self._reader.feed(data, MAX_ANSWER))
        return self._frames.pop(0)

    def _answer(self, rid: int, deadline: Optional[float]) -> Dict[str, Any]:
        while True:
            f = self._next(deadline)
            # id 0: a refusal of whatever comes (no room for a client)
            if f["t"] == "res" and (f.get("id") == rid or
                                    (f.get("id") == 0 and not f.get("ok"))):
                if not f.get("ok"):
                    raise ControlError(str(f.get("error", "refused")),
                                       f.get("again") is True,
                                       f.get("removed") is True)
                return f

    def _call(self, cmd: str, args: List[Any],
              timeout: Union[float, None, bool] = True) -> Any:
        """The result of cmd; a list answer's chunks joined."""
        t = self.timeout if timeout is True else timeout
        # the whole answer, its chunks and any frame before it, by then
        deadline = None if t is None else time.monotonic() + float(t)
        rid = self._send(cmd, args)
        try:
            f = self._answer(rid, deadline)
        except ControlError as e:
            # what every agentsupd answers a command, or more arguments,
            # than it knows: this client's methods send neither to a build
            # as recent (a package upgraded under a running agentsupd)
            if str(e) not in ("unknown command", "too many arguments"):
                raise
            raise ControlError(
                f"{cmd}: {e}: agentsupd runs an older build than this "
                "client, without the command or this use of it; restart "
                "agentsupd to run the one installed", e.again, e.removed) from e
        result = f.get("result")
        while f.get("more"):
            f = self._answer(rid, deadline)
            if not isinstance(result, list) or \
                    not isinstance(f.get("result"), list):
                raise ProtocolError(f"{cmd}: a chunk that is not a list")
            result.extend(f["result"])
        return result

    def _text(self, cmd: str, args: List[Any]) -> str:
        r = self._call(cmd, args)
        if not isinstance(r, str):
            raise ProtocolError(f"{cmd}: the answer is not text")
        return r

    def _map(self, cmd: str, args: List[Any],
             timeout: Union[float, None, bool] = True) -> Dict[str, Any]:
        r = self._call(cmd, args, timeout)
        if not isinstance(r, dict):
            raise ProtocolError(f"{cmd}: the answer is not a map")
        return r

    def _maps(self, cmd: str, args: List[Any],
              timeout: Union[float, None, bool] = True) -> List[Dict[str, Any]]:
        r = self._call(cmd, args, timeout)
        if not isinstance(r, list) or not all(isinstance(x, dict) for x in r):
            raise ProtocolError(f"{cmd}: the answer is not a list of maps")
        return r

    def _follow(self, kind: str, key: str) -> Iterator[Any]:
        """The frames of a follow, until agentsupd ends it: ControlError
        when it dropped us (fell behind, the followed node removed),
        ConnectionError when it exits."""
        while True:
            f = self._next(None)
            if f["t"] == kind:
                yield f if key == "" else f.get(key)
            elif f["t"] == "end":
                why = str(f.get("reason", ""))
                if f.get("cause") == "exit":
                    # hung up at once: agentsupd waits (a second at most)
                    # for its followers before it exits
                    self._sock.close()
                    raise ConnectionError(why)
                raise ControlError(why)

    # --- the tree ---------------------------------------------------------

    def status(self, name: Optional[str] = None) -> List[Dict[str, Any]]:
        """The tree (or NAME's subtree), depth-first: one map per node."""
        return self._maps("status", [name] if name else [])

    def start(self, name: str, wait: Optional[float] = None) -> str:
        """Start it. With wait (seconds), return once it is running (ready,
        with a start_timeout; every worker started up for a second) and
        nothing below it is starting or stopping: ControlError if it did
        not come up, TimeoutError past wait."""
        return self._command("start", name, wait)

    def stop(self, name: str, wait: Optional[float] = None) -> str:
        """Stop it (it stays stopped until started); a task: cancel it.
        With wait (seconds), return once it is down, its process gone."""
        return self._command("stop", name, wait)

    def restart(self, name: str, wait: Optional[float] = None,
                rolling: bool = False) -> str:
        """Restart it. With wait (seconds), return once every worker below
        it is a new process and it is running, as start's wait. rolling:
        the children of the supervisor NAME, or the copies of the worker
        of `instances:` NAME, one at a time in start order, each up before
        the next (`agentsupctl restart NAME --rolling`, PM2's reload);
        those not up before are left as they are; wait then bounds the
        whole rollout (without it, 90 s a restart). At the first that does
        not come up: ControlError (TimeoutError past wait), the rest keep
        their processes."""
        if rolling:
            return self._rolling(name, wait)
        return self._command("restart", name, wait)

    def _rolling(self, name: str, wait: Optional[float]) -> str:
        deadline = None if wait is None else \
            time.monotonic() + _wait_seconds("restart", wait)
        paths = _rolling_targets(self.status(), name)
        done = 0
        for path in paths:
            if not self._exists(path):
                continue  # a reload removed it meanwhile: left out
            left = _ROLLING_STEP if deadline is None else \
                max(0.001, deadline - time.monotonic())
            try:
                self._command("restart", path, left)
            except (ControlError, TimeoutError) as e:
                if not self._exists(path):
                    continue
                raise type(e)(f"restart --rolling {name}: stopped at {path} "
                              f"({done} of {len(paths)} restarted, the rest "
                              f"keep their processes): {e}") from None
            done += 1
        return f"{name}: {done} restarted one at a time"

    def _exists(self, path: str) -> bool:
        """Not gone: not removed by a reload (even one still stopping)."""
        try:
            return not self.status(path)[0].get("removed")
        except (ControlError, IndexError):
            return False

    def reset(self, name: str) -> str:
        return self._text("reset", [name])

    def drain(self, name: Optional[str] = None,
              wait: Optional[float] = None) -> str:
        """Drain NAME's subtree; without NAME the whole tree, after which
        agentsupd exits. With wait (seconds): NAME's, as stop's; the whole
        tree's, return once agentsupd, its tree down, says it exits 0 (it
        exits as soon as this hangs up; ControlError when it exits
        otherwise, TimeoutError past wait), as `agentsupctl drain --wait`."""
        if name is None and wait is None:
            return self._text("drain", [])
        if name is None:
            return self._drain_all(_wait_seconds("drain", wait))
        return self._command("drain", name, wait)

    # The whole tree's drain, then agentsupd's exit, told by a follow of
    # the events opened first (its end says the exit status; agentsupd
    # waits, a second at most, for its followers to hang up before it
    # exits). The follower is kept open until this Control is closed: as
    # PID 1 of a container, agentsupd's exit kills every process of it, so
    # a program that exits now had better hang up by its own exit.
    def _drain_all(self, wait: float) -> str:
        deadline = time.monotonic() + wait
        follower = Control(self.path, self.timeout)
        try:
            follower._maps("events", [True])
            answer = self._text("drain", [])
            while True:
                try:
                    f = follower._next(deadline)
                except TimeoutError:
                    raise TimeoutError(f"drain: agentsupd has not exited "
                                       f"within {wait}s") from None
                if f["t"] != "end":
                    continue
                status = f.get("status")
                if f.get("cause") != "exit" or not isinstance(status, int):
                    raise ControlError(str(f.get("reason", "")))
                if status != 0:
                    raise ControlError(f"drain: agentsupd exited {status}")
                self._drained = follower
                return answer
        except BaseException:
            follower.close()
            raise

    # The command, then (with wait) NAME's status until it has been carried
    # out, as `agentsupctl CMD NAME --wait` (src/ctl/opwait.c) decides it;
    # every answer within what is left of the wait.
    def _command(self, cmd: str, name: str, wait: Optional[float]) -> str:
        if wait is None:
            return self._text(cmd, [name])
        wait = _wait_seconds(cmd, wait)
        deadline = time.monotonic() + wait

        seen = {"state": ""}  # NAME's state at the last look

        def status() -> List[Dict[str, Any]]:
            left = deadline - time.monotonic()
            try:
                limit = left if self.timeout is None else min(left, self.timeout)
                r = self._maps("status", [name], max(0.001, limit))
            except TimeoutError:
                if limit < left or not seen["state"]:  # agentsupd silent
                    within = self.timeout if limit < left else wait
                    raise TimeoutError(f"{cmd}: no answer about {name} "
                                       f"within {within}s") from None
                # a look the wait's own end cut short: the wait timed out
                raise TimeoutError(f"{cmd}: {name} is still "
                                   f"{seen['state']} after {wait}s") from None
            if not r:
                raise ProtocolError("status: the answer is an empty list")
            seen["state"] = str(r[0].get("state", ""))
            return r

        pause = 0.02
        refused: Optional[ControlError] = None
        while True:  # asked again while refused for a moment
            if refused is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{cmd}: {refused}; {name} was not free "
                                   f"to take it within {wait}s")
            try:
                was: Optional[_Before] = _Before(cmd, status())
                answer = self._text(cmd, [name])
                break
            except ControlError as e:
                if e.removed and cmd in ("stop", "drain"):
                    was, answer = None, name  # its reload stops it
                    seen["state"] = "stopping, removed by a reload"
                    break
                if not e.again:
                    raise
                refused = e
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.25)
        pause = 0.02
        while True:
            try:
                nodes = status()
            except ControlError as e:
                if cmd not in ("stop", "drain"):
                    raise
                if not e.removed:
                    return answer  # ended (a task), or removed and gone
                nodes = []  # removed by a reload, still stopping
                seen["state"] = "stopping, removed by a reload"
            top = nodes[0] if nodes else {
                "state": "stopping, removed by a reload"}
            if nodes and (was is None or was.settled(nodes)):
                if was is not None and cmd in ("start", "restart") and (
                        was.failed_start(top) or top["state"] != "running"
                        and not (top["state"] == "stopped" and not top.get("held")
                                 and top.get("last_reason") == "exit:0")):
                    last = top.get("last_reason")
                    state = "failed, running again" \
                        if top["state"] == "running" else top["state"]
                    raise ControlError(f"{name} did not come up: {state}"
                                       + (f", last {last}" if last else ""))
                return answer
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{cmd}: {name} is still {top['state']} "
                                   f"after {wait}s")
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.25)

    def signal(self, name: str, sig: Union[str, int]) -> str:
        """Send sig ("HUP", "SIGUSR1", or a number) to the worker's process,
        or to every running worker below a supervisor."""
        if isinstance(sig, int) and not 0 < sig < 1 << 16:
            raise ControlError(f"signal: {sig} is no signal")
        return self._text("signal", [name, sig])

    def reload(self) -> str:
        """Re-read supervisor.d/ and apply it as a diff: what changed
        (ControlError with the config's errors when refused). Asked while
        a supervisor is busy restarting its children, it is applied once
        that settles: the answer may take up to 60 s more than others."""
        t = None if self.timeout is None else self.timeout + _RELOAD_HOLD
        r = self._call("reload", [], t)
        if not isinstance(r, str):
            raise ProtocolError("reload: the answer is not text")
        return r

    def shutdown(self) -> str:
        return self._text("shutdown", [])

    # --- tasks ------------------------------------------------------------

    def spawn(self, sup: str, key: Optional[str] = None,
              args: Iterable[Union[str, bytes]] = (), env: Optional[Mapping[str, str]] = None,
              retry: bool = False) -> Dict[str, Any]:
        """A dynamic child of SUP: its record, with "created" False when
        the key was already pending, running or ended within key_ttl."""
        opts: Dict[str, Any] = {
            "args": spawn_args(args),
            "env": [f"{k}={v}" for k, v in spawn_env(env).items()],
            "retry": bool(retry),
        }
        if key is not None:
            opts["key"] = key
        return self._map("spawn", [sup, opts])

    def wait(self, key: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """The task's record once it has ended ("done", "dead",
        "cancelled"); TimeoutError after timeout seconds (None: for ever).
        The next request is made on a new connection (this one's answer
        would still come): polling with short waits works. timeout 0
        (or less: a deadline already passed) is a look: agentsupd answers
        at once, TimeoutError when the task has not ended."""
        if timeout is not None and timeout <= 0:
            rec = self._map("wait", [key, True])
            if rec.get("state") not in ("done", "dead", "cancelled"):
                raise TimeoutError(f"wait {key}: the task had not ended "
                                   f"(it is {rec.get('state')})")
            return rec
        try:
            return self._map("wait", [key], timeout)
        except TimeoutError:
            self._sock.close()
            # the task's end, not agentsupd, is what did not come
            raise TimeoutError(f"wait {key}: the task had not ended "
                               f"within {timeout:g}s") from None

    def dead(self, newest: Optional[int] = None) -> List[Dict[str, Any]]:
        """The dead letters' whole records, oldest ended first (with
        newest=N the newest N only, still oldest first; 0 is all, as
        agentsupctl's -n 0)."""
        n = _all_if_zero(newest)
        return self._maps("dead", [] if n is None else [n])

    def tasks(self, sup: Optional[str] = None, state: Optional[str] = None,
              newest: Optional[int] = None) -> List[Dict[str, Any]]:
        """Every task of the ledger, live and ended, in order of
        acceptance (of SUP's pool; in STATE: pending, running, cancelling,
        done, dead or cancelled; with newest=N the newest N only, still
        oldest first; 0 is all, as agentsupctl's -n 0), a line's worth
        each: name, sup, key, state, attempts, reasons, result_size,
        checkpoint_seq, accepted_ms, ended_ms, replays. wait(key,
        timeout=0) has a whole record."""
        args: List[Any] = [sup, state, _all_if_zero(newest)]
        while args and args[-1] is None:
            args.pop()
        # "" is sent, and refused, as agentsupctl's would be
        return self._maps("tasks", args)

    def replay(self, key: str) -> Dict[str, Any]:
        return self._map("replay", [key])

    def drop(self, key: str) -> str:
        return self._text("drop", [key])

    # --- events and output ------------------------------------------------

    def events(self, name: Optional[str] = None,
               follow: bool = False) -> Iterator[Dict[str, Any]]:
        """The last events kept (of NAME's subtree), then with follow every
        new one until agentsupd ends the follow or the connection is
        closed. A follow holds the connection: use a Control of its own.
        The request is made by this call (a follow starts here; an unknown
        NAME raises here), not at the first next()."""
        args: List[Any] = [bool(follow)] + ([name] if name else [])
        return self._events_then(self._maps("events", args), follow)

    def _events_then(self, kept: List[Dict[str, Any]],
                     follow: bool) -> Iterator[Dict[str, Any]]:
        yield from kept
        if follow:
            yield from self._follow("event", "event")

    def logs(self, name: Optional[str] = None, lines: int = 20) -> Union[str, Dict[str, str]]:
        """A worker's last lines of output as one string; a supervisor's
        (without NAME, the whole tree's) as {worker: its last lines}."""
        r = self._call("logs", [name, int(lines), False])
        if isinstance(r, list):
            return {str(it["name"]): str(it["text"]) for it in r}
        if not isinstance(r, str):
            raise ProtocolError("logs: the answer is neither text nor a list")
        return r

    def follow_logs(self, name: Optional[str] = None,
                    lines: int = 0) -> Iterator[Dict[str, Optional[str]]]:
        """Each new line of a worker's output (of every worker below a
        supervisor; of the whole tree without NAME) as {name, stream,
        line}, after its last `lines` as {name, stream: None, line}. The
        follow starts with this call, not at the first next(): a line
        written after it returns is a followed one."""
        r = self._call("logs", [name, int(lines), True])
        tails = [(str(it["name"]), str(it["text"])) for it in r] \
            if isinstance(r, list) else [(name or "", str(r))]
        return self._logs_then(tails)

    def _logs_then(self, tails: List[Tuple[str, str]]
                   ) -> Iterator[Dict[str, Optional[str]]]:
        for who, text in tails:
            for line in text.splitlines():
                yield {"name": who, "stream": None, "line": line}
        for f in self._follow("log", ""):
            yield {"name": f.get("name"), "stream": f.get("stream"),
                   "line": f.get("line")}


__all__ += ["ProtocolError"]


def _starts(n: Dict[str, Any]) -> int:
    """How often n has started, the first start too (an older agentsupd
    has only its restarts, which a first start leaves at 0)."""
    v = n.get("starts", n.get("restarts"))
    return v if isinstance(v, int) else 0


_SETTLE_MS = 1000  # a worker up this long is up (opwait.c's OPWAIT_SETTLE_MS)


def _young(n: Dict[str, Any]) -> bool:
    """A worker running for less than _SETTLE_MS: not yet up, as one that
    exits at once would count (supervisord's startsecs, PM2's min_uptime)."""
    return (n.get("kind") == "worker" and n.get("state") == "running"
            and (n.get("uptime_ms") or 0) < _SETTLE_MS)


class _Before:
    """NAME's subtree before a command, and whether it has since settled."""

    def __init__(self, cmd: str, nodes: List[Dict[str, Any]]) -> None:
        top = nodes[0]
        self.cmd = cmd
        self.starts = _starts(top)
        self.was_running = top.get("state") == "running"
        self.worker = top.get("kind") == "worker"
        # each worker below as it was: its starts, and for a restart its
        # process, which must be replaced
        self.nodes = {n.get("path"): n for n in nodes
                      if n.get("kind") == "worker"}

    def _old_pid(self, n: Dict[str, Any]) -> bool:
        o = self.nodes.get(n.get("path"))
        return (self.cmd == "restart" and o is not None
                and bool(n.get("pid")) and o.get("pid") == n.get("pid"))

    def _awaits(self, n: Dict[str, Any], top: bool) -> bool:
        """A worker the command started, not up yet: NAME, or one below
        started once since (not a pool's task, nor one that failed since,
        flapping: waiting for it to stay up would never end)."""
        o = self.nodes.get(n.get("path"))
        return _young(n) and (top or (
            n.get("key") is None and o is not None
            and _starts(n) == _starts(o) + 1))

    def _failed_since(self, n: Dict[str, Any]) -> bool:
        """A worker below NAME that failed and started again since the
        command: not up, and not waited for (it may never be)."""
        o = self.nodes.get(n.get("path"))
        return (o is not None and _starts(n) >= _starts(o) + 2
                and (n.get("consecutive_failures") or 0)
                > (o.get("consecutive_failures") or 0))

    def failed_start(self, top: Dict[str, Any]) -> bool:
        """NAME a worker that failed and started again since, not up for
        good (another operator's restart of it is no failure)."""
        return (self.worker and self._failed_since(top)
                and (top["state"] != "running" or _young(top)))

    def settled(self, nodes: List[Dict[str, Any]]) -> bool:
        top = nodes[0]
        if self.cmd in ("stop", "drain"):
            return top["state"] not in ("running", "starting", "stopping",
                                        "backoff")
        # a start of what runs: nothing to wait for
        if (self.cmd == "start" and self.was_running) or self.failed_start(top):
            return True
        for i, n in enumerate(nodes):
            if i > 0 and self._failed_since(n):
                continue
            if n["state"] in ("starting", "stopping") or \
                    self._old_pid(n) or self._awaits(n, i == 0):
                return False
        # a stopped NAME is still to be started (a start is stored
        # first), unless it started and ended since (a one-shot), or is held
        return (top["state"] != "stopped" or bool(top.get("held"))
                or _starts(top) > self.starts)
