"""`agentsupctl stop SUP/KEY` of a task, with a state store, is answered
once its cancellation is stored: a SIGKILL of agentsupd while the task is
still going down (its drain, its `shutdown`) must not resume it at the
next start. Before, the answer came when the stop began and the store
said "running" until the process was down: the task ran again."""
import signal
import textwrap

import pytest

from conftest import TIMEOUT, store_locked, wait_until
from test_ledger_store import stored_states
from test_resume_tasks import fresh_events, settings
from test_wait_durable import Conn


def tree(supd):
    """pool/t ignores SIGTERM: its stop lasts its `shutdown` (60 s), or
    until the test lets it end (done)."""
    up, end = supd.tmp / "up", supd.tmp / "end"
    return {**settings(supd), "a.yaml": textwrap.dedent(f"""\
        supervisor: root
        children:
          - supervisor: pool
            template:
              command: ["/bin/sh", "-c", "trap '' TERM; touch {up}; while [ ! -e {end} ]; do sleep 0.05; done"]
              backoff: none
              shutdown: 60s
          - {{worker: idle, command: [sleep, '300']}}
        """)}


def running_task(supd):
    d = supd.start(tree(supd))
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "t", check=0)
    d.wait("started", "root/pool/t")
    wait_until(lambda: (supd.tmp / "up").exists(), what="the task's trap set")
    return d


def killed_and_started_again(supd, d):
    """agentsupd SIGKILLed (its workers die with it), then started again on
    the same state store."""
    d.kill()
    for p in list(d.pids):
        wait_until(lambda: not d.runs(p), what="workers die with agentsupd")
    d.pids.clear()
    fresh_events(supd)
    return supd.start(tree(supd))


def done(supd):
    (supd.tmp / "end").write_text("")


def test_a_stopped_task_is_not_resumed_after_a_sigkill(supd):
    d = running_task(supd)
    d.ctl("stop", "pool/t", check=0)  # answered: the stop is durable
    assert stored_states(supd)["t"] == 4, "answered before it was stored"
    d = killed_and_started_again(supd, d)
    d.wait("started", "root/idle")
    out = d.ctl("wait", "pool/t", check=4).stdout  # cancelled, not run again
    assert "cancelled" in out, out
    st = d.ctl("status").stdout
    assert "pool/t" not in st, st


def test_a_task_going_down_after_a_stop_says_cancelling(supd):
    """Its record said "pending" while its process went down, as a task
    about to start again would; a spawn of its key answered the same."""
    d = running_task(supd)
    d.ctl("stop", "pool/t", check=0)
    rec = d.ctl_json("spawn", "pool", "--key", "t")
    assert rec["created"] is False and rec["state"] == "cancelling", rec
    d.ctl("start", "pool/t", check=0)  # undone: it runs on
    rec = d.ctl_json("spawn", "pool", "--key", "t")
    assert rec["state"] in ("running", "pending"), rec
    d.ctl("stop", "pool/t", check=0)
    done(supd)
    d.wait("task_done", "root/pool/t")
    out = d.ctl("wait", "pool/t", check=4).stdout
    assert "cancelled" in out, out


def test_the_stop_is_answered_only_once_stored(supd):
    d = running_task(supd)
    c = Conn(d.socket)
    with store_locked(supd.tmp / "state" / "agentsup.db"):
        s = c.send("stop", "pool/t")
        assert c.until(c.send("status"))["ok"]
        assert s not in c.answers, \
            f"stop answered before it was stored: {c.answers[s]}"
    m = c.until(s)
    assert m["ok"] and m["result"] == "root/pool/t", m
    assert stored_states(supd)["t"] == 4
    done(supd)
    c.s.close()


def test_a_stop_whose_cancellation_cannot_be_stored_says_so(supd):
    """The lock held past the busy timeout: the write fails, the answer
    says the stop goes on but a restart would run it again; the retry
    stores the cancellation later."""
    d = running_task(supd)
    c = Conn(d.socket)
    with store_locked(supd.tmp / "state" / "agentsup.db"):
        s = c.send("stop", "pool/t")
        m = c.until(s)
        assert not m["ok"] and "could not be stored" in m["error"] and \
            "would run again" in m["error"], m
    d.wait_detail("store_error", "pool/t")
    wait_until(lambda: stored_states(supd)["t"] == 4,
               what="the retry storing the cancellation")
    done(supd)
    c.s.close()


def test_an_unstored_cancellation_is_stored_by_a_graceful_exit(supd):
    """The store works again, and agentsupd is stopped gracefully before
    its retry (every 5 s): the cancellation must be written at the exit,
    not left for a retry that never comes."""
    d = running_task(supd)
    c = Conn(d.socket)
    with store_locked(supd.tmp / "state" / "agentsup.db"):
        s = c.send("stop", "pool/t")
        m = c.until(s)
        assert not m["ok"] and "could not be stored" in m["error"], m
    c.s.close()
    d.proc.send_signal(signal.SIGTERM)
    done(supd)
    assert d.proc.wait(TIMEOUT) == 0
    assert stored_states(supd)["t"] == 4
    fresh_events(supd)  # else the wait below finds the last run's start
    d = supd.start(tree(supd))
    d.wait("started", "root/idle")
    out = d.ctl("wait", "pool/t", check=4).stdout  # cancelled, not run again
    assert "cancelled" in out, out


@pytest.mark.parametrize("again", ["start", "reset"])
def test_a_start_after_the_stop_undoes_the_cancellation(supd, again):
    """Stopped, then started again by the operator before it was down (a
    `reset` of a task it names starts it whatever stopped it, as `start`
    does): it runs on, and a SIGKILL then resumes it (the stored
    cancellation would have left it ended)."""
    d = running_task(supd)
    d.ctl("stop", "pool/t", check=0)
    assert stored_states(supd)["t"] == 4
    d.ctl(again, "pool/t", check=0)
    wait_until(lambda: stored_states(supd)["t"] < 2,
               what="the task stored as live again")
    d = killed_and_started_again(supd, d)
    d.wait("started", "root/pool/t")
    done(supd)


def test_a_drained_task_is_not_resumed_after_a_sigkill(supd):
    """`drain SUP/KEY` stops the task as `stop` does (it then stays
    stopped: cancelled once down): its answer too comes once the
    cancellation is stored."""
    d = running_task(supd)
    d.ctl("drain", "pool/t", check=0)
    assert stored_states(supd)["t"] == 4, "answered before it was stored"
    d = killed_and_started_again(supd, d)
    d.wait("started", "root/idle")
    out = d.ctl("wait", "pool/t", check=4).stdout
    assert "cancelled" in out, out
    st = d.ctl("status").stdout
    assert "pool/t" not in st, st
