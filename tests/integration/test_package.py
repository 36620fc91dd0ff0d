"""The Debian package and the Python client, installed as README's
"Installing" section says, on a clean prefix: never the machine's /usr.

The package is built once per session by tools/package into the test build's
own tree ($AGENTSUP_BUILD/package), unpacked with `dpkg-deb -x` into a
temporary root, and everything in it is used from there: the daemon runs a C
worker compiled against the packaged headers and pkg-config file and a Python
worker importing the packaged client.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

import conftest
from conftest import TIMEOUT

SRC = Path(conftest.SRC).resolve()
BUILD = Path(conftest.BUILD).resolve()

pytestmark = [pytest.mark.skipif(
    not (shutil.which("cpack") and shutil.which("dpkg-deb")),
    reason="cpack or dpkg-deb missing: apt-get install cmake dpkg-dev "
           "(tools/lib/setup.sh installs them)"), pytest.mark.packaging]

# Every header a worker or third-party client may include.
HEADERS = sorted(p.name for p in Path(SRC, "include/agentsup").glob("*.h"))


def run(*argv, ok=True, **kw):
    kw.setdefault("timeout", 120)
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if ok:
        assert r.returncode == 0, (argv, r.returncode, r.stdout, r.stderr)
    return r


def multiarch():
    return run("gcc", "-print-multiarch").stdout.strip()


def project_version():
    text = Path(SRC, "CMakeLists.txt").read_text()
    return re.search(r"project\(agentsup VERSION ([0-9.]+)", text).group(1)


def python_version():
    """The Python client's own version, from its pyproject.toml."""
    text = Path(SRC, "tools/python/pyproject.toml").read_text()
    return re.search(r'^version = "([^"]+)"', text, re.M).group(1)


def readme_block(heading):
    """The first ```sh block under the README heading given."""
    text = Path(SRC, "README.md").read_text()
    part = text.split(heading, 1)[1]
    return re.search(r"```sh\n(.*?)```", part, re.S).group(1)


@pytest.fixture(scope="session")
def deb():
    """tools/package, into a build tree of the test build's own."""
    out = Path(BUILD, "package")
    env = dict(os.environ, AGENTSUP_NO_DEPS="1")
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        env.pop(k, None)
    r = run(str(Path(SRC, "tools/package")), str(out), cwd=SRC, env=env,
            timeout=600)
    debs = r.stdout.split()  # the build's progress goes to stderr
    assert len(debs) == 1 and debs[0].endswith(".deb"), r.stdout
    return Path(debs[0])


@pytest.fixture(scope="session")
def root(deb, tmp_path_factory):
    """The package's files, unpacked as dpkg would but into a private root."""
    r = tmp_path_factory.mktemp("root")
    run("dpkg-deb", "-x", str(deb), str(r))
    return r


def test_control_fields(deb):
    """Name, version, architecture and dependencies as a user's apt needs."""
    def field(name):
        return run("dpkg-deb", "-f", str(deb), name).stdout.strip()

    assert field("Package") == "agentsup"
    assert field("Version") == project_version()
    assert field("Architecture") == run(
        "dpkg", "--print-architecture").stdout.strip()
    assert field("Maintainer")
    assert field("Section") == "admin"
    assert "supervision" in field("Description")
    names = [d.split()[0] for d in field("Depends").split(", ")]
    assert len(names) == len(set(names)), names  # each once
    depends = set(names)
    assert {"libc6", "libev4", "libmsgpackc2", "libyaml-0-2", "python3",
            "python3-msgpack"} <= depends, depends
    info = run("dpkg-deb", "-I", str(deb)).stdout
    assert "shlibs" in info and "postinst" in info and "prerm" in info


