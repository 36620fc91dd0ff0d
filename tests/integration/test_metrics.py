"""/metrics end to end: the body lints clean with promtool, a real Prometheus
scrapes it, hostile clients cannot lock a scrape out or take the daemon down,
and a reload moves the endpoint."""
import json
import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
import urllib.parse
import urllib.request

import pytest

from conftest import SRC, TIMEOUT, sh, wait_until

PY = "/usr/bin/python3"
CLIENT = os.path.join(SRC, "tools", "python")
SLEEP = sh("exec sleep 1000")
CRASH_ONCE = sh('[ "$AGENTSUP_INCARNATION" = 0 ] && exit 1; exec sleep 1000')
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def progress_worker(tmp_path):
    """A worker that beats with progress, then idles beating."""
    p = tmp_path / "prog.py"
    p.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {CLIENT!r})
        import agentsup
        a = agentsup.Agent()
        a.ready()
        steps = 0
        while not a.draining:
            steps += 1
            a.beat(steps=steps, tokens=100 * steps, cost=0.25 * steps,
                   state="step")
            a.wait(0.2)
    """))
    return json.dumps([PY, str(p)])


def start(supd, tmp_path, port, extra=""):
    supd.write({
        "00-settings.yaml": f"""
            agentsupd:
              events_file: {supd.events}
              metrics: 127.0.0.1:{port}
        """,
        "a.yaml": f"""
            supervisor: root
            intensity: 10
            children:
              - worker: sleeper
                command: {SLEEP}
                circuit: {{failures: 5, window: 10m, open: 1m}}
              - {{worker: "odd", command: {CRASH_ONCE}}}
              - worker: prog
                command: {progress_worker(tmp_path)}
                heartbeat: 1s
                start_timeout: 10s
        """ + extra,
    }, settings=False)
    d = supd.start()
    d.wait("ready", "root/prog")
    d.wait_count("started", 2, "root/odd")
    return d


def scrape(port, timeout=TIMEOUT):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                timeout=timeout) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == \
            "text/plain; version=0.0.4; charset=utf-8"
        return r.read().decode()


def samples(body, name):
    """{labels-string: value} of one family."""
    out = {}
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, val = line.rpartition(" ")
            out[key[len(name):]] = float(val)
    return out


def test_promtool_lints_the_body(supd, tmp_path):
    port = free_port()
    d = start(supd, tmp_path, port)
    body = scrape(port)
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=body,
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", \
        (r.returncode, r.stdout, r.stderr, body)
    st = samples(body, "agentsup_node_state")
    assert st['{path="root/sleeper",kind="worker",state="running"}'] == 1
    assert st['{path="root/sleeper",kind="worker",state="stopped"}'] == 0
    assert st['{path="root",kind="supervisor",state="running"}'] == 1
    assert st['{path="root/odd",kind="worker",state="quarantined"}'] == 0
    assert samples(body, "agentsup_events_total")['{kind="started"}'] == 4
    assert samples(body, "agentsup_restarts_by_reason_total") == \
        {'{reason="exit"}': 1}
    assert samples(body, "agentsup_restarts_total")['{path="root/odd"}'] == 1
    circ = samples(body, "agentsup_circuit_state")
    assert circ == {'{path="root/sleeper",state="closed"}': 1,
                    '{path="root/sleeper",state="open"}': 0,
                    '{path="root/sleeper",state="half_open"}': 0}
    fails = samples(body, "agentsup_consecutive_failures")
    assert fails['{path="root/odd"}'] == 1
    assert fails['{path="root/sleeper"}'] == 0
    assert samples(body, "agentsup_process_resident_memory_bytes")[""] > 0
    assert samples(body, "agentsup_process_open_fds")[""] > 3
    assert 'agentsup_heartbeat_age_seconds{path="root/prog"}' in body
    # progress arrives with the beats: wait for a scrape that has it
    wait_until(lambda: samples(scrape(port), "agentsup_progress_steps")
               .get('{path="root/prog"}', 0) >= 2, what="progress in /metrics")
    body = scrape(port)
    steps = samples(body, "agentsup_progress_steps")['{path="root/prog"}']
    assert samples(body, "agentsup_progress_tokens")['{path="root/prog"}'] \
        == 100 * steps
    # a restart shows in the counter and the events
    d.ctl("restart", "sleeper", check=0)
    d.wait("started", "root/sleeper")
    body = scrape(port)
    assert samples(body, "agentsup_restarts_total")['{path="root/sleeper"}'] == 1
    assert samples(body, "agentsup_events_total")['{kind="command"}'] == 1


def test_errors_and_head(supd, tmp_path):
    port = free_port()
    start(supd, tmp_path, port)

    def raw(req):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.sendall(req)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data

    assert raw(b"GET /nope HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 404 ")
    r = raw(b"DELETE /metrics HTTP/1.0\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD\r\n" in r
    assert raw(b"GET /metrics HTTP/2.0\r\n\r\n").startswith(b"HTTP/1.1 505 ")
    assert raw(b"GET /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(b"\x16\x03\x01\x00\xa5\x01").startswith(b"HTTP/1.1 400 ")
    head = raw(b"HEAD /metrics HTTP/1.0\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")
    # an error answer to a HEAD has no body either (it had one)
    for req, st in ((b"HEAD /nope HTTP/1.0\r\n\r\n", b"404"),
                    (b"HEAD /metrics HTTP/2.0\r\n\r\n", b"505")):
        r = raw(req)
        assert r.startswith(b"HTTP/1.1 " + st) and r.endswith(b"\r\n\r\n"), r
    # the absolute-form a server must accept; OPTIONS * is a method refused
    r = raw(b"GET http://127.0.0.1/metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 200 "), r[:40]
    assert raw(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 405 ")
    # pipelined requests: one answer, then the connection closes
    two = raw(b"GET /metrics HTTP/1.0\r\n\r\nGET /metrics HTTP/1.0\r\n\r\n")
    assert two.count(b"HTTP/1.1 200 OK") == 1


def test_hostile_clients(supd, tmp_path):
    port = free_port()
    d = start(supd, tmp_path, port)
    # 200 slow clients, each having sent the start of a request
    slow = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            s.sendall(b"GET /metr")
            slow.append(s)
        # a real scrape still gets through, more than once
        for _ in range(3):
            assert "agentsup_node_state{" in scrape(port)
        # the oldest slow clients were pushed out: the daemon closed them
        # (a reset when their bytes were still unread)
        slow[0].settimeout(TIMEOUT)
        try:
            assert slow[0].recv(100) == b""
        except ConnectionResetError:
            pass
    finally:
        for s in slow:
            s.close()
    # a 100 KB header: 431, and the daemon goes on
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: "
                  + b"a" * 100_000 + b"\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 431 "), data[:100]
    assert "agentsup_node_state{" in scrape(port)
    assert d.proc.poll() is None
    d.ctl("status", check=0)


def test_reload_moves_the_endpoint(supd, tmp_path):
    port, port2 = free_port(), free_port()
    while port2 == port:
        port2 = free_port()
    d = start(supd, tmp_path, port)
    scrape(port)
    settings = supd.dir / "00-settings.yaml"
    settings.write_text(settings.read_text().replace(str(port), str(port2)))
    d.signal(signal.SIGHUP)
    d.wait("reload_applied")
    wait_until(lambda: "serving metrics at http://127.0.0.1:%d/" % port2
               in "\n".join(d.lines), what="the new endpoint")
    assert "agentsup_node_state{" in scrape(port2)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()


def test_a_reload_to_an_address_in_use_says_so(supd, tmp_path):
    """The reload's answer said ok while the new metrics address could not
    be served and the endpoint went dark: it says so now."""
    port = free_port()
    d = start(supd, tmp_path, port)
    scrape(port)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        settings = supd.dir / "00-settings.yaml"
        settings.write_text(settings.read_text().replace(str(port),
                                                         str(taken)))
        r = d.ctl("reload", check=0)
    assert f"metrics at 127.0.0.1:{taken} are off" in r.stdout, r
    assert "Address already in use" in r.stdout, r
    ev = d.wait("reload_applied")
    assert "metrics at" in ev.detail, ev


def test_heartbeat_age_only_for_a_run_held_to_one(supd, tmp_path):
    """A reload that adds `heartbeat:` reaches a running worker at its next
    start: until then it is not monitored, and neither /metrics nor status
    may show a heartbeat age an alert could fire on."""
    port = free_port()
    d = start(supd, tmp_path, port)
    age = "agentsup_heartbeat_age_seconds"
    assert '{path="root/prog"}' in samples(scrape(port), age)
    conf = supd.dir / "a.yaml"
    conf.write_text(conf.read_text().replace(
        "command: " + SLEEP, "command: " + SLEEP + "\n    heartbeat: 1s", 1))
    d.signal(signal.SIGHUP)
    assert "root/sleeper" in d.wait("reload_applied")["detail"]
    assert '{path="root/sleeper"}' not in samples(scrape(port), age)
    node = [n for n in d.ctl_json("status") if n["path"] == "root/sleeper"]
    assert node[0]["heartbeat_age_ms"] is None, node


def prom_query(port, q):
    url = (f"http://127.0.0.1:{port}/api/v1/query?"
           + urllib.parse.urlencode({"query": q}))
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())["data"]["result"]


@pytest.mark.skipif(not os.path.exists(PROMETHEUS), reason="no prometheus")
def test_a_real_prometheus_scrapes_it(supd, tmp_path):
    port, prom_port = free_port(), free_port()
    start(supd, tmp_path, port)
    pdir = tmp_path / "prometheus"
    (pdir / "data").mkdir(parents=True)
    (pdir / "prometheus.yml").write_text(textwrap.dedent(f"""
        global:
          scrape_interval: 1s
          scrape_timeout: 1s
        scrape_configs:
          - job_name: agentsup
            static_configs:
              - targets: ["127.0.0.1:{port}"]
    """))
    prom = subprocess.Popen(
        [PROMETHEUS, f"--config.file={pdir / 'prometheus.yml'}",
         f"--storage.tsdb.path={pdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(pdir / "log", "w"), cwd=pdir)
    try:
        deadline = time.monotonic() + 60
        result, up = [], []
        while time.monotonic() < deadline and prom.poll() is None:
            try:
                result = prom_query(prom_port,
                                    'agentsup_node_state{path="root/sleeper",'
                                    'state="running"}')
                up = prom_query(prom_port, 'up{job="agentsup"}')
            except OSError:
                pass  # not listening yet
            if result and up:
                break
            time.sleep(0.2)
        log = (pdir / "log").read_text()[-3000:]
        assert result, "Prometheus never stored agentsup_node_state:\n" + log
        assert result[0]["value"][1] == "1"
        assert up and up[0]["value"][1] == "1", up
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
    assert prom.returncode is not None
    shutil.rmtree(pdir, ignore_errors=True)


def test_an_address_in_use_stops_the_start(supd, tmp_path):
    """Like a control socket that cannot be made: EX_CANTCREAT."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        supd.write({
            "00-settings.yaml": f"""
                agentsupd:
                  events_file: {supd.events}
                  metrics: 127.0.0.1:{port}
            """,
            "a.yaml": f"worker: w\ncommand: {SLEEP}\n",
        }, settings=False)
        d = supd.start()
        assert d.exit_code() == 73
    d.drain_events()
    assert any(f"metrics 127.0.0.1:{port}: Address already in use" in line
               for line in d.lines), d.lines
    assert d.count("started") == 0


def test_the_alert_rules_in_the_docs_are_valid(tmp_path):
    """The rules docs/operations.md gives to copy are checked by promtool,
    as Prometheus would load them: a rule that does not parse alerts on
    nothing."""
    doc = open(os.path.join(SRC, "docs", "operations.md")).read()
    start = doc.index("# agentsup-rules.yml\n")
    rules = doc[start:doc.index("```", start)]
    f = tmp_path / "agentsup-rules.yml"
    f.write_text(rules)
    r = subprocess.run([PROMTOOL, "check", "rules", str(f)],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 4 rules found" in r.stdout, r.stdout
