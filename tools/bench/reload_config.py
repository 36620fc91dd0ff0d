#!/usr/bin/python3
"""How long `agentsupd --check` takes on the largest supervisor.d/ the caps
accept (docs/config.md), and on the hostile files of issue 10: one worker of
150,000 keys (1.8 MB) and a "billion laughs" of nested aliases. --check does
exactly what a reload does before it diffs the tree: read, parse, link,
validate. Prints figures; asserts nothing.

    tools/bench/reload_config.py [RUNS] [--before PATH_TO_OLD_AGENTSUPD]
"""
import os
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


def largest(tmp):
    """FILES files of one supervisor each: 10,000 nodes in all, each file
    just under 1 MiB (4 MiB together), under a million YAML nodes."""
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
        for i in range(per_file):
            parts.append(worker_yaml(f"w{f}-{i:05d}", nenv, pad))
        text = "".join(parts)
        assert len(text) <= MAX_FILE, len(text)
        total += len(text)
        with open(os.path.join(tmp, f"{f:02d}.yaml"), "w") as out:
            out.write(text)
    return total, FILES * (per_file + 1)


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


if __name__ == "__main__":
    main()