def test_maintainer_scripts_tell_systemd(deb, tmp_path):
    """The package only ran ldconfig: removed, a running agentsupd kept
    running with its binary and unit gone, and systemd never read a new or
    changed unit. Now: stop on remove (not on upgrade: that would stop every
    agent at once), daemon-reload after install and removal, ldconfig still.
    Run as dpkg would, in a private mount namespace where /run/systemd/system
    exists, with systemctl and ldconfig recording their calls."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare")
    ctl = tmp_path / "control"
    run("dpkg-deb", "-e", str(deb), str(ctl))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls"
    for tool in ("systemctl", "ldconfig"):
        (bindir / tool).write_text(f'#!/bin/sh\necho "{tool}${{1:+ $*}}" >> {calls}\n')
        (bindir / tool).chmod(0o755)
    steps = [("prerm", "upgrade"), ("postinst", "configure"),
             ("prerm", "remove"), ("postrm", "remove"), ("postrm", "purge")]
    script = "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system"
    for name, arg in steps:
        script += f" && echo '== {name} {arg}' >> {calls} && {ctl / name} {arg}"
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    r = subprocess.run(["unshare", "--mount", "--propagation", "private",
                        "sh", "-c", script], env=env, capture_output=True,
                       text=True, timeout=TIMEOUT)
    if r.returncode != 0 and "unshare" in r.stderr:
        pytest.skip("no mount namespace here: " + r.stderr)
    assert r.returncode == 0, r
    assert calls.read_text() == textwrap.dedent("""\
        == prerm upgrade
        == postinst configure
        ldconfig
        systemctl daemon-reload
        == prerm remove
        systemctl stop agentsupd.service
        systemctl disable agentsupd.service
        == postrm remove
        ldconfig
        systemctl daemon-reload
        == postrm purge
        ldconfig
        systemctl daemon-reload
        """)


def test_daemon_maps_no_parser_or_store_at_start(root):
    """agentsupd loads libyaml only while it parses and SQLite only with a
    state store (yamlib.c, sqlib.c): neither is among its DT_NEEDED, so an
    idle daemon maps neither; the package still depends on both."""
    needed = run("readelf", "-d", str(root / "usr/sbin/agentsupd")).stdout
    libs = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*?)\]", needed)
    assert libs and not [x for x in libs if "yaml" in x or "sqlite" in x], libs


def test_apt_can_install_it(deb):
    """`apt install ./agentsup_*.deb` resolves on this Debian (simulated)."""
    if not shutil.which("apt-get"):
        pytest.skip("no apt-get")
    r = run("apt-get", "install", "-s", "-q", str(deb))
    assert re.search(r"^(Inst|Conf) agentsup ", r.stdout, re.M), r.stdout


def test_contents(deb):
    """Every part the issue lists, at Debian's paths, and nothing stray."""
    listing = run("dpkg-deb", "-c", str(deb)).stdout
    files = {line.split()[5].lstrip(".") for line in listing.splitlines()}
    lib = f"/usr/lib/{multiarch()}"
    want = {
        "/usr/sbin/agentsupd", "/usr/bin/agentsupctl",
        "/usr/libexec/agentsup-guard",  # the guard, the PID namespace init
        f"{lib}/libagentsup.so.0", f"{lib}/libagentsup.so",
        f"{lib}/libagentsup.a", f"{lib}/pkgconfig/agentsup.pc",
        "/usr/share/man/man8/agentsupd.8.gz",
        "/usr/share/man/man1/agentsupctl.1.gz",
        "/usr/share/man/man5/agentsup.yaml.5.gz",
        "/usr/share/bash-completion/completions/agentsupctl",
        "/usr/lib/python3/dist-packages/agentsup/__init__.py",
        f"/usr/lib/python3/dist-packages/agentsup-{python_version()}"
        ".dist-info/METADATA",
        "/etc/agentsup/supervisor.d/", "/usr/share/doc/agentsup/README.md",
        "/usr/share/doc/agentsup/protocol.md",
    }
    want |= {f"/usr/include/agentsup/{h}" for h in HEADERS}
    if Path(SRC, "deploy/systemd/agentsupd.service.in").exists():
        want.add("/lib/systemd/system/agentsupd.service")
    if Path(SRC, "tools/python/agentsup/py.typed").exists():
        want.add("/usr/lib/python3/dist-packages/agentsup/py.typed")
    assert want <= files, sorted(want - files)
    stray = [f for f in files if "__pycache__" in f or f.endswith(".pyc")
             or not re.match(r"^/(usr|lib|etc)/", f)]
    assert not stray, stray


