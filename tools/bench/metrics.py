#!/usr/bin/python3
"""/metrics with many workers: how long a scrape takes and how big it is,
and whether an idle agentsupd with metrics on wakes up at all.

    tools/bench/metrics.py [WORKERS] [SCRAPES] [IDLE_SECONDS]
        default 1000 50 5. The workers are plain `sleep`s (no heartbeat), so
        between scrapes nothing at all should happen in agentsupd: the idle
        check counts its system calls with `strace -c -f` (when installed).
"""
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

import benchlib as b


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    t0 = time.monotonic_ns()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                timeout=30) as r:
        body = r.read()
    return time.monotonic_ns() - t0, body.decode()


def gauge(body, name):
    m = re.search(rf"^{name} (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def idle_syscalls(pid, secs):
    """System calls agentsupd made in secs of idling, or None without
    strace. strace -c prints its table on stderr when detached."""
    if shutil.which("strace") is None:
        return None, ""
    p = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    time.sleep(secs)
    p.terminate()
    _, err = p.communicate(timeout=30)
    for line in err.splitlines():
        f = line.split()
        if f and f[-1] == "total":  # % time, seconds, usecs/call, calls
            return int(f[3]), err
    # no table at all: attached and detached without a single call
    return (0 if "detached" in err else None), err


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    scrapes = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    idle = float(sys.argv[3]) if len(sys.argv) > 3 else 5
    port = free_port()
    tmp = b.scratch()
    kids = "".join(f"  - {{worker: w{i}, command: [sleep, '100000']}}\n"
                   for i in range(n))
    d = b.Agentsupd(tmp, f"agentsupd:\n  metrics: 127.0.0.1:{port}\n---\n"
                    f"supervisor: root\nintensity: 100000\nchildren:\n{kids}")
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _, body = scrape(port)
                if gauge(body, "agentsup_workers_live") == n:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not all start")
            time.sleep(0.1)
        times, renders = [], []
        for _ in range(scrapes):
            t, body = scrape(port)
            times.append(t / 1e6)
            renders.append(gauge(body, "agentsup_scrape_render_seconds") * 1e3)
        rss = gauge(body, "agentsup_process_resident_memory_bytes")
        time.sleep(1)  # the last client's connection is gone
        calls, err = idle_syscalls(d.proc.pid, idle)
        print(f"machine: {b.machine()}")
        print(f"workers: {n}, body: {len(body.encode())} bytes, "
              f"{body.count(chr(10))} lines")
        print(f"scrape (HTTP round trip, {scrapes}x): median "
              f"{statistics.median(times):.2f} ms, p99 {b.pct(times, 99):.2f} ms, "
              f"max {max(times):.2f} ms")
        print(f"render inside agentsupd: median {statistics.median(renders):.2f} "
              f"ms, max {max(renders):.2f} ms")
        print(f"agentsupd RSS after the scrapes: {rss / 1024:.0f} KiB")
        if calls is None:
            print(f"idle system calls: not measured ({err.strip()[:200]})")
        else:
            print(f"idle system calls in {idle:.0f}s (strace -c -f): {calls}")
    finally:
        d.stop()
        b.cleanup(tmp)


if __name__ == "__main__":
    main()
