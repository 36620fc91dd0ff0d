"""An operator's stop (or start) of a configured node, with a state store,
is answered once its hold is stored: the answer came before the write, so
a SIGKILL of agentsupd in between (a few milliseconds, or a whole busy
store's wait) undid an answered stop, and the agent ran again at the next
start. A write that fails says so in the answer, as a task's stop does."""
import signal

from conftest import store_locked, wait_until
from test_store import held_conf, stored_holds
from test_wait_durable import Conn


def started(supd):
    held_conf(supd, 0)
    d = supd.start()
    d.wait("started", "root/team/member")
    return d


def answered_once_stored(supd, c, cmd, name):
    """cmd NAME sent while another process holds the store's lock: no
    answer while the write waits (a status is answered meanwhile), the
    answer once it is committed."""
    with store_locked(supd.tmp / "state" / "agentsup.db"):
        s = c.send(cmd, name)
        assert c.until(c.send("status"))["ok"]
        assert s not in c.answers, \
            f"{cmd} answered before it was stored: {c.answers[s]}"
    return c.until(s)


def test_a_stop_is_answered_only_once_its_hold_is_stored(supd):
    d = started(supd)
    c = Conn(d.socket)
    m = answered_once_stored(supd, c, "stop", "flaky")
    assert m["ok"] and m["result"] == "root/flaky", m
    assert stored_holds(supd) == {"root/flaky"}
    m = answered_once_stored(supd, c, "start", "flaky")  # a hold undone
    assert m["ok"], m
    assert stored_holds(supd) == set()
    # a command that changes no hold is answered at once
    with store_locked(supd.tmp / "state" / "agentsup.db"):
        m = c.until(c.send("restart", "idle"))
        assert m["ok"] and m["result"] == "root/idle", m
    c.s.close()
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0


def test_a_stop_whose_hold_cannot_be_stored_says_so(supd):
    """The lock held past the store's busy timeout: the stop is done, the
    answer says it is not stored and what a restart would do; the next
    second's sweep stores it once the store works again."""
    d = started(supd)
    c = Conn(d.socket)
    with store_locked(supd.tmp / "state" / "agentsup.db"):
        m = c.until(c.send("stop", "team"))
        assert not m["ok"], m
        assert "root/team is stopped, but that could not be stored" in \
            m["error"] and "would start it again" in m["error"], m
    d.wait("exited", "root/team/member")
    wait_until(lambda: stored_holds(supd) == {"root/team"},
               what="the sweep storing the hold")
    c.s.close()
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0


def without_flaky(supd, n):
    """held_conf's tree without root/flaky."""
    held_conf(supd, n)
    p = supd.dir / "a.yaml"
    p.write_text("".join(line for line in p.read_text().splitlines(True)
                         if "flaky" not in line))


def test_the_hold_of_a_node_the_config_dropped_goes_with_it(supd):
    """A deploy without flaky, then a reload that brings a flaky back: it
    ran (nobody stopped it), yet its old row stayed in the table (the
    hash compared was the tree's, not the table's) and the next start
    of agentsupd kept it stopped (found by a second reader)."""
    d = started(supd)
    d.ctl("stop", "flaky", check=0)  # answered once stored
    assert stored_holds(supd) == {"root/flaky"}
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    without_flaky(supd, 1)
    d = supd.start()
    d.wait("started", "root/team/member")
    wait_until(lambda: stored_holds(supd) == set(), what="the row gone")
    held_conf(supd, 1)
    d.ctl("reload", check=0)
    d.wait("started", "root/flaky")  # a new one, nobody stopped it
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    held_conf(supd, 2)  # a fresh events file
    d = supd.start()
    d.wait("started", "root/flaky")
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
