#!/usr/bin/python3
"""Listing a large task store: what `dead`, `tasks` and their `-n N` cost
when the dead letters are in the state store alone (agentsupd restarted
on it), each with large inputs (a spawn's args may be a frame's size).
The store is read on agentsupd's loop, so each figure is also about how
long supervision waits while it answers.

  1. one task done, then TASKS dead letters, each with inputs of SIZE KiB,
     spawned into a pool with a state_dir; agentsupd stopped and started
     on the same store;
  2. wall time of `agentsupctl --json` for `dead -n 1`, `tasks -n 1`,
     `tasks --state dead -n 1` (the newest, read in an index's order),
     `tasks --state done -n 1` (one task done, the oldest: every entry
     of the index read, no row but its), `tasks` (a line's worth each: no
     inputs read) and `dead` (whole records: every input read and sent),
     the median of RUNS.

    tools/bench/listing.py [TASKS] [SIZE_KIB] [RUNS]     default 200 480 5
"""
import json
import os
import sys
import time

import benchlib as b
from spawn import CTL, Control, timed, wait_socket


def pool_yaml(state):
    return f"""agentsupd:
  state_dir: {state}
  max_frame: 16777216
---
supervisor: root
children:
  - supervisor: pool
    max_children: 100
    template:
      command: [/bin/sh, -c, 'test "$1" = ok', task]
      restart: temporary
      backoff: none
"""


def dead_count(sock):
    _, r = timed([CTL, "--socket", sock, "--json", "tasks", "--state", "dead"])
    return len(json.loads(r.stdout or b"[]"))


def fill(tmp, state, n, size_kib):
    """n dead letters of size_kib KiB of inputs each, in the store."""
    d = b.Agentsupd(tmp, pool_yaml(state))
    sock = os.path.join(tmp, "ctl.sock")
    try:
        c = Control(sock)
        arg = "x" * (size_kib * 256)  # four of them
        c.send("spawn", ["pool", {"key": "first", "args": ["ok"]}])
        m = c.recv()  # done, the oldest: a state few rows have
        assert m.get("ok"), m
        for lo in range(0, n, 50):  # under max_children at a time
            for i in range(lo, min(n, lo + 50)):  # each answer read: it
                c.send("spawn", ["pool", {"key": f"k{i:05}",  # has the
                                          "args": [arg] * 4}])  # inputs
                m = c.recv()
                assert m.get("ok"), m
            deadline = time.monotonic() + 60
            while dead_count(sock) < min(n, lo + 50):  # "first": done
                assert time.monotonic() < deadline, "tasks never ended"
                time.sleep(0.1)
        c.s.close()
    finally:
        d.stop()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    size_kib = int(sys.argv[2]) if len(sys.argv) > 2 else 480
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    print(f"machine: {b.machine()}")
    tmp, state = b.scratch(), b.scratch()
    try:
        fill(tmp, state, n, size_kib)
        size = sum(os.path.getsize(os.path.join(state, f))
                   for f in os.listdir(state))
        print(f"{n} dead letters of {size_kib} KiB of inputs each; store "
              f"{size / (1 << 20):.0f} MiB; agentsupd restarted on it")
        d = b.Agentsupd(tmp, pool_yaml(state))
        sock = os.path.join(tmp, "ctl.sock")
        try:
            wait_socket(sock)
            for args in (["dead", "-n", "1"], ["tasks", "-n", "1"],
                         ["tasks", "--state", "dead", "-n", "1"],
                         ["tasks", "--state", "done", "-n", "1"], ["tasks"],
                         ["dead"]):
                ms, out = [], 0
                for _ in range(runs):
                    t, r = timed([CTL, "--socket", sock, "--json", *args])
                    if r.returncode != 0:
                        sys.exit(f"{args}: {r.stderr.decode()}")
                    ms.append(t)
                    out = len(r.stdout)
                ms.sort()
                print(f"`agentsupctl --json {' '.join(args)}`: median "
                      f"{ms[len(ms) // 2]:.1f} ms, min {ms[0]:.1f} ms "
                      f"({out / (1 << 20):.1f} MiB of JSON)")
        finally:
            d.stop()
    finally:
        b.cleanup(tmp)
        b.cleanup(state)


if __name__ == "__main__":
    main()
