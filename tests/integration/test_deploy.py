"""deploy/: the Dockerfile and the Kubernetes manifests, checked without
docker or a cluster: their structure, the names that tie them together, the
exit statuses they act on (DESIGN §5, §13), and the supervisor.d trees they
carry, which the real agentsupd must accept.
"""
import fnmatch
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

import conftest

yaml = pytest.importorskip("yaml", reason="python3-yaml not installed "
                           "(tools/lib/setup.sh installs it)")

SRC = Path(conftest.SRC).resolve()
DOCKERFILE = SRC / "deploy/docker/Dockerfile"
CONFIG_DIR = "/etc/agentsup/supervisor.d"
IMAGE_SOCKET = "/run/agentsupd.sock"


def agentsupd_check(confdir):
    r = subprocess.run([conftest.AGENTSUPD, "--check", "-c", str(confdir)],
                       capture_output=True, text=True, timeout=conftest.TIMEOUT)
    assert r.returncode == 0, (confdir, r.stderr)
    return r.stdout


def seconds(duration):
    """A config duration ("500ms", "20s", "2m", "1h", "3") in seconds."""
    m = re.fullmatch(r"([0-9.]+)(ms|s|m|h)?", str(duration))
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    return float(m.group(1)) * unit


def workers(node):
    """Every worker mapping in a supervisor.d document."""
    if "worker" in node:
        yield node
    for child in node.get("children", []):
        yield from workers(child)


# --- the Dockerfile ----------------------------------------------------------

def dockerfile():
    """[(INSTRUCTION, arguments)], continuation lines joined, comments out."""
    out, cur = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        cur += line.rstrip()
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        op, _, args = cur.strip().partition(" ")
        out.append((op.upper(), args.strip()))
        cur = ""
    assert not cur, "a trailing continuation"
    return out


def stages():
    """The build stages: [{"from": image, "name": name, "ins": [...]}]."""
    args, result = {}, []
    for op, a in dockerfile():
        if op == "ARG" and not result:
            k, _, v = a.partition("=")
            args[k] = v
        elif op == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], a.split()[0])
            m = re.search(r"\bAS\s+(\S+)$", a, re.I)
            result.append({"from": image, "name": m and m.group(1), "ins": []})
        else:
            assert result, f"{op} before FROM"
            result[-1]["ins"].append((op, a))
    return result


def copies(stage):
    """(flags, sources, dest) of every COPY/ADD in a stage."""
    for op, a in stage["ins"]:
        if op in ("COPY", "ADD"):
            words = shlex.split(a)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            yield flags, paths[:-1], paths[-1]


def test_dockerfile_stages():
    s = stages()
    assert len(s) == 2, "a build stage and a runtime stage"
    assert s[0]["name"] == "build"
    for stage in s:
        assert stage["from"].startswith("debian:12"), stage["from"]
    runtime = s[-1]["ins"]
    froms = [f for f, _, _ in copies(s[-1]) if any(x.startswith("--from=") for x in f)]
    assert froms == [["--from=build"]], froms
    install = " ".join(a for op, a in runtime if op == "RUN")
    assert re.search(r"apt-get install .*/tmp/agentsup_\*\.deb", install), install
    build = " ".join(a for op, a in s[0]["ins"] if op == "RUN")
    assert "tools/package" in build


def test_dockerfile_build_stage_has_every_build_dependency():
    """Every library the build needs (the -dev packages of tools/lib/setup.sh
    that CMakeLists.txt asks pkg-config or find_library for) is installed in
    the build stage: the image builds from a clean checkout."""
    setup = (SRC / "tools/lib/setup.sh").read_text()
    wanted = set(re.findall(r"\blib[\w.+-]+-dev\b", setup))
    test_only = {"libcmocka-dev", "libclang-rt-14-dev"}
    build = " ".join(a for op, a in stages()[0]["ins"] if op == "RUN")
    missing = sorted(p for p in wanted - test_only if p not in build.split())
    assert not missing, f"the Dockerfile's build stage lacks {missing}"


