"""`autostart: false` (supervisord's autostart=false): a worker run on
demand is not started with the tree, nor by its group's restarts, until an
operator starts it; `status` says why it is stopped and counts it
healthy. It is the config's, not an operator's stop: with a state store it
is not kept, so a config that turns it on starts it at the next start."""
import signal
import textwrap

from conftest import sh
from test_resume_tasks import settings
from test_store import stored_holds


def conf(supd, n, ondemand_autostart):
    supd.events = supd.tmp / f"events-{n}.jsonl"
    supd.write({**settings(supd), "a.yaml": textwrap.dedent(f"""\
        supervisor: root
        strategy: one_for_all
        children:
          - {{worker: steady, command: {sh("exec sleep 300")}}}
          - {{worker: ondemand, command: {sh("exec sleep 300")},
              autostart: {ondemand_autostart}}}
          - {{worker: other, command: {sh("exec sleep 300")}}}
        """)}, settings=False)


def node(d, name):
    return [n for n in d.ctl_json("status") if n["name"] == name][0]


def test_started_only_when_asked_and_never_stored(supd):
    conf(supd, 0, "false")
    d = supd.start()
    d.wait("started", "root/other")
    st = node(d, "ondemand")
    assert (st["state"], st["held"], st["held_by"]) == \
        ("stopped", True, "autostart"), st
    r = d.ctl("status", check=0)  # stopped as configured: healthy
    line = [x for x in r.stdout.splitlines() if "ondemand" in x][0]
    assert "stopped" in line and "(autostart: false)" in line, line
    # the group's restart leaves it alone
    d.ctl("signal", "steady", "KILL", check=0)
    d.wait("restarting", "root/steady")
    d.wait("started", "root/other")
    assert d.count("started", "root/ondemand") == 0
    d.ctl("start", "ondemand", "--wait", check=0)
    st = node(d, "ondemand")
    assert (st["state"], st["held"], st["held_by"]) == \
        ("running", False, None), st
    d.ctl("stop", "steady", "--wait", check=0)
    assert stored_holds(supd) == {"root/steady"}  # not the config's
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    # at the next start: on demand again; the operator's stop kept
    d = supd.start()
    d.wait("started", "root/other")
    assert node(d, "ondemand")["held_by"] == "autostart"
    assert node(d, "steady")["held_by"] == "command"
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    # turned on in the config: it starts, no hold of it was kept
    conf(supd, 1, "true")
    d = supd.start()
    d.wait("started", "root/ondemand")
    assert node(d, "steady")["state"] == "stopped"
    # and off again by a reload: it keeps running
    conf(supd, 1, "false")
    r = d.ctl("reload", check=0)
    assert "root/ondemand" in r.stdout, r.stdout  # updated
    assert node(d, "ondemand")["state"] == "running"
