#!/usr/bin/python3
"""How long `agentsupd --check` takes on the largest supervisor.d/ the caps
accept (docs/config.md), and on the hostile files of issue 10: one worker of
150,000 keys (1.8 MB) and a "billion laughs" of nested aliases. --check does
exactly what a reload does before it diffs the tree: read, parse, link,
validate. And the longest loop stall a SIGHUP of the largest config causes
(measured by a probe making `status` round trips back to back; the parse
runs off the loop since issue 10, only the diff is applied on it). Prints figures; asserts nothing.

    tools/bench/reload_config.py [RUNS] [--before PATH_TO_OLD_AGENTSUPD]
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import msgpack

import benchlib as b

# The caps, as in src/config/config.h.
MAX_FILE = 1 << 20
MAX_DIR = 4 << 20
MAX_NODES = 10000
MAX_YAML_NODES = 1000000
FILES = 4


def worker_yaml(name, nenv, pad):
    env = ", ".join(f"V{i:02d}: '{pad}'" for i in range(nenv))
    return (f"  - worker: {name}\n"
            f"    command: [python3, -m, agents.{name}, --queue, jobs]\n"
            f"    heartbeat: 2s\n    shutdown: 10s\n    restart: transient\n"
            f"    environment: {{{env}}}\n")


def largest(tmp, reserve=0):
    """FILES files of one supervisor each: 10,000 nodes in all (less
    `reserve`), each file just under 1 MiB (4 MiB together), under a
    million YAML nodes."""
    per_file = MAX_NODES // FILES - 1          # workers per supervisor
    room = (MAX_FILE - 200) // per_file        # bytes per worker
    nenv = 1                                   # variables: 2 nodes each
    while len(worker_yaml("w0-00000", nenv + 1, "")) <= room:
        nenv += 1
    visits = FILES * per_file * (2 * nenv + 20)
    assert visits < MAX_YAML_NODES, visits
    budget = room - len(worker_yaml("w0-00000", nenv, ""))
    pad = "x" * (budget // nenv)
    total = 0
    for f in range(FILES):
        parts = [f"supervisor: s{f}\nstrategy: one_for_one\nchildren:\n"]
        for i in range(per_file - (reserve if f == FILES - 1 else 0)):
            parts.append(worker_yaml(f"w{f}-{i:05d}", nenv, pad))
        text = "".join(parts)
        assert len(text) <= MAX_FILE, len(text)
        total += len(text)
        with open(os.path.join(tmp, f"{f:02d}.yaml"), "w") as out:
            out.write(text)
    return total, FILES * (per_file + 1) - reserve


def huge_map(tmp):
    with open(os.path.join(tmp, "a.yaml"), "w") as out:
        out.write("worker: w\ncommand: x\nenvironment:\n")
        for i in range(150000):
            out.write(f"  K{i:06d}: v\n")
    return os.path.getsize(os.path.join(tmp, "a.yaml"))


def laughs_level(n):
    if n == 0:
        return "&x0 {worker: w, command: x}"
    inner = laughs_level(n - 1) + "".join(f", *x{n - 1}" for _ in range(9))
    return f"&x{n} {{supervisor: s{n}, children: [{inner}]}}"


def laughs(tmp):
    with open(os.path.join(tmp, "a.yaml"), "w") as out:
        out.write("supervisor: top\nchildren:\n  - " + laughs_level(9) + "\n")
    return os.path.getsize(os.path.join(tmp, "a.yaml"))


def check(agentsupd, d, runs, timeout):
    times, out = [], None
    for _ in range(runs):
        t0 = time.monotonic()
        try:
            p = subprocess.run([agentsupd, "-c", d, "--check"],
                               capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, f"still running after {timeout}s", 0
        times.append(time.monotonic() - t0)
        out = p
    lines = (out.stdout + out.stderr).count("\n")
    return min(times), f"exit {out.returncode}", lines


def frame(msg):
    body = msgpack.packb(msg)
    return struct.pack(">I", len(body)) + body


def read_frame(s):
    buf = b""
    while len(buf) < 4:
        chunk = s.recv(4 - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    (n,) = struct.unpack(">I", buf)
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            raise EOFError
        body += chunk
    return msgpack.unpackb(body, raw=False)


class LagProbe:
    """`status` round trips back to back on one connection, from a thread:
    the longest is the longest the loop did not answer (its stall)."""

    def __init__(self, sock):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(sock)
        self.worst = 0.0
        self.trips = 0
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        rid = 0
        while not self.stop:
            rid += 1
            t0 = time.monotonic()
            self.s.sendall(frame({"t": "req", "id": rid, "cmd": "status"}))
            while True:
                m = read_frame(self.s)
                if m.get("id") == rid and not m.get("more"):
                    break
            self.worst = max(self.worst, time.monotonic() - t0)
            self.trips += 1

    def end(self):
        self.stop = True
        self.t.join()
        self.s.close()
        return self.worst


def reload_stall(agentsupd, runs, window):
    """agentsupd runs one worker; the directory then gets the largest
    config plus a file with one error at the end, and SIGHUP: the reload
    reads, parses, links and checks everything, then is refused. A probe
    makes `status` round trips back to back from before the SIGHUP until
    `window` seconds after it: the longest round trip is the loop's longest
    stall (the same probe without a reload gives the noise floor)."""
    ctl = os.path.join(b.BUILD, "agentsupctl")
    tmp = b.scratch()
    try:
        d = b.Agentsupd(tmp, "worker: idle\ncommand: [sleep, '1000']\n")
        sock = os.path.join(tmp, "ctl.sock")
        status = [ctl, "--socket", sock, "status"]
        deadline = time.monotonic() + 10
        while subprocess.run(status, capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
        largest(d.dir, reserve=2)
        with open(os.path.join(d.dir, "zz.yaml"), "w") as f:
            f.write("worker: zz\ncommand: x\nbogus: 1\n")
        quiet = LagProbe(sock)
        time.sleep(window)
        floor = quiet.end()
        worst, trips = 0.0, 0
        for _ in range(runs):
            probe = LagProbe(sock)
            time.sleep(0.05)
            d.proc.send_signal(signal.SIGHUP)
            time.sleep(window)
            worst = max(worst, probe.end())
            trips += probe.trips
        d.stop()
        return worst, floor, trips
    finally:
        b.cleanup(tmp)


def main():
    args = sys.argv[1:]
    before = None
    if "--before" in args:
        i = args.index("--before")
        before = args[i + 1]
        del args[i:i + 2]
    runs = int(args[0]) if args else 5
    binaries = [("agentsupd", b.AGENTSUPD)]
    if before:
        binaries.append(("before", before))
    cases = [("largest accepted", largest), ("150,000 keys", huge_map),
             ("billion laughs", laughs)]
    print(f"{'case':<18} {'size':>10} {'binary':<10} {'--check':>10} "
          f"{'result':<24} lines")
    for label, make in cases:
        with tempfile.TemporaryDirectory() as tmp:
            made = make(tmp)
            size = made[0] if isinstance(made, tuple) else made
            for name, path in binaries:
                secs, res, lines = check(path, tmp, runs if name ==
                                         "agentsupd" else 1, 60)
                fig = f"{secs * 1000:8.1f}ms" if secs is not None else "   >60s"
                if label.startswith("largest") and name == "agentsupd":
                    res += f", {made[1]} nodes"
                print(f"{label:<18} {size:>10} {name:<10} {fig:>10} "
                      f"{res:<24} {lines}")
    print()
    for name, path in binaries:
        saved = b.AGENTSUPD
        b.AGENTSUPD = path
        got = reload_stall(path, runs if name == "agentsupd" else 2, 2.0)
        b.AGENTSUPD = saved
        if got is None:
            print(f"longest loop stall, {name}: n/a (never answered)")
            continue
        worst, floor, trips = got
        print(f"longest loop stall, SIGHUP of the largest config "
              f"(refused at its last file), {name}: {worst * 1000:.1f}ms "
              f"(no reload: {floor * 1000:.1f}ms; {trips} status round "
              f"trips during the reloads)")


if __name__ == "__main__":
    main()
