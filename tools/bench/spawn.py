#!/usr/bin/python3
"""Dynamic children (DESIGN §12): how fast spawns are answered, how soon a
task runs, and what 10,000 ended tasks cost.

  1. spawn requests answered per second over one control connection,
     pipelined (WINDOW requests in flight): new tasks (each forks a process
     running /bin/true, then one running bench_nop, a task with no C
     library; with a store each answer waits for its record's commit), with
     agentsupd's CPU time a spawn (steadier than the rate on a busy
     machine), each against the machine's own spawn+reap rate of the same
     program (bench_floor -s). /bin/true's start-up (the dynamic loader and
     libc's CPU probing: on a VM whose CPUID traps, most of its life) takes
     the CPUs agentsupd runs on; bench_nop's is next to nothing, so its rate
     is what agentsupd's spawn path itself can answer. The same with
     BENCH_CROWD (3,000) tasks alive in the pool (what a spawn costs that
     grows with the children), and repeated spawns of live keys (answered
     from the ledger, no process);
  2. task start latency: spawn request sent -> the task's first instruction
     (bench_worker reports its CLOCK_MONOTONIC), against the fork+exec floor
     (bench_floor restarting the same worker: SIGKILL -> first instruction);
  3. 10,000 ended tasks (dead letters): `agentsupctl dead`, `agentsupctl
     tasks`, `agentsupctl status` and `agentsupctl dead -n 1` wall time,
     and agentsupd's RSS before and after.

    tools/bench/spawn.py [TASKS] [LATENCY_SAMPLES]      default 10000 200

With BENCH_STORE=1 agentsupd runs with a state_dir: the ledger is written
through to the state store (group-committed by its writer thread).
"""
import os
import socket
import struct
import subprocess
import sys
import time

import msgpack

import benchlib as b

WINDOW = 64
CROWD = int(os.environ.get("BENCH_CROWD", "3000"))  # live tasks, figure 1b
CTL = os.path.join(b.BUILD, "agentsupctl")
NOP = os.path.join(b.BUILD, "bench_nop")


class Control:
    """A raw control connection: req frames out, res frames in."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.s.connect(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.buf = b""
        self.id = 0

    def send(self, cmd, args):
        self.id += 1
        body = msgpack.packb({"t": "req", "id": self.id, "cmd": cmd, "args": args})
        self.s.sendall(struct.pack(">I", len(body)) + body)
        return self.id

    def recv(self):
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    m = msgpack.unpackb(self.buf[4:4 + n], raw=False)
                    self.buf = self.buf[4 + n:]
                    if m.get("t") == "res":
                        return m
                    continue
            chunk = self.s.recv(1 << 16)
            if not chunk:
                raise ConnectionError("agentsupd closed the connection")
            self.buf += chunk

    def pipelined(self, reqs):
        """Send every (cmd, args), at most WINDOW unanswered; the answers."""
        out, sent = [], 0
        while len(out) < len(reqs):
            while sent < len(reqs) and sent - len(out) < WINDOW:
                self.send(*reqs[sent])
                sent += 1
            out.append(self.recv())
        return out


STORE = os.environ.get("BENCH_STORE") == "1"
STATE_DIRS = []  # removed at the end


def pool_yaml(command, restart="transient"):
    settings = ""
    if STORE:
        STATE_DIRS.append(b.scratch())
        settings = f"agentsupd:\n  state_dir: {STATE_DIRS[-1]}\n---\n"
    return settings + f"""
supervisor: root
children:
  - supervisor: pool
    max_children: 10000
    intensity: 100000
    template:
      command: {command}
      restart: {restart}
      backoff: none
