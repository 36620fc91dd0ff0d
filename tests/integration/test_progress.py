"""Progress (DESIGN §10) with real Python workers on the Python client: a
stalled agent nudged then restarted, a looping agent caught, a budget spent
(state exhausted, `agentsupctl status` exits 3, the root's exits 79), and a
long call announced with busy() that is not a hang while a silent worker
still is. Waits are on events with deadlines, never on sleeps."""
import hashlib
import json
import os
import sys
from datetime import datetime

from conftest import SRC, TIMEOUT, wait_until

PY = sys.executable if sys.executable.startswith("/usr/bin/") else "/usr/bin/python3"

# One worker program; its behaviour is argv[1]. Nudges go to NUDGES (a file
# the test reads), as "reason period" lines.
AGENT = r'''
import os, sys, time
sys.path.insert(0, os.environ["PYDIR"])
import agentsup

mode = sys.argv[1]
out = os.environ.get("NUDGES")

kid = None
if mode == "stallkid":   # a helper process of its own, in its group
    import subprocess
    kid = subprocess.Popen(["sleep", "300"])
    mode = "stall"

def noted(n):
    if out:
        fate = ""
        if kid is not None:  # a stall's SIGUSR1 is the worker's only
            try:
                fate = " kid exited %s" % kid.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                fate = " kid alive"
        with open(out, "a") as f:
            f.write(f"{n.reason} {n.period or ''} {n.state or ''}{fate}\n")

with agentsup.Agent(on_nudge=noted) as agent:
    i = 0
    while not agent.draining:
        i += 1
        if mode == "stall":      # beats, but stuck at step 1
            agent.beat(steps=1, state="thinking")
        elif mode == "loop":     # the same tool call over and over
            agent.beat(steps=i, state="search('weather')")
        elif mode == "search":   # queries that differ after byte 64
            agent.beat(steps=i, state="tool=web_search query=" + "x" * 60
                       + str(i))
        elif mode == "spend":    # 100 tokens a step
            agent.beat(steps=i, tokens=100 * i, state=f"s{i}")
        elif mode == "busy":     # one 3 s call, announced, then done
            agent.beat(steps=i)
            if i == 3:
                with agent.busy(5):
                    time.sleep(3)
                agent.beat(steps=i + 1)
                agent.exit_reason("done")
                agent.flush(2)
                sys.exit(0)
        elif mode == "silent":   # the same call, unannounced
            agent.beat(steps=i)
            if i == 3:
                time.sleep(3)
        elif mode == "gone":     # announces 1 s, never comes back
            agent.beat(steps=i)
            if i == 3:
                agent.busy(1)
                agent.flush(1)
                time.sleep(30)
        agent.wait(0.05)
'''


