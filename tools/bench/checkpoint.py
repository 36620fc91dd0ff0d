#!/usr/bin/python3
"""Checkpoints with the state store on the local disk (DESIGN §11, issue 12):

  1. N workers (default 1,000) each storing a SIZE-byte checkpoint (4 KiB)
     a second: checkpoint -> checkpoint_ok latency (p50/p99/max), and
     meanwhile the restart latency of one more worker (SIGKILL -> first
     instruction of the new instance) against the floor (a minimal C
     fork/exec/wait loop) measured under the same load;
  2. idle RSS of agentsupd with N workers, without checkpoints and with one
     SIZE-byte checkpoint each.

    tools/bench/checkpoint.py [N] [SECONDS] [KILLS] [--no-store] [--period MS]
                              [--no-idle] [--nice N]
                                            default 1000 20 100, store on

--no-store: the same load with checkpoints in memory only (acks at once),
to tell the store's share of a figure from the load's. --period MS: each
worker's checkpoint period (default 1000; 0: one checkpoint each, then idle,
the restart latency beside N idle workers). --no-idle: skip part 2.
--nice N (root): agentsupd at nice -N, as docs/operations.md advises for a
supervisor above busy workers; the checkpointing workers go back to nice 0
(`nice -n N` before their command), and the floor runs at nice -N too, so
both killed workers (each its supervisor's child) are measured alike.

While the load runs, agentsupd's threads are sampled from /proc: CPU and
wake-ups (voluntary context switches) a second of the loop and of the store
writer, and how often the loop was preempted (involuntary ones).
"""
import os
import subprocess
import sys
import time

import benchlib as b

CKPT_WORKER = os.path.join(b.BUILD, "bench_ckpt_worker")
SIZE = 4096
NO_STORE = "--no-store" in sys.argv
NO_IDLE = "--no-idle" in sys.argv
PERIOD = int(sys.argv[sys.argv.index("--period") + 1]) if "--period" in sys.argv else 1000
NICE = int(sys.argv[sys.argv.index("--nice") + 1]) if "--nice" in sys.argv else 0
BACK = f"nice, -n, '{NICE}', " if NICE else ""  # a ckpt worker at nice 0
FLOOR_NICE = ["nice", "-n", str(-NICE)] if NICE else []


def tree(n, command, extra="", state_dir=None):
    settings = f"agentsupd:\n  state_dir: {state_dir}\n---\n" if state_dir else ""
    return settings + f"""
supervisor: root
intensity: 100000
period: 1s
children:
  - supervisor: load
    intensity: 100000
    period: 1s
    defaults: {{backoff: none}}
    children:
      - worker: c
        instances: {n}
        command: {command}
{extra}"""


def collect(reports, n, kind=4, timeout=30.0):
    """n reports of kind (others dropped)."""
    out = []
    while len(out) < n:
        t, pid, k = reports.get(timeout, kind=kind)
        out.append(t)
    return out


def load_run(tmp, reports, n, seconds, kills, run_for):
    """The checkpoint load, with one killed worker in the same tree."""
    state = None if NO_STORE else os.path.join(tmp, "state")
    d = b.Agentsupd(tmp, tree(n, f"[{BACK}{CKPT_WORKER}, '{SIZE}', '{PERIOD}']", f"""
  - worker: w
    backoff: none
    command: [{b.WORKER}]
""", state_dir=state), env={"BENCH_SOCK": reports.path}, nice=-NICE)
    try:
        starts = collect(reports, n + 1, kind=0, timeout=60)  # every start report
        del starts
        # the killed worker's pid: the one report of kind 0 that is not a
        # ckpt worker's -- find it by its command line
        pid = find_pid(d.proc.pid, b.WORKER)
        collect(reports, min(n, 1000) if PERIOD else n, timeout=30)  # warm up
        reports.drain()
        threads0 = thread_stats(d.proc.pid)
        # the floor runs under the same load: kills alternate between the two
        fl = subprocess.Popen([*FLOOR_NICE, b.FLOOR, "1", b.WORKER],
                              env=dict(os.environ, BENCH_SOCK=reports.path))
        fpid = wait_start(reports, [])[1]
        lat, t_end = [], time.monotonic() + seconds
        restarts, floor = [], []
        while time.monotonic() < t_end:
            lat.extend(drain_kind(reports, 4))
            if len(restarts) < kills:
                for out in (restarts, floor):
                    time.sleep(run_for)
                    lat.extend(drain_kind(reports, 4))
                    t0 = time.monotonic_ns()
                    os.kill(pid if out is restarts else fpid, 9)
                    t1, new = wait_start(reports, lat)
                    out.append(t1 - t0)
                    if out is restarts:
                        pid = new
                    else:
                        fpid = new
            else:
                time.sleep(0.05)
        lat.extend(drain_kind(reports, 4))
        threads = thread_rates(threads0, thread_stats(d.proc.pid))
        rss = b.rss_kib([d.proc.pid])
        fl.terminate()
        fl.wait()
        return lat, restarts, floor, rss, threads
    finally:
        d.stop()