"""


def wait_socket(path):
    Control(path).s.close()


def throughput(tmp, n, program):
    d = b.Agentsupd(tmp, pool_yaml(f'["{program}"]'))
    sock = os.path.join(tmp, "ctl.sock")
    try:
        wait_socket(sock)
        c = Control(sock)
        reqs = [("spawn", ["pool", {"key": f"t{i}"}]) for i in range(n)]
        cpu0 = b.cpu_seconds(d.proc.pid)
        t0 = time.monotonic()
        res = c.pipelined(reqs)
        new = n / (time.monotonic() - t0)
        cpu_us = (b.cpu_seconds(d.proc.pid) - cpu0) / n * 1e6
        ok = sum(1 for r in res if r.get("ok"))
        return new, ok, cpu_us
    finally:
        d.stop()


def crowded(tmp, n, live):
    """New-task spawns answered while `live` tasks of the same pool run
    (sleep 300): what a spawn costs that scales with the children. Each
    new task runs /bin/sleep 0 (the same template); agentsupd's CPU time a
    spawn, and the rate."""
    d = b.Agentsupd(tmp, pool_yaml('["/bin/sleep"]'))
    sock = os.path.join(tmp, "ctl.sock")
    try:
        wait_socket(sock)
        c = Control(sock)
        c.pipelined([("spawn", ["pool", {"key": f"s{i}", "args": ["300"]}])
                     for i in range(live)])
        reqs = [("spawn", ["pool", {"key": f"t{i}", "args": ["0"]}])
                for i in range(n)]
        cpu0 = b.cpu_seconds(d.proc.pid)
        t0 = time.monotonic()
        res = c.pipelined(reqs)
        rate = n / (time.monotonic() - t0)
        cpu_us = (b.cpu_seconds(d.proc.pid) - cpu0) / n * 1e6
        return rate, sum(1 for r in res if r.get("ok")), cpu_us
    finally:
        d.stop()


def last_pid():
    with open("/proc/loadavg") as f:
        return int(f.read().split()[4])


def floor_throughput(program, seconds=3.0):
    """The machine's own rate of spawn+reap of program, WINDOW in flight
    (bench_floor -s restarting each by posix_spawn, as agentsupd spawns
    with clone(CLONE_VM|CLONE_VFORK), the moment it is reaped): a ceiling
    no supervisor's spawn rate can pass. Counted by the kernel's last
    assigned pid, read every 10 ms so that its wrap at pid_max (32,768
    here: a few seconds at these rates) is seen and counted."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    p = subprocess.Popen([b.FLOOR, "-s", str(WINDOW), program])
    try:
        time.sleep(0.5)
        last, total, t0 = last_pid(), 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            time.sleep(0.01)
            now = last_pid()
            # after pid_max the kernel goes on from 300 (RESERVED_PIDS)
            total += now - last if now >= last else pid_max - last + now - 300
            last = now
        t1 = time.monotonic()
    finally:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return total / (t1 - t0)


def idempotent(tmp, n, live=100):
    d = b.Agentsupd(tmp, pool_yaml('["sleep", "300"]'))
    sock = os.path.join(tmp, "ctl.sock")
    try:
        wait_socket(sock)
        c = Control(sock)
        c.pipelined([("spawn", ["pool", {"key": f"k{i}"}]) for i in range(live)])
        reqs = [("spawn", ["pool", {"key": f"k{i % live}"}]) for i in range(n)]
        t0 = time.monotonic()
        res = c.pipelined(reqs)
        rate = n / (time.monotonic() - t0)
        again = sum(1 for r in res if r.get("ok") and r["result"]["created"] is False)
        return rate, again
    finally:
        d.stop()


def start_latency(tmp, samples):
    os.makedirs(tmp, exist_ok=True)
    reports = b.Reports(tmp)
    d = b.Agentsupd(tmp, pool_yaml(f'["{b.WORKER}"]'), env={"BENCH_SOCK": reports.path})
    sock = os.path.join(tmp, "ctl.sock")
    out = []
    try:
        wait_socket(sock)
        c = Control(sock)
        for i in range(samples):
            t0 = time.monotonic_ns()
            c.send("spawn", ["pool", {"key": f"l{i}"}])
            t1, _, _ = reports.get(kind=0)
            c.recv()
            out.append(t1 - t0)
        return out
    finally:
        d.stop()
        reports.close()


def floor_latency(tmp, samples):
    os.makedirs(tmp, exist_ok=True)
    reports = b.Reports(tmp)
    p = subprocess.Popen([b.FLOOR, "1", b.WORKER],
                         env=dict(os.environ, BENCH_SOCK=reports.path))
    try:
        _, pid, _ = reports.get()
        return b.restart_latency(reports, pid, samples, 0.005)
    finally:
        p.terminate()
        p.wait()
        reports.close()


def timed(argv):
    t0 = time.monotonic()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return (time.monotonic() - t0) * 1000, r


