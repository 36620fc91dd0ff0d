"""on_event hooks: a command per matching event with the event's JSON on its
stdin, bounded in time (killed after its timeout) and in concurrency (at
most 4 at once, a bounded queue, overflow dropped and logged)."""
import fcntl
import json
import os
import signal
import textwrap

from conftest import AGENTSUPCTL, alive, sh, wait_until


def settings(supd, hooks):
    """The settings document with the events file and these on_event hooks."""
    supd.dir.mkdir(exist_ok=True)
    (supd.dir / "00-settings.yaml").write_text(
        f"agentsupd:\n  events_file: {supd.events}\n  on_event:\n"
        + textwrap.indent(textwrap.dedent(hooks).strip() + "\n", "    "))


def start(supd, hooks, files):
    settings(supd, hooks)
    supd.write(files, settings=False)
    return supd.start()


def saved(outdir):
    """Every event a hook saved: each file is whole (written, then renamed)."""
    return [json.loads(p.read_text()) for p in sorted(outdir.glob("*.json"))]


SAVE = 'cat > "$0/$$.tmp" && mv "$0/$$.tmp" "$0/$$.json"'


def test_hook_gets_the_event_json_on_stdin(supd, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    d = start(supd, f"""
        - kinds: [exited]
          run: [/bin/sh, -c, '{SAVE}', {out}]
        """, {"a.yaml": f"""
        worker: crash
        command: {sh("exit 3")}
        restart: temporary
        """})
    d.wait("exited", "root/crash")
    wait_until(lambda: len(saved(out)) == 1, what="the hook's file")
    ev = saved(out)[0]
    assert ev["kind"] == "exited"
    assert ev["path"] == "root/crash"
    assert ev["reason"] == "exit:3"


def test_a_hooks_agentsupctl_reaches_the_daemon(supd, tmp_path):
    """A hook is a control client like any: with agentsupd run with
    --socket, its `agentsupctl status` looked for the default socket and
    failed (exit 69)."""
    out = tmp_path / "status.txt"
    d = start(supd, f"""
        - kinds: [exited]
          run: [/bin/sh, -c, '"$0" status > "$1.tmp"; echo $? >> "$1.tmp"; mv "$1.tmp" "$1"', {AGENTSUPCTL}, {out}]
        """, {"a.yaml": f"""
        worker: crash
        command: {sh("exit 3")}
        restart: temporary
        """})
    d.wait("exited", "root/crash")
    wait_until(out.exists, what="the hook's status")
    lines = out.read_text().splitlines()
    assert lines[-1] == "0" and any("crash" in l for l in lines), lines


def test_gave_up_hook_runs_before_agentsupd_exits(supd, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    started = tmp_path / "hook-started"
    lock = tmp_path / "release.lock"
    held = open(lock, "w")
    fcntl.flock(held, fcntl.LOCK_EX)  # the hook saves once the test lets go
    d = start(supd, f"""
        - kinds: [gave_up]
          run: [/bin/sh, -c, 'touch "$1"; flock -s "$2" true; {SAVE}', {out}, {started}, {lock}]
          timeout: 1h
        """, {"a.yaml": f"""
        supervisor: root
        intensity: 0
        children:
          - {{worker: crash, command: {sh("exit 1")}}}
        """})
    wait_until(started.exists, what="the gave_up hook")
    # the daemon waits for the alert before it goes away: still there, it
    # answers (a daemon that had not waited would be gone, or going)
    assert d.ctl("status").returncode == 3
    assert d.proc.poll() is None
    held.close()  # the hook saves, then ends
    assert d.exit_code() == 75
    events = saved(out)
    assert [e["kind"] for e in events] == ["gave_up"]
    assert events[0]["path"] == "root"


def test_a_hooks_descendant_that_left_its_group_ends_with_agentsupd(supd, tmp_path):
    """Killing the hook's group at its timeout misses a process it started
    in a session of its own; adopted by agentsupd (the subreaper), it
    outlived agentsupd's exit."""
    pidfile = tmp_path / "escaped"
    d = start(supd, f"""
        - kinds: [started]
          run: [/bin/sh, -c, 'setsid sleep 777 </dev/null >/dev/null 2>&1 & echo $! > "$0.tmp" && mv "$0.tmp" "$0"; exec sleep 1000', {pidfile}]
          timeout: 500ms
        """, {"a.yaml": f"""
        worker: w
        command: {sh("exec sleep 1000")}
        """})
    wait_until(pidfile.exists, what="the escaped process")
    escaped = int(pidfile.read_text())
    wait_until(lambda: any("still running after" in l for l in d.lines),
               what="the hook's timeout")
    assert alive(escaped)  # out of the hook's group: not killed with it
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    assert not alive(escaped)
    assert any("left behind" in l for l in d.lines)


def test_commands_while_the_last_hooks_run_are_refused(supd, tmp_path):
    """While agentsupd waits for a gave_up hook before exiting 75, a restart
    was answered done and status showed the tree running again; nothing
    ran."""
    started = tmp_path / "hook-started"
    release = tmp_path / "release"
    os.mkfifo(release)  # the hook runs until the test opens it
    d = start(supd, f"""
        - kinds: [gave_up]
          run: [/bin/sh, -c, 'touch "$0"; cat "$1" >/dev/null', {started}, {release}]
          timeout: 1h
        """, {"a.yaml": f"""
        supervisor: root
        intensity: 0
        children:
          - {{worker: crash, command: {sh("sleep 0.2; exit 3")}}}
        """})
    d.wait("gave_up", "root")
    wait_until(started.exists, what="the gave_up hook")
    r = d.ctl("restart", "root")
    assert r.returncode == 1 and "agentsupd is exiting" in r.stderr, r
    r = d.ctl("reload")
    assert r.returncode != 0 and "agentsupd is exiting" in r.stderr, r
    assert d.ctl("status").returncode == 3  # not healthy: it gave up
    with open(release, "w"):
        pass  # the hook ends
    assert d.exit_code() == 75
    assert d.count("started", "root/crash") == 1


def test_hanging_hook_is_killed_and_supervision_goes_on(supd, tmp_path):
    pidfile = tmp_path / "hook.pid"
    d = start(supd, f"""
        - kinds: [started]
          run: [/bin/sh, -c, 'echo $$ > "$0.tmp" && mv "$0.tmp" "$0"; exec sleep 1000', {pidfile}]
          timeout: 500ms
        """, {"a.yaml": f"""
        worker: w
        command: {sh("exec sleep 1000")}
        """})
    first = d.wait("started", "root/w")
    wait_until(pidfile.exists, what="the hook's pid")
    hook = int(pidfile.read_text())
    wait_until(lambda: not alive(hook), what="the hook killed")
    wait_until(lambda: any("still running after 500ms: killed" in l
                           for l in d.lines), what="the timeout logged")
    # the daemon supervises as before
    os.kill(first.pid, signal.SIGKILL)
    d.wait("exited", "root/w")
    assert d.wait("started", "root/w").pid != first.pid


def test_failing_hooks_are_logged(supd, tmp_path):
    d = start(supd, """
        - kinds: [started]
          run: [/bin/sh, -c, 'exit 4']
        - kinds: [started]
          run: [/nonexistent/alert]
        """, {"a.yaml": f"""
        worker: w
        command: {sh("exec sleep 1000")}
        """})
    d.wait("started", "root/w")
    wait_until(lambda: any("hook /bin/sh (started): exited 4" in l
                           for l in d.lines), what="exit 4 logged")
    wait_until(lambda: any("hook /nonexistent/alert (started): exec: "
                           "No such file" in l for l in d.lines),
               what="the exec failure logged")


def test_flood_runs_at_most_four_at_once(supd, tmp_path):
    running = tmp_path / "running"
    running.mkdir()
    counts = tmp_path / "counts"
    lock = tmp_path / "linger.lock"
    held = open(lock, "w")
    fcntl.flock(held, fcntl.LOCK_EX)
    # each hook: mark itself running, count who runs, linger until the
    # test lets go of the lock (not for a time a slow host may use up
    # before the next starts), unmark
    hook = (f'touch {running}/$$; ls {running} | wc -l >> {counts}; '
            f'flock -s {lock} true; rm {running}/$$')
    workers = "\n".join(
        f"  - {{worker: w{i}, command: {sh('exit 0')}, restart: temporary}}"
        for i in range(20))
    d = start(supd, f"""
        - kinds: [exited]
          run: [/bin/sh, -c, '{hook}']
        """, {"a.yaml": "supervisor: root\nchildren:\n" + workers + "\n"})
    d.wait_count("exited", 20)
    # they run side by side: four at once, none of them able to end yet
    # (more would be started too, and count more, if nothing held them)
    wait_until(lambda: len(os.listdir(running)) == 4, what="4 hooks at once")
    held.close()
    wait_until(lambda: counts.exists() and
               len(counts.read_text().split()) == 20, what="20 hooks run")
    seen = [int(n) for n in counts.read_text().split()]
    assert max(seen) == 4, seen


def test_overflow_is_dropped_and_logged(supd, tmp_path):
    counts = tmp_path / "counts"
    workers = "\n".join(
        f"  - {{worker: w{i}, command: {sh('exit 0')}, restart: temporary}}"
        for i in range(90))
    d = start(supd, f"""
        - kinds: [exited]
          run: [/bin/sh, -c, 'echo x >> {counts}; exec sleep 5']
        """, {"a.yaml": "supervisor: root\nchildren:\n" + workers + "\n"})
    d.wait_count("exited", 90)
    wait_until(lambda: any("dropping the hook" in l for l in d.lines),
               what="the first drop logged")
    # at exit, the hooks left get a bounded grace, then are killed
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
    d.drain_events()  # every line read
    assert any("still running (killed)" in l for l in d.lines)
    # 4 running and 64 waiting at most: the rest never ran
    assert len(counts.read_text().split()) <= 68
    # and the drops after the first are summed (they were never said)
    more = [l for l in d.lines if "more event(s) dropped" in l]
    assert len(more) == 1, d.lines[-5:]
    assert int(more[0].split("hooks: ")[1].split()[0]) >= 1


def test_what_a_hook_leaves_in_its_group_ends_with_it(supd, tmp_path):
    """A hook's background process (same process group) is killed when the
    hook exits: the reaper kills the group before it reaps the hook."""
    pidfile = tmp_path / "bg"
    d = start(supd, f"""
        - kinds: [exited]
          run: [/bin/sh, -c, 'sleep 1000 & echo $! > $0.tmp && mv $0.tmp $0', {pidfile}]
        """, {"a.yaml": f"""
        worker: crash
        command: {sh("exit 3")}
        restart: temporary
        """})
    d.wait("exited", "root/crash")
    wait_until(pidfile.exists, what="the hook's background process")
    bg = int(pidfile.read_text())
    wait_until(lambda: not alive(bg), what="the background process to end")


def test_a_hook_that_cannot_be_executed_is_said_once_and_counted(
        supd, tmp_path):
    """A wrong hook path was said at every event (a flapping worker: as
    many lines as its events) and counted nowhere an alert could see:
    now said once, counted in agentsup_hooks_total{outcome="exec_failed"},
    and its start again is said."""
    from test_metrics import free_port, samples, scrape
    alert = tmp_path / "alert"
    mark = tmp_path / "ran"
    port = free_port()
    supd.dir.mkdir(exist_ok=True)
    (supd.dir / "00-settings.yaml").write_text(
        f"agentsupd:\n  events_file: {supd.events}\n"
        f"  metrics: 127.0.0.1:{port}\n"
        f"  on_event:\n    - kinds: [exited]\n      run: [{alert}]\n")
    supd.write({"a.yaml": f"""
        supervisor: root
        intensity: 1000
        period: 1s
        children:
          - {{worker: crash, command: {sh("exit 3")},
              backoff: {{initial: 50ms, max: 50ms}}}}
        """}, settings=False)
    d = supd.start()
    wait_until(lambda: any(f"serving metrics at http://127.0.0.1:{port}/"
                           in l for l in d.lines), what="metrics served")

    def hooks():
        return samples(scrape(port), "agentsup_hooks_total")

    def said():
        return [l for l in d.lines if f"hook {alert} (exited): exec: " in l]
    wait_until(lambda: hooks().get('{outcome="exec_failed"}', 0) >= 3,
               what="three failures to start counted")
    assert len(said()) == 1 and "No such file" in said()[0], said()
    assert hooks()['{outcome="started"}'] == 0
    # a reload keeps the same hook's state: not said again (it was, the
    # state going with the entries a reload makes anew)
    d.ctl("reload", check=0)
    n = hooks()['{outcome="exec_failed"}']
    wait_until(lambda: hooks()['{outcome="exec_failed"}'] >= n + 3,
               what="three more failures after the reload")
    assert len(said()) == 1, said()
    alert.write_text(f"#!/bin/sh\ntouch {mark}\n")
    alert.chmod(0o755)
    wait_until(mark.exists, what="the hook run at last")
    wait_until(lambda: any(f"hook {alert}: starts again" in l
                           for l in d.lines), what="its start said")
    assert len(said()) == 1, said()
    assert hooks()['{outcome="started"}'] >= 1
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
