"""What the docs give to copy does what they say: the YAML of
docs/config.md and docs/operations.md passes `agentsupd --check`; every
key of the key table (src/config/keys.c) is in config.md's table with the
default the table gives; --help says what README and the man pages say;
the C Usage of agent.h and the Python examples of README and
operations.md run under agentsupd as written."""
import os
import re
import signal
import subprocess

import pytest

from conftest import AGENTSUPCTL, AGENTSUPD, BUILD, SRC, TIMEOUT, wait_until

LONE_WORKER = "worker: w\ncommand: [sleep, '1']\n"


def yaml_blocks(doc):
    text = open(os.path.join(SRC, "docs", doc)).read()
    return re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S)


def check(tmp_path, files):
    d = tmp_path / "supervisor.d"
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return subprocess.run([AGENTSUPD, "--check", "-c", str(d)],
                          capture_output=True, text=True, timeout=TIMEOUT)


def whole(block):
    """A block that is a document of its own (not a fragment: `- supervisor`
    under a list, `environment:` alone, `children: [...]`)."""
    first = next(line for line in block.splitlines()
                 if line.strip() and not line.startswith("#"))
    return (re.match(r"(worker|supervisor|agentsupd):", first)
            and "[...]" not in block)


@pytest.mark.parametrize("doc", ["config.md", "operations.md"])
def test_the_yaml_examples_pass_check(tmp_path, doc):
    blocks = [b for b in yaml_blocks(doc) if whole(b)]
    assert len(blocks) >= 5, blocks
    for i, block in enumerate(blocks):
        files = {"10-example.yaml": block}
        parents = set(re.findall(r"^parent: (\S+)", block, re.M))
        if parents - set(re.findall(r"^supervisor: (\S+)", block, re.M)):
            continue  # a subtree for a tree declared elsewhere
        if re.match(r"(#.*\n)*agentsupd:", block):
            files["20-worker.yaml"] = LONE_WORKER  # settings alone
        if "children: []" in block:  # lone files name parent: root
            files["20-worker.yaml"] = "parent: root\n" + LONE_WORKER
        r = check(tmp_path / str(i), files)
        assert r.returncode == 0, (block, r.stdout, r.stderr)


def test_the_settings_example_is_read_as_written(tmp_path):
    """The settings document of config.md, every key of it (metrics too)."""
    block = next(b for b in yaml_blocks("config.md")
                 if b.startswith("agentsupd:\n  socket:"))
    for key in ("socket", "events_file", "max_frame", "metrics", "state_dir",
                "on_event", "log_dir", "log_max", "log_keep", "log_tail",
                "log_time", "log_stderr", "contain", "termination_log"):
        assert re.search(rf"^  {key}:", block, re.M), key
    r = check(tmp_path, {"00-settings.yaml": block,
                         "10-worker.yaml": LONE_WORKER})
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_key_is_documented_with_its_default():
    src = open(os.path.join(SRC, "src", "config", "keys.c")).read()
    table = src[src.index("keys_table[] = {"):src.index("keys_count")]
    keys = {}
    for name, rest in re.findall(r'\{"([a-z_]+)",(.*?)\},\n', table, re.S):
        keys[name] = re.findall(r'"([^"]*)"', rest)[-1]
    assert len(keys) > 40, keys
    doc = open(os.path.join(SRC, "docs", "config.md")).read()
    rows = {}
    for m in re.finditer(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)? \|[^|]*\|"
                         r"(?:[^|\\]|\\\|)*\| ([^|]*) \|", doc, re.M):
        for k in filter(None, m.group(1, 2)):
            rows.setdefault(k, m.group(3).strip("` ").replace("×", "x"))
    for name, dflt in keys.items():
        assert name in rows, f"{name} is not in docs/config.md's key table"
        if name != "instances":  # "—": a name without the number
            assert rows[name].startswith(dflt), (name, dflt, rows[name])


