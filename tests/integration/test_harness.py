"""The harness's own checks: what they blame must be this test's."""
import signal
import subprocess

from conftest import (Daemon, alive, outlived_by, sanitizer_report, sh,
                      start_time)


def test_a_workers_number_taken_by_another_process_is_not_its_worker(supd):
    """pid_max is 32768 on the CI machine: in a parallel run a worker's
    number, seen at its start, was another test's process by the end, and
    the check that no worker outlives agentsupd SIGKILLed it (another
    test's agentsupd: its agentsupctl read 'Connection reset by peer')."""
    d = supd.start({"a.yaml": f"""
        worker: w
        command: {sh("exec sleep 1000")}
        """})
    pid = d.wait("started", "root/w").pid
    assert d.runs(pid)
    other = subprocess.Popen(["sleep", "1000"])
    try:
        # as if other had taken the number of a worker that had ended
        d.pids.add(other.pid)
        d.starts[other.pid] = str(int(start_time(other.pid)) - 1)
        assert not d.runs(other.pid)
        d.signal(signal.SIGTERM)
        assert d.exit_code() == 0
        assert outlived_by(d) == []
        assert alive(other.pid)
    finally:
        other.kill()
        other.wait()


def test_a_sanitizer_report_in_agentsupds_log_is_found():
    class Log:
        lines = ["12:00:00.000 root/w started pid 7",
                 "==123==ERROR: AddressSanitizer: heap-use-after-free on",
                 "    #0 0x55 in client_flush src/daemon/client.c:134"]
    assert sanitizer_report(Log())[1:] == Log.lines[1:]

    class Clean:
        lines = ["12:00:00.000 root/w started pid 7",
                 "agentsupd: a worker said 'runtime' once"]
    assert sanitizer_report(Clean()) == []


def test_exit_code_returns_once_the_last_lines_are_read(tmp_path):
    """exit_code() returned once agentsupd had exited, before the reader
    thread had read its last lines from the pipe: a test looking for a
    last line right after it (test_hooks' 'left behind') failed now and
    then on a loaded machine."""
    d = Daemon(tmp_path, tmp_path / "events.jsonl", argv_prefix=(
        "/bin/sh", "-c", "seq 1 50000 >&2; echo last >&2; exit 3", "sh"))
    assert d.exit_code() == 3
    assert d.lines[-1] == "last" and len(d.lines) == 50001