def test_dockerfile_runtime_contract():
    ins = dict(stages()[-1]["ins"])
    entry = json.loads(ins["ENTRYPOINT"])
    assert entry[0].endswith("/agentsupd") and entry[1:] == ["-c", CONFIG_DIR]
    assert ins["STOPSIGNAL"] == "SIGTERM"
    assert ins["ENV"] == f"AGENTSUP_SOCKET={IMAGE_SOCKET}"
    hc = ins["HEALTHCHECK"]
    assert "--interval=" in hc and "--timeout=" in hc
    cmd = json.loads(hc.split("CMD", 1)[1])
    script = cmd[-1]
    assert "agentsupctl status" in script
    # Docker knows 0 healthy and 1 unhealthy only: status 3 and 69 become 1
    assert script.endswith("|| exit 1")


def dockerignored(rel):
    pats = [l.strip() for l in (SRC / "deploy/docker/Dockerfile.dockerignore")
            .read_text().splitlines() if l.strip() and not l.startswith("#")]
    parts = Path(rel).parts
    for p in pats:
        p = p.rstrip("/")
        for i in range(1, len(parts) + 1):
            if fnmatch.fnmatch("/".join(parts[:i]), p) or \
               (p.startswith("**/") and fnmatch.fnmatch(parts[i - 1], p[3:])):
                return True
    return False


def test_dockerfile_copy_sources_exist():
    """Every COPY source (from the context) is in the repository and not
    excluded by the Dockerfile's .dockerignore."""
    seen = 0
    for stage in stages():
        for flags, sources, _ in copies(stage):
            if any(f.startswith("--from=") for f in flags):
                continue
            for src in sources:
                hits = glob.glob(str(SRC / src))
                assert hits, f"COPY {src}: not in the repository"
                assert not dockerignored(src), src
                seen += 1
    assert seen >= 8


