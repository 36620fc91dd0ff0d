"""Worker text reaching operators (issue 10 items 6 and 7): a cost that is
not a finite number is refused; invalid UTF-8, newlines and escape codes in
a worker's status come out escaped in `agentsupctl status` (human) and as
valid JSON in `--json status`; a worker that closes its channel right after
hello is an EOF, never a protocol failure."""
import json
import math
import subprocess
import textwrap

from conftest import AGENTSUPCTL, wait_until

PY = "/usr/bin/python3"

RAW = """
import msgpack, os, socket, struct, sys, time
s = socket.socket(fileno=int(os.environ["AGENTSUP_FD"]))
def send(body):
    s.sendall(struct.pack(">I", len(body)) + body)
send(msgpack.packb({"t": "hello", "v": 1, "pid": os.getpid(), "lang": "raw"}))
"""


def raw_worker(tmp_path, name, body):
    p = tmp_path / f"{name}.py"
    p.write_text(RAW + textwrap.dedent(body))
    return json.dumps([PY, str(p)])


def raw_str(b):
    """A msgpack str of any bytes, valid UTF-8 or not."""
    return b"\xd9" + bytes([len(b)]) + b


def test_nan_cost_is_refused(supd, tmp_path):
    cmd = raw_worker(tmp_path, "nan", """
        send(msgpack.packb({"t": "hb", "progress": {"cost": float("nan")}}))
        time.sleep(1000)
    """)
    d = supd.start({"a.yaml": f"""
        worker: spender
        command: {cmd}
        backoff: none
        """})
    ev = d.wait("exited", "root/spender")
    assert ev.reason == "protocol", ev


def test_status_text_is_escaped_for_terminal_and_json(supd, tmp_path):
    status = b"ok\x1b[31mRED\nFORGED root/x running\xff\xc3("
    hb = (b"\x82" + msgpack_str(b"t") + msgpack_str(b"hb") +
          msgpack_str(b"status") + raw_str(status))
    cmd = raw_worker(tmp_path, "esc", f"""
        send({hb!r})
        open({str(tmp_path / "sent")!r}, "w").close()
        time.sleep(1000)
    """)
    d = supd.start({"a.yaml": f"worker: talker\ncommand: {cmd}\nshutdown: 1s\n"})
    d.wait("started", "root/talker")
    wait_until(lambda: (tmp_path / "sent").exists(), what="the beat sent")

    def shown():
        r = subprocess.run([AGENTSUPCTL, "--socket", d.socket, "status"],
                           capture_output=True, timeout=10)
        return r.stdout
    wait_until(lambda: b"RED" in shown(), what="the status shown")
    out = shown()
    assert b"\x1b" not in out and b"\xff" not in out
    lines = out.decode("utf-8").splitlines()
    assert not any(line.startswith("FORGED") for line in lines), out
    talker = [line for line in lines if "talker" in line]
    assert len(talker) == 1 and "\\x1b[31mRED\\nFORGED" in talker[0], out

    r = subprocess.run([AGENTSUPCTL, "--socket", d.socket, "--json",
                        "status"], capture_output=True, timeout=10)
    assert r.returncode == 0, r
    nodes = json.loads(r.stdout.decode("utf-8"))  # strict: valid UTF-8
    st = [n for n in nodes if n.get("name") == "talker"][0]["status"]
    assert st.startswith("ok\x1b[31mRED\nFORGED root/x running"), st
    assert "\ufffd" in st, st


def msgpack_str(b):
    return bytes([0xa0 | len(b)]) + b


def test_json_status_never_prints_nan(supd, tmp_path):
    """A cost that is finite but huge stays a number; the JSON always
    parses (NaN never gets this far: the daemon refuses it)."""
    cmd = raw_worker(tmp_path, "big", """
        send(msgpack.packb({"t": "hb", "progress": {"cost": 1e308}}))
        time.sleep(1000)
    """)
    d = supd.start({"a.yaml": f"worker: spender\ncommand: {cmd}\nshutdown: 1s\n"})
    d.wait("started", "root/spender")

    def cost():
        nodes = d.ctl_json("status")
        w = [n for n in nodes if n.get("name") == "spender"][0]
        return (w.get("progress") or {}).get("cost")
    wait_until(lambda: cost() is not None, what="the cost in status")
    assert math.isfinite(cost())


def test_eof_right_after_hello_is_never_protocol(supd, tmp_path):
    cmd = raw_worker(tmp_path, "eof", """
        s.close()
        time.sleep(0.3)
        sys.exit(3)
    """)
    d = supd.start({"a.yaml": f"""
        worker: quitter
        command: {cmd}
        restart: temporary
        """})
    ev = d.wait("exited", "root/quitter")
    assert ev.reason == "exit:3", ev
    assert not [e for e in d.seen if e.get("reason") == "protocol"]


def test_dead_letters_show_a_declared_detail_escaped(supd, tmp_path):
    """`agentsupctl dead` printed the reason a task declared as it came: a
    newline and an escape sequence in its detail forged a line and reached
    the operator's terminal."""
    detail = b"bad\nFORGED pool/x dead\x1b[2J\x07\xff"
    ex = (b"\x83" + msgpack_str(b"t") + msgpack_str(b"exit") +
          msgpack_str(b"reason") + msgpack_str(b"permanent") +
          msgpack_str(b"detail") + raw_str(detail))
    cmd = raw_worker(tmp_path, "declare", f"""
        send({ex!r})
        sys.exit(1)
    """)
    d = supd.start({"a.yaml": f"""
        supervisor: pool
        parent: root
        template: {{command: {cmd}}}
        ---
        worker: idle
        command: [sleep, "1000"]
        """})
    d.wait("started", "root/idle")
    r = subprocess.run([AGENTSUPCTL, "--socket", d.socket, "spawn", "pool",
                        "--key", "k"], capture_output=True, timeout=10)
    assert r.returncode == 0, r
    d.wait("dead_lettered", "root/pool/k")
    r = subprocess.run([AGENTSUPCTL, "--socket", d.socket, "dead"],
                       capture_output=True, timeout=10)
    assert r.returncode == 0, r
    assert b"\x1b" not in r.stdout and b"\x07" not in r.stdout, r.stdout
    lines = r.stdout.decode("utf-8").splitlines()
    assert len(lines) == 1, lines
    assert "declared permanent: bad\\nFORGED pool/x dead\\x1b[2J\\x07" \
        in lines[0], lines


def test_a_huge_cost_is_shown_short(supd, tmp_path):
    """A cost of 1e300 (finite, valid) filled the worker's status line with
    $ and 301 digits, and the budget_warning's percentage with as many."""
    cmd = raw_worker(tmp_path, "rich", f"""
        send(msgpack.packb({{"t": "hb", "progress": {{"cost": 1e300}}}}))
        open({str(tmp_path / "sent")!r}, "w").close()
        time.sleep(1000)
    """)
    d = supd.start({"a.yaml": f"""
        worker: rich
        command: {cmd}
        shutdown: 1s
        budget: {{cost: 5}}
        drain_timeout: 30s
        """})
    ev = d.wait("budget_warning", "root/rich")
    assert ev.detail == "cost 1e+300 of 5 (2e+301%)", ev
    r = subprocess.run([AGENTSUPCTL, "--socket", d.socket, "status", "rich"],
                       capture_output=True, text=True, timeout=10)
    line = r.stdout.splitlines()[0]
    assert "$1e+300" in line and len(line) < 200, line
