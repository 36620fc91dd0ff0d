#!/usr/bin/python3
"""Bring-up: agentsupd started on a tree of N workers -> every one of them
has reached main. Against the floor (bench_floor, a fork/exec loop of the
same worker), in the same run, round after round, so that a shared VM's
drift hits every subject alike. Per subject: the median over the rounds of
the time to the first worker (agentsupd's own start-up: its config, its
cgroup, its guard), to all of them, the slope per 100 workers, and how
busy the machine's CPUs were meanwhile (a bring-up that leaves CPUs idle
waits on something, one that does not is paying for work).

    tools/bench/bringup.py [N] [--rounds R] [--plain BUILD]

Subjects: the default configuration (a cgroup per worker, output
captured), `contain: none`, and `contain: none` with the output inherited
(Part I's configuration); --plain BUILD adds that build's agentsupd with no
settings document (4c7ead8 built is Part I's figure on this machine).
"""
import argparse
import os
import statistics
import subprocess
import time

import benchlib as b

INHERIT = ", stdout: inherit, stderr: inherit"


def busy_ticks():
    """Busy and total jiffies of every CPU so far (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def tree(n, worker_keys, settings):
    kids = "".join(f"  - {{worker: w{i}, command: [{b.WORKER}]{worker_keys}}}\n"
                   for i in range(n))
    doc = f"supervisor: root\nintensity: 100000\nperiod: 1s\nchildren:\n{kids}"
    if settings:
        doc += f"---\nagentsupd:\n  {settings}\n"
    return doc


def one(n, subject):
    """One bring-up: (first, last) in ms after the start, CPU busy %."""
    name, agentsupd, worker_keys, settings = subject
    tmp = b.scratch()
    reports = b.Reports(tmp)
    busy0, all0 = busy_ticks()
    t0 = time.monotonic_ns()
    if agentsupd is None:
        proc = subprocess.Popen([b.FLOOR, str(n), b.WORKER],
                                env=dict(os.environ, BENCH_SOCK=reports.path),
                                preexec_fn=b._die_with_harness)
        stop = lambda: (proc.terminate(), proc.wait())
    else:
        d = b.Agentsupd(tmp, tree(n, worker_keys, settings),
                        env={"BENCH_SOCK": reports.path}, agentsupd=agentsupd)
        stop = d.stop
    seen, times = set(), []
    try:
        while len(seen) < n:
            t, pid, _ = reports.get(120, kind=0)
            if pid not in seen:
                seen.add(pid)
                times.append(t)
        busy1, all1 = busy_ticks()
    finally:
        stop()
        reports.close()
        b.cleanup(tmp)
    times.sort()
    return ((times[0] - t0) / 1e6, (times[-1] - t0) / 1e6,
            (times[-1] - times[n // 10]) / 1e6 / ((n - n // 10) / 100),
            100.0 * (busy1 - busy0) / max(1, all1 - all0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--plain", metavar="BUILD")
    a = ap.parse_args()
    subjects = [("floor", None, "", ""),
                ("agentsupd", b.AGENTSUPD, "", ""),
                ("contain:none", b.AGENTSUPD, "", "contain: none"),
                ("none,inherit", b.AGENTSUPD, INHERIT, "contain: none")]
    if a.plain:
        subjects.append(("plain", os.path.join(os.path.abspath(a.plain),
                                               "agentsupd"), "", ""))
    runs = {s[0]: [] for s in subjects}
    for r in range(a.rounds):
        k = r % len(subjects)
        for s in subjects[k:] + subjects[:k]:
            runs[s[0]].append(one(a.n, s))
    print(f"bring-up of {a.n} workers, agentsupd started -> every worker in "
          f"main ({a.rounds} rounds, medians)")
    print(f"machine: {b.machine()}")
    print(f"{'':14} {'first ms':>9} {'all ms':>8} {'ms/100':>7} {'CPU busy':>9}"
          f" {'vs floor':>9}")
    floor = statistics.median(x[1] for x in runs["floor"])
    for s in subjects:
        v = runs[s[0]]
        med = [statistics.median(x[i] for x in v) for i in range(4)]
        print(f"{s[0]:14} {med[0]:9.1f} {med[1]:8.1f} {med[2]:7.1f} "
              f"{med[3]:8.0f}% {med[1] / floor:8.2f}x")


if __name__ == "__main__":
    main()