def ten_thousand(tmp, n):
    d = b.Agentsupd(tmp, pool_yaml('["/bin/sh", "-c", "exit 3"]', "temporary"))
    sock = os.path.join(tmp, "ctl.sock")
    try:
        wait_socket(sock)
        rss0 = b.rss_kib([d.proc.pid])
        c = Control(sock)
        t0 = time.monotonic()
        batch = 500
        for lo in range(0, n, batch):  # live children stay under max_children
            c.pipelined([("spawn", ["pool", {"key": f"d{i}"}])
                         for i in range(lo, min(n, lo + batch))])
        # every task has ended once `dead` lists them all
        while True:
            _, r = timed([CTL, "--socket", sock, "--json", "dead"])
            if r.stdout.count(b'"state":"dead"') >= n:
                break
            time.sleep(0.2)
        spawn_s = time.monotonic() - t0
        dead_ms = min(timed([CTL, "--socket", sock, "dead"])[0] for _ in range(5))
        dead_json_ms = min(timed([CTL, "--socket", sock, "--json", "dead"])[0]
                           for _ in range(5))
        tasks_ms = min(timed([CTL, "--socket", sock, "tasks"])[0] for _ in range(5))
        tasks_json_ms = min(timed([CTL, "--socket", sock, "--json", "tasks"])[0]
                            for _ in range(5))
        # the newest alone: with a store, read in its index's order, no
        # more rows than asked for (it sorted them all before)
        newest_ms = min(timed([CTL, "--socket", sock, "dead", "-n", "1"])[0]
                        for _ in range(5))
        status_ms = min(timed([CTL, "--socket", sock, "status"])[0] for _ in range(5))
        true_ms = min(timed(["/bin/true"])[0] for _ in range(5))
        rss1 = b.rss_kib([d.proc.pid])
        return (spawn_s, dead_ms, dead_json_ms, tasks_ms, tasks_json_ms,
                status_ms, true_ms, rss0, rss1, newest_ms)
    finally:
        d.stop()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    print(f"machine: {b.machine()}; ledger "
          f"{'in the state store' if STORE else 'in memory'}")
    tmp = b.scratch()
    try:
        for name, program in (("/bin/true", "/bin/true"), ("bench_nop", NOP)):
            new, ok, cpu_us = throughput(os.path.join(tmp, "a" + name[-3:]),
                                         min(n, 5000), program)
            ceiling = floor_throughput(program)
            print(f"spawns answered, new tasks (each forks {name}): {new:,.0f}/s "
                  f"({ok} accepted, window {WINDOW}; agentsupd CPU "
                  f"{cpu_us:.0f} us a spawn, its forks included)")
            print(f"  spawn+reap floor of {name}, {WINDOW} in flight (bench_floor -s): "
                  f"{ceiling:,.0f}/s; spawns answered / floor {new / ceiling:.2f}x")
        for live in (0, CROWD):
            rate, ok, cpu_us = crowded(os.path.join(tmp, f"f{live}"),
                                       min(n, 2000), live)
            print(f"spawns answered with {live:,} live tasks in the pool "
                  f"(each new one runs /bin/sleep 0): {rate:,.0f}/s ({ok} "
                  f"accepted; agentsupd CPU {cpu_us:.0f} us a spawn)")
        rate, again = idempotent(os.path.join(tmp, "b"), 20000)
        print(f"spawns answered, live keys (idempotent, no fork):  {rate:,.0f}/s "
              f"({again} answered created=false)")
        lat = b.summary(start_latency(os.path.join(tmp, "c"), samples))
        flo = b.summary(floor_latency(os.path.join(tmp, "d"), samples))
        print(f"task start latency (request -> first instruction): median "
              f"{lat['median']:.2f} ms, p99 {lat['p99']:.2f} ms (n={lat['n']})")
        print(f"fork+exec floor (bench_floor, SIGKILL -> first instruction): "
              f"median {flo['median']:.2f} ms, p99 {flo['p99']:.2f} ms; "
              f"ratio {lat['median'] / flo['median']:.2f}x")
        (spawn_s, dead_ms, dead_json_ms, tasks_ms, tasks_json_ms, status_ms,
         true_ms, rss0, rss1, newest_ms) = ten_thousand(os.path.join(tmp, "e"), n)
        print(f"{n} tasks spawned and dead-lettered in {spawn_s:.1f} s")
        print(f"with {n} ended records: `agentsupctl dead` {dead_ms:.1f} ms "
              f"(--json {dead_json_ms:.1f} ms), `agentsupctl tasks` {tasks_ms:.1f} ms "
              f"(--json {tasks_json_ms:.1f} ms), `agentsupctl status` {status_ms:.1f} ms "
              f"(exec of /bin/true: {true_ms:.1f} ms), `agentsupctl dead -n 1` "
              f"{newest_ms:.1f} ms")
        print(f"agentsupd RSS: {rss0 / 1024:.1f} MiB at start, {rss1 / 1024:.1f} MiB "
              f"with {n} ended records")
    finally:
        b.cleanup(tmp)
        for d in STATE_DIRS:
            b.cleanup(d)


if __name__ == "__main__":
    main()
