#!/usr/bin/python3
"""Restart latency: SIGKILL of a worker that has run a while -> the first
instruction in main of its new instance. agentsupd against the floor (a
minimal C fork/exec/wait loop), measured the same way in the same run, with
containment on (`contain: auto`: a cgroup per worker where cgroup v2 is
writable) and off (`contain: none`), side by side.

    tools/bench/restart.py [KILLS] [RUN_FOR_SECONDS] [--block N] [--against BUILD]

Every subject runs from the start; the kills go round them in blocks of N
(default 10), each round in another order, so that the machine's drift
(a shared VM's neighbours, frequency, caches) hits all of them alike.
--against BUILD adds `contain: auto` and `none` of the agentsupd in another
build directory, for a before/after in one run; --plain BUILD adds that
build's agentsupd with no settings document at all (the configuration Part
I's binary understands: 4c7ead8 built is Part I's figure on this machine);
--inherit adds this build's agentsupd in Part I's configuration (`contain:
none`, the worker's output inherited, not captured), so that the reshaped
daemon is measured against Part I's on the same work; --backoff adds the
default configuration with backoff on (the others have `backoff: none`, as
their kills come in a row), its reset_after half of RUN_FOR so that every
kill is a one-off crash after a stable run: the first restart, which
backoff must not delay.
"""
import argparse
import os
import subprocess

import benchlib as b


class Subject:
    def __init__(self, name, tmp):
        self.name = name
        self.dir = os.path.join(tmp, name.replace(" ", "-").replace(":", "-"))
        os.makedirs(self.dir)
        self.reports = b.Reports(self.dir)
        self.samples = []
        self.pid = None
        self.pid_of = None

    def first(self):
        _, self.pid, _ = self.reports.get()

    def close(self):
        self.reports.close()


def floor_subject(tmp):
    s = Subject("floor", tmp)
    s.proc = subprocess.Popen([b.FLOOR, "1", b.WORKER],
                              env=dict(os.environ, BENCH_SOCK=s.reports.path),
                              preexec_fn=b._die_with_harness)
    s.stop = lambda: (s.proc.terminate(), s.proc.wait())
    return s


def agentsupd_subject(tmp, name, contain, agentsupd=None, output=None,
                      backoff="none"):
    s = Subject(name, tmp)
    tree = f"""
supervisor: root
intensity: 100000
period: 1s
children:
  - worker: w
    command: [{b.WORKER}]
"""
    if output is not None:
        tree += f"    stdout: {output}\n    stderr: {output}\n"
    if contain is not None:
        tree += f"""    backoff: {backoff}
---
agentsupd:
  contain: {contain}
"""
    s.daemon = b.Agentsupd(s.dir, tree, env={"BENCH_SOCK": s.reports.path},
                           agentsupd=agentsupd)
    if contain == "pidns":
        s.pid_of = lambda p: host_pid(s.daemon.proc.pid, p)
    s.contain = contain
    s.stop = s.daemon.stop
    return s


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


