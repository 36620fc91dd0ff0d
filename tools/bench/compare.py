#!/usr/bin/python3
"""agentsup against the field: supervisord, runit, s6, daemontools, PM2 and
the kernel's floor, each run by hand under a scratch folder, one after
another, with the same tiny C worker (bench_worker). Prints a table of
medians with each tool's ratio to agentsup, and writes a PNG plot beside it.

    tools/bench/compare            installs the peers, builds, runs this
    compare.py [--quick] [--out DIR] [--only tool,tool]

Measured, each bounded in count and time:
  1. restart latency: SIGKILL of a worker that has run > 2 s -> the first
     instruction of its new instance (median, p99 over 50 kills)
  2. crash loop: starts in the first 10 s of a worker that exits 1 at once,
     and what the tool does after (starts in the next 10 s); agentsup again
     with a circuit (CIRCUIT below: its default config has none)
  3. idle cost with 100 and 1,000 sleeping workers: the supervisor's RSS and
     PSS (all its processes) and CPU seconds over 30 s
  4. bring-up of 100 and 1,000 workers: until every worker has reported
  5. hang detection: worker freezes -> restarted (only tools that can)
  6. the floor: a minimal C fork/exec/wait program, measured the same ways
  7. output capture (agentsup, supervisord, PM2): a worker writing 1 GiB of
     100-byte lines into a rotated log file, against writing it straight to a
     file (capture.py; 128 MiB with --quick)
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import benchlib as b
import capture

HERE = os.path.dirname(os.path.abspath(__file__))
PM2 = os.path.join(HERE, "peers", "node_modules", ".bin", "pm2")


def is_worker(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe") == os.path.realpath(b.WORKER)
    except OSError:
        return False


def kill_workers():
    for p in os.listdir("/proc"):
        if p.isdigit() and is_worker(int(p)):
            try:
                os.kill(int(p), signal.SIGKILL)
            except ProcessLookupError:
                pass


class Tool:
    name = "?"
    hang = False  # can it detect a hung worker?

    def __init__(self, tmp, reports):
        self.tmp = tmp
        self.reports = reports
        self.proc = None

    def env(self, mode, args=""):
        return dict(os.environ, BENCH_SOCK=self.reports.path, BENCH_MODE=mode,
                    BENCH_ARGS=args)

    def root_pid(self):
        return self.proc.pid

    def own_pids(self):
        """The tool's own processes: everything below its root but workers."""
        return [p for p in b.descendants(self.root_pid()) if not is_worker(p)]

    def stop(self):
        for p in self.own_pids():
            try:
                os.kill(p, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        time.sleep(0.5)
        kill_workers()

    def spawn(self, argv, env, **kw):
        self.log = open(os.path.join(self.tmp, f"{self.name}.log"), "w")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     start_new_session=True, **kw)


class Floor(Tool):
    name = "floor"

    def start(self, n, mode, args=""):
        argv = [b.WORKER, mode] + args.split() if mode != "sleep" else [b.WORKER]
        self.spawn([b.FLOOR, str(n)] + argv, self.env(mode, args))


class Agentsup(Tool):
    name = "agentsup"
    hang = True

    def start(self, n, mode, args="", extra=""):
        intensity = "intensity: 100000\nperiod: 1s\n" if mode != "exit" else ""
        if mode != "exit":  # raw restarts: backoff (on by default) off
            extra = ", backoff: none" + extra
        kids = "".join(f"  - {{worker: w{i}, command: [{b.WORKER}, {mode}"
                       f"{''.join(', ' + a for a in args.split())}]{extra}}}\n"
                       for i in range(n))
        d = os.path.join(self.tmp, "supervisor.d")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "bench.yaml"), "w") as f:
            f.write(f"supervisor: root\n{intensity}children:\n{kids}")
        self.spawn([b.AGENTSUPD, "-c", d, "--socket", os.path.join(self.tmp, "ctl.sock")],
                   self.env(mode, args))


class ServiceDir(Tool):
    """daemontools, runit and s6: a scan directory of service/run files,
    each run a symlink to bench_worker (mode from the environment)."""
    scanner = []

    def start(self, n, mode, args=""):
        d = os.path.join(self.tmp, f"{self.name}-services")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for i in range(n):
            s = os.path.join(d, f"w{i}")
            os.makedirs(s)
            os.symlink(os.path.realpath(b.WORKER), os.path.join(s, "run"))
            env = self.env(mode, args)
            with open(os.path.join(s, "bench.env"), "w") as f:
                f.write("".join(f"{k}={env[k]}\n" for k in ("BENCH_SOCK", "BENCH_MODE", "BENCH_ARGS")))
        self.spawn(self.scanner + [d], self.env(mode, args))


