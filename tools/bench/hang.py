#!/usr/bin/python3
"""Hang detection latency: from a worker's heartbeat deadline (its last beat
+ heartbeat_timeout) to the SIGUSR1 agentsupd sends it.

    tools/bench/hang.py [SAMPLES] [WORKERS] [TIMEOUT_MS]    default 200 20 200
"""
import sys

import benchlib as b


def main():
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    timeout = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    beat = max(1, timeout // 4)
    kids = "".join(
        f"  - {{worker: h{i}, command: [{b.WORKER}, hang, '5', '{beat}'], "
        f"heartbeat: {beat}ms, heartbeat_timeout: {timeout}ms, backoff: none}}\n"
        for i in range(workers))
    s = b.summary(b.past_deadline(kids, timeout, samples))
    print(f"hang detection: deadline (last beat + {timeout} ms) -> SIGUSR1 received, "
          f"{samples} hangs over {workers} workers")
    print(f"machine: {b.machine()}")
    print(f"median {s['median']:.2f} ms   p99 {s['p99']:.2f} ms   "
          f"min {s['min']:.2f} ms   max {s['max']:.2f} ms")


if __name__ == "__main__":
    main()
