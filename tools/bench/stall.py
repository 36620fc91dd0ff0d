#!/usr/bin/python3
"""Stall detection latency (DESIGN §10): from a worker's stall deadline (its
last step + stall_timeout) to the nudge it receives, while it keeps beating
without progress. The issue's target: within stall_timeout + 20 ms (p99).

    tools/bench/stall.py [SAMPLES] [WORKERS] [STALL_MS] [BEAT_MS]
        default 200 20 300 50
"""
import sys

import benchlib as b


def main():
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    stall = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    beat = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    kids = "".join(
        f"  - {{worker: s{i}, command: [{b.WORKER}, stall, '3', '{beat}'], "
        f"heartbeat: {beat}ms, heartbeat_timeout: 10s, "
        f"stall_timeout: {stall}ms, stall_grace: 10s, backoff: none}}\n"
        for i in range(workers))
    s = b.summary(b.past_deadline(kids, stall, samples))
    print(f"stall detection: deadline (last step + {stall} ms, beats every "
          f"{beat} ms) -> nudge received, {samples} stalls over {workers} workers")
    print(f"machine: {b.machine()}")
    print(f"median {s['median']:.2f} ms   p99 {s['p99']:.2f} ms   "
          f"min {s['min']:.2f} ms   max {s['max']:.2f} ms")


if __name__ == "__main__":
    main()
