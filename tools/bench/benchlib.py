"""Shared by the benchmark programs: the report socket, statistics, and
starting agentsupd on a scratch config. Benchmarks print figures; they never
assert on time."""
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import tempfile
import time

def _die_with_harness():
    """In the child: SIGTERM when the harness dies (a `timeout` of the
    benchmark, a ^C), so that no daemon and its fleet outlive a run."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _exit_on_term(signum, frame):
    raise SystemExit(128 + signum)  # finally blocks stop what they started


signal.signal(signal.SIGTERM, _exit_on_term)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("AGENTSUP_BUILD", os.path.join(ROOT, "build"))
WORKER = os.path.join(BUILD, "bench_worker")
FLOOR = os.path.join(BUILD, "bench_floor")
AGENTSUPD = os.path.join(BUILD, "agentsupd")
REPORT = struct.Struct("=qii")  # t_ns, pid, kind


class Reports:
    """Datagrams from bench_worker: (t_ns, pid, kind)."""

    def __init__(self, tmp):
        self.path = os.path.join(tmp, "report.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

    def get(self, timeout=10.0, kind=None):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no report from the worker")
            self.sock.settimeout(left)
            t, pid, k = REPORT.unpack(self.sock.recv(64))
            if kind is None or k == kind:
                return t, pid, k

    def drain(self):
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(64)
        except BlockingIOError:
            pass
        self.sock.setblocking(True)

    def close(self):
        self.sock.close()


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def summary(values_ns):
    ms = [v / 1e6 for v in values_ns]
    return {"n": len(ms), "median": statistics.median(ms), "p99": pct(ms, 99),
            "min": min(ms), "max": max(ms)}


def restart_latency(reports, first_pid, kills, run_for, timeout=10.0,
                    pid_of=None, follow=None):
    """Kill the worker kills times after it has run run_for seconds; return
    SIGKILL -> first instruction of the new instance, in ns. pid_of maps
    the pid a worker reports (its getpid()) to ours (a PID namespace);
    follow.pid is set to the last instance's reported pid."""
    pid = first_pid
    out = []
    for _ in range(kills):
        time.sleep(run_for)  # the worker "has run a while"
        if pid_of is not None:
            pid = pid_of(pid)
        reports.drain()
        t0 = time.monotonic_ns()
        os.kill(pid, signal.SIGKILL)
        t1, pid, _ = reports.get(timeout, kind=0)
        out.append(t1 - t0)
    if follow is not None:
        follow.pid = pid
    return out


def memory_kib(pids, field="VmRSS:", source="status"):
    """Sum one /proc/PID/<source> field (kB) over pids: VmRSS from status,
    or Pss: from smaps_rollup."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/{source}") as f:
                for line in f:
                    if line.startswith(field):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def rss_kib(pids):
    return memory_kib(pids)


def pss_kib(pids):
    return memory_kib(pids, "Pss:", "smaps_rollup")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid):
    """pid and every process below it."""
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except OSError:
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


class Agentsupd:
    """agentsupd on a scratch supervisor.d; stderr goes to a file (as to
    journald, a write per event), not a terminal."""

    def __init__(self, tmp, yaml, env=None, nice=0, agentsupd=None):
        self.dir = os.path.join(tmp, "supervisor.d")
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "bench.yaml"), "w") as f:
            f.write(yaml)
        self.log = open(os.path.join(tmp, "agentsupd.log"), "w")
        prefix = ["nice", "-n", str(nice)] if nice else []
        self.proc = subprocess.Popen(
            [*prefix, agentsupd or AGENTSUPD, "-c", self.dir, "--socket", os.path.join(tmp, "ctl.sock")],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            env=dict(os.environ, **(env or {})), preexec_fn=_die_with_harness)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def past_deadline(kids, deadline_ms, samples):
    """Run agentsupd over the children `kids` (YAML list items), whose
    workers report (kind 1) the moment a deadline of deadline_ms after their
    last beat or step is acted on; how long after the deadline each came,
    in ns (hang.py, stall.py)."""
    tmp = scratch()
    reports = Reports(tmp)
    d = Agentsupd(tmp, f"supervisor: root\nintensity: 100000\nperiod: 1s\n"
                       f"children:\n{kids}", env={"BENCH_SOCK": reports.path})
    lat = []
    try:
        while len(lat) < samples:
            t, _, _ = reports.get(30, kind=1)
            lat.append(t - deadline_ms * 1_000_000)
    finally:
        d.stop()
        reports.close()
        cleanup(tmp)
    return lat


def scratch():
    return tempfile.mkdtemp(prefix="agentsup-bench-")


def cleanup(tmp):
    shutil.rmtree(tmp, ignore_errors=True)


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}, Linux {os.uname().release}"