def containment(s):
    """What `contain: auto` gave on this machine, as agentsupd logged it."""
    try:
        with open(os.path.join(s.dir, "agentsupd.log")) as f:
            for line in f:
                if "containment: " in line:
                    return line.split("containment: ", 1)[1].strip()
    except OSError:
        pass
    return "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kills", nargs="?", type=int, default=200)
    ap.add_argument("run_for", nargs="?", type=float, default=0.05)
    ap.add_argument("--block", type=int, default=10)
    ap.add_argument("--against", metavar="BUILD")
    ap.add_argument("--plain", metavar="BUILD")
    ap.add_argument("--inherit", action="store_true")
    ap.add_argument("--backoff", action="store_true")
    a = ap.parse_args()
    tmp = b.scratch()
    subjects = []
    try:
        subjects.append(floor_subject(tmp))
        subjects.append(agentsupd_subject(tmp, "agentsupd", "auto"))
        subjects.append(agentsupd_subject(tmp, "contain:none", "none"))
        if PIDNS:
            subjects.append(agentsupd_subject(tmp, "contain:pidns", "pidns"))
        if a.inherit:
            subjects.append(agentsupd_subject(tmp, "none,inherit", "none",
                                              output="inherit"))
        if a.backoff:  # on, as by default; each kill after a stable run
            reset = f"{max(1, int(a.run_for * 500))}ms"
            subjects.append(agentsupd_subject(
                    tmp, "auto,backoff", "auto",
                    backoff=f"{{reset_after: {reset}}}"))
        if a.against:
            other = os.path.join(os.path.abspath(a.against), "agentsupd")
            subjects.append(agentsupd_subject(tmp, "B auto", "auto", other))
            subjects.append(agentsupd_subject(tmp, "B none", "none", other))
        if a.plain:
            other = os.path.join(os.path.abspath(a.plain), "agentsupd")
            subjects.append(agentsupd_subject(tmp, "plain", None, other))
        for s in subjects:
            s.first()
        rounds = max(1, a.kills // a.block)
        for r in range(rounds):
            k = r % len(subjects)
            for s in subjects[k:] + subjects[:k]:
                s.samples += b.restart_latency(s.reports, s.pid, a.block,
                                               a.run_for, pid_of=s.pid_of,
                                               follow=s)
        for s in subjects[1:]:
            s.detail = containment(s) if s.contain == "auto" else ""
    finally:
        for s in subjects:
            s.stop()
            s.close()
        b.cleanup(tmp)
    report(subjects, rounds * a.block, a)


def report(subjects, kills, a):
    f = b.summary(subjects[0].samples)
    print(f"restart latency, SIGKILL -> first instruction of the new instance "
          f"({kills} kills each in blocks of {a.block}, worker ran "
          f"{a.run_for * 1000:.0f} ms first)")
    print(f"machine: {b.machine()}")
    cols = ("p10", "p25", "median", "p75", "p90", "p99")
    print(f"{'ms':14} " + " ".join(f"{c:>7}" for c in cols))
    for s in subjects:
        v = sorted(s.samples)
        s.median = b.summary(v)["median"]
        q = [b.pct(v, p) / 1e6 for p in (10, 25)] + [s.median] + \
            [b.pct(v, p) / 1e6 for p in (75, 90, 99)]
        print(f"{s.name:14} " + " ".join(f"{x:7.3f}" for x in q))
    by = {s.name: s for s in subjects}
    print(f"agentsupd / floor (median): {by['agentsupd'].median / f['median']:.2f}x "
          f"(contain: auto; {by['agentsupd'].detail})")
    print(f"contain: none / floor (median): {by['contain:none'].median / f['median']:.2f}x")
    print(f"contain: auto / contain: none (median): "
          f"{by['agentsupd'].median / by['contain:none'].median:.2f}x")
    if "contain:pidns" in by:
        print(f"contain: pidns / floor (median): "
              f"{by['contain:pidns'].median / f['median']:.2f}x")
    if a.inherit:
        print(f"contain: none, output inherited (Part I's configuration) / "
              f"floor: {by['none,inherit'].median / f['median']:.2f}x")
    if a.backoff:
        print(f"contain: auto, backoff on (each kill a first failure: "
              f"reset_after half the run) / floor: "
              f"{by['auto,backoff'].median / f['median']:.2f}x; / backoff "
              f"none: {by['auto,backoff'].median / by['agentsupd'].median:.2f}x")
    if a.against:
        print(f"{a.against}: auto / floor {by['B auto'].median / f['median']:.2f}x, "
              f"none / floor {by['B none'].median / f['median']:.2f}x")
    if a.plain:
        print(f"{a.plain}, no settings: / floor "
              f"{by['plain'].median / f['median']:.2f}x")


# `contain: pidns` too (a PID namespace, no cgroup) where we are root
PIDNS = os.geteuid() == 0 and os.environ.get("BENCH_PIDNS", "1") != "0"
if __name__ == "__main__":
    main()