def test_the_help_says_what_the_docs_say():
    """--help against README's command lines and the man pages' defaults:
    the private socket directory honours TMPDIR (agentsupctl(1),
    docs/protocol.md), and agentsupd's 73 includes the metrics address
    (agentsupd(8), docs/operations.md)."""
    readme = open(os.path.join(SRC, "README.md")).read()
    ctl = subprocess.run([AGENTSUPCTL, "--help"], capture_output=True,
                         text=True, timeout=TIMEOUT)
    daemon = subprocess.run([AGENTSUPD, "--help"], capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert ctl.returncode == daemon.returncode == 0
    assert daemon.stdout.splitlines()[0].removeprefix("usage: ") in readme
    assert "[-c DIR] [--socket PATH] [--json] COMMAND" in ctl.stdout
    assert "${TMPDIR:-/tmp}/agentsupd-UID/agentsupd.sock" in ctl.stdout
    assert "metrics address" in " ".join(daemon.stdout.split())


# The Usage of include/agentsup/agent.h, as written, in a program that
# gives it what it names: resume_from (says what it was handed),
# do_some_work, and the state it checkpoints (its step count).
USAGE_MAIN = r"""
#include <inttypes.h>
#include <stdio.h>
#include <agentsup/agent.h>

static char state[32];
static size_t state_len;
static uint64_t *steps;

static void
resume_from(const void *saved, size_t len)
{
	printf("resumed from step %.*s\n", (int)len, (const char *)saved);
	fflush(stdout);
}

static void
do_some_work(void)
{
	state_len = (size_t)snprintf(state, sizeof state, "%" PRIu64,
	                             *steps + 1);
}

int
main(void)
{
%s
	return 0;
}
"""


def test_the_c_usage_example_runs_supervised(supd, tmp_path):
    """Ready, beats with steps, checkpoints; a restart hands the last
    checkpoint back; a drain ends it with its declared done."""
    header = open(os.path.join(SRC, "include", "agentsup", "agent.h")).read()
    usage = header[header.index(" * Usage:\n"):header.index(" */", header.index(" * Usage:"))]
    body = "\n".join(line[3:] if line.startswith(" *\t") else ""
                     for line in usage.splitlines()[1:])
    body = body.replace("size_t len;", "size_t len;\n\tsteps = &p.steps;", 1)
    src = tmp_path / "usage.c"
    src.write_text(USAGE_MAIN.replace("%s\n", body + "\n", 1))
    exe = tmp_path / "usage"
    so = os.path.join(os.path.abspath(BUILD), "libagentsup.so")
    asan = "libasan" in subprocess.run(["readelf", "-d", so], capture_output=True,
                                       text=True).stdout
    subprocess.run(["cc", *(["-fsanitize=address,undefined"] if asan else []),
                    "-std=c11", "-Wall", "-Werror", str(src), "-o", str(exe),
                    f"-I{os.path.join(SRC, 'include')}",
                    os.path.join(os.path.abspath(BUILD), "libagentsup.a"),
                    "-lmsgpackc"], check=True, timeout=TIMEOUT * 3)
    d = supd.start({"a.yaml": f"""
        worker: usage
        command: [{exe}]
        heartbeat: 1s
        start_timeout: 5s
        """})
    d.wait("ready", "root/usage")
    wait_until(lambda: (d.ctl_json("status", "usage")[0]["checkpoint_seq"] or 0) >= 2,
               what="two checkpoints")
    node = d.ctl_json("status", "usage")[0]
    assert node["progress"]["steps"] >= 2 and node["status"] == "working", node
    d.ctl("restart", "usage", check=0)
    d.wait("exited", "root/usage")
    d.wait("ready", "root/usage")
    wait_until(lambda: "resumed from step" in d.ctl("logs", "usage").stdout,
               what="the restored checkpoint")
    d.ctl("stop", "usage", "--wait", check=0)
    ev = d.wait("exited", "root/usage")
    assert "declared done" in (ev.detail or "") + (ev.reason or ""), ev
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0


def python_blocks(doc):
    text = open(os.path.join(SRC, doc)).read()
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


CLIENT = os.path.join(SRC, "tools", "python")


def test_the_python_examples_run(supd, tmp_path):
    """README's worker loop as a supervised worker (with the step, n, t and
    c it leaves to the reader), and operations.md's Control example
    against a pool named research (its follow cut to one event)."""
    agent = next(b for b in python_blocks("README.md") if "agentsup.Agent()" in b)
    worker = tmp_path / "worker.py"
    worker.write_text(f"import sys\nsys.path.insert(0, {CLIENT!r})\n"
                      "n = t = 0\nc = 0.0\n"
                      "def step():\n    global n, t, c\n"
                      "    n, t, c = n + 1, t + 10, c + 0.5\n" + agent)
    d = supd.start({"a.yaml": f"""
        supervisor: top
        children:
          - worker: summariser
            command: [/usr/bin/python3, {worker}]
            heartbeat: 300ms
            start_timeout: 5s
          - supervisor: research
            template:
              command: [/bin/sh, -c, 'echo "$MODEL $*"', task]
        """})
    d.wait("ready", "top/summariser")
    wait_until(lambda: (d.ctl_json("status", "summariser")[0]["progress"]
                        or {}).get("steps", 0) >= 2, what="progress")
    node = d.ctl_json("status", "summariser")[0]
    assert node["status"] == "summarising" and node["progress"]["cost"] > 0

    control = next(b for b in python_blocks("docs/operations.md")
                   if "Control()" in b)
    follow = 'for ev in ctl.events("research", follow=True):'
    assert follow in control
    control = control.replace(follow, "for ev in itertools.islice("
                              'ctl.events("research", follow=True), 1):')
    script = tmp_path / "control.py"
    script.write_text(f"import itertools, sys\nsys.path.insert(0, {CLIENT!r})\n"
                      + control)
    r = subprocess.run(["/usr/bin/python3", str(script)], capture_output=True,
                       text=True, timeout=TIMEOUT,
                       env=dict(os.environ, AGENTSUP_SOCKET=d.socket))
    assert r.returncode == 0, r.stdout + r.stderr
    # the task's last lines, then the first event of research's subtree
    assert r.stdout.splitlines()[0] == "small --topic tides", r.stdout
    assert r.stdout.splitlines()[-1].endswith("top/research/q-42"), r.stdout
    d.ctl("drain", "summariser", "--wait", check=0)
    ev = d.wait("drained", "top/summariser")  # its loop saw draining
    assert ev.reason == "exit:0", ev
    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0