def test_installed_programs_are_stripped(root):
    """CPACK_STRIP_FILES strips targets; the guard, built apart, too."""
    for f in ("usr/sbin/agentsupd", "usr/bin/agentsupctl",
              "usr/libexec/agentsup-guard"):
        sections = run("readelf", "-S", "-W", str(root / f)).stdout
        assert ".debug_info" not in sections and ".symtab" not in sections, f


def test_systemd_unit_runs_the_packaged_daemon(root):
    """The unit's ExecStart names the agentsupd the package installs, on
    the config directory it makes."""
    if not Path(SRC, "deploy/systemd/agentsupd.service.in").exists():
        pytest.skip("no deploy/systemd/agentsupd.service.in in this tree")
    unit = (root / "lib/systemd/system/agentsupd.service").read_text()
    starts = re.findall(r"^ExecStart=[-@:+!]*(\S+)", unit, re.M)
    assert starts == ["/usr/sbin/agentsupd"], starts
    assert (root / starts[0].lstrip("/")).is_file()
    conf = re.findall(r"^Exec(?:Start|Reload)=\S+ -c (\S+)", unit, re.M)
    assert conf == ["/etc/agentsup/supervisor.d"] * 2, conf
    assert (root / conf[0].lstrip("/")).is_dir()
    reloads = re.findall(r"^ExecReload=[-@:+!]*(\S+)", unit, re.M)
    assert reloads == ["/usr/bin/agentsupctl"], reloads
    assert (root / reloads[0].lstrip("/")).is_file()


def test_daemon_and_ctl_run_from_the_package(root, tmp_path):
    d = tmp_path / "supervisor.d"
    d.mkdir()
    (d / "10-a.yaml").write_text(textwrap.dedent("""\
        supervisor: fleet
        children:
          - worker: sleeper
            command: [sleep, "100"]
        """))
    r = run(str(root / "usr/sbin/agentsupd"), "--check", "-c", str(d))
    assert "fleet" in r.stdout and "sleeper" in r.stdout
    (d / "20-bad.yaml").write_text("worker: x\ncomand: [true]\n")
    r = run(str(root / "usr/sbin/agentsupd"), "--check", "-c", str(d), ok=False)
    assert r.returncode == 78 and "20-bad.yaml:2:1" in r.stderr, r.stderr
    r = run(str(root / "usr/bin/agentsupctl"), "--help")
    assert r.stdout.startswith("usage: agentsupctl")


def man(page):
    env = dict(os.environ, MANWIDTH="100", LC_ALL="C.UTF-8")
    r = run("man", "-l", str(page), env=env)
    assert "warning" not in r.stderr.lower(), r.stderr
    return r.stdout


@pytest.mark.skipif(not shutil.which("man"), reason="man-db not installed")
def test_man_pages(root):
    """Each page renders, and documents what the binaries actually accept."""
    mandir = root / "usr/share/man"
    daemon = man(mandir / "man8/agentsupd.8.gz")
    assert daemon.splitlines()[0].startswith("agentsupd(8)")
    assert "NAME" in daemon and "SIGUSR1" in daemon
    for status in ("0", "64", "70", "73", "75", "78", "79"):
        assert re.search(rf"^\s+{status}\s*$", daemon, re.M), status
    usage = run(str(root / "usr/sbin/agentsupd"), "--help").stdout
    for opt in re.findall(r"--[a-z-]+", usage):
        assert opt in daemon, opt

    ctl = man(mandir / "man1/agentsupctl.1.gz")
    for cmd in ctl_commands(root):
        assert re.search(rf"^\s+{cmd}\b", ctl, re.M), cmd
    for status in ("0", "1", "3", "64", "69"):
        assert re.search(rf"^\s+{status}\s*$", ctl, re.M), status

    conf = man(mandir / "man5/agentsup.yaml.5.gz")
    documented = re.findall(r"^\| `([a-z_]+)`",
                            Path(SRC, "docs/config.md").read_text(), re.M)
    assert len(documented) > 15
    for key in documented:
        assert re.search(rf"\b{key}:", conf), key


def ctl_commands(root):
    """The commands agentsupctl --help lists."""
    usage = run(str(root / "usr/bin/agentsupctl"), "--help").stdout
    return re.findall(r"^  ([a-z]+)\b", usage, re.M)