class Daemontools(ServiceDir):
    name = "daemontools"
    scanner = ["svscan"]


class Runit(ServiceDir):
    name = "runit"
    scanner = ["runsvdir", "-P"]


class S6(ServiceDir):
    name = "s6"
    scanner = ["s6-svscan", "-c", "4096"]  # its default limit is 500 services

    def stop(self):
        # s6-svscan stops its supervisors on SIGTERM only with -S... ask it
        subprocess.run(["s6-svscanctl", "-t", os.path.join(self.tmp, f"{self.name}-services")],
                       capture_output=True)
        super().stop()


class Supervisord(Tool):
    name = "supervisord"

    def start(self, n, mode, args=""):
        conf = os.path.join(self.tmp, "supervisord.conf")
        with open(conf, "w") as f:
            f.write(f"""[supervisord]
nodaemon=true
logfile={self.tmp}/supervisord.log
pidfile={self.tmp}/supervisord.pid
minfds=4096
minprocs=4096

[program:w]
command={b.WORKER}
process_name=%(program_name)s_%(process_num)d
numprocs={n}
autorestart=true
startsecs=0
stdout_logfile=NONE
stderr_logfile=NONE
""")
        self.spawn(["supervisord", "-n", "-c", conf], self.env(mode, args))


class Pm2(Tool):
    name = "pm2"

    def start(self, n, mode, args=""):
        self.home = os.path.join(self.tmp, "pm2")
        os.makedirs(self.home, exist_ok=True)
        eco = os.path.join(self.tmp, "ecosystem.json")
        env = self.env(mode, args)
        with open(eco, "w") as f:
            json.dump({"apps": [{"name": f"w{i}", "script": b.WORKER,
                                 "interpreter": "none", "autorestart": True,
                                 "env": {k: env[k] for k in ("BENCH_SOCK", "BENCH_MODE", "BENCH_ARGS")}}
                                for i in range(n)]}, f)
        env["PM2_HOME"] = self.home
        self.env_pm2 = env
        self.spawn([PM2, "start", eco], env)
        self.proc.wait(timeout=300)

    def root_pid(self):
        with open(os.path.join(self.home, "pm2.pid")) as f:
            return int(f.read())

    def stop(self):
        subprocess.run([PM2, "kill"], env=self.env_pm2, capture_output=True, timeout=120)
        time.sleep(0.5)
        kill_workers()


def all_tools():
    tools = [Floor, Agentsup, Daemontools, Runit, S6, Supervisord, Pm2]
    return [t for t in tools if t is Floor or t is Agentsup or
            shutil.which({"daemontools": "svscan", "runit": "runsvdir", "s6": "s6-svscan",
                          "supervisord": "supervisord"}.get(t.name, "x"))
            or (t is Pm2 and os.path.exists(PM2))]


def wait_reports(reports, n, timeout):
    t_end = time.monotonic() + timeout
    seen = set()
    while len(seen) < n:
        _, pid, _ = reports.get(max(0.01, t_end - time.monotonic()), kind=0)
        seen.add(pid)
    return time.monotonic_ns()


def m_restart(tool, kills, run_for):
    tool.start(1, "sleep")
    try:
        _, pid, _ = tool.reports.get(60, kind=0)
        return b.summary(b.restart_latency(tool.reports, pid, kills, run_for, timeout=30))
    finally:
        tool.stop()


# agentsup's crash loop again, with the circuit docs/config.md suggests for a
# worker whose failures should stay its own (default config: none)
CIRCUIT = ", circuit: {failures: 3, window: 1m, open: 2s, open_max: 8s}"


def m_crash(tool, extra=""):
    t0 = time.monotonic()
    if extra:
        tool.start(1, "exit", extra=extra)
    else:
        tool.start(1, "exit")
    first = later = 0
    try:
        while time.monotonic() - t0 < 20:
            try:
                tool.reports.get(max(0.01, t0 + 20 - time.monotonic()), kind=0)
            except TimeoutError:
                break
            if time.monotonic() - t0 < 10:
                first += 1
            else:
                later += 1
        alive = tool.proc.poll() is None if not isinstance(tool, Pm2) else True
        return {"first10": first, "next10": later, "alive": alive,
                "exit": None if alive else tool.proc.returncode}
    finally:
        tool.stop()


