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
    tmp = b.scratch()
    reports = b.Reports(tmp)
    kids = "".join(
        f"  - {{worker: s{i}, command: [{b.WORKER}, stall, '3', '{beat}'], "
        f"heartbeat: {beat}ms, heartbeat_timeout: 10s, "
        f"stall_timeout: {stall}ms, stall_grace: 10s, backoff: none}}\n"
        for i in range(workers))
    d = b.Agentsupd(tmp, f"supervisor: root\nintensity: 100000\nperiod: 1s\n"
                         f"children:\n{kids}", env={"BENCH_SOCK": reports.path})
    lat = []
    try:
        while len(lat) < samples:
            t, _, _ = reports.get(30, kind=1)
            lat.append(t - stall * 1_000_000)  # past the deadline
    finally:
        d.stop()
        reports.close()
        b.cleanup(tmp)
    s = b.summary(lat)
    print(f"stall detection: deadline (last step + {stall} ms, beats every "
          f"{beat} ms) -> nudge received, {samples} stalls over {workers} workers")
    print(f"machine: {b.machine()}")
    print(f"median {s['median']:.2f} ms   p99 {s['p99']:.2f} ms   "
          f"min {s['min']:.2f} ms   max {s['max']:.2f} ms")


if __name__ == "__main__":
    main()
