#!/usr/bin/python3
"""Output capture throughput: one worker (bench_capture) writes SIZE bytes of
100-byte lines; how fast do they land in a log file rotated at 10 MiB keeping
5, carried by agentsupd (log_dir), by supervisord (stdout_logfile) and by
PM2 (out_file; PM2 itself does not rotate), against the same program
writing straight to a file ("direct") and against the floor of carrying
("floor": bench_capture_floor, a C program that only reads the pipe 1 MiB
at a time and writes whole lines to a file rotated the same way). Prints
MB/s, the ratios to both, and each carrier's CPU seconds per MiB (its
/proc/PID/stat). Every carrier runs on the same 2 cores as the writer, so
none can be ahead of another by more than the floor is.

    capture.py [--size 1GiB] [--runs 3]
               [--only agentsup,agentsup+time,supervisord,pm2]
               [--stderr null|file]

Each run measures every carrier once, every other run in the reverse
order; the table shows medians over the runs and their lowest and highest
(a shared machine is noisy); ratios are taken within each run.

The clock runs from the writer's first byte (it stamps the time) to its last
line ("END") being in the log file; the writer then waits to be stopped (PM2
loses what it has not written when a process exits). agentsupd's own stderr, where it echoes
each line as "w | ...", goes to /dev/null by default (supervisord and PM2 echo
nothing); --stderr file measures it writing them to a file as well.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

import benchlib as b

HERE = os.path.dirname(os.path.abspath(__file__))
WRITER = os.path.join(b.BUILD, "bench_capture")
FLOOR = os.path.join(b.BUILD, "bench_capture_floor")
PM2 = os.path.join(HERE, "peers", "node_modules", ".bin", "pm2")
LOG_MAX = 10 << 20
LOG_KEEP = 5
TIMEOUT = 600


def parse_size(s):
    for suffix, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if s.endswith(suffix):
            return int(s[:-len(suffix)]) << shift
    return int(s)


def wait_end(path, alive, timeout=TIMEOUT):
    """Until the file at path ends in END\\n; its time (ns since the epoch)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                if f.tell() >= 4:
                    f.seek(-4, os.SEEK_END)
                    if f.read(4) == b"END\n":
                        return time.time_ns()
        except FileNotFoundError:
            pass
        if not alive():
            raise RuntimeError("the supervisor exited")
        time.sleep(0.002)
    raise TimeoutError(f"no END in {path}")


def stamp_ns(path):
    with open(path) as f:
        return int(f.read())


def cpu(pid):
    try:
        return b.cpu_seconds(pid)
    except OSError:
        return float("nan")


def result(size, t0, t1, cpu_s=None):
    secs = (t1 - t0) / 1e9
    r = {"bytes": size, "secs": secs, "mb_s": size / 1e6 / secs}
    if cpu_s is not None:
        r["cpu_s"] = cpu_s
        r["cpu_s_per_mib"] = cpu_s / (size / (1 << 20))
    return r


def run_direct(tmp, size):
    st = os.path.join(tmp, "stamp")
    with open(os.path.join(tmp, "direct.log"), "wb") as f:
        subprocess.run([WRITER, str(size), st], stdout=f, check=True)
    return result(size, stamp_ns(st), time.time_ns())


