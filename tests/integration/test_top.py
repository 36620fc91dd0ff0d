"""agentsupctl top, driven like a user would: in a tmux pane of fixed size,
keys sent with send-keys, the screen read with capture-pane."""
import os
import shlex
import shutil
import signal
import subprocess
import time

import pytest

from conftest import AGENTSUPCTL, TIMEOUT, sh, wait_until, waiting_team

SLEEP = sh("exec sleep 1000")
TMUX = shutil.which("tmux")

pytestmark = pytest.mark.skipif(TMUX is None, reason="no tmux")


class Pane:
    """One detached tmux session on a private server."""

    def __init__(self, tmp_path, command, width=140, height=30):
        self.sock = str(tmp_path / "tmux.sock")
        conf = tmp_path / "tmux.conf"
        # keep the pane after its process exits, to read how it ended
        conf.write_text("set -g remain-on-exit on\n")
        self.tmux("-f", str(conf), "new-session", "-d", "-s", "top",
                  "-x", str(width), "-y", str(height), shlex.join(command))

    def tmux(self, *args):
        return subprocess.run([TMUX, "-S", self.sock, *args], check=True,
                              capture_output=True, text=True,
                              timeout=TIMEOUT).stdout

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "top")

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "top", *keys)

    def wait_for(self, pred, what):
        deadline = time.monotonic() + TIMEOUT
        while True:
            text = self.screen()
            if pred(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} on screen:\n{text}")
            time.sleep(0.05)

    def dead(self):
        return self.tmux("display-message", "-p", "-t", "top",
                         "#{pane_dead}").strip() == "1"

    def kill(self):
        subprocess.run([TMUX, "-S", self.sock, "kill-server"],
                       capture_output=True, timeout=TIMEOUT)


def row(text, name):
    """The columns of the row naming this node."""
    for line in text.splitlines():
        cols = line.split()
        if cols and cols[0] == name:
            return cols
    return None


def test_top_shows_the_tree_and_restarts_the_selected_worker(supd, tmp_path):
    d = supd.start({"a.yaml": f"""
        supervisor: root
        intensity: 10
        children:
          - {{worker: alpha, command: {SLEEP}}}
          - supervisor: team
            children:
              - {{worker: beta, command: {SLEEP}}}
        """})
    first = d.wait("started", "root/alpha")
    d.wait("started", "root/team/beta")
    # the shell writes top's exit status where the test can read it (tmux
    # does not always learn the status of a pane's process)
    status = tmp_path / "status"
    pane = Pane(tmp_path, ["/bin/sh", "-c", shlex.join(
        [AGENTSUPCTL, "--socket", d.socket, "top"])
        + f'; echo $? > {shlex.quote(str(status))}'])
    try:
        text = pane.wait_for(lambda t: (row(t, "alpha") or [""])[1:2]
                             == ["running"] and row(t, "beta") is not None
                             and "selected: root" in t, "the tree")
        assert row(text, "alpha")[2] == str(first.pid)
        assert row(text, "alpha")[3] == "0"
        assert row(text, "beta") is not None and "team" in text
        # CPU % and RSS come from /proc once a second sample exists
        pane.wait_for(lambda t: row(t, "alpha")[4] != "-", "a CPU %")
        assert row(pane.screen(), "alpha")[5].endswith("M")
        pane.keys("j")
        pane.wait_for(lambda t: "selected: root/alpha" in t, "the selection")
        pane.keys("r")
        again = d.wait("started", "root/alpha")
        assert again.pid != first.pid
        # the count moves when the restart begins, the pid when the new
        # instance is up: a sample can fall between the two
        pane.wait_for(lambda t: row(t, "alpha")[3] == "1"
                      and row(t, "alpha")[2] == str(again.pid),
                      "restarts 1 and the new pid")
        # down past the end stays on the last row; resize is survived
        pane.keys("j", "j", "j", "j")
        pane.wait_for(lambda t: "selected: root/team/beta" in t, "beta")
        pane.tmux("resize-window", "-t", "top", "-x", "90", "-y", "12")
        pane.wait_for(lambda t: len(t.splitlines()[0]) <= 90
                      and "selected: root/team/beta" in t, "the resize")
        pane.keys("q")
        deadline = time.monotonic() + TIMEOUT
        while not pane.dead():
            assert time.monotonic() < deadline, pane.screen()
            time.sleep(0.05)
        assert status.read_text() == "0\n", pane.screen()
    finally:
        pane.kill()
    assert d.count("command") == 1


