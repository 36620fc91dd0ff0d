#!/usr/bin/python3
"""Heartbeat ingest: agentsupd's CPU per heartbeat with many workers beating
fast, and whether its memory grows over the run.

    tools/bench/heartbeat.py [--progress] [WORKERS] [BEATS_PER_S] [BATCH] [SECONDS]
        default 1000 100 1 10: 1,000 workers x 100 beats/s, one frame per
        write; BATCH 10 sends ten frames per write (ten per wake-up).
        --progress: every beat a step (steps, tokens, cost, a new state),
        and every worker with stall_timeout, loop and budget (DESIGN §10),
        under a root with a budget too: progress analysis on throughout.
        As root, agentsupd runs at nice -5 so that 1,000 busy workers on a
        small machine cannot starve the process being measured.
"""
import json
import os
import subprocess
import sys
import time

import benchlib as b


def total_beats(sock):
    out = subprocess.run([os.path.join(b.BUILD, "agentsupctl"), "--socket", sock,
                          "--json", "status"], capture_output=True, text=True,
                         )
    if out.returncode != 0:
        raise RuntimeError("agentsupctl: " + out.stderr.strip())
    out = out.stdout
    return sum(n["beats"] or 0 for n in json.loads(out))


def main():
    progress = "--progress" in sys.argv
    if progress:
        sys.argv.remove("--progress")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rate = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    secs = float(sys.argv[4]) if len(sys.argv) > 4 else 10
    tmp = b.scratch()
    reports = b.Reports(tmp)
    watch = (", stall_timeout: 1h, loop: {repeats: 5},"
             " budget: {tokens: 1000000000000, cost: 1000000}" if progress else "")
    # the daemon runs at nice -5 (below); its workers would inherit it, so
    # `nice -n 5` puts them back at 0, under the process being measured
    boost = os.geteuid() == 0
    prefix = "nice, -n, '5', " if boost else ""
    kids = "".join(f"  - {{worker: w{i}, command: [{prefix}{b.WORKER}, "
                   f"{'progress' if progress else 'beat'}, '{rate // batch}', "
                   f"'{batch}'], heartbeat: 2s{watch}}}\n" for i in range(n))
    # 1,000 processes waking 100 times a second overload 2 cores; run the
    # daemon above its workers (as a supervisor should be) so that what is
    # measured is its cost per beat, not the scheduler's starvation of it
    root_budget = "budget: {tokens: 1000000000000000}\n" if progress else ""
    d = b.Agentsupd(tmp, f"supervisor: root\nintensity: 100000\n{root_budget}"
                         f"children:\n{kids}",
                    env={"BENCH_SOCK": reports.path}, nice=-5 if boost else 0)
    sock = os.path.join(tmp, "ctl.sock")
    try:
        for _ in range(n):
            reports.get(30)
        time.sleep(2)  # every worker beating, buffers warm
        total_beats(sock)  # a status of the whole tree has been served once
        rss0 = b.rss_kib([d.proc.pid])
        beats0, cpu0, t0 = total_beats(sock), b.cpu_seconds(d.proc.pid), time.monotonic()
        rss = [rss0]
        for _ in range(int(secs)):
            time.sleep(secs / int(secs))
            rss.append(b.rss_kib([d.proc.pid]))
        beats1, cpu1, t1 = total_beats(sock), b.cpu_seconds(d.proc.pid), time.monotonic()
        rss1 = b.rss_kib([d.proc.pid])
    finally:
        d.stop()
        reports.close()
        b.cleanup(tmp)
    beats = beats1 - beats0
    cpu = cpu1 - cpu0
    print(f"heartbeat ingest: {n} workers x {rate} beats/s, {batch} per write, "
          f"{t1 - t0:.1f} s measured"
          + (", progress analysis on (stall + loop + budget)" if progress else ""))
    print(f"machine: {b.machine()}")
    print(f"beats ingested:     {beats} ({beats / (t1 - t0):,.0f}/s)")
    print(f"agentsupd CPU:      {cpu:.2f} s ({100 * cpu / (t1 - t0):.1f}% of one core)")
    if beats and cpu > 0:
        print(f"CPU per beat:       {1e6 * cpu / beats:.2f} us")
        print(f"capacity, one core: {beats / cpu:,.0f} beats/s")
    print(f"agentsupd RSS:      {rss0} KiB -> {rss1} KiB ({rss1 - rss0:+d} KiB); "
          f"sampled each second: min {min(rss)} max {max(rss)} KiB")


if __name__ == "__main__":
    main()