@pytest.mark.packaging
def test_docker_build_stage_has_what_it_needs(tmp_path):
    """The build stage's COPY lines, replayed into an empty directory, are
    enough for its RUN (tools/package) to make the package."""
    ctx = tmp_path / "src"  # the stage's WORKDIR
    ctx.mkdir()

    def skip_ignored(d, names):
        return [n for n in names if dockerignored(Path(d, n).relative_to(SRC))]

    for _, sources, dest in copies(stages()[0]):
        for src in sources:
            for hit in map(Path, glob.glob(str(SRC / src))):
                if hit.is_dir():  # COPY dir/ dest/: its contents into dest
                    shutil.copytree(hit, ctx / dest, ignore=skip_ignored,
                                    dirs_exist_ok=True)
                else:
                    target = ctx / dest / hit.name if dest.endswith("/") else ctx / dest
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(hit, target)
    env = {k: v for k, v in os.environ.items() if "SAN_OPTIONS" not in k}
    env["AGENTSUP_NO_DEPS"] = "1"
    r = subprocess.run(["tools/package", "build-pkg"], cwd=ctx, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert re.fullmatch(r"build-pkg/agentsup_[0-9.]+_\w+\.deb\n", r.stdout), r.stdout


def test_image_example_tree_is_valid(tmp_path):
    """What the image puts in /etc/agentsup/supervisor.d passes --check, and
    the files its workers run are copied into the image."""
    copied = {dest: srcs for _, srcs, dest in copies(stages()[-1])}
    tree = [s for d, s in copied.items() if d.rstrip("/") == CONFIG_DIR]
    assert tree, copied
    out = agentsupd_check(SRC / tree[0][0])
    assert "example" in out
    for f in glob.glob(str(SRC / tree[0][0] / "*.yaml")):
        for doc in yaml.safe_load_all(Path(f).read_text()):
            for w in workers(doc):
                for arg in w["command"]:
                    if arg.startswith("/usr/local/"):
                        assert arg in copied, f"{arg} is not in the image"


# --- Kubernetes --------------------------------------------------------------

def manifests():
    docs = []
    for f in sorted((SRC / "deploy/kubernetes").glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d:
                docs.append((f.name, d))
    return docs


def one(kind):
    found = [d for _, d in manifests() if d["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def config_maps():
    return {d["metadata"]["name"]: d for _, d in manifests() if d["kind"] == "ConfigMap"}


def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


def container(obj):
    cs = pod_spec(obj)["containers"]
    assert [c["name"] for c in cs] == ["agentsup"]
    return cs[0]


def test_kinds_and_api_versions():
    want = {"ConfigMap": "v1", "Deployment": "apps/v1", "Job": "batch/v1"}
    kinds = {}
    for name, d in manifests():
        assert d["apiVersion"] == want[d["kind"]], (name, d["kind"])
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", d["metadata"]["name"])
        kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
    assert kinds == {"ConfigMap": 2, "Deployment": 1, "Job": 1}, kinds


def test_names_tie_together():
    """Selectors match labels, every volume's ConfigMap exists and is
    mounted where the image's ENTRYPOINT reads its tree, the image is the
    one the Dockerfile documents."""
    maps = config_maps()
    tag = re.search(r"docker build .* -t (\S+) \.", DOCKERFILE.read_text()).group(1)
    dep = one("Deployment")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for obj in (dep, one("Job")):
        c = container(obj)
        assert c["image"] == tag
        env = {e["name"]: e["value"] for e in c.get("env", [])}
        assert env.get("AGENTSUP_SOCKET") == IMAGE_SOCKET
        vols = {v["name"]: v for v in pod_spec(obj)["volumes"]}
        mounts = [m for m in c["volumeMounts"] if m["mountPath"] == CONFIG_DIR]
        assert len(mounts) == 1 and mounts[0]["readOnly"] is True
        assert vols[mounts[0]["name"]]["configMap"]["name"] in maps
        assert c["terminationMessagePath"] == "/dev/termination-log"
        assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert {tree_of(dep), tree_of(one("Job"))} == set(maps)


def tree_of(obj):
    """The name of the ConfigMap mounted as the pod's supervisor.d."""
    mount = [m for m in container(obj)["volumeMounts"]
             if m["mountPath"] == CONFIG_DIR][0]
    vols = {v["name"]: v for v in pod_spec(obj)["volumes"]}
    return vols[mount["name"]]["configMap"]["name"]


def test_deployment_drains_before_it_stops():
    dep = one("Deployment")
    c = container(dep)
    pre = c["lifecycle"]["preStop"]["exec"]["command"]
    # it drains and waits for agentsupd's exit, within the grace period
    assert pre[:3] == ["agentsupctl", "drain", "--wait"], pre
    assert pre[3] == "--timeout" and \
        seconds(pre[4]) < pod_spec(dep)["terminationGracePeriodSeconds"]
    # the grace covers the slowest worker's drain and stop sequence
    tree = config_maps()[tree_of(dep)]
    slowest = max(seconds(w.get("drain_timeout", "30s")) + seconds(w.get("shutdown", "5s"))
                  for text in tree["data"].values()
                  for doc in yaml.safe_load_all(text) for w in workers(doc))
    assert pod_spec(dep)["terminationGracePeriodSeconds"] > slowest + 5
    ready = c["readinessProbe"]["exec"]["command"]
    assert ready == ["agentsupctl", "status"]
    alive = " ".join(c["livenessProbe"]["exec"]["command"])
    assert "agentsupctl status" in alive and "69" in alive


def test_job_fails_by_exit_status():
    """75 (the root gave up) is retried; 78 (bad config) and 79 (budget
    spent) fail the Job at once (DESIGN §13) — and these are the statuses
    agentsupd(8) documents."""
    job = one("Job")
    assert pod_spec(job)["restartPolicy"] == "Never"
    action = {}
    for rule in job["spec"]["podFailurePolicy"]["rules"]:
        on = rule.get("onExitCodes")
        if on is None:
            assert rule["onPodConditions"] and rule["action"] == "Ignore"
            continue
        assert on["containerName"] == container(job)["name"]
        assert on["operator"] == "In"
        for code in on["values"]:
            assert code not in action, f"exit {code} in two rules"
            action[code] = rule["action"]
    assert action == {75: "Count", 78: "FailJob", 79: "FailJob"}, action
    assert job["spec"]["backoffLimit"] >= 1
    man = (SRC / "man/agentsupd.8.scd").read_text()
    exits = man.split("# EXIT STATUS", 1)[1].split("\n# ", 1)[0]
    for code in action:
        assert f"*{code}*" in exits, code


def test_config_maps_hold_valid_trees(tmp_path):
    """Each ConfigMap, laid out as the kubelet mounts it (hidden ..data
    directories, the files as symlinks), passes agentsupd --check."""
    for name, cm in config_maps().items():
        d = tmp_path / name
        data = d / "..2026_01_01_00_00_00.000000000"
        data.mkdir(parents=True)
        (d / "..data").symlink_to(data.name)
        for fname, text in cm["data"].items():
            assert fname.endswith((".yaml", ".yml")), fname
            (data / fname).write_text(text)
            (d / fname).symlink_to(Path("..data", fname))
        out = agentsupd_check(d)
        for text in cm["data"].values():
            for doc in yaml.safe_load_all(text):
                for w in workers(doc):
                    assert w["worker"] in out


# --- the manifests' commands, run against a real agentsupd -------------------

def image_paths():
    """{path in the image: path in the repository} for the files COPYed."""
    out = {}
    for stage in stages():
        for flags, sources, dest in copies(stage):
            if not flags and len(sources) == 1 and not dest.endswith("/"):
                out[dest] = str(SRC / sources[0])
    return out


def start_tree(supd, cm_name):
    return start_files(supd, config_maps()[cm_name]["data"])


TERMINATION_LOG = "/dev/termination-log"  # the pods' terminationMessagePath


def tree_files(supd, data):
    """A tree of the image with paths mapped from the image to the
    repository, the image's socket and the pod's termination log to
    private ones; the environment agentsupctl gets there: on PATH, the
    socket in AGENTSUP_SOCKET, as the image and manifests set them."""
    sock = str(supd.tmp / "agentsupd.sock")
    files = {}
    for fname, text in data.items():
        for image, repo in image_paths().items():
            text = text.replace(image, repo)
        text = text.replace(TERMINATION_LOG, str(supd.tmp / "termination-log"))
        # the test's events file in the tree's own settings (one document)
        text = re.sub(r"^agentsupd:\n", f"agentsupd:\n  events_file: {supd.events}\n",
                      textwrap.dedent(text), count=1, flags=re.M)
        files[fname] = text.replace(IMAGE_SOCKET, sock)
    env = {"AGENTSUP_SOCKET": sock,
           "PATH": f"{Path(conftest.AGENTSUPCTL).parent}:{os.environ['PATH']}"}
    return files, sock, env


def start_files(supd, data):
    """agentsupd on a tree of the image (tree_files)."""
    files, sock, env = tree_files(supd, data)
    supd.write(files, settings=not any(
        re.search(r"^agentsupd:", t, re.M) for t in files.values()))
    d = supd.start(env=env, socket_path=sock)
    return d, dict(os.environ, **env)


def termination_record(supd):
    with open(supd.tmp / "termination-log") as f:
        return json.load(f)


def probe(command, env):
    return subprocess.run(command, env=env, capture_output=True, text=True,
                          timeout=conftest.TIMEOUT).returncode


def test_deployment_hooks_and_probes_work(supd):
    """Readiness and liveness pass on a live tree; the preStop hook drains
    it and returns once agentsupd has exited 0, within the grace period;
    liveness then fails."""
    dep = one("Deployment")
    c = container(dep)
    d, env = start_tree(supd, tree_of(dep))
    d.wait("ready", "agents/example")
    assert probe(c["readinessProbe"]["exec"]["command"], env) == 0
    assert probe(c["livenessProbe"]["exec"]["command"], env) == 0
    # a hung agentsupd (stopped: its kernel still takes the connection) is
    # not alive either: agentsupctl exits 75 within the probe's timeout
    os.kill(d.proc.pid, signal.SIGSTOP)
    try:
        assert probe(c["livenessProbe"]["exec"]["command"], env) != 0
    finally:
        os.kill(d.proc.pid, signal.SIGCONT)
    assert probe(c["livenessProbe"]["exec"]["command"], env) == 0
    grace = pod_spec(dep)["terminationGracePeriodSeconds"]
    subprocess.run(c["lifecycle"]["preStop"]["exec"]["command"], env=env,
                   check=True, timeout=grace)
    # the hook returns once agentsupd no longer answers: its socket goes
    # among its last steps, and its exit follows at once (moments later
    # under ASan, whose leak check runs after): not a grace period's wait
    assert d.exit_code(timeout=5) == 0, "preStop returned before the drain ended"
    d.drain_events()
    assert d.count("drained", "agents/example") == 1
    assert probe(c["livenessProbe"]["exec"]["command"], env) != 0
    # the pod's termination message (the manifests wrote none)
    assert termination_record(supd)["status"] == 0
    assert c["terminationMessagePath"] == TERMINATION_LOG


def _need_pidns():
    if os.geteuid() != 0 or not shutil.which("unshare") or \
            not shutil.which("nsenter"):
        pytest.skip("needs root, unshare and nsenter")
    if subprocess.run(["unshare", "--pid", "--fork", "true"],
                      capture_output=True).returncode != 0:
        pytest.skip("no PID namespaces here")


def test_prestop_hook_in_the_pod_returns_0(supd):
    """The Deployment's preStop exec'd as the kubelet does it, inside the
    pod's PID namespace, whose PID 1 is agentsupd: the hook drained, then
    polled status, and when the drain ended agentsupd exited and the kernel
    killed every process of the namespace, the hook too (137, "failed
    preStop hook" on every pod stop; found running it as a container).
    drain --wait hears the exit status before agentsupd exits."""
    _need_pidns()
    dep = one("Deployment")
    c = container(dep)
    files, sock, env = tree_files(supd, config_maps()[tree_of(dep)]["data"])
    supd.write(files, settings=False)  # the tree's own, events_file in it
    d = conftest.Daemon(supd.dir, supd.events, extra_env=env,
                        socket_path=sock,
                        argv_prefix=["unshare", "--pid", "--fork",
                                     "--kill-child"])
    supd.started.append(d)
    d.wait("ready", "agents/example")
    with open(f"/proc/{d.proc.pid}/task/{d.proc.pid}/children") as f:
        pid1 = int(f.read().split()[0])  # agentsupd, unshare's child
    hook = c["lifecycle"]["preStop"]["exec"]["command"]
    r = subprocess.run(["nsenter", "-t", str(pid1), "-p", "--", *hook],
                       env=dict(os.environ, **env), capture_output=True,
                       text=True,
                       timeout=pod_spec(dep)["terminationGracePeriodSeconds"])
    assert d.exit_code() == 0
    assert r.returncode == 0, (r.returncode, r.stderr)
    d.drain_events()
    assert d.count("drained", "agents/example") == 1


def test_job_tree_completes_with_status_0(supd):
    """The Job's batch does its items, drains the tree, agentsupd exits 0:
    the status the Job counts as success."""
    d, _ = start_tree(supd, tree_of(one("Job")))
    assert d.exit_code() == 0
    assert termination_record(supd)["status"] == 0
    d.drain_events()
    assert d.count("exited", "batch/items") + d.count("drained", "batch/items") >= 1
    assert d.count("restarting") == 0


def test_docker_healthcheck_works(supd):
    """The HEALTHCHECK passes on the image's own tree, fails (1) once
    agentsupd is gone."""
    hc = dict(stages()[-1]["ins"])["HEALTHCHECK"]
    command = json.loads(hc.split("CMD", 1)[1])
    tree = SRC / "deploy/docker/supervisor.d"
    d, env = start_files(supd, {f.name: f.read_text() for f in tree.glob("*.yaml")})
    d.wait("ready", "app/example")
    assert probe(command, env) == 0
    d.ctl("shutdown", check=0)
    assert d.exit_code() == 0
    assert probe(command, env) == 1