def run_floor(tmp, size):
    """The least a carrier must do: bench_capture_floor reads the pipe 1 MiB
    at a time and writes whole lines to a file rotated the same way."""
    st, logs = os.path.join(tmp, "stamp"), os.path.join(tmp, "logs")
    os.makedirs(logs)
    w = subprocess.Popen([WRITER, str(size), st, "linger"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE)
    p = subprocess.Popen([FLOOR, logs, "w", str(LOG_MAX), str(LOG_KEEP)], stdin=w.stdout)
    w.stdout.close()
    try:
        t1 = wait_end(os.path.join(logs, "w.log"), lambda: p.poll() is None)
        return result(size, stamp_ns(st), t1, cpu(p.pid))
    finally:
        w.send_signal(signal.SIGTERM)
        w.wait(timeout=60)
        p.wait(timeout=60)


def run_agentsup(tmp, size, stderr="null", log_time=False):
    st, logs = os.path.join(tmp, "stamp"), os.path.join(tmp, "logs")
    conf = os.path.join(tmp, "supervisor.d")
    os.makedirs(logs)
    os.makedirs(conf)
    with open(os.path.join(conf, "bench.yaml"), "w") as f:
        f.write(f"agentsupd:\n  log_dir: {logs}\n  log_max: {LOG_MAX}\n"
                f"  log_keep: {LOG_KEEP}\n"
                f"  log_time: {'true' if log_time else 'false'}\n---\n"
                f"worker: w\nrestart: temporary\n"
                f"command: [{WRITER}, '{size}', {st}, linger]\n")
    err = open(os.devnull if stderr == "null" else os.path.join(tmp, "agentsupd.err"), "w")
    p = subprocess.Popen([b.AGENTSUPD, "-c", conf, "--socket", os.path.join(tmp, "ctl.sock")],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        t1 = wait_end(os.path.join(logs, "w.log"), lambda: p.poll() is None)
        return result(size, stamp_ns(st), t1, cpu(p.pid))
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
        err.close()


def run_supervisord(tmp, size):
    st, log = os.path.join(tmp, "stamp"), os.path.join(tmp, "w.log")
    conf = os.path.join(tmp, "supervisord.conf")
    with open(conf, "w") as f:
        f.write(f"""[supervisord]
nodaemon=true
logfile={tmp}/supervisord.log
pidfile={tmp}/supervisord.pid

[program:w]
command={WRITER} {size} {st} linger
autorestart=false
startsecs=0
stdout_logfile={log}
stdout_logfile_maxbytes={LOG_MAX}
stdout_logfile_backups={LOG_KEEP}
stderr_logfile=NONE
""")
    p = subprocess.Popen(["supervisord", "-n", "-c", conf], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t1 = wait_end(log, lambda: p.poll() is None)
        return result(size, stamp_ns(st), t1, cpu(p.pid))
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)


def run_pm2(tmp, size):
    st, log = os.path.join(tmp, "stamp"), os.path.join(tmp, "w.log")
    home = os.path.join(tmp, "pm2")
    os.makedirs(home)
    eco = os.path.join(tmp, "ecosystem.json")
    with open(eco, "w") as f:
        json.dump({"apps": [{"name": "w", "script": WRITER, "args": [str(size), st, "linger"],
                             "interpreter": "none", "autorestart": False,
                             "out_file": log, "error_file": os.path.join(tmp, "w.err"),
                             "merge_logs": True}]}, f)
    env = dict(os.environ, PM2_HOME=home)
    try:
        subprocess.run([PM2, "start", eco], env=env, capture_output=True, check=True,
                       timeout=300)
        with open(os.path.join(home, "pm2.pid")) as f:
            god = int(f.read())
        t1 = wait_end(log, lambda: os.path.exists(f"/proc/{god}"))
        return result(size, stamp_ns(st), t1, cpu(god))
    finally:
        subprocess.run([PM2, "kill"], env=env, capture_output=True, timeout=120)


RUNNERS = {
    "direct": run_direct,
    "floor": run_floor,
    "agentsup": run_agentsup,
    # log_time: each line of the file after its time (off by default)
    "agentsup+time": lambda tmp, size, **kw: run_agentsup(tmp, size, log_time=True, **kw),
    "supervisord": run_supervisord,
    "pm2": run_pm2,
}


def available(name):
    if name == "supervisord":
        return shutil.which("supervisord") is not None
    if name == "pm2":
        return os.path.exists(PM2)
    return True


def measure(name, size, **kw):
    """One run in a scratch folder; the result, or {"error": ...}."""
    tmp = b.scratch()
    try:
        return RUNNERS[name](tmp, size, **kw)
    except Exception as e:  # reported, not fatal
        return {"error": str(e)}
    finally:
        b.cleanup(tmp)


def ratio(runs, num, den):
    """Per run (both measured in it), num's MB/s over den's: a list."""
    out = []
    for x, y in zip(runs.get(num, []), runs.get(den, [])):
        if "error" not in x and "error" not in y:
            out.append(x["mb_s"] / y["mb_s"])
    return out


def spread(xs, fmt):
    """median (min-max) of xs, each formatted by fmt."""
    if not xs:
        return "-"
    if len(xs) == 1:
        return fmt(xs[0])
    return f"{fmt(statistics.median(xs))} ({fmt(min(xs))}–{fmt(max(xs))})"


def lines(runs):
    """The table as markdown lines: medians over the runs and, in
    parentheses, the lowest and highest run. Ratios are taken within each
    run (the carriers of one run share the machine's mood), then summed up
    the same way. "floor vs it" is the most any carrier that reads and
    writes could be ahead of that one in the same run."""
    pct = lambda x: f"{x:.0%}"
    times = lambda x: f"{x:.2f}x"
    refs = ("direct", "floor")
    out = ["| carrier | MB/s | of direct | of floor | agentsup vs it | floor vs it "
           "| CPU ms / MiB |",
           "|---|---|---|---|---|---|---|"]
    for name, rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            out.append(f"| {name} | error: {rs[-1]['error']} | | | | | |")
            continue
        mb = spread([r["mb_s"] for r in ok], lambda x: f"{x:,.0f}")
        of = spread(ratio(runs, name, "direct"), pct) if name != "direct" else "100%"
        of_floor = spread(ratio(runs, name, "floor"), pct) if name != "floor" else "100%"
        vs = spread(ratio(runs, "agentsup", name), times) \
            if name not in refs + ("agentsup",) else "-"
        floor_vs = spread(ratio(runs, "floor", name), times) \
            if name not in refs else "-"
        per = spread([r["cpu_s_per_mib"] * 1000 for r in ok if "cpu_s_per_mib" in r],
                     lambda x: f"{x:.2f}")
        out.append(f"| {name} | {mb} | {of} | {of_floor} | {vs} | {floor_vs} | {per} |")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="256MiB", help="bytes written (e.g. 1GiB)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="")
    ap.add_argument("--stderr", choices=("null", "file"), default="null",
                    help="where agentsupd's own stderr (the echoed lines) goes")
    a = ap.parse_args()
    size = parse_size(a.size)
    names = []
    for name in RUNNERS:
        if a.only and name not in ("direct", "floor") and name not in a.only.split(","):
            continue
        if not available(name):
            print(f"{name}: not installed (tools/bench/compare installs it)",
                  file=sys.stderr)
            continue
        names.append(name)
    runs = {name: [] for name in names}
    for i in range(a.runs):
        # every other run in the reverse order: none is always first
        for name in names if i % 2 == 0 else names[::-1]:
            print(f"run {i + 1}/{a.runs}: {name}: {size >> 20} MiB ...",
                  file=sys.stderr, flush=True)
            kw = {"stderr": a.stderr} if name.startswith("agentsup") else {}
            runs[name].append(measure(name, size, **kw))
    print(f"machine: {b.machine()}")
    print(f"{size >> 20} MiB of 100-byte lines into a log file rotated at "
          f"{LOG_MAX >> 20} MiB keeping {LOG_KEEP} (PM2: not rotated); "
          f"agentsupd's stderr: {'/dev/null' if a.stderr == 'null' else 'a file'}; "
          f"medians of {a.runs} runs (lowest–highest)")
    print("\n".join(lines(runs)))


if __name__ == "__main__":
    main()
