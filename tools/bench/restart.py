#!/usr/bin/python3
"""Restart latency: SIGKILL of a worker that has run a while -> the first
instruction in main of its new instance. agentsupd against the floor (a
minimal C fork/exec/wait loop), measured the same way in the same run, with
containment on (`contain: auto`: a cgroup per worker where cgroup v2 is
writable) and off (`contain: none`), side by side.

    tools/bench/restart.py [KILLS] [RUN_FOR_SECONDS]     default 200, 0.05
"""
import os
import sys

import benchlib as b


def measure_floor(tmp, reports, kills, run_for):
    import subprocess, os
    p = subprocess.Popen([b.FLOOR, "1", b.WORKER], env=dict(os.environ, BENCH_SOCK=reports.path))
    try:
        _, pid, _ = reports.get()
        return b.restart_latency(reports, pid, kills, run_for)
    finally:
        p.terminate()
        p.wait()


def measure_agentsupd(tmp, reports, kills, run_for, contain="auto"):
    d = b.Agentsupd(tmp, f"""
supervisor: root
intensity: 100000
period: 1s
children:
  - worker: w
    command: [{b.WORKER}]
    backoff: none
---
agentsupd:
  contain: {contain}
""", env={"BENCH_SOCK": reports.path})
    try:
        _, pid, _ = reports.get()
        return b.restart_latency(reports, pid, kills, run_for,
                                 pid_of=(lambda p: host_pid(d.proc.pid, p))
                                 if contain == "pidns" else None)
    finally:
        d.stop()
        with open(os.path.join(tmp, "agentsupd.log")) as f:
            for line in f:
                if "containment: " in line:
                    CONTAINMENT[contain] = line.split("containment: ", 1)[1].strip()


def host_pid(parent, nspid):
    """The child of parent whose pid in its own PID namespace is nspid."""
    kids = []
    for t in os.listdir(f"/proc/{parent}/task"):
        with open(f"/proc/{parent}/task/{t}/children") as f:
            kids += [int(x) for x in f.read().split()]
    for k in kids:
        try:
            with open(f"/proc/{k}/status") as f:
                ns = [l.split()[1:] for l in f if l.startswith("NSpid:")][0]
        except (OSError, IndexError):
            continue
        if len(ns) > 1 and int(ns[-1]) == nspid:
            return k
    raise RuntimeError(f"no child of {parent} is {nspid} in its namespace")


def main():
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    run_for = float(sys.argv[2]) if len(sys.argv) > 2 else 0.05
    tmp = b.scratch()
    reports = b.Reports(tmp)
    try:
        # alternate in halves so that drift in the machine hits both alike
        floor, ours, bare, ns = [], [], [], []
        for _ in range(2):
            floor += measure_floor(tmp, reports, kills // 2, run_for)
            ours += measure_agentsupd(tmp, reports, kills // 2, run_for)
            bare += measure_agentsupd(tmp, reports, kills // 2, run_for, "none")
            if PIDNS:
                ns += measure_agentsupd(tmp, reports, kills // 2, run_for, "pidns")
    finally:
        reports.close()
        b.cleanup(tmp)
    f, o, n = b.summary(floor), b.summary(ours), b.summary(bare)
    print(f"restart latency, SIGKILL -> first instruction of the new instance "
          f"({kills} kills each, worker ran {run_for * 1000:.0f} ms first)")
    print(f"machine: {b.machine()}")
    print(f"{'':12} {'median ms':>10} {'p99 ms':>10} {'min ms':>10} {'max ms':>10}")
    rows = [("floor", f), ("agentsupd", o), ("contain:none", n)]
    if ns:
        rows.append(("contain:pidns", b.summary(ns)))
    for name, s in rows:
        print(f"{name:12} {s['median']:10.3f} {s['p99']:10.3f} {s['min']:10.3f} {s['max']:10.3f}")
    print(f"agentsupd / floor (median): {o['median'] / f['median']:.2f}x "
          f"(contain: auto; {contained()})")
    print(f"contain: none / floor (median): {n['median'] / f['median']:.2f}x")
    print(f"contain: auto / contain: none (median): {o['median'] / n['median']:.2f}x")
    if ns:
        print(f"contain: pidns / floor (median): "
              f"{b.summary(ns)['median'] / f['median']:.2f}x")


def contained():
    """What `contain: auto` gave on this machine, as agentsupd logged it."""
    return CONTAINMENT.get("auto", "?")


CONTAINMENT = {}
# `contain: pidns` too (a PID namespace, no cgroup) where we are root
PIDNS = os.geteuid() == 0 and os.environ.get("BENCH_PIDNS", "1") != "0"
if __name__ == "__main__":
    main()
