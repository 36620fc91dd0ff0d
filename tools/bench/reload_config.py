#!/usr/bin/python3
"""How long `agentsupd --check` takes on the largest supervisor.d/ the caps
accept (docs/config.md), and on the hostile files of issue 10: one worker of
150,000 keys (1.8 MB) and a "billion laughs" of nested aliases. --check does
exactly what a reload does before it diffs the tree: read, parse, link,
validate. And the longest loop stall a SIGHUP of the largest config causes
(the reload runs on the event loop today). Prints figures; asserts nothing.

    tools/bench/reload_config.py [RUNS] [--before PATH_TO_OLD_AGENTSUPD]
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

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


def reload_stall(agentsupd, runs):
    """agentsupd runs one worker; the directory then gets the largest
    config plus a file with one error at the end, and SIGHUP: the reload
    reads, parses, links and checks everything, then is refused. The time a
    `status` sent right after SIGHUP waits is the loop's stall."""
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
        worst = 0.0
        for _ in range(runs):
            t0 = time.monotonic()
            d.proc.send_signal(signal.SIGHUP)
            subprocess.run(status, capture_output=True, timeout=120)
            worst = max(worst, time.monotonic() - t0)
        d.stop()
        return worst
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
        worst = reload_stall(path, runs if name == "agentsupd" else 2)
        b.AGENTSUPD = saved
        fig = f"{worst * 1000:.1f}ms" if worst is not None else "n/a"
        print(f"longest loop stall, SIGHUP of the largest config "
              f"(refused at its last file), {name}: {fig}")


if __name__ == "__main__":
    main()