def test_python_client_from_dist_packages(root):
    site = root / "usr/lib/python3/dist-packages"
    r = run("/usr/bin/python3", "-c",
            "import agentsup, agentsup.control, importlib.metadata as m; "
            "print(agentsup.__file__, m.version('agentsup'), "
            "m.requires('agentsup'))",
            env=dict(os.environ, PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1"))
    path, version, requires = r.stdout.split(" ", 2)
    assert Path(path).is_relative_to(site), r.stdout
    assert version == python_version()
    assert "msgpack" in requires


WORKER_C = r"""
#include <stdio.h>
#include <agentsup/agent.h>

int
main(void)
{
	struct agentsup *a = agentsup_open("c");
	uint64_t deadline;

	if (a == NULL || !agentsup_supervised(a))
		return 2;
	agentsup_ready(a);
	while (!agentsup_draining(a, &deadline))
		if (agentsup_wait(a, 1000) < 0)
			break;
	printf("%s drained\n", agentsup_name(a));
	agentsup_close(a);
	return 0;
}
"""


@pytest.fixture(scope="session")
def c_workers(root, tmp_path_factory):
    """A worker built against the package with pkg-config: shared, static."""
    out = tmp_path_factory.mktemp("cworker")
    src = out / "worker.c"
    src.write_text(WORKER_C)
    pcdir = root / f"usr/lib/{multiarch()}/pkgconfig"
    # the package's own .pc alone: what it names must come with it
    env = dict(os.environ, PKG_CONFIG_SYSROOT_DIR=str(root),
               PKG_CONFIG_LIBDIR=str(pcdir))
    env.pop("PKG_CONFIG_PATH", None)
    cflags = run("pkg-config", "--cflags", "agentsup", env=env).stdout.split()
    libs = run("pkg-config", "--libs", "agentsup", env=env).stdout.split()
    assert f"-I{root}/usr/include" in cflags, cflags
    assert f"-L{root}/usr/lib/{multiarch()}" in libs, libs
    shared, static = out / "worker", out / "worker-static"
    run("cc", "-std=c11", "-Wall", "-Werror", str(src), "-o", str(shared),
        *cflags, *libs)
    static_libs = run("pkg-config", "--static", "--libs", "agentsup",
                      env=env).stdout.split()
    static_libs = [y for x in static_libs for y in (
        ("-Wl,-Bstatic", x, "-Wl,-Bdynamic") if x == "-lagentsup" else (x,))]
    run("cc", "-std=c11", str(src), "-o", str(static), *cflags, *static_libs)
    needed = run("readelf", "-d", str(static)).stdout
    assert "libagentsup" not in needed
    return shared, static


def test_packaged_tree_end_to_end(root, c_workers, supd, monkeypatch):
    """The packaged daemon runs C workers linked with the packaged library
    and a Python worker importing the packaged client; the packaged ctl sees
    them; the packaged completion names them; SIGTERM drains them."""
    monkeypatch.setattr(conftest, "AGENTSUPD", str(root / "usr/sbin/agentsupd"))
    monkeypatch.setattr(conftest, "AGENTSUPCTL", str(root / "usr/bin/agentsupctl"))
    shared, static = c_workers
    libdir = root / f"usr/lib/{multiarch()}"
    site = root / "usr/lib/python3/dist-packages"
    py = ("import agentsup\n"
          "with agentsup.Agent() as a:\n"
          "    a.ready()\n"
          "    while not a.draining:\n"
          "        a.wait(1)\n")
    d = supd.start({"10-tree.yaml": f"""\
        supervisor: pkg
        children:
          - worker: c-shared
            command: [{shared}]
            environment: {{LD_LIBRARY_PATH: {libdir}}}
            start_timeout: 10s
          - worker: c-static
            command: [{static}]
            start_timeout: 10s
          - worker: py-client
            command: [/usr/bin/python3, -c, {json.dumps(py)}]
            environment: {{PYTHONPATH: {site}, PYTHONDONTWRITEBYTECODE: "1"}}
            start_timeout: 10s
          - supervisor: jobs
            template:
              command: [/bin/sh, -c, 'exit $1', task]
              restart: temporary
              backoff: none
        """})
    for name in ("c-shared", "c-static", "py-client"):
        d.wait("ready", f"pkg/{name}")
    for key, status in (("ok", "0"), ("bad", "1")):
        d.ctl("spawn", "jobs", "--key", key, "--", status, check=0)
    assert d.ctl("wait", "ok").returncode == 0
    assert d.ctl("wait", "bad").returncode == 2
    nodes = {n["name"]: n for n in d.ctl_json("status")}
    assert all(nodes[n]["state"] == "running"
               for n in ("c-shared", "c-static", "py-client")), nodes

    assert complete(root, d.socket, "agentsupctl", "st") == ["start", "status", "stop"]
    assert complete(root, d.socket, "agentsupctl", "restart", "c-") == [
        "c-shared", "c-static"]
    assert complete(root, d.socket, "agentsupctl", "--json", "stop", "pkg/p") == [
        "pkg/py-client"]
    assert complete(root, d.socket, "agentsupctl", "events", "--f") == ["--follow"]
    assert complete(root, d.socket, "agentsupctl", "tasks", "--state",
                    "ca") == ["cancelled", "cancelling"]
    # a state given, SUP is still to come: a node
    assert complete(root, d.socket, "agentsupctl", "tasks", "--state",
                    "done", "pkg/py") == ["pkg/py-client"]
    # tasks: the dead letters to replay, any to wait on
    assert complete(root, d.socket, "agentsupctl", "replay", "") == ["jobs/bad"]
    assert complete(root, d.socket, "agentsupctl", "wait", "jobs/") == [
        "jobs/bad", "jobs/ok"]
    assert complete(root, str(supd.tmp / "elsewhere.sock"), "agentsupctl",
                    "--socket", d.socket, "start", "py") == ["py-client"]
    assert set(ctl_commands(root)) <= set(
        complete(root, d.socket, "agentsupctl", ""))

    d.signal(signal.SIGTERM)
    assert d.exit_code() == 0


def test_completion_is_silent_without_a_daemon(root, tmp_path):
    r = complete(root, str(tmp_path / "none.sock"), "agentsupctl", "stop", "",
                 raw=True)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def complete(root, sock, *words, raw=False):
    """What the packaged completion offers for the last word."""
    script = textwrap.dedent("""\
        source "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        _agentsupctl
        [ ${#COMPREPLY[@]} -eq 0 ] || printf '%s\\n' "${COMPREPLY[@]}"
        """)
    env = dict(os.environ, AGENTSUP_SOCKET=sock,
               PATH=f"{root}/usr/bin:{os.environ['PATH']}")
    r = run("bash", "-c", script, "complete",
            str(root / "usr/share/bash-completion/completions/agentsupctl"),
            *words, env=env, timeout=TIMEOUT, ok=not raw)
    return r if raw else sorted(r.stdout.split())


def test_python_client_alone_as_readme_says(tmp_path):
    """README's commands for the Python client, run as written, offline:
    Debian's packages only, no index, no pip configuration of this host."""
    block = readme_block("### The Python client alone")
    lines = [l for l in block.splitlines() if l.strip() and not l.startswith("#")]
    apt = [l for l in lines if "apt-get install" in l]
    assert len(apt) == 1
    for pkg in apt[0].split("install", 1)[1].split():
        status = run("dpkg-query", "-W", "-f=${Status}", pkg, ok=False).stdout
        assert "install ok installed" in status, pkg
    src = tmp_path / "tools/python"
    shutil.copytree(Path(SRC, "tools/python"), src, ignore=shutil.ignore_patterns(
        "__pycache__", "build", "*.egg-info"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, HOME=str(tmp_path),
               PATH="/usr/bin:/bin", PYTHONDONTWRITEBYTECODE="1")
    for line in lines:
        if line not in apt:
            run("sh", "-c", line, cwd=tmp_path, env=env, timeout=180)
    venv = tmp_path / "agentsup-venv"
    r = run(str(venv / "bin/python"), "-c",
            "import agentsup, agentsup.control, msgpack; "
            "print(agentsup.__file__)", env=env)
    assert Path(r.stdout.strip()).resolve().is_relative_to(venv.resolve()), r.stdout