def ms(stamp):
    """An event's time (ISO 8601) as ms since the epoch."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000


def agent_files(supd):
    prog = supd.tmp / "agent.py"
    prog.write_text(AGENT)
    return prog


def worker(prog, name, mode, extra="", nudges=None):
    env = {"PYDIR": os.path.join(SRC, "tools", "python")}
    if nudges:
        env["NUDGES"] = str(nudges)
    return (f"  - worker: {name}\n"
            f"    command: {json.dumps([PY, str(prog), mode])}\n"
            f"    environment: {json.dumps(env)}\n"
            f"    backoff: none\n{extra}")


def test_stalled_agent_nudged_then_restarted(supd):
    prog = agent_files(supd)
    nudges = supd.tmp / "nudges.txt"
    d = supd.start({"a.yaml": "supervisor: root\nchildren:\n" + worker(
        prog, "planner", "stall", nudges=nudges,
        # heartbeat_timeout 5 s, not 600 ms: a loaded host's Python took
        # longer than that to its first beat, a hang (the CI's normal pass)
        extra="    heartbeat: 200ms\n    heartbeat_timeout: 5s\n"
              "    stall_timeout: 1s\n    stall_grace: 1s\n"
              "    stall_dump: true\n")})
    st = d.wait("stalled", "root/planner")
    assert st.reason == "stall"
    n = d.wait("nudged", "root/planner")
    assert n.reason == "stall" and "told" in n.detail
    assert "SIGUSR1 sent" in n.detail
    ex = d.wait("exited", "root/planner")
    assert ex.reason == "stall"
    d.wait("restarting", "root/planner")
    d.wait("started", "root/planner")
    assert nudges.read_text().split()[0] == "stall"
    # stall_dump: the client's faulthandler printed the worker's stack
    assert any("most recent call first" in line for line in d.lines)
    # the stop came only after the grace: ~1 s after the nudge
    assert ms(ex.time) - ms(st.time) >= 900


def test_a_stall_dump_spares_the_workers_helpers(supd):
    """stall_dump's SIGUSR1 went to the worker's whole process group: a
    helper process (a tool, a browser) without a handler died of it while
    the worker recovered and went on."""
    prog = agent_files(supd)
    nudges = supd.tmp / "nudges.txt"
    d = supd.start({"a.yaml": "supervisor: root\nchildren:\n" + worker(
        prog, "planner", "stallkid", nudges=nudges,
        extra="    heartbeat: 5s\n    stall_timeout: 1s\n"
              "    stall_grace: 10s\n    stall_dump: true\n")})
    n = d.wait("nudged", "root/planner")
    assert "SIGUSR1 sent" in n.detail
    wait_until(lambda: nudges.exists() and "kid" in nudges.read_text(),
               what="the agent's note of its helper")
    assert nudges.read_text().split("kid ")[1].strip() == "alive"


def test_looping_agent_caught(supd):
    prog = agent_files(supd)
    nudges = supd.tmp / "nudges.txt"
    d = supd.start({"a.yaml": "supervisor: root\nchildren:\n" + worker(
        prog, "looper", "loop", nudges=nudges,
        extra="    loop: {repeats: 4}\n")})
    lp = d.wait("looping", "root/looper")
    assert "search('weather')" in lp.detail
    d.wait("nudged", "root/looper", reason="loop")
    ex = d.wait("exited", "root/looper")
    assert ex.reason == "loop"
    d.wait("started", "root/looper")
    line = nudges.read_text().splitlines()[0].split(" ", 2)
    assert line[0] == "loop" and line[1] == "1"
    assert line[2] == "search('weather')"


def test_states_that_differ_after_64_bytes_are_no_loop(supd):
    """Only 64 bytes of a state are kept, but all of it is compared: an
    agent searching for a new query each step was flagged as looping."""
    prog = agent_files(supd)
    d = supd.start({"a.yaml": "supervisor: root\nchildren:\n" + worker(
        prog, "searcher", "search", extra="    loop: {repeats: 3}\n")})
    d.wait("started", "root/searcher")

    def steps():
        node = [n for n in d.ctl_json("status") if n["name"] == "searcher"][0]
        return (node["progress"] or {}).get("steps") or 0
    wait_until(lambda: steps() >= 20, what="20 steps")
    assert d.count("looping", "root/searcher") == 0


def test_budget_exhausted(supd):
    prog = agent_files(supd)
    d = supd.start({"a.yaml": "supervisor: root\nchildren:\n"
                    + worker(prog, "spender", "spend",
                             extra="    budget: {tokens: 2000}\n")
                    + worker(prog, "bystander", "loop")})
    w = d.wait("budget_warning", "root/spender")
    assert w.limit == "tokens" and w.spend >= 1600
    # `events --json` has the events file's keys, a spent budget's too: its
    # limit, spend and allowed, its time and run were only in the file, so
    # a jq filter written for one failed on the other
    out = d.ctl("--json", "events", "root/spender", check=0).stdout
    wire = [json.loads(line) for line in out.splitlines()]
    with open(supd.events) as f:
        filed = {e["seq"]: e for e in map(json.loads, f)}
    for e in wire:
        assert {k: v for k, v in e.items() if v is not None} == \
            filed[e["seq"]], e
    warned = [e for e in wire if e["kind"] == "budget_warning"]
    assert warned and warned[0]["limit"] == "tokens" and \
        warned[0]["allowed"] == 2000 and warned[0]["spend"] >= 1600, warned
    ex = d.wait("exited", "root/spender")
    assert ex.reason == "budget"
    d.wait("exhausted", "root/spender")
    r = d.ctl("--json", "status")
    assert r.returncode == 3, r  # a health check: exhausted is not well
    nodes = {n["name"]: n for n in json.loads(r.stdout)}
    sp = nodes["spender"]
    assert sp["state"] == "exhausted"
    assert sp["budget"]["limits"]["tokens"] == 2000
    assert sp["budget"]["spend"]["tokens"] >= 2000
    assert nodes["bystander"]["state"] == "running"
    r = d.ctl("status")
    assert r.returncode == 3, r
    assert "tok 2" in r.stdout and "/2000" in r.stdout
    # not restarted, not counted
    assert d.count("restarting", "root/spender") == 0
    # reset clears the spend and starts it again
    d.ctl("reset", "spender", check=0)
    d.wait("started", "root/spender")
    sp = {n["name"]: n for n in d.ctl_json("status")}["spender"]
    assert sp["budget"]["spend"]["tokens"] < 2000


def test_root_budget_exits_79(supd):
    prog = agent_files(supd)
    d = supd.start({"a.yaml": "supervisor: root\nbudget: {tokens: 1500}\n"
                    "children:\n" + worker(prog, "spender", "spend")})
    d.wait("exhausted", "root")
    assert d.exit_code() == 79


def test_busy_call_is_not_a_hang_but_silence_is(supd):
    prog = agent_files(supd)
    # 2 s: a Python's start took more than 1 s on a loaded host (a hang
    # before its first beat); the calls of 3 s still outlast it
    beat = "    heartbeat: 300ms\n    heartbeat_timeout: 2s\n    shutdown: 1s\n"
    d = supd.start({"a.yaml": "supervisor: root\nintensity: 100\nchildren:\n"
                    + worker(prog, "caller", "busy",
                             extra=beat + "    restart: transient\n")
                    + worker(prog, "mute", "silent", extra=beat)
                    + worker(prog, "gone", "gone", extra=beat)})
    d.wait("exited", "root/caller", reason="exit:0")
    d.wait_count("hang", 1, "root/mute")
    d.wait_count("hang", 1, "root/gone")
    assert d.count("hang", "root/caller") == 0


def test_budget_in_metrics(supd):
    from test_metrics import PROMTOOL, free_port, samples, scrape
    import subprocess
    from conftest import wait_until

    prog = agent_files(supd)
    port = free_port()
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                f"  metrics: 127.0.0.1:{port}\n",
                "a.yaml": "supervisor: root\nbudget: {tokens: 100000000, wall: 1h}\n"
                "children:\n" + worker(prog, "spender", "spend",
                                       extra="    budget: {tokens: 50000000, cost: 5}\n")},
               settings=False)
    d = supd.start()
    d.wait("started", "root/spender")
    wait_until(lambda: samples(scrape(port), "agentsup_budget_spend")
               .get('{path="root/spender",limit="tokens"}', 0) > 0,
               what="spend in /metrics")
    body = scrape(port)
    lim = samples(body, "agentsup_budget_limit")
    assert lim['{path="root/spender",limit="tokens"}'] == 50000000
    assert lim['{path="root/spender",limit="cost"}'] == 5
    assert lim['{path="root",limit="wall"}'] == 3600
    spend = samples(body, "agentsup_budget_spend")
    assert spend['{path="root",limit="tokens"}'] >= \
        spend['{path="root/spender",limit="tokens"}'] > 0
    assert spend['{path="root",limit="wall"}'] > 0  # it has run
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=body,
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", \
        (r.stdout, r.stderr)


def test_reload_raising_the_budget_starts_it_again(supd):
    prog = agent_files(supd)

    def tree(limit):
        return {"a.yaml": "supervisor: root\nchildren:\n" + worker(
            prog, "spender", "spend", extra=f"    budget: {{tokens: {limit}}}\n")}

    d = supd.start(tree(1500))
    d.wait("exhausted", "root/spender")
    supd.write(tree(1000000))
    r = d.ctl("reload", check=0)
    assert "spender" in r.stdout
    d.wait("started", "root/spender")
    assert d.ctl("status").returncode == 0


UTF8 = r'''
import hashlib, os, sys
sys.path.insert(0, os.environ["PYDIR"])
import agentsup
out = os.environ.get("NUDGES", os.devnull)
def noted(n):
    with open(out, "a") as f:
        f.write(f"{n.reason} {n.state!r}\n")
with agentsup.Agent(on_nudge=noted) as a:
    i = 0
    while not a.draining:
        i += 1
        if sys.argv[1] == "hex":  # a hash of the step: 64 characters
            a.beat(steps=i, state=hashlib.sha256(b"tool(args)").hexdigest(),
                   status="z" * 256)
        else:  # a 3-byte character across the 64th byte
            a.beat(steps=i, state="x" * 62 + "\u20ac")
        a.wait(0.05)
'''


def test_state_keeps_64_bytes_and_cuts_between_characters(supd):
    """protocol.md: 64 bytes of `state` (256 of `status`) are kept; a longer
    one is cut before a UTF-8 character, never inside it: the loop nudge
    hands the state back, and the Python client decodes strictly (a cut
    inside a character killed the worker with a ProtocolError)."""
    prog = supd.tmp / "utf8.py"
    prog.write_text(UTF8)
    nudges = supd.tmp / "nudges"
    d = supd.start({"a.yaml": "supervisor: root\nchildren:\n" +
                    worker(prog, "hex", "hex") +
                    worker(prog, "cut", "cut", "    loop: {repeats: 3}\n",
                           nudges=nudges)})
    d.wait("looping", "root/cut")
    d.wait("exited", "root/cut", reason="loop")  # not exit:1 (ProtocolError)
    assert f"loop {'x' * 62!r}" in nudges.read_text()
    hexdigest = hashlib.sha256(b"tool(args)").hexdigest()
    node = [n for n in d.ctl_json("status") if n["name"] == "hex"][0]
    assert node["progress"]["state"] == hexdigest, node
    assert node["status"] == "z" * 256, node
