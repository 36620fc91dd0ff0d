#!/usr/bin/python3
"""Idle cost of agentsupd with N workers that do nothing, in the variants the
issues name: output capture on (the default) with silent workers, with
workers that each printed LINES lines, with output to /dev/null (no capture), and with
containment (a cgroup per worker, on by default where the cgroup tree is
writable) off. Prints agentsupd's RSS and PSS, its
guard's (the helper process that outlives a SIGKILL of agentsupd, when
containment is on), and agentsupd's CPU seconds while idle.

    idle.py [N] [LINES] [--idle SECONDS] [--only silent,printed,null,uncontained]
"""
import argparse
import os
import time

import benchlib as b


VARIANTS = {
    "silent": ("capture", "", False),
    "printed": ("capture", "", True),
    "null": ("null", "", False),
    "uncontained": ("capture", "  contain: none\n", False),
}


def run(n, lines, idle, variant):
    capture, settings, prints = VARIANTS[variant]
    tmp = b.scratch()
    reports = b.Reports(tmp)
    env = {"BENCH_SOCK": reports.path}
    pre = f"seq {lines}; " if prints else ""
    cmd = f"[sh, -c, '{pre}exec {b.WORKER} sleep']"
    kids = "".join(f"  - {{worker: w{i}, command: {cmd}, stdout: {capture}, stderr: {capture}}}\n"
                   for i in range(n))
    os.makedirs(os.path.join(tmp, "supervisor.d"), exist_ok=True)
    if settings:
        with open(os.path.join(tmp, "supervisor.d", "00-settings.yaml"), "w") as f:
            f.write("agentsupd:\n" + settings)
    d = b.Agentsupd(tmp, f"supervisor: root\nchildren:\n{kids}", env)
    try:
        for _ in range(n):
            reports.get(120, kind=0)
        time.sleep(2)
        pids = b.descendants(d.proc.pid)
        guard = [p for p in pids if p != d.proc.pid and comm(p) in
                 ("agentsupd", "agentsup-guard", "agentsup-init")]
        me = [d.proc.pid]
        cpu0 = b.cpu_seconds(d.proc.pid)
        time.sleep(idle)
        cpu1 = b.cpu_seconds(d.proc.pid)
        return (b.rss_kib(me), b.pss_kib(me), b.rss_kib(guard), b.pss_kib(guard),
                cpu1 - cpu0)
    finally:
        d.stop()
        reports.close()
        b.cleanup(tmp)


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=1000)
    ap.add_argument("lines", nargs="?", type=int, default=100)
    ap.add_argument("--idle", type=float, default=5.0)
    ap.add_argument("--only", default=",".join(VARIANTS))
    a = ap.parse_args()
    print(f"machine: {b.machine()}; {a.n} idle workers")
    print("| variant | agentsupd RSS | PSS | guard RSS | guard PSS | CPU s idle |")
    print("|---|---|---|---|---|---|")
    for v in a.only.split(","):
        rss, pss, grss, gpss, cpu = run(a.n, a.lines, a.idle, v)
        name = f"printed {a.lines} lines" if v == "printed" else v
        print(f"| {name} | {rss / 1024:.2f} MiB | {pss / 1024:.2f} MiB | "
              f"{grss / 1024:.2f} MiB | {gpss / 1024:.2f} MiB | {cpu:.2f} |", flush=True)


if __name__ == "__main__":
    main()