def m_idle(tool, n, secs):
    t0 = time.monotonic_ns()
    tool.start(n, "sleep")
    try:
        t1 = wait_reports(tool.reports, n, 300)
        time.sleep(2)
        pids = tool.own_pids()
        rss, pss = b.rss_kib(pids), b.pss_kib(pids)
        cpu0 = sum(cpu(p) for p in pids)
        time.sleep(secs)
        cpu1 = sum(cpu(p) for p in tool.own_pids())
        return {"bringup_s": (t1 - t0) / 1e9, "rss_kib": rss, "pss_kib": pss,
                "procs": len(pids), "cpu_s": cpu1 - cpu0}
    finally:
        tool.stop()


def cpu(pid):
    try:
        return b.cpu_seconds(pid)
    except OSError:
        return 0.0


def m_hang(tool, samples=10):
    """A worker stops beating (it reports that moment, kind 3) -> the first
    instruction of its new instance. The deadline is 300 ms after the last
    beat; then SIGUSR1 (the worker exits on it, as if it had dumped stacks)."""
    tool.start(1, "hang", "5 100", extra=", heartbeat: 100ms, heartbeat_timeout: 300ms")
    out = []
    try:
        while len(out) < samples:
            t_froze, _, _ = tool.reports.get(30, kind=3)
            t_new, _, _ = tool.reports.get(30, kind=0)
            out.append(t_new - t_froze)
        return b.summary(out)
    finally:
        tool.stop()


def m_capture(name, size):
    """The tool's capture throughput, beside a direct write just before."""
    r = capture.measure(name, size)
    direct = capture.measure("direct", size)
    if "error" not in r and "error" not in direct:
        r["direct_mb_s"] = direct["mb_s"]
    return r


def capture_lines(results):
    """Output capture, a line per tool that captures (capture.py)."""
    ours = (results.get("agentsup") or {}).get("capture") or {}
    out = []
    for t, r in results.items():
        c = r.get("capture")
        if not c:
            continue
        if "error" in c:
            out.append(f"note: {t} capture: {c['error']}")
            continue
        of = f", {c['mb_s'] / c['direct_mb_s']:.0%} of direct" if c.get("direct_mb_s") else ""
        vs = (f", agentsup {ours['mb_s'] / c['mb_s']:.2f}x" if t != "agentsup" and ours.get("mb_s")
              else "")
        out.append(f"output capture, {t}: {c['mb_s']:,.0f} MB/s{of}{vs}; "
                   f"{c['cpu_s_per_mib'] * 1000:.2f} ms CPU per MiB ({c['bytes'] >> 20} MiB "
                   f"of 100-byte lines into a file rotated at 10 MiB; PM2 does not rotate)")
    return out


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}{unit}" if v < 100 else f"{v:,.0f}{unit}"
    return f"{v:,}{unit}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10 kills, 10 s idle: a smoke run")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--only", default="")
    ap.add_argument("--merge", action="store_true",
                    help="update the tools run in out/compare.json, keep the rest")
    a = ap.parse_args()
    kills, run_for, idle_s = (10, 2.1, 10) if a.quick else (50, 2.1, 30)
    capture_size = (128 if a.quick else 1024) << 20
    os.makedirs(a.out, exist_ok=True)
    results = {}
    if a.merge and os.path.exists(os.path.join(a.out, "compare.json")):
        with open(os.path.join(a.out, "compare.json")) as f:
            results = json.load(f)
    for cls in all_tools():
        if a.only and cls.name not in a.only.split(","):
            continue
        r = results[cls.name] = {}
        for what in ("restart", "crash", "crash_circuit", "idle100", "idle1000",
                     "hang", "capture"):
            if what == "hang" and not cls.hang:
                continue
            if what == "crash_circuit" and cls is not Agentsup:
                continue
            if what == "capture":
                if cls.name in capture.RUNNERS:
                    print(f"{cls.name}: capture ...", file=sys.stderr, flush=True)
                    r[what] = m_capture(cls.name, capture_size)
                continue
            tmp = b.scratch()
            reports = b.Reports(tmp)
            tool = cls(tmp, reports)
            print(f"{cls.name}: {what} ...", file=sys.stderr, flush=True)
            try:
                if what == "restart":
                    r[what] = m_restart(tool, kills, run_for)
                elif what == "crash":
                    r[what] = m_crash(tool)
                elif what == "crash_circuit":
                    r[what] = m_crash(tool, CIRCUIT)
                elif what.startswith("idle"):
                    r[what] = m_idle(tool, int(what[4:]), idle_s)
                else:
                    r[what] = m_hang(tool)
            except Exception as e:  # a tool that fails a measurement is reported, not fatal
                r[what] = {"error": str(e)}
                tool.stop()
            finally:
                reports.close()
                b.cleanup(tmp)
    report(results, a.out, kills, idle_s)