def test_top_without_a_daemon_says_so(tmp_path):
    r = subprocess.run([AGENTSUPCTL, "--socket", str(tmp_path / "none.sock"),
                        "top"], capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert r.returncode == 69
    assert "cannot reach agentsupd" in r.stderr


def test_top_without_a_terminal_says_so(supd):
    """Piped (a script, `| head`, ssh without -t): top drew its screen's
    escape sequences into the pipe once a second until killed (or, TERM
    unset, ncurses said "Error opening terminal" and exit 1); found by an
    SRE's trial."""
    d = supd.start({"a.yaml": f"worker: alpha\ncommand: {SLEEP}\n"})
    d.wait("started", "root/alpha")
    for env in (dict(os.environ, TERM="xterm"),
                {k: v for k, v in os.environ.items() if k != "TERM"}):
        r = subprocess.run([AGENTSUPCTL, "--socket", d.socket, "top"],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, env=env, timeout=TIMEOUT)
        assert r.returncode == 64, (r.returncode, r.stderr)
        assert "top needs a terminal" in r.stderr and r.stdout == ""


def test_top_shows_every_node_of_a_big_tree(supd, tmp_path):
    """A status answer that comes in chunks: top read the first only (75
    of 301 nodes here) and the rest could not be seen or selected."""
    n = 300
    kids = "\n".join(f"  - {{supervisor: s{i}, children: []}}" for i in range(n))
    d = supd.start({"a.yaml": "supervisor: root\nchildren:\n" + kids + "\n"})
    wait_until(lambda: d.ctl("status", "s0").returncode == 0,
               what="the daemon to answer")
    pane = Pane(tmp_path, [AGENTSUPCTL, "--socket", d.socket, "top"])
    try:
        pane.wait_for(lambda t: f"{n + 1} nodes" in t, "every node counted")
        pane.tmux("send-keys", "-t", "top", "-N", str(n + 5), "j")
        pane.wait_for(lambda t: f"selected: root/s{n - 1}" in t,
                      "the last node selected")
    finally:
        pane.kill()


def test_top_shows_the_top_rows_again_when_the_terminal_grows(supd, tmp_path):
    """Shrunk to a body of one row with the 4th row selected, then grown
    back: the view kept the first rows scrolled away above 30 empty lines
    until k walked up to them."""
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: w1, command: {SLEEP}}}
          - {{worker: w2, command: {SLEEP}}}
          - {{worker: w3, command: {SLEEP}}}
        """})
    d.wait("started", "root/w3")
    pane = Pane(tmp_path, [AGENTSUPCTL, "--socket", d.socket, "top"],
                width=160, height=30)
    try:
        pane.wait_for(lambda t: row(t, "w3") is not None, "the tree")
        pane.keys("j", "j", "j")
        pane.wait_for(lambda t: "selected: root/w3" in t, "w3 selected")
        pane.tmux("resize-window", "-t", "top", "-x", "30", "-y", "5")
        pane.wait_for(lambda t: len(t.splitlines()) <= 5
                      and row(t, "w3") is not None
                      and row(t, "root") is None, "the shrink")
        pane.tmux("resize-window", "-t", "top", "-x", "200", "-y", "40")
        text = pane.wait_for(lambda t: len(t.splitlines()[0]) > 30
                             and "selected: root/w3" in t, "the growth")
        # the header redraws first: give the body the same refresh
        text = pane.wait_for(lambda t: row(t, "root") is not None,
                             "every row again")
        for name in ("root", "w1", "w2", "w3"):
            assert row(text, name) is not None, text
    finally:
        pane.kill()


def test_top_shows_a_circuit_only_for_workers_that_have_one(supd, tmp_path):
    """Status says circuit "closed" for every worker: top showed a CIRCUIT
    column of "closed" for a tree without any circuit configured."""
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: plain, command: {SLEEP}}}
        """})
    d.wait("started", "root/plain")
    st = d.ctl_json("status", "plain")[0]
    assert st["circuit"] == "closed" and st["circuit_configured"] is False
    pane = Pane(tmp_path, [AGENTSUPCTL, "--socket", d.socket, "top"],
                width=200)
    try:
        text = pane.wait_for(lambda t: row(t, "plain") is not None
                             and "NAME" in t, "the tree")
        assert "CIRCUIT" not in text and "closed" not in text, text
    finally:
        pane.kill()
    supd.write({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: plain, command: {SLEEP}}}
          - worker: guarded
            command: {SLEEP}
            circuit: {{failures: 3}}
        """})
    d.ctl("reload", check=0)
    d.wait("started", "root/guarded")
    assert d.ctl_json("status", "guarded")[0]["circuit_configured"] is True
    pane = Pane(tmp_path, [AGENTSUPCTL, "--socket", d.socket, "top"],
                width=200)
    try:
        text = pane.wait_for(lambda t: row(t, "guarded") is not None
                             and "CIRCUIT" in t, "the circuit column")
        assert "closed" in row(text, "guarded"), text
        assert "closed" not in row(text, "plain"), text
    finally:
        pane.kill()


def test_top_marks_the_view_stale_while_agentsupd_is_down(supd, tmp_path):
    """With agentsupd gone, top kept the last tree as running under a
    ticking clock; only the message line said it was unreachable."""
    d = supd.start({"a.yaml": f"""
        supervisor: root
        children:
          - {{worker: alpha, command: {SLEEP}}}
        """})
    d.wait("started", "root/alpha")
    pane = Pane(tmp_path, [AGENTSUPCTL, "--socket", d.socket, "top"],
                width=160)
    try:
        pane.wait_for(lambda t: (row(t, "alpha") or [""])[1:2]
                      == ["running"], "alpha running")
        d.ctl("shutdown", check=0)
        assert d.exit_code() == 0
        text = pane.wait_for(lambda t: "STALE" in t.splitlines()[0]
                             and "agentsupd at" in t, "the stale view")
        assert row(text, "alpha")[1] == "?", text
        assert "running" not in text, text
        head = text.splitlines()[0]
        time.sleep(2.2)  # two refreshes: the clock stands still
        assert pane.screen().splitlines()[0] == head
        # back: fresh states under a running clock again
        supd.start()
        pane.wait_for(lambda t: "STALE" not in t.splitlines()[0]
                      and (row(t, "alpha") or [""])[1:2] == ["running"],
                      "the live view again")
    finally:
        pane.kill()


def test_a_selection_a_reload_removes_selects_nothing(supd, tmp_path):
    """The selected node removed by a reload: the selection fell back to
    the root, and a stop keyed a moment later stopped the whole tree. Now
    nothing is selected until j/k, and s/r/d say so."""
    def tree(*names):
        return "supervisor: root\nchildren:\n" + "".join(
            f"  - {{worker: {n}, command: {SLEEP}}}\n" for n in names)
    d = supd.start({"a.yaml": tree("a", "b", "c")})
    d.wait("started", "root/c")
    pane = Pane(tmp_path, [AGENTSUPCTL, "--socket", d.socket, "top"])
    try:
        pane.wait_for(lambda t: row(t, "c") is not None, "the tree")
        pane.keys("j", "j", "j")
        pane.wait_for(lambda t: "selected: root/c" in t, "c selected")
        supd.write({"a.yaml": tree("a", "b")})
        d.ctl("reload", check=0)
        pane.wait_for(lambda t: row(t, "c") is None and "gone" in t,
                      "the selection gone")
        pane.keys("s")
        pane.wait_for(lambda t: "root/c is gone" in t, "the refusal")
        assert d.count("command") == 0
        assert all(n["state"] == "running" for n in d.ctl_json("status"))
        pane.keys("k")  # selects the row under the cursor, where c was
        pane.wait_for(lambda t: "selected: root/b" in t
                      and "gone" not in t.splitlines()[-1], "b selected")
    finally:
        pane.kill()


def test_a_hangup_puts_the_terminal_back(supd, tmp_path):
    """kill -HUP of top left the terminal raw, echo off, on the alternate
    screen: ncurses puts it back on SIGINT and SIGTERM only."""
    d = supd.start({"a.yaml": f"worker: w\ncommand: {SLEEP}\n"})
    d.wait("started", "root/w")
    out = {n: tmp_path / n for n in ("before", "after", "status", "pid")}
    script = (f"stty -g > {out['before']}; "
              f"{shlex.join([AGENTSUPCTL, '--socket', d.socket, 'top'])} & "
              f"echo $! > {out['pid']}; wait $!; echo $? > {out['status']}; "
              f"stty -g > {out['after']}")
    pane = Pane(tmp_path, ["/bin/sh", "-c", script])
    try:
        pane.wait_for(lambda t: row(t, "w") is not None, "the tree")
        os.kill(int(out["pid"].read_text()), signal.SIGHUP)
        wait_until(lambda: out["after"].exists() and out["after"].read_text(),
                   what="top ended")
        assert out["status"].read_text() == "129\n"
        assert out["after"].read_text() == out["before"].read_text()
    finally:
        pane.kill()


def test_top_marks_a_child_whose_restart_waits_for_its_supervisor(
        supd, tmp_path):
    """A child that failed while its supervisor was still starting the
    others showed as plain "stopped" (in red, as one that gave up); it is
    marked "(waits)" until its supervisor restarts it."""
    go = tmp_path / "go"
    d = supd.start(waiting_team(go))
    d.wait("exited", "root/team/bad")
    pane = Pane(tmp_path, [AGENTSUPCTL, "--socket", d.socket, "top"])
    try:
        text = pane.wait_for(lambda t: (row(t, "bad") or [])[1:3]
                             == ["(waits)", "stopped"], "bad waiting")
        go.touch()
        d.wait("ready", "root/team/gate")
        text = pane.wait_for(lambda t: (row(t, "bad") or [])[1:2]
                             == ["running"], "bad running again")
        assert "(waits)" not in text, text
    finally:
        pane.kill()