def thread_stats(pid):
    """{name: (seconds of CPU, voluntary, involuntary switches)} of pid's
    threads, at the time of the call (and that time)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                st = f.read()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = dict(l.split(":", 1) for l in f if ":" in l)
        except OSError:
            continue
        name = "loop" if int(tid) == pid else st.split("(", 1)[1].rsplit(")", 1)[0]
        fields = st.rsplit(")", 1)[1].split()
        out[name] = ((int(fields[11]) + int(fields[12])) / tick,
                     int(status["voluntary_ctxt_switches"]),
                     int(status["nonvoluntary_ctxt_switches"]))
    return time.monotonic(), out


def thread_rates(a, b):
    dt = b[0] - a[0]
    return {k: tuple((v[i] - a[1][k][i]) / dt for i in range(3))
            for k, v in b[1].items() if k in a[1]}


def drain_kind(reports, kind):
    out = []
    reports.sock.setblocking(False)
    try:
        while True:
            t, _, k = b.REPORT.unpack(reports.sock.recv(64))
            if k == kind:
                out.append(t)
    except BlockingIOError:
        pass
    reports.sock.setblocking(True)
    return out


def wait_start(reports, lat):
    """The next start report; latencies that arrive meanwhile are kept."""
    while True:
        t, pid, k = b.REPORT.unpack(reports.sock.recv(64))
        if k == 0:
            return t, pid
        if k == 4:
            lat.append(t)


def find_pid(root, exe):
    for p in b.descendants(root):
        try:
            if os.readlink(f"/proc/{p}/exe") == os.path.realpath(exe):
                return p
        except OSError:
            pass
    raise RuntimeError("the killed worker is not running")


def floor_run(reports, kills, run_for):
    p = subprocess.Popen([b.FLOOR, "1", b.WORKER], env=dict(os.environ, BENCH_SOCK=reports.path))
    try:
        _, pid, _ = reports.get(kind=0)
        return b.restart_latency(reports, pid, kills, run_for)
    finally:
        p.terminate()
        p.wait()


def idle_rss(tmp, reports, n, with_ckpt):
    cmd = f"[{CKPT_WORKER}, '{SIZE}', '0']" if with_ckpt else f"[{b.WORKER}]"
    state = os.path.join(tmp, "state-idle-%d" % with_ckpt)
    d = b.Agentsupd(tmp, tree(n, cmd, state_dir=state if with_ckpt else None),
                    env={"BENCH_SOCK": reports.path})
    try:
        collect(reports, n, kind=0, timeout=60)
        if with_ckpt:
            collect(reports, n, kind=4, timeout=60)
        time.sleep(1.0)  # settle: the store's writes, the last events
        return b.rss_kib([d.proc.pid])
    finally:
        d.stop()


def main():
    args = [a for i, a in enumerate(sys.argv[1:], 1)
            if a not in ("--no-store", "--no-idle", "--period", "--nice")
            and sys.argv[i - 1] not in ("--period", "--nice")]
    n = int(args[0]) if len(args) > 0 else 1000
    seconds = float(args[1]) if len(args) > 1 else 20
    kills = int(args[2]) if len(args) > 2 else 100
    run_for = 0.05
    tmp = b.scratch()
    reports = b.Reports(tmp)
    try:
        rss_plain = idle_rss(tmp, reports, n, False) if not NO_IDLE else 0
        rss_ckpt = idle_rss(tmp, reports, n, True) if not (NO_STORE or NO_IDLE) else 0
        lat, restarts, floor, rss_load, threads = load_run(tmp, reports, n, seconds,
                                                           kills, run_for)
        # both again with no load, for reference
        quiet_floor = floor_run(reports, kills, run_for)
    finally:
        reports.close()
        b.cleanup(tmp)
    s = b.summary(lat or [0])
    r, f = b.summary(restarts), b.summary(floor)
    q = b.summary(quiet_floor)
    print(f"checkpoints: {n} workers x {SIZE} B every {PERIOD} ms, "
          f"{'no store (memory only)' if NO_STORE else 'store on ' + tmp_fs()} "
          f"({s['n']} acks in {seconds:.0f} s)")
    print(f"machine: {b.machine()}" + (f"; agentsupd and the floor at nice -{NICE}"
                                       if NICE else ""))
    print(f"checkpoint -> checkpoint_ok: median {s['median']:.2f} ms, p99 {s['p99']:.2f} ms, "
          f"max {s['max']:.2f} ms (target p99 <= 50 ms)")
    print(f"restart latency under that load ({r['n']} kills): median {r['median']:.3f} ms, "
          f"p99 {r['p99']:.3f} ms; floor under the same load: median {f['median']:.3f} ms, p99 {f['p99']:.3f} ms; "
          f"ratio (median) {r['median'] / f['median']:.2f}x (target <= 1.2x)")
    print(f"floor with no load: median {q['median']:.3f} ms, p99 {q['p99']:.3f} ms")
    print(f"agentsupd RSS under load: {rss_load / 1024:.1f} MiB")
    for name, (cpu, vol, invol) in sorted(threads.items()):
        print(f"  thread {name}: CPU {100 * cpu:.1f} %, {vol:.0f} wake-ups/s, "
              f"preempted {invol:.0f}/s")
    print(f"idle RSS, {n} workers: no checkpoints {rss_plain / 1024:.1f} MiB; "
          f"a {SIZE // 1024} KiB checkpoint each {rss_ckpt / 1024:.1f} MiB (target <= 20 MiB)")


def tmp_fs():
    import tempfile
    d = tempfile.gettempdir()
    try:
        out = subprocess.run(["df", "--output=fstype", d], capture_output=True, text=True).stdout
        return f"{d} ({out.split()[-1]})"
    except OSError:
        return d


if __name__ == "__main__":
    main()