def report(results, out, kills, idle_s):
    ours = results.get("agentsup", {})

    def get(tool, what, key):
        v = results.get(tool, {}).get(what, {})
        return v.get(key) if isinstance(v, dict) else None

    def ratio(tool, what, key):
        x, y = get(tool, what, key), ours.get(what, {}).get(key) if ours else None
        return f"{x / y:.2f}x" if x is not None and y else "-"

    lines = [f"machine: {b.machine()}",
             f"restart: {kills} kills after > 2 s of running; idle: {idle_s} s", "",
             "| tool | restart median ms | p99 ms | vs agentsup | crash loop: starts 0-10 s / 10-20 s | "
             "idle RSS 100 | idle RSS 1000 (PSS) | vs agentsup | CPU s idle 1000 | bring-up 100 | bring-up 1000 | vs agentsup |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    def crash_loop(c):
        return (f"{c.get('first10')} / {c.get('next10')}"
                + ("" if c.get("alive", True) else f" (exited {c.get('exit')})")) if "first10" in c else "-"

    for t in results:
        crash = crash_loop(results[t].get("crash", {}))
        if "first10" in results[t].get("crash_circuit", {}):
            crash += f"; with a circuit: {crash_loop(results[t]['crash_circuit'])}"
        lines.append(
            f"| {t} | {fmt(get(t, 'restart', 'median'))} | {fmt(get(t, 'restart', 'p99'))} | "
            f"{ratio(t, 'restart', 'median')} | {crash} | "
            f"{fmt(get(t, 'idle100', 'rss_kib'), ' KiB')} | "
            f"{fmt(get(t, 'idle1000', 'rss_kib'), ' KiB')} ({fmt(get(t, 'idle1000', 'pss_kib'), ' KiB')}) | "
            f"{ratio(t, 'idle1000', 'rss_kib')} | {fmt(get(t, 'idle1000', 'cpu_s'))} | "
            f"{fmt(get(t, 'idle100', 'bringup_s'), ' s')} | {fmt(get(t, 'idle1000', 'bringup_s'), ' s')} | "
            f"{ratio(t, 'idle1000', 'bringup_s')} |")
    h = ours.get("hang") if ours else None
    if h and "median" in h:
        lines += ["", f"hang detection (agentsup only; the others have no heartbeat): "
                      f"worker freezes -> restarted in {h['median']:.1f} ms median "
                      f"(p99 {h['p99']:.1f} ms) with heartbeat_timeout 300 ms"]
    lines += [""] + capture_lines(results)
    errors = [(t, w, v["error"]) for t in results for w, v in results[t].items()
              if isinstance(v, dict) and "error" in v and w != "capture"]
    for t, w, e in errors:
        lines.append(f"note: {t} {w}: {e}")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(out, "compare.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(out, "compare.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot(results, out)


def plot(results, out):
    if shutil.which("gnuplot") is None:
        return
    dat = os.path.join(out, "compare.dat")
    with open(dat, "w") as f:
        for t, r in results.items():
            lat = (r.get("restart") or {}).get("median")
            rss = (r.get("idle1000") or {}).get("rss_kib")
            f.write(f"{t} {lat if lat is not None else 'NaN'} "
                    f"{rss / 1024 if rss is not None else 'NaN'}\n")
    script = f"""
set terminal pngcairo size 1100,450 noenhanced
set output '{out}/compare.png'
set multiplot layout 1,2
set style fill solid 0.8
set boxwidth 0.6
set grid y
set logscale y
set xtics rotate by -30
set title 'restart latency, median (ms, log scale)'
plot '{dat}' using 0:2:xtic(1) with boxes notitle lc rgb '#3572b0'
set title 'idle RSS, 1,000 workers (MiB, all its processes, log)'
plot '{dat}' using 0:3:xtic(1) with boxes notitle lc rgb '#d9822b'
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=False)


if __name__ == "__main__":
    main()
