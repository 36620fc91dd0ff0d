"""AsyncAgent: the agentsup client for asyncio. It never blocks the loop:
the channel is watched with loop.add_reader (and add_writer while frames
wait for the socket), and every wait is an awaitable with a timeout.
Unsupervised, every call is a no-op and fileno() is -1."""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Deque, Iterable, Mapping, Optional, TypeVar, Union

from . import Agent, Nudge, ProtocolError, Restored, Spawned, _Busy
from ._reader import spawn_args, spawn_env

T = TypeVar("T")


class AsyncAgent:
    """`async with agentsup.AsyncAgent() as agent:` -- see Agent."""

    def __init__(self, lang: str = "python",
                 on_drain: Optional[Callable[["AsyncAgent"], None]] = None,
                 on_nudge: Optional[Callable[[Nudge], None]] = None,
                 on_spawned: Optional[Callable[[Spawned], None]] = None,
                 dump_stacks_on_usr1: bool = True,
                 welcome_timeout: float = 5.0) -> None:
        self._user_drain = on_drain
        self._user_nudge = on_nudge
        self.welcome_timeout = welcome_timeout
        # on_spawned runs on the loop (the reader), as Agent's does on the
        # thread that reads: an answer that came after its spawn stopped
        # waiting, also kept in `spawned`
        self._agent = Agent(lang, on_drain=self._on_drain, on_nudge=self._on_nudge,
                            on_spawned=on_spawned,
                            dump_stacks_on_usr1=dump_stacks_on_usr1, welcome_timeout=0)
        self._agent._read_on_send = False  # the loop reads, and wakes waiters
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._changed: Optional[asyncio.Event] = None  # set on any input
        self._writing = False
        self._thread = 0  # the loop's: the watches are changed there alone
        self.error: Optional[BaseException] = None  # why the channel ended
        # made in __aenter__, inside the running loop (Python < 3.10 binds
        # a queue to the loop current at its creation)
        self.nudges: "asyncio.Queue[Nudge]"

    # -- context manager ---------------------------------------------------
    async def __aenter__(self) -> "AsyncAgent":
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._changed = asyncio.Event()
        self.nudges = asyncio.Queue()
        if self.supervised:
            self._loop.add_reader(self.fileno(), self._on_readable)
            self._watch_output()
            await self._until(lambda: self._agent.welcomed, self.welcome_timeout)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self, timeout: float = 1.0) -> None:
        """Send what is queued (up to timeout), then close; a channel that
        already failed is closed all the same (as Agent.close does)."""
        try:
            if self.supervised:
                await self.flush(timeout)
        except (ConnectionError, OSError, ProtocolError):
            pass
        finally:
            if self.supervised:
                self._unwatch()
            self._agent.close(timeout=0)  # flushed above, on the loop

    # -- state ---------------------------------------------------------------
    @property
    def supervised(self) -> bool:
        return self._agent.supervised

    @property
    def draining(self) -> bool:
        return self._agent._draining

    @property
    def restored(self) -> Restored:
        return self._agent._restored

    @property
    def beat_interval(self) -> float:
        return self._agent.beat_interval

    @property
    def spawned(self) -> Deque[Spawned]:
        """Answers that came after their spawn stopped waiting (a timeout,
        a cancel), as Agent.spawned: never one a spawn returned."""
        return self._agent.spawned

    @property
    def checkpoint_acked(self) -> int:
        return self._agent.checkpoint_acked

    @property
    def checkpoint_max(self) -> Optional[int]:
        """As Agent.checkpoint_max: from welcome, 0 when checkpoints are off."""
        return self._agent.checkpoint_max

    @property
    def name(self) -> str:
        return self._agent.name

    def fileno(self) -> int:
        return self._agent.fileno()

    # -- messages: queued at once, never blocking ------------------------------
    def ready(self) -> bool:
        return self._sent(self._agent.ready())

    def beat(self, steps: Optional[int] = None, tokens: Optional[int] = None,
             cost: Optional[float] = None, state: Optional[str] = None,
             status: Optional[str] = None) -> bool:
        """As Agent.beat (ValueError for a value agentsupd refuses,
        TypeError for one of another type, before anything is sent)."""
        return self._sent(self._agent.beat(steps, tokens, cost, state, status))

    def busy(self, seconds: float) -> _Busy:
        """As Agent.busy: `with agent.busy(30):` beats at its end."""
        self._sent(self._agent.busy(seconds))
        return _Busy(self.beat)

    def checkpoint(self, data: bytes) -> int:
        return self._sent(self._agent.checkpoint(data))

    def result(self, data: Union[bytes, str]) -> None:
        """As Agent.result (ValueError over 64 KiB, TypeError for neither
        bytes nor str)."""
        self._agent.result(data)
        self._watch_output()

    async def exit_reason(self, reason: str, retry_after: Optional[float] = None,
                          detail: Optional[str] = None, timeout: float = 1.0) -> None:
        """Declare why the worker is about to exit; waits until it is sent.
        As Agent.exit_reason: ValueError for a reason not in
        DECLARED_REASONS, before anything is sent."""
        self._agent.exit_reason(reason, retry_after, detail, timeout=0)
        self._watch_output()
        await self.flush(timeout)

    async def spawn(self, sup: str, key: Optional[str] = None, args: Iterable[Union[str, bytes]] = (),
                    env: Optional[Mapping[str, str]] = None,
                    timeout: float = 5.0) -> Optional[Spawned]:
        """Ask for a dynamic child; its answer, or asyncio.TimeoutError (an
        answer that comes later goes to agent.spawned, never to another
        spawn)."""
        argv = spawn_args(args)  # checked supervised or not
        envs = spawn_env(env)
        self._agent._check_open()
        if not self.supervised:
            return None
        n = self._sent(self._agent._ask_spawn(sup, key, argv, envs, wait=True))
        try:
            await self._until(lambda: self._agent._waiting.get(n) is not None, timeout)
        finally:
            answer = self._agent._take_answer(n)
        if answer is None:
            raise asyncio.TimeoutError(f"no answer to spawn {sup} within {timeout}s")
        return answer

    # -- waiting ---------------------------------------------------------------
    async def wait(self, timeout: float) -> None:
        """Sleep up to timeout seconds; return early on a drain."""
        if not self.supervised:
            await asyncio.sleep(timeout)
            return
        await self._until(lambda: self.draining, timeout)

    async def flush(self, timeout: float) -> bool:
        return await self._until(lambda: not self._agent.want_write(), timeout)

    async def _until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait for done() until timeout; False at the deadline."""
        if self._loop is None or self._changed is None:
            raise RuntimeError("agentsup: AsyncAgent is used as "
                               "`async with AsyncAgent() as agent:`")
        end = self._loop.time() + timeout
        while not done():
            if self.error is not None:
                raise self.error
            left = end - self._loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                return False
        return True

    # -- the loop's callbacks -------------------------------------------------
    def _sent(self, r: T) -> T:
        self._watch_output()
        return r

    def _watch_output(self) -> None:
        if self._loop is None or not self.supervised:
            return
        if threading.get_ident() != self._thread:
            # a beat from a thread of the program's (to_thread, an
            # executor): the loop watches the socket, on its own thread
            try:
                self._loop.call_soon_threadsafe(self._watch_output)
            except RuntimeError:  # the loop is closed: close() sends
                pass
            return
        if self._agent.want_write() and not self._writing:
            self._loop.add_writer(self.fileno(), self._on_writable)
            self._writing = True

    def _on_readable(self) -> None:
        try:
            self._agent.process()
        except (OSError, ProtocolError) as e:  # the channel is over
            self.error = e
            self._unwatch()
        self._watch_output()
        self._wake()

    def _on_writable(self) -> None:
        try:
            self._agent._flush()
        except ConnectionError as e:
            self.error = e
        if not self._agent.want_write() or self.error is not None:
            self._loop.remove_writer(self.fileno())  # type: ignore[union-attr]
            self._writing = False
        self._wake()

    def _unwatch(self) -> None:
        if self._loop is not None and self.fileno() >= 0:
            self._loop.remove_reader(self.fileno())
            if self._writing:
                self._loop.remove_writer(self.fileno())
                self._writing = False

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _on_drain(self, _agent: Agent) -> None:
        if self._user_drain is not None:
            self._user_drain(self)

    def _on_nudge(self, nudge: Nudge) -> None:
        self.nudges.put_nowait(nudge)
        if self._user_nudge is not None:
            self._user_nudge(nudge)
